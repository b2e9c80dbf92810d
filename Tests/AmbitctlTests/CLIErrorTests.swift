import AmbitTestSupport
import Foundation
import Testing

/// Bad command-line input: `ambitctl` exits non-zero with a message naming the option and the
/// problem, and writes nothing.
@Suite struct CLIErrorTests {
    static var ambitctl: String { TestBinaries.path("ambitctl") }

    static func ambitctl(_ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(Self.ambitctl, arguments)
    }

    @Test func certIssueRefusesBadInputAndWritesNothing() throws {
        let scratch = try TemporaryDirectory(prefix: "ambit-cli")
        defer { scratch.remove() }
        let ca = scratch.path + "/ca"
        let out = scratch.path + "/out"
        let initialized = try Self.ambitctl(["ca", "init", "--dir", ca])
        try #require(initialized.status == 0, "\(initialized.standardError)")
        let cases: [([String], String)] = [
            (
                ["--ca", ca, "--spiffe", "spiffe://cluster.local/ns/demo", "--out", out],
                #"--spiffe: invalid SPIFFE ID "spiffe://cluster.local/ns/demo": path must be exactly /ns/<namespace>/sa/<service-account>, got /ns/demo"#
            ),
            (
                ["--ca", scratch.path + "/missing", "--spiffe", "spiffe://cluster.local/ns/demo/sa/web", "--out", out],
                "CA directory \(scratch.path)/missing does not exist (create one with `ambitctl ca init"
            ),
            (
                ["--ca", ca, "--spiffe", "spiffe://elsewhere.example/ns/demo/sa/web", "--out", out],
                #"requested identity spiffe://elsewhere.example/ns/demo/sa/web is outside the trust domain "cluster.local""#
            ),
            (
                ["--ca", ca, "--spiffe", "spiffe://cluster.local/ns/demo/sa/web", "--out", out, "--lifetime", "3x"],
                #"--lifetime: "3x" is not a duration"#
            ),
        ]
        for (arguments, message) in cases {
            let result = try Self.ambitctl(["cert", "issue"] + arguments)
            #expect(result.status != 0, "\(arguments) succeeded")
            #expect(result.standardError.contains(message), "\(arguments): \(result.standardError)")
            #expect(!FileManager.default.fileExists(atPath: out + "/key.pem"), "\(arguments) wrote a key")
        }
    }

    @Test func caInitNeverOverwritesAnExistingCA() throws {
        let scratch = try TemporaryDirectory(prefix: "ambit-cli")
        defer { scratch.remove() }
        let ca = scratch.path + "/ca"
        try #require(try Self.ambitctl(["ca", "init", "--dir", ca]).status == 0)
        let key = try String(contentsOfFile: ca + "/ca-key.pem", encoding: .utf8)
        let again = try Self.ambitctl(["ca", "init", "--dir", ca])
        #expect(again.status != 0)
        #expect(again.standardError.contains("already holds a CA (ca-key.pem); refusing to overwrite it"))
        #expect(try String(contentsOfFile: ca + "/ca-key.pem", encoding: .utf8) == key)
    }
}
