import AmbitTestSupport
import Foundation
import Testing

/// The image's multi-call executable: `ambit` runs the program named by the link it is started
/// through (as the image installs it), or by its first argument; anything else is refused.
@Suite struct MultiCallTests {
    static let abstracts = [
        "ambit-node": "Ambit's node agent.",
        "ambit-ca": "Ambit's CA service",
        "ambit-waypoint": "Ambit's waypoint proxy",
        "ambitctl": "Operate an Ambit ambient mesh",
    ]

    @Test func eachLinkRunsItsProgram() throws {
        let scratch = try TemporaryDirectory(prefix: "ambit-multicall")
        defer { scratch.remove() }
        for (program, abstract) in Self.abstracts {
            let link = scratch.path + "/" + program
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: TestBinaries.path("ambit"))
            let help = try ProcessRunner.run(link, ["--help"])
            #expect(help.status == 0, "\(program): \(help.standardError)")
            #expect(help.standardOutput.contains(abstract), "\(program): \(help.standardOutput)")
            #expect(help.standardOutput.contains("USAGE: \(program)"), "\(program): \(help.standardOutput)")
        }
        // A real command, not only help: ambitctl through its link makes a CA.
        let made = try ProcessRunner.run(scratch.path + "/ambitctl", ["ca", "init", "--dir", scratch.path + "/ca"])
        #expect(made.status == 0, "\(made.standardError)")
        #expect(FileManager.default.fileExists(atPath: scratch.path + "/ca/ca-key.pem"))
        // Errors keep their status and message through the link.
        let refused = try ProcessRunner.run(scratch.path + "/ambit-node", ["run"])
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("Missing expected argument '--node-name"), "\(refused.standardError)")
        #expect(refused.standardError.contains("Usage: ambit-node run"), "\(refused.standardError)")
    }

    @Test func theFirstArgumentNamesTheProgramOtherwise() throws {
        let ambit = TestBinaries.path("ambit")
        let named = try ProcessRunner.run(ambit, ["ambit-waypoint", "--help"])
        #expect(named.status == 0)
        #expect(named.standardOutput.contains("USAGE: ambit-waypoint"), "\(named.standardOutput)")

        let bare = try ProcessRunner.run(ambit, [])
        #expect(bare.status == 0)
        #expect(bare.standardOutput.contains("programs: ambit-node, ambit-ca, ambit-waypoint, ambitctl"))

        let unknown = try ProcessRunner.run(ambit, ["ambit-cni"])
        #expect(unknown.status == 2)
        #expect(unknown.standardError.hasPrefix(#"error: unknown program "ambit-cni""#), "\(unknown.standardError)")
    }
}
