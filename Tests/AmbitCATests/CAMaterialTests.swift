import AmbitIdentity
import AmbitTestSupport
import Foundation
import Logging
import Prometheus
import Testing

@testable import AmbitCA

/// What `ambit-ca` makes of its CA directory changing under it, without a process.
@Suite struct CAMaterialTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Files of two CAs (caught in the middle of an update) do not replace the CA in force; the whole of the new
    /// one does; an expired CA certificate does not.
    @Test func onlyAWholeValidCAReplacesTheOneInForce() throws {
        let directory = try TemporaryDirectory(prefix: "ambit-ca-material")
        defer { directory.remove() }
        let path = directory.path + "/ca"
        let first = try CertificateAuthority.generate(commonName: "first")
        try first.save(to: path)
        let material = try CAMaterial(directory: path, trustDomain: "cluster.local", registry: .init())
        #expect(material.reloadIfChanged(logger: Self.logger) == .unchanged)

        // The new key and certificate are in, the chain and root not yet.
        let staging = directory.path + "/staging"
        let second = try CertificateAuthority.generate(commonName: "second")
        try second.save(to: staging)
        for file in [CertificateAuthority.keyFile, CertificateAuthority.certificateFile] {
            try FileManager.default.removeItem(atPath: path + "/" + file)
            try FileManager.default.copyItem(atPath: staging + "/" + file, toPath: path + "/" + file)
        }
        guard case .failed(let reason) = material.reloadIfChanged(logger: Self.logger) else {
            Issue.record("a chain of two CAs was loaded")
            return
        }
        #expect(reason.contains("is not signed by the next certificate of its chain"), "\(reason)")
        #expect(material.authority.certificate == first.certificate)
        // The same content is not tried again; the rest of the update is.
        #expect(material.reloadIfChanged(logger: Self.logger) == .unchanged)
        for file in [CertificateAuthority.chainFile, CertificateAuthority.rootFile] {
            try FileManager.default.removeItem(atPath: path + "/" + file)
            try FileManager.default.copyItem(atPath: staging + "/" + file, toPath: path + "/" + file)
        }
        #expect(material.reloadIfChanged(logger: Self.logger) == .reloaded)
        #expect(material.authority.certificate == second.certificate)

        // A CA certificate that has expired.
        let expired = try CertificateAuthority.generate(
            commonName: "expired",
            lifetime: .seconds(3600),
            now: Date() - 7200
        )
        try expired.save(to: path, overwrite: true)
        guard case .failed(let why) = material.reloadIfChanged(logger: Self.logger) else {
            Issue.record("an expired CA was loaded")
            return
        }
        #expect(why.contains("the CA certificate expired"), "\(why)")
        #expect(material.authority.certificate == second.certificate)
    }
}
