import AmbitCA
import AmbitCLI
import AmbitConfig
import AmbitModel
import ArgumentParser
import Logging

/// `ambit-ca`: the mesh's CA as a service, so that no node agent or waypoint holds the CA key.
struct AmbitCACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ambit-ca",
        abstract: "Ambit's CA service: signs workload certificates over Istio's CA API (gRPC, TLS, port 15012).",
        discussion: """
            Serves istio.v1.auth.IstioCertificateService/CreateCertificate, as istiod does, so node agents \
            (--ca-address) and istiod-speaking clients get certificates from it and no node holds the CA key. \
            A caller proves its service account with a bearer token: verified with TokenReview (--token-review, \
            with the --kubernetes or --kubeconfig source) or, without an API server, with the public keys in \
            --token-public-key (ES256 tokens from `ambitctl ca token`). A node agent account (--node-account) \
            may obtain, by impersonation, the identity of a pod scheduled on the node its token is bound to; any \
            caller may obtain its own identity; nothing else is signed. Refusals answer UNAUTHENTICATED, \
            PERMISSION_DENIED, INVALID_ARGUMENT or RESOURCE_EXHAUSTED and are logged with the caller. \
            The CA directory uses Istio's layouts (cacerts: ca-cert.pem, ca-key.pem, cert-chain.pem, \
            root-cert.pem; istio-ca-secret: ca-cert.pem, ca-key.pem), ECDSA P-256 or RSA keys, read again when \
            they change (--ca-reload-seconds). The serving \
            certificate is issued by the CA itself for --server-name, at start and anew at two-thirds of its \
            lifetime (--serving-lifetime-seconds), without a restart. Ports: 15014 metrics (/metrics), \
            15021 readiness (/healthz/ready), 15000 admin on 127.0.0.1 (/config_dump, /logging).
            """
    )

    @Option(help: "CA directory (Istio's cacerts or istio-ca-secret layout) holding the signing key.")
    var caDir: String

    @Option(help: "Trust domain the CA signs identities in.")
    var trustDomain = SpiffeID.defaultTrustDomain

    @OptionGroup(title: "Configuration source (which pods run on which node)")
    var source: ConfigSourceOptions

    @Option(help: "PEM file of P-256 public keys that sign accepted tokens (ambitctl ca token-key).")
    var tokenPublicKey: String?

    @Flag(help: "Authenticate tokens with the API server's TokenReview (needs --kubernetes or --kubeconfig).")
    var tokenReview = false

    @Option(
        help: """
            With --token-review: seconds a token the API server confirmed is trusted without asking again (never \
            past the token's exp; 0: ask for every request). A token revoked meanwhile is accepted until then. \
            (default: 60)
            """
    )
    var tokenReviewCacheSeconds: Int?

    @Option(help: "Token audience accepted (repeatable; default: ambit-ca and istio-ca).")
    var audience: [String] = []

    @Option(help: "Node agent service account, namespace/name (repeatable; default: ambit-system/ambit-node).")
    var nodeAccount: [String] = []

    @Option(help: "Address to listen on.") var listen = "0.0.0.0"
    @Option(help: "gRPC port.") var port = 15012

    @Option(help: "DNS name or IP address of the serving certificate (repeatable).")
    var serverName: [String] = []

    @Option(
        help: """
            Lifetime of the TLS serving certificate, in seconds; a new one (fresh key) is issued at two-thirds of it \
            while ambit-ca runs.
            """
    )
    var servingLifetimeSeconds = 365 * 24 * 3600

    @Option(
        help: """
            Seconds between looks at --ca-dir: changed files are loaded and signed with from then on (a CA that \
            does not load is logged and the previous one kept).
            """
    )
    var caReloadSeconds = 10

    @Option(help: "Longest certificate lifetime a request may ask for, in hours.")
    var maxLifetimeHours = 90 * 24

    @Option(help: "Prometheus metrics port (/metrics, all addresses).") var metricsPort = 15014
    @Option(help: "Readiness port (/healthz/ready, all addresses).") var readinessPort = 15021
    @Option(help: "Admin port (/config_dump, /logging), bound to 127.0.0.1.") var adminPort = 15000
    @Option(help: "Seconds to let calls in progress finish on SIGTERM.") var drainSeconds = 5

    @OptionGroup(title: "Logging")
    var logging: LoggingOptions

    func validate() throws {
        guard (tokenPublicKey != nil) != tokenReview else {
            throw ValidationError("give exactly one of --token-public-key FILE and --token-review")
        }
        if tokenReview, source.manifests != nil {
            throw ValidationError("--token-review needs the Kubernetes API (--kubernetes or --kubeconfig)")
        }
        for account in nodeAccount where account.split(separator: "/").count != 2 {
            throw ValidationError("--node-account must be namespace/name, not \"\(account)\"")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
        guard servingLifetimeSeconds >= 3 else {
            throw ValidationError("--serving-lifetime-seconds must be at least 3")
        }
        guard caReloadSeconds > 0 else { throw ValidationError("--ca-reload-seconds must be positive") }
        if let tokenReviewCacheSeconds {
            guard tokenReview else { throw ValidationError("--token-review-cache-seconds goes with --token-review") }
            guard tokenReviewCacheSeconds >= 0 else {
                throw ValidationError("--token-review-cache-seconds must not be negative")
            }
        }
        guard maxLifetimeHours > 0 else { throw ValidationError("--max-lifetime-hours must be positive") }
    }

    func run() async throws {
        try await runDaemon("ambit-ca", logging: logging, source: source) { logger, config in
            let authentication: CAServerOptions.Authentication
            if let tokenPublicKey {
                authentication = .tokenKeys(path: tokenPublicKey)
            } else if case .kubernetes(let cluster) = config {
                authentication = .tokenReview(cluster)
            } else {
                throw ValidationError("--token-review needs the Kubernetes API")
            }
            var options = CAServerOptions(caDirectory: caDir, config: config, authentication: authentication)
            options.trustDomain = trustDomain
            if !audience.isEmpty { options.audiences = audience }
            if !nodeAccount.isEmpty { options.nodeAccounts = Set(nodeAccount) }
            if !serverName.isEmpty { options.serverNames = serverName }
            options.listenHost = listen
            options.port = port
            options.servingLifetime = .seconds(servingLifetimeSeconds)
            options.caReloadInterval = .seconds(caReloadSeconds)
            if let tokenReviewCacheSeconds { options.tokenReviewCacheLifetime = .seconds(tokenReviewCacheSeconds) }
            options.service.maximumLifetime = .seconds(maxLifetimeHours * 3600)
            options.ports = .init(metrics: metricsPort, readiness: readinessPort, admin: adminPort)
            options.drainDeadline = .seconds(drainSeconds)
            try await CAServer(options: options, logger: logger).run()
        }
    }
}
