/// Why a connection or request ended the way it did, in the words Istio's dashboards know: ztunnel's
/// flags for TCP connections, Envoy's for HTTP requests at a waypoint. `-` when nothing went wrong.
public enum ResponseFlag: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Nothing to report.
    case none = "-"

    // MARK: Connections (ztunnel's flags)

    /// Denied by an AuthorizationPolicy or PeerAuthentication (also when a policy change revoked it).
    case denied = "DENY"
    /// The upstream (a tunnel, an application, a destination outside the mesh) could not be reached,
    /// or the connection failed on the way.
    case connectFailure = "CONNECT"
    /// The TLS handshake with the next hop failed (its certificate did not verify, or it refused ours).
    case tlsFailure = "TLS_FAILURE"
    /// The next hop did not speak HTTP/2 after TLS (no ALPN `h2`, a broken HTTP/2 preface).
    case http2HandshakeFailure = "H2_HANDSHAKE_FAILURE"
    /// The TCP connect to the next hop's 15008 timed out: often a NetworkPolicy dropping HBONE.
    case networkPolicy = "NETWORK_POLICY"
    /// No certificate for the source workload's identity (the CA failed or refused).
    case identityError = "IDENTITY_ERROR"
    /// Envoy's flag for the external authorizer: it denied the request, or could not be asked (it failed,
    /// or a CUSTOM policy selects a workload where no waypoint can call it).
    case unauthorizedExternalService = "UAEX"

    // MARK: Requests (Envoy's flags)

    /// No healthy upstream endpoint.
    case noHealthyUpstream = "UH"
    /// The upstream connection could not be made.
    case upstreamConnectFailure = "UF"
    /// The upstream did not answer in time.
    case upstreamRequestTimeout = "UT"
    /// The upstream reset or closed the exchange.
    case upstreamReset = "UR"
    /// The downstream (the client) went away first.
    case downstreamTermination = "DC"
    /// No route matched the request.
    case noRoute = "NR"
    /// A fault filter aborted the request.
    case faultAbort = "FI"
    /// A fault filter delayed the request.
    case faultDelay = "DI"

    public var description: String { rawValue }
}
