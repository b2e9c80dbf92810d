/// An external authorizer from Istio's MeshConfig `extensionProviders`, which CUSTOM
/// AuthorizationPolicies name (`spec.provider.name`).
public struct ExtensionProvider: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// `envoyExtAuthzGrpc`: Envoy's `envoy.service.auth.v3.Authorization/Check` over gRPC.
        case extAuthzGrpc(ExtAuthzGrpc)
        /// A provider Ambit cannot call (`envoyExtAuthzHttp`, a gRPC provider with an option Ambit
        /// does not implement): policies naming it deny what they select (fail closed), and why is said.
        case unsupported(String)
    }

    /// `envoyExtAuthzGrpc`.
    public struct ExtAuthzGrpc: Hashable, Sendable {
        /// `[<namespace>/]<hostname>`: a Service of the mesh, or a host name or address.
        public var service: String
        public var port: UInt16
        /// How long a check may take (Istio's default is 600 s).
        public var timeout: Duration
        /// Allow the request when the authorizer cannot be reached or fails (default: deny).
        public var failOpen: Bool
        /// The HTTP status of a request denied because the authorizer failed (default 403).
        public var statusOnError: Int

        public init(
            service: String,
            port: UInt16,
            timeout: Duration = .seconds(600),
            failOpen: Bool = false,
            statusOnError: Int = 403
        ) {
            self.service = service
            self.port = port
            self.timeout = timeout
            self.failOpen = failOpen
            self.statusOnError = statusOnError
        }
    }

    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }
}
