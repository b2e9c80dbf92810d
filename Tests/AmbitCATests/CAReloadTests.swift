import AmbitIdentity
import AmbitTestSupport
import Foundation
import Testing

/// `ambit-ca` reads its CA directory again when it changes (as a `cacerts` Secret volume is updated in place).
@Suite(.timeLimit(.minutes(3))) struct CAReloadTests {
    /// A new CA written over the directory signs from then on, and the serving certificate chains to it, without a
    /// restart; a directory that no longer loads (a broken key) is logged and the CA in force keeps signing.
    @Test func aReplacedCAIsSignedWithAndABrokenOneIsNot() async throws {
        let world = try await CAServiceWorld.start(arguments: ["--ca-reload-seconds", "1"])
        defer { world.stop() }
        let pid = world.process.processIdentifier
        let before = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(before.status == 0, "\(before.error)")
        let firstRoot = try #require(before.chain.last)

        // As a root rotation rolls out: clients trust both roots, then the CA's files change. The roots differ in
        // subject (BoringSSL finds a trust anchor by its subject name).
        let next = try CertificateAuthority.generate(commonName: "Ambit root CA 2")
        let nextRoot = try next.root.serializeAsPEM().pemString
        let nextRootFile = world.directory.path + "/next-root.pem"
        try (nextRoot + "\n").write(toFile: nextRootFile, atomically: true, encoding: .utf8)
        let both = try String(contentsOfFile: world.rootsFile, encoding: .utf8) + nextRoot + "\n"
        try both.write(toFile: world.rootsFile, atomically: true, encoding: .utf8)
        try next.save(to: world.caDirectory, overwrite: true)

        #expect(await eventually(timeout: .seconds(30)) { world.log.contains("reloaded the CA") }, "\(world.log)")
        #expect(
            await eventually(timeout: .seconds(30)) {
                world.log.contains("issued a TLS serving certificate from the reloaded CA")
            }
        )
        let after = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(after.status == 0, "\(after.error)")
        #expect(after.chain.last.map(Self.trimmed) == Self.trimmed(nextRoot))
        #expect(after.chain.last.map(Self.trimmed) != Self.trimmed(firstRoot))
        // openssl verifies the serving certificate against the new root alone.
        _ = try world.servingCertificate(roots: nextRootFile)
        #expect(world.log.contains("the CA's root changed"))

        // A key that does not parse: logged, and the new CA keeps signing.
        let failuresBefore = world.log.components(separatedBy: "cannot reload the CA").count
        try "not a key\n".write(toFile: world.caDirectory + "/ca-key.pem", atomically: true, encoding: .utf8)
        #expect(
            await eventually(timeout: .seconds(30)) {
                world.log.components(separatedBy: "cannot reload the CA").count > failuresBefore
            },
            "\(world.log)"
        )
        let broken = try world.request(CAServiceInteropTests.client, token: try world.token())
        #expect(broken.status == 0, "\(broken.error)")
        #expect(broken.chain.last.map(Self.trimmed) == Self.trimmed(nextRoot))
        #expect(world.process.isRunning && world.process.processIdentifier == pid)

        let metrics = try world.metrics()
        for result in ["success", "failure"] {
            let line = metrics.split(separator: "\n").first {
                $0.hasPrefix("ambit_ca_reloads_total{result=\"\(result)\"} ")
            }
            #expect(line.flatMap { Int($0.split(separator: " ").last!) }.map { $0 >= 1 } == true, "\(metrics)")
        }
        let rootExpiry = metrics.split(separator: "\n").first {
            $0.hasPrefix("citadel_server_root_cert_expiry_timestamp ")
        }
        .flatMap { Double($0.split(separator: " ").last!) }
        #expect(rootExpiry == next.root.notValidAfter.timeIntervalSince1970, "\(metrics)")
    }

    static func trimmed(_ pem: String) -> String { pem.trimmingCharacters(in: .whitespacesAndNewlines) }
}
