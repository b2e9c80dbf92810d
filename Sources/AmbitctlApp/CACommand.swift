import AmbitConfig
import AmbitIdentity
import AmbitModel
import ArgumentParser
import FoundationEssentials

struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "Manage the certificate authority and the tokens its service accepts.",
        subcommands: [Init.self, Show.self, Secret.self, Roots.self, TokenKey.self, Token.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an ECDSA P-256 root CA.",
            discussion: """
                Writes ca-cert.pem, ca-key.pem (mode 0600), cert-chain.pem and root-cert.pem into DIR,
                the layout Istio uses for a plugged-in CA. The trust domain is recorded as the root's O=.
                """
        )

        @Option(help: "Directory to create the CA in (created with mode 0700).")
        var dir: String

        @Option(help: "SPIFFE trust domain of the mesh.")
        var trustDomain: String = SpiffeID.defaultTrustDomain

        @Option(help: "Validity of the root, e.g. 87600h (10 years).")
        var lifetime: String = "87600h"

        @Flag(help: "Replace an existing CA in DIR. Certificates it issued stop being trusted.")
        var force = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let lifetime = try parseLifetime(lifetime)
            let authority: CertificateAuthority
            do {
                authority = try CertificateAuthority.generate(trustDomain: trustDomain, lifetime: lifetime)
            } catch let error as SpiffeIDError {
                throw CLIError("invalid --trust-domain: \(error.reason)")
            }
            try authority.save(to: dir, overwrite: force)
            print("Created CA for trust domain \(authority.trustDomain) in \(dir)")
            print("  root:    \(dir)/\(CertificateAuthority.rootFile) (valid until \(authority.root.notValidAfter))")
            print("  key:     \(dir)/\(CertificateAuthority.keyFile) (mode 0600; keep it secret)")
        }
    }

    struct Secret: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the CA as a Kubernetes Secret for ambit-ca, for kubectl apply.",
            discussion: """
                The Secret holds the four files of DIR (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem), \
                the keys of Istio's cacerts Secret. Only the ambit-ca Deployment (namespace ambit-system) mounts \
                it; agents and waypoints get the public root from `ambitctl ca roots`:
                  ambitctl ca secret --dir ca/ | kubectl apply -f -
                """
        )

        @Option(help: "CA directory (ambitctl ca init).")
        var dir: String

        @Option(help: "Namespace of the Secret.")
        var namespace = "ambit-system"

        @Option(help: "Name of the Secret.")
        var name = "ambit-ca"

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try validateObjectName(namespace: namespace, name: name, kind: "Secret")
        }

        func run() throws {
            _ = global.bootstrap()
            print(try KubernetesManifests.caSecret(directory: dir, name: name, namespace: namespace), terminator: "")
        }
    }

    struct Roots: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the mesh root as a ConfigMap (ambit-ca-root), for kubectl apply.",
            discussion: """
                Public: what agents (namespace ambit-system) and waypoints (their namespaces) trust, mounted as \
                --ca-roots. One per namespace:
                  ambitctl ca roots --dir ca/ | kubectl apply -f -
                  ambitctl ca roots --dir ca/ --namespace demo | kubectl apply -f -
                """
        )

        @Option(help: "CA directory (ambitctl ca init).")
        var dir: String

        @Option(help: "Namespace of the ConfigMap.")
        var namespace = "ambit-system"

        @Option(help: "Name of the ConfigMap.")
        var name = "ambit-ca-root"

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            try validateObjectName(namespace: namespace, name: name, kind: "ConfigMap")
        }

        func run() throws {
            _ = global.bootstrap()
            print(
                try KubernetesManifests.caRootConfigMap(directory: dir, name: name, namespace: namespace),
                terminator: ""
            )
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a CA's trust domain, subject and validity.")

        @Option(help: "CA directory.")
        var dir: String

        @OptionGroup var global: GlobalOptions

        func run() throws {
            _ = global.bootstrap()
            let authority = try CertificateAuthority.load(directory: dir)
            print("trust domain: \(authority.trustDomain)")
            print("subject:      \(authority.certificate.subject)")
            print("valid:        \(authority.certificate.notValidBefore) – \(authority.certificate.notValidAfter)")
            print("chain:        \(authority.chain.count) certificate(s)")
        }
    }
}

/// `--namespace` and `--name` of an object `ambitctl` prints: a valid namespace and object name, or why not.
func validateObjectName(namespace: String, name: String, kind: String) throws {
    guard KubernetesNames.isDNSLabel(namespace) else {
        throw ValidationError("--namespace \"\(namespace)\" is not a valid namespace name (RFC 1123 label)")
    }
    guard KubernetesNames.isDNSSubdomain(name) else {
        throw ValidationError("--name \"\(name)\" is not a valid \(kind) name")
    }
}

/// Parses a lifetime such as `24h`, `90m` or `1h30m` (Gateway API duration notation).
func parseLifetime(_ text: String, option: String = "--lifetime") throws -> Duration {
    let parsed: GatewayDuration
    do {
        parsed = try GatewayDuration(parsing: text)
    } catch {
        throw CLIError("\(option): \(error)")
    }
    guard parsed.duration > .zero else { throw CLIError("\(option) must be longer than zero") }
    return parsed.duration
}
