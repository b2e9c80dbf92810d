/// A Gateway API `HTTPRoute`. Routes whose parent is a Service are applied by that service's waypoint.
public struct HTTPRoute: KubernetesObject {
    public static let kind = ResourceKind.httpRoute

    public var metadata: ObjectMeta
    public var parentRefs: [ParentReference]
    public var hostnames: [String]
    public var rules: [Rule]

    public init(metadata: ObjectMeta, parentRefs: [ParentReference] = [], hostnames: [String] = [], rules: [Rule] = [])
    {
        self.metadata = metadata
        self.parentRefs = parentRefs
        self.hostnames = hostnames
        self.rules = rules
    }

    /// `spec.parentRefs[]`: a Gateway (the default kind) or, for mesh routing, a Service.
    public struct ParentReference: Hashable, Sendable {
        public var group: String
        public var kind: String
        public var namespace: String?
        public var name: String
        public var sectionName: String?
        public var port: UInt16?

        public init(
            group: String = "gateway.networking.k8s.io",
            kind: String = "Gateway",
            namespace: String? = nil,
            name: String,
            sectionName: String? = nil,
            port: UInt16? = nil
        ) {
            self.group = group
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.sectionName = sectionName
            self.port = port
        }

        public var isService: Bool { kind == "Service" && (group.isEmpty || group == "core") }
    }

    public struct Rule: Hashable, Sendable {
        public var name: String?
        /// Empty means one match on path prefix `/`.
        public var matches: [Match]
        public var filters: [Filter]
        public var backendRefs: [BackendRef]
        public var timeouts: Timeouts?
        /// Istio VirtualService-style retries (Gateway API has no stable field for them).
        public var retry: Retry?
        /// Istio VirtualService-style fault injection (Gateway API has no field for it).
        public var fault: Fault?

        public init(
            name: String? = nil,
            matches: [Match] = [],
            filters: [Filter] = [],
            backendRefs: [BackendRef] = [],
            timeouts: Timeouts? = nil,
            retry: Retry? = nil,
            fault: Fault? = nil
        ) {
            self.name = name
            self.matches = matches
            self.filters = filters
            self.backendRefs = backendRefs
            self.timeouts = timeouts
            self.retry = retry
            self.fault = fault
        }
    }

    public struct Match: Hashable, Sendable {
        public var path: PathMatch?
        public var headers: [ValueMatch]
        public var queryParams: [ValueMatch]
        public var method: String?

        public init(
            path: PathMatch? = nil,
            headers: [ValueMatch] = [],
            queryParams: [ValueMatch] = [],
            method: String? = nil
        ) {
            self.path = path
            self.headers = headers
            self.queryParams = queryParams
            self.method = method
        }
    }

    public struct PathMatch: Hashable, Sendable {
        public enum Kind: String, Hashable, Sendable {
            case exact = "Exact"
            case pathPrefix = "PathPrefix"
            case regularExpression = "RegularExpression"
            /// A plain string prefix (`/foo` matches `/foobar`): a VirtualService's `uri.prefix`.
            /// Gateway API has no such type, so an HTTPRoute never carries it.
            case stringPrefix = "VirtualServicePrefix"
        }

        public var kind: Kind
        public var value: String

        public init(_ kind: Kind, _ value: String) {
            self.kind = kind
            self.value = value
        }
    }

    /// A header or query parameter match.
    public struct ValueMatch: Hashable, Sendable {
        public enum Kind: String, Hashable, Sendable {
            case exact = "Exact"
            case regularExpression = "RegularExpression"
        }

        public var kind: Kind
        public var name: String
        public var value: String

        public init(_ kind: Kind = .exact, name: String, value: String) {
            self.kind = kind
            self.name = name
            self.value = value
        }
    }

    public struct HeaderModifier: Hashable, Sendable {
        public var set: [Header]
        public var add: [Header]
        public var remove: [String]

        public init(set: [Header] = [], add: [Header] = [], remove: [String] = []) {
            self.set = set
            self.add = add
            self.remove = remove
        }
    }

    public struct Header: Hashable, Sendable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public enum PathModifier: Hashable, Sendable {
        case replaceFullPath(String)
        case replacePrefixMatch(String)
        /// A VirtualService's `rewrite.uri`, applied per the match that chose the route: a `uri.prefix`
        /// match has exactly its characters replaced, no uri match counts as prefix `/`, an exact or
        /// regex match has the whole path replaced.
        case virtualServiceURI(String)
    }

    public struct Redirect: Hashable, Sendable {
        public var scheme: String?
        public var hostname: String?
        public var path: PathModifier?
        public var port: UInt16?
        public var statusCode: Int

        public init(
            scheme: String? = nil,
            hostname: String? = nil,
            path: PathModifier? = nil,
            port: UInt16? = nil,
            statusCode: Int = 302
        ) {
            self.scheme = scheme
            self.hostname = hostname
            self.path = path
            self.port = port
            self.statusCode = statusCode
        }
    }

    public struct Rewrite: Hashable, Sendable {
        public var hostname: String?
        public var path: PathModifier?

        public init(hostname: String? = nil, path: PathModifier? = nil) {
            self.hostname = hostname
            self.path = path
        }
    }

    public struct Mirror: Hashable, Sendable {
        public var backend: BackendObjectReference
        /// Share of requests mirrored, 0...100 (Gateway API `percent`); 100 when not given.
        public var percent: Double

        public init(backend: BackendObjectReference, percent: Double = 100) {
            self.backend = backend
            self.percent = percent
        }
    }

    public enum Filter: Hashable, Sendable {
        case requestHeaderModifier(HeaderModifier)
        case responseHeaderModifier(HeaderModifier)
        case requestMirror(Mirror)
        case requestRedirect(Redirect)
        case urlRewrite(Rewrite)
    }

    public struct BackendObjectReference: Hashable, Sendable {
        public var group: String
        public var kind: String
        public var name: String
        public var namespace: String?
        public var port: UInt16?

        public init(
            group: String = "",
            kind: String = "Service",
            name: String,
            namespace: String? = nil,
            port: UInt16? = nil
        ) {
            self.group = group
            self.kind = kind
            self.name = name
            self.namespace = namespace
            self.port = port
        }
    }

    public struct BackendRef: Hashable, Sendable {
        public var backend: BackendObjectReference
        /// Relative weight; Gateway API's default is 1.
        public var weight: Int
        public var filters: [Filter]

        public init(backend: BackendObjectReference, weight: Int = 1, filters: [Filter] = []) {
            self.backend = backend
            self.weight = weight
            self.filters = filters
        }
    }

    public struct Timeouts: Hashable, Sendable {
        public var request: Duration?
        public var backendRequest: Duration?

        public init(request: Duration? = nil, backendRequest: Duration? = nil) {
            self.request = request
            self.backendRequest = backendRequest
        }
    }

    /// Retries of a rule: Gateway API's experimental `retry` or Istio VirtualService's `retries`.
    public struct Retry: Sendable, Hashable {
        /// Retries after the first try (so at most `attempts + 1` tries).
        public var attempts: Int
        public var perTryTimeout: Duration?
        /// Wait between tries.
        public var backoff: Duration?
        /// Conditions: `connect-failure`, `reset`, `5xx`, `gateway-error` (502, 503, 504),
        /// `retriable-status-codes` (no extra codes) and status codes such as `503`.
        public var retryOn: Set<String>

        public static let knownConditions: Set<String> = [
            "connect-failure", "reset", "5xx", "gateway-error", "retriable-status-codes", "refused-stream",
        ]

        public init(
            attempts: Int,
            perTryTimeout: Duration? = nil,
            backoff: Duration? = nil,
            retryOn: Set<String> = ["connect-failure", "reset", "503"]
        ) {
            self.attempts = attempts
            self.perTryTimeout = perTryTimeout
            self.backoff = backoff
            self.retryOn = retryOn
        }

        /// Whether a response with `status` is retried.
        public func retries(status: Int) -> Bool {
            retryOn.contains(String(status)) || (status >= 500 && retryOn.contains("5xx"))
                || ([502, 503, 504].contains(status) && retryOn.contains("gateway-error"))
        }

        /// Whether a failure without a response is retried (`connect-failure` or `reset`).
        public func retries(failure condition: String) -> Bool {
            retryOn.contains(condition) || retryOn.contains("5xx") || retryOn.contains("gateway-error")
        }
    }

    /// Fault injection in Istio's VirtualService form (`http[].fault`).
    public struct Fault: Sendable, Hashable {
        public var delay: Duration?
        public var delayPercent: Double
        public var abortStatus: Int?
        public var abortPercent: Double

        public init(
            delay: Duration? = nil,
            delayPercent: Double = 100,
            abortStatus: Int? = nil,
            abortPercent: Double = 100
        ) {
            self.delay = delay
            self.delayPercent = delayPercent
            self.abortStatus = abortStatus
            self.abortPercent = abortPercent
        }
    }
}
