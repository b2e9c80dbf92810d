public import AmbitConfig
public import AmbitModel
public import AmbitTelemetry
public import NIOHTTP1

/// What a waypoint does with one HTTP request, decided before any I/O so that routing is
/// unit-tested on its own.
public enum RequestPlan: Sendable {
    /// Answer locally: a redirect, a fault abort, or an error (404 no route, 500 no backend).
    case respond(LocalResponse)
    case forward(ForwardPlan)
}

public struct LocalResponse: Sendable, Equatable {
    public var status: HTTPResponseStatus
    public var headers: [(String, String)]
    public var body: String
    /// Istio's response flag for the access log and metrics (`NR` no route, `FI` fault, ...).
    public var flag: ResponseFlag

    public init(status: HTTPResponseStatus, headers: [(String, String)] = [], body: String, flag: ResponseFlag = .none)
    {
        self.status = status
        self.headers = headers
        self.body = body
        self.flag = flag
    }

    public static func == (lhs: LocalResponse, rhs: LocalResponse) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.flag == rhs.flag
            && lhs.headers.map { "\($0.0): \($0.1)" } == rhs.headers.map { "\($0.0): \($0.1)" }
    }
}

/// A request to send on: to which service port (or workload), rewritten how, with which timeouts.
public struct ForwardPlan: Sendable {
    public enum Backend: Sendable, Equatable {
        /// A service port: pick one of its healthy endpoints.
        case service(ServiceBinding)
        /// A workload addressed directly (no service): its IP and port.
        case workload(Workload, port: UInt16)
    }

    public var backend: Backend
    /// The request head as it goes upstream (filters and rewrites applied).
    public var head: HTTPRequestHead
    public var responseHeaders: HTTPRoute.HeaderModifier?
    public var mirrors: [(binding: ServiceBinding, percent: Double)]
    public var timeouts: HTTPRoute.Timeouts?
    public var retry: HTTPRoute.Retry?
    public var fault: HTTPRoute.Fault?
    /// `namespace/name` of the route that decided, for the access log (`-` without one).
    public var routeName: String
}

extension ForwardPlan {
    /// A request no route applies to (a service without routes, a workload addressed directly): sent as it is.
    init(unrouted head: HTTPRequestHead, to backend: Backend) {
        self.init(
            backend: backend,
            head: head,
            responseHeaders: nil,
            mirrors: [],
            timeouts: nil,
            retry: nil,
            fault: nil,
            routeName: "-"
        )
    }

    /// The route's rules for one request, with its fault's dice rolled (`roll` gives `0..<100`).
    func exchangePolicy(
        roll: () -> Double = {
            var random = FastRandom()
            return Double.random(in: 0..<100, using: &random)
        }
    ) -> HTTPExchange.Policy {
        var policy = HTTPExchange.Policy(
            retry: retry,
            perTryTimeout: timeouts?.backendRequest,
            requestTimeout: timeouts?.request
        )
        if let fault {
            if let status = fault.abortStatus, fault.abortPercent >= 100 || roll() < fault.abortPercent {
                policy.fault = .abort(status: status)
            } else if let delay = fault.delay, fault.delayPercent >= 100 || roll() < fault.delayPercent {
                policy.fault = .delay(delay)
            }
        }
        return policy
    }
}

/// Turns a request into a ``RequestPlan`` with the HTTPRoutes of the addressed service.
public struct RequestPlanner: Sendable {
    public let snapshot: ConfigSnapshot
    public let routes: RouteTable
    /// Random numbers in `0..<1`, injectable so weighted choices are tested exactly.
    public var random: @Sendable () -> Double = {
        var random = FastRandom()
        return Double.random(in: 0..<1, using: &random)
    }

    public init(snapshot: ConfigSnapshot, routes: RouteTable) {
        self.snapshot = snapshot
        self.routes = routes
    }

    /// Plans a request addressed to `service` (a VIP:port the waypoint serves).
    public func plan(_ head: HTTPRequestHead, to service: ServiceBinding) -> RequestPlan {
        let serviceKey = service.service
        guard routes.hasRoutes(for: serviceKey) else {
            return .forward(ForwardPlan(unrouted: head, to: .service(service)))
        }
        let request = RouteRequest(
            method: head.method.rawValue,
            target: head.uri,
            headers: head.headers.map { ($0.name, $0.value) }
        )
        guard let selection = routes.select(service: serviceKey, port: service.port.port, request: request) else {
            return .respond(LocalResponse(status: .notFound, body: "no route matched\n", flag: .noRoute))
        }
        let routeName = selection.route.namespacedName
        var head = head
        var responseHeaders: HTTPRoute.HeaderModifier?
        var mirrors: [(ServiceBinding, Double)] = []
        for filter in selection.rule.filters {
            switch filter {
            case .requestRedirect(let redirect):
                return .respond(Self.redirect(redirect, head: head, match: selection.match))
            case .requestHeaderModifier(let modifier):
                Self.apply(modifier, to: &head.headers)
            case .responseHeaderModifier(let modifier):
                responseHeaders = Self.merge(responseHeaders, modifier)
            case .urlRewrite(let rewrite):
                Self.rewrite(&head, rewrite, match: selection.match)
            case .requestMirror(let mirror):
                if let binding = binding(mirror.backend, namespace: selection.route.namespace, defaultPort: service) {
                    mirrors.append((binding, mirror.percent))
                }
            }
        }
        let candidates = selection.rule.backendRefs.filter { $0.weight > 0 }
        guard let chosen = pickWeighted(candidates) else {
            let reason =
                selection.rule.backendRefs.isEmpty ? "the route rule has no backends" : "every backend has weight 0"
            return .respond(LocalResponse(status: .internalServerError, body: "\(reason)\n", flag: .noRoute))
        }
        for filter in chosen.filters {
            switch filter {
            case .requestHeaderModifier(let modifier): Self.apply(modifier, to: &head.headers)
            case .responseHeaderModifier(let modifier): responseHeaders = Self.merge(responseHeaders, modifier)
            default: break
            }
        }
        guard let backend = binding(chosen.backend, namespace: selection.route.namespace, defaultPort: service) else {
            return .respond(
                LocalResponse(
                    status: .internalServerError,
                    body:
                        "backend \(chosen.backend.name) port \(chosen.backend.port.map(String.init) ?? "-") not found\n",
                    flag: .noRoute
                )
            )
        }
        return .forward(
            ForwardPlan(
                backend: .service(backend),
                head: head,
                responseHeaders: responseHeaders,
                mirrors: mirrors,
                timeouts: selection.rule.timeouts,
                retry: selection.rule.retry,
                fault: selection.rule.fault,
                routeName: routeName
            )
        )
    }

    /// A backendRef's service port (the parent's port when the ref names none, as for mirrors of the same service).
    private func binding(_ reference: HTTPRoute.BackendObjectReference, namespace: String, defaultPort: ServiceBinding)
        -> ServiceBinding?
    {
        guard reference.kind == "Service", reference.group.isEmpty || reference.group == "core" else { return nil }
        let key = ObjectKey(.service, namespace: reference.namespace ?? namespace, name: reference.name)
        guard let service = snapshot.services[key], let vip = service.clusterIPs.first else { return nil }
        // No port: the service's only port (a VirtualService destination may omit it), else the parent's.
        let port = reference.port ?? (service.ports.count == 1 ? service.ports[0].port : defaultPort.port.port)
        return snapshot.service(at: IPEndpoint(vip, port))
    }

    private func pickWeighted(_ backends: [HTTPRoute.BackendRef]) -> HTTPRoute.BackendRef? {
        let total = backends.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return nil }
        var point = random() * Double(total)
        for backend in backends {
            point -= Double(backend.weight)
            if point < 0 { return backend }
        }
        return backends.last
    }

    static func apply(_ modifier: HTTPRoute.HeaderModifier, to headers: inout HTTPHeaders) {
        for header in modifier.set { headers.replaceOrAdd(name: header.name, value: header.value) }
        for header in modifier.add { headers.add(name: header.name, value: header.value) }
        for name in modifier.remove { headers.remove(name: name) }
    }

    private static func merge(_ current: HTTPRoute.HeaderModifier?, _ next: HTTPRoute.HeaderModifier)
        -> HTTPRoute.HeaderModifier
    {
        guard var current else { return next }
        current.set += next.set
        current.add += next.add
        current.remove += next.remove
        return current
    }

    /// The path after a `ReplacePrefixMatch`: the matched prefix replaced, the rest kept.
    static func replacePrefix(path: String, matched: String, with replacement: String) -> String {
        var prefix = Substring(matched)
        while prefix.count > 1, prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        let rest = prefix == "/" ? Substring(path.dropFirst()) : path.dropFirst(prefix.count).drop { $0 == "/" }
        var base = Substring(replacement)
        while base.hasSuffix("/") { base = base.dropLast() }
        if rest.isEmpty { return base.isEmpty ? "/" : String(base) }
        return "\(base)/\(rest)"
    }

    private static func newPath(_ modifier: HTTPRoute.PathModifier, path: String, match: HTTPRoute.Match?) -> String {
        switch modifier {
        case .replaceFullPath(let full):
            return full
        case .virtualServiceURI(let replacement):
            switch match?.path {
            case .some(let prefix) where prefix.kind == .stringPrefix:
                return replacement + path.dropFirst(prefix.value.count)
            case .none:
                return replacement + path.dropFirst()
            case .some:
                return replacement
            }
        case .replacePrefixMatch(let replacement):
            let matched = match?.path.flatMap { $0.kind == .pathPrefix ? $0.value : nil } ?? "/"
            return replacePrefix(path: path, matched: matched, with: replacement)
        }
    }

    private static func split(_ uri: String) -> (path: String, query: String) {
        let (path, query) = RequestTarget.split(uri)
        return (String(path), String(query))
    }

    static func rewrite(_ head: inout HTTPRequestHead, _ rewrite: HTTPRoute.Rewrite, match: HTTPRoute.Match?) {
        if let hostname = rewrite.hostname { head.headers.replaceOrAdd(name: "host", value: hostname) }
        if let modifier = rewrite.path {
            let (path, query) = split(head.uri)
            head.uri = newPath(modifier, path: path, match: match) + query
        }
    }

    static func redirect(_ redirect: HTTPRoute.Redirect, head: HTTPRequestHead, match: HTTPRoute.Match?)
        -> LocalResponse
    {
        let (path, query) = split(head.uri)
        let requestHost = head.headers.first(name: "host") ?? ""
        // The host without its port (IPv6 literals keep their brackets).
        var host = requestHost
        var requestPort: UInt16?
        if let colon = requestHost.lastIndex(of: ":"), !requestHost[colon...].contains("]"),
            let port = UInt16(requestHost[requestHost.index(after: colon)...])
        {
            host = String(requestHost[..<colon])
            requestPort = port
        }
        let scheme = redirect.scheme ?? "http"
        let hostname = redirect.hostname ?? host
        let newPath = redirect.path.map { Self.newPath($0, path: path, match: match) } ?? path
        // Gateway API: the port is kept unless the scheme changes (then its well-known port applies).
        let port: UInt16? = redirect.port ?? (redirect.scheme == nil ? requestPort : nil)
        let defaultPort: UInt16 = scheme == "https" ? 443 : 80
        let authority = port.map { $0 == defaultPort ? hostname : "\(hostname):\($0)" } ?? hostname
        let location = "\(scheme)://\(authority)\(newPath)\(query)"
        return LocalResponse(
            status: HTTPResponseStatus(statusCode: redirect.statusCode),
            headers: [("location", location)],
            body: "",
            flag: .none
        )
    }
}
