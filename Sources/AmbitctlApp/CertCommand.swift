import AmbitIdentity
import AmbitModel
import ArgumentParser
import Crypto
import FoundationEssentials
import X509

struct CertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "Issue and inspect workload certificates.",
        subcommands: [Issue.self, Inspect.self]
    )

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a workload certificate for a SPIFFE identity.",
            discussion: """
                Generates an ECDSA P-256 key here, sends only a CSR to the CA, and writes key.pem
                (mode 0600), cert-chain.pem (leaf first) and root-cert.pem into OUT.
                """
        )

        @Option(help: "CA directory (from `ambitctl ca init`).")
        var ca: String

        @Option(help: "Identity, spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.")
        var spiffe: String

        @Option(help: "Directory to write the key and certificates to.")
        var out: String

        @Option(help: "Validity, e.g. 24h.")
        var lifetime: String = "24h"

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let identity: SpiffeID
            do {
                identity = try SpiffeID(parsing: spiffe)
            } catch let error as SpiffeIDError {
                throw CLIError("--spiffe: \(error)")
            }
            let lifetime = try parseLifetime(lifetime)
            let authority = try CertificateAuthority.load(directory: ca)
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            let request = try CertificateProfiles.signingRequest(for: identity, privateKey: key)
            let chain = try authority.sign(request, lifetime: lifetime)
            let certificate = try WorkloadCertificate(identity: identity, chain: chain, privateKey: key)
            do {
                try FileManager.default.createDirectory(
                    atPath: out,
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700]
                )
            } catch {
                throw CLIError("cannot create \(out): \(error.readableDescription)")
            }
            try PEMFiles.write(key.serializeAsPEM().pemString + "\n", to: "\(out)/key.pem", mode: 0o600)
            try PEMFiles.write(PEMFiles.pem(chain), to: "\(out)/cert-chain.pem", mode: 0o644)
            try PEMFiles.write(PEMFiles.pem([authority.root]), to: "\(out)/root-cert.pem", mode: 0o644)
            print("Issued \(identity)")
            print("  valid:  \(certificate.notBefore) – \(certificate.expiry)")
            print("  renew:  \(certificate.renewalTime) (half-life)")
            print("  files:  \(out)/key.pem (0600), \(out)/cert-chain.pem, \(out)/root-cert.pem")
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the identity and validity of a certificate file."
        )

        @Argument(help: "PEM file; the first certificate is described.")
        var file: String

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let certificates = try PEMFiles.certificates(in: file, code: .invalidCertificate)
            let leaf = certificates[0]
            let identity = (try? CertificateProfiles.spiffeIdentity(of: leaf)).map(\.uri) ?? "none"
            print("identity:  \(identity)")
            print("issuer:    \(leaf.issuer)")
            print("serial:    \(leaf.serialNumber)")
            print("valid:     \(leaf.notValidBefore) – \(leaf.notValidAfter)")
            print("key:       \(leaf.publicKey)")
            print("chain:     \(certificates.count) certificate(s)")
        }
    }
}
