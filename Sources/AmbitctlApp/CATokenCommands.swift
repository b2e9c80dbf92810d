import AmbitCA
import AmbitIdentity
import AmbitModel
import ArgumentParser
import Crypto
import FoundationEssentials

extension CACommand {
    struct TokenKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "token-key",
            abstract: "Create the P-256 key pair that signs tokens ambit-ca accepts without an API server.",
            discussion: """
                Writes DIR/token-key.pem (the signing key, mode 0600; keep it off the nodes) and \
                DIR/token-key.pub.pem (give it to `ambit-ca --token-public-key`). Tokens are made with \
                `ambitctl ca token`. In a cluster, ambit-ca can use TokenReview instead (--token-review).
                """
        )

        @Option(help: "Directory to write the key pair into (created with mode 0700).")
        var dir: String

        @Flag(help: "Replace an existing key pair.") var force = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let privatePath = FilePaths.join(dir, Self.privateFile)
            let publicPath = FilePaths.join(dir, Self.publicFile)
            if !force, FileManager.default.fileExists(atPath: privatePath) {
                throw CLIError("\(privatePath) exists; pass --force to replace it (tokens it signed stop working)")
            }
            try FileManager.default.createDirectory(
                atPath: dir,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            let key = P256.Signing.PrivateKey()
            try PEMFiles.write(key.pemRepresentation + "\n", to: privatePath, mode: 0o600)
            try PEMFiles.write(key.publicKey.pemRepresentation + "\n", to: publicPath, mode: 0o644)
            print("Created token signing key \(privatePath) (mode 0600) and public key \(publicPath)")
        }

        static let privateFile = "token-key.pem"
        static let publicFile = "token-key.pub.pem"
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a service-account token for ambit-ca (ES256, the claims of a pod-bound token).",
            discussion: """
                The token says: service account --namespace/--service-account, bound to --pod on --node when \
                given (a node agent's token must name its node). Example, node1's agent:
                  ambitctl ca token --key keys/token-key.pem --namespace ambit-system \\
                      --service-account ambit-node --node node1 > node1.token
                """
        )

        @Option(help: "Signing key (ambitctl ca token-key).") var key: String
        @Option(help: "Namespace of the service account.") var namespace: String
        @Option(help: "Name of the service account.") var serviceAccount: String
        @Option(help: "Node the token is bound to (a node agent's node).") var node: String?
        @Option(help: "Pod the token is bound to.") var pod: String?
        @Option(help: "Audience (repeatable; default: ambit-ca).") var audience: [String] = []
        @Option(help: "Issuer claim.") var issuer = "ambitctl"
        @Option(help: "Validity, e.g. 1h or 720h.") var lifetime = "24h"
        @Option(help: "Write the token to this file (mode 0600) instead of standard output.") var out: String?

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let lifetime = try parseLifetime(lifetime)
            let text: String
            do {
                text = try String(contentsOfFile: key, encoding: .utf8)
            } catch {
                throw CLIError("cannot read --key \(key): \(error.readableDescription)")
            }
            let signingKey: P256.Signing.PrivateKey
            do {
                signingKey = try P256.Signing.PrivateKey(pemRepresentation: text)
            } catch {
                throw CLIError("--key \(key) is not a P-256 private key in PEM: \(error)")
            }
            let now = Date()
            let token = try ServiceAccountToken(
                issuer: issuer,
                audiences: audience.isEmpty ? ["ambit-ca"] : audience,
                namespace: namespace,
                serviceAccount: serviceAccount,
                podName: pod,
                nodeName: node,
                issuedAt: now,
                expiry: now + lifetime.timeInterval
            ).signed(with: signingKey)
            if let out {
                try PEMFiles.write(token + "\n", to: out, mode: 0o600)
            } else {
                print(token)
            }
        }
    }
}
