public import AmbitCA
public import ArgumentParser

/// Where a node agent, waypoint or sidecar gets its certificates: `--ca-address` (a CA service: ambit-ca,
/// or istiod with `--istio-ca`), or `--ca-dir` (a CA key in this process: the lab's simple mode and tests).
public struct CertificateOptions: ParsableArguments {
    @Option(help: "CA service to send CSRs to, as host:port (ambit-ca, or istiod's port 15012). No CA key is read.")
    public var caAddress: String?

    @Option(help: "With --ca-address: PEM root certificate(s) of the mesh, trusted for the CA and for peers.")
    public var caRoots: String?

    @Option(help: "With --ca-address: file holding the bearer token sent to the CA (read for every request).")
    public var caTokenFile: String?

    @Option(help: "With --ca-address: the name the CA's certificate must carry (default: the address's host).")
    public var caServerName: String?

    @Flag(
        help: """
            Use istiod's CA: --ca-address istiod.istio-system.svc:15012, --ca-roots \
            /var/run/secrets/istio/root-cert.pem, --ca-token-file /var/run/secrets/tokens/istio-token, \
            unless given.
            """
    )
    public var istioCA = false

    @Option(help: "Local CA directory (ambitctl ca init) whose key signs in this process; instead of --ca-address.")
    public var caDir: String?

    @Option(help: "Trust domain (default: cluster.local; with --ca-dir, the root's O= when not given).")
    public var trustDomain: String?

    public init() {}

    public static let istiodAddress = "istiod.istio-system.svc:15012"
    public static let istioRoots = "/var/run/secrets/istio/root-cert.pem"
    public static let istioToken = "/var/run/secrets/tokens/istio-token"

    public func validate() throws {
        let remote = caAddress != nil || istioCA
        guard remote != (caDir != nil) else {
            throw ValidationError("give exactly one of --ca-address (or --istio-ca) and --ca-dir")
        }
        if !remote, caRoots != nil || caTokenFile != nil || caServerName != nil {
            throw ValidationError("--ca-roots, --ca-token-file and --ca-server-name go with --ca-address")
        }
        if remote, !istioCA, caRoots == nil || caTokenFile == nil {
            throw ValidationError(
                "--ca-address needs --ca-roots (the mesh's root certificates) and --ca-token-file (who this is)"
            )
        }
    }

    /// The selection; `impersonate` for a node agent (it asks for its pods' identities).
    public func selection(impersonate: Bool, clusterID: String?) -> CertificateSourceSelection {
        guard caAddress != nil || istioCA else { return .localCA(directory: caDir!, trustDomain: trustDomain) }
        var options = RemoteCAOptions(
            address: caAddress ?? Self.istiodAddress,
            rootsFile: caRoots ?? Self.istioRoots,
            tokenFile: caTokenFile ?? (istioCA ? Self.istioToken : nil),
            impersonate: impersonate
        )
        options.serverName = caServerName
        options.clusterID = clusterID
        return .remote(options, trustDomain: trustDomain ?? "cluster.local")
    }
}
