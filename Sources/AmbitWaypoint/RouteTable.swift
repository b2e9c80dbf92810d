public import AmbitConfig
public import AmbitModel

/// The parts of an HTTP request that HTTPRoute matches look at.
public struct RouteRequest: Sendable {
    public var method: String
    /// The request target, path normalized (``RequestTarget``): path and query (`/a/b?x=1`).
    public var target: String
    /// Header name (any case) and value pairs, in order.
    public var headers: [(name: String, value: String)]

    public init(method: String, target: String, headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.headers = headers
    }

    /// The path without the query.
    public var path: String {
        String(RequestTarget.split(target).path)
    }

    /// Query parameters in order, not percent-decoded (Gateway API compares them as sent).
    public var query: [(name: String, value: String)] {
        RequestTarget.split(target).query.dropFirst().split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count == 2 ? String(parts[1]) : "")
        }
    }

    func header(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringASCIICase(name) }?.value
    }
}

/// The rule chosen for a request, and the match that chose it.
public struct RouteSelection: Sendable {
    public let route: ObjectKey
    public let ruleIndex: Int
    public let rule: HTTPRoute.Rule
    /// The match that applied (`nil` for a rule without matches, which means prefix `/`).
    public let match: HTTPRoute.Match?
}

/// The HTTPRoutes attached to services (parentRef kind Service), indexed by service, with Gateway
/// API's precedence between matches of all routes of one service: an Exact path first, then
/// regular expressions (whose order Gateway API leaves to implementations; Istio also puts them
/// before prefixes), then a longer prefix before a shorter one, then a method match, then more
/// header matches, then more query matches; ties go to the older route (creation time, then
/// namespace/name) and to the earlier rule.
///
/// A service no HTTPRoute attaches to takes the HTTP routes of the VirtualServices of its own
/// namespace naming it in `hosts` instead, in Istio's order: the older VirtualService first, then its routes and matches
/// as written, the first match winning. Where both exist the HTTPRoutes win (Istio does not define
/// a mix) and the VirtualService is reported in ``warnings``.
public struct RouteTable: Sendable {
    private struct Entry: Sendable {
        let route: ObjectKey
        let ruleIndex: Int
        let rule: HTTPRoute.Rule
        let match: HTTPRoute.Match?
        let compiled: CompiledMatch
        let port: UInt16?
        let rank: Rank
    }

    private struct Rank: Comparable, Sendable {
        var pathKind: Int
        var pathLength: Int
        var method: Int
        var headers: Int
        var query: Int
        var age: String
        var name: String
        var rule: Int
        var match: Int

        static func < (lhs: Rank, rhs: Rank) -> Bool {
            // Higher specificity first, then older, then name, then order.
            let left = (-lhs.pathKind, -lhs.pathLength, -lhs.method, -lhs.headers, -lhs.query)
            let right = (-rhs.pathKind, -rhs.pathLength, -rhs.method, -rhs.headers, -rhs.query)
            if left != right { return left < right }
            return (lhs.age, lhs.name, lhs.rule, lhs.match) < (rhs.age, rhs.name, rhs.rule, rhs.match)
        }
    }

    private let entries: [ObjectKey: [Entry]]
    /// Routes or matches that cannot be used, with the reason (shown in logs and the config dump).
    public let warnings: [String]

    public init(
        routes: some Sequence<HTTPRoute>,
        virtualServices: [VirtualService] = [],
        clusterDomain: String = "cluster.local"
    ) {
        var entries: [ObjectKey: [Entry]] = [:]
        var warnings: [String] = []
        for route in routes {
            let parents = route.parentRefs.filter(\.isService)
            guard !parents.isEmpty else { continue }
            for (ruleIndex, rule) in route.rules.enumerated() {
                let matches: [HTTPRoute.Match?] = rule.matches.isEmpty ? [nil] : rule.matches
                for (matchIndex, match) in matches.enumerated() {
                    let compiled: CompiledMatch
                    do {
                        compiled = try CompiledMatch(match)
                    } catch {
                        warnings.append("\(route.key) rule \(ruleIndex) match \(matchIndex): \(error); match ignored")
                        continue
                    }
                    for parent in parents {
                        let service = ObjectKey(
                            .service,
                            namespace: parent.namespace ?? route.metadata.namespace,
                            name: parent.name
                        )
                        entries[service, default: []].append(
                            Entry(
                                route: route.key,
                                ruleIndex: ruleIndex,
                                rule: rule,
                                match: match,
                                compiled: compiled,
                                port: parent.port,
                                rank: Rank(
                                    pathKind: compiled.pathKind,
                                    pathLength: compiled.pathLength,
                                    method: match?.method == nil ? 0 : 1,
                                    headers: match?.headers.count ?? 0,
                                    query: match?.queryParams.count ?? 0,
                                    age: route.metadata.creationTimestamp ?? "",
                                    name: route.key.namespacedName,
                                    rule: ruleIndex,
                                    match: matchIndex
                                )
                            )
                        )
                    }
                }
            }
        }
        var ordered = entries.mapValues { $0.sorted { $0.rank < $1.rank } }
        let byAge = virtualServices.filter(\.appliesToMesh).sorted {
            ($0.metadata.creationTimestamp ?? "", $0.key) < ($1.metadata.creationTimestamp ?? "", $1.key)
        }
        for virtualService in byAge {
            for host in virtualService.hosts {
                guard let (namespace, name) = virtualService.service(forHost: host, clusterDomain: clusterDomain) else {
                    warnings.append("\(virtualService.key) host \(host): not a Service of this cluster; ignored")
                    continue
                }
                let service = ObjectKey(.service, namespace: namespace, name: name)
                guard namespace == virtualService.metadata.namespace else {
                    // Otherwise any namespace could reroute another's service.
                    warnings.append(
                        "\(virtualService.key) host \(host): only a VirtualService in the namespace of "
                            + "\(service.namespacedName) routes it; ignored"
                    )
                    continue
                }
                if entries[service] != nil {
                    warnings.append(
                        "\(virtualService.key) host \(host): HTTPRoutes attach to \(service.namespacedName); they win"
                    )
                    continue
                }
                for (ruleIndex, rule) in virtualService.http.enumerated() {
                    let matches: [HTTPRoute.Match?] = rule.matches.isEmpty ? [nil] : rule.matches
                    for (matchIndex, match) in matches.enumerated() {
                        do {
                            let compiled = try CompiledMatch(match)
                            ordered[service, default: []].append(
                                Entry(
                                    route: virtualService.key,
                                    ruleIndex: ruleIndex,
                                    rule: rule,
                                    match: match,
                                    compiled: compiled,
                                    port: nil,
                                    rank: Rank(
                                        pathKind: 0,
                                        pathLength: 0,
                                        method: 0,
                                        headers: 0,
                                        query: 0,
                                        age: "",
                                        name: "",
                                        rule: ruleIndex,
                                        match: matchIndex
                                    )
                                )
                            )
                        } catch {
                            warnings.append(
                                "\(virtualService.key) http \(ruleIndex) match \(matchIndex): \(error); match ignored"
                            )
                        }
                    }
                }
            }
        }
        self.entries = ordered
        self.warnings = warnings
    }

    /// The routes of a snapshot: its HTTPRoutes and VirtualServices, in a stable order.
    public init(snapshot: ConfigSnapshot) {
        self.init(
            routes: snapshot.httpRoutes.values.sorted { $0.key < $1.key },
            virtualServices: Array(snapshot.virtualServices.values),
            clusterDomain: snapshot.options.clusterDomain
        )
    }

    /// Whether any route is attached to `service`.
    public func hasRoutes(for service: ObjectKey) -> Bool { entries[service] != nil }

    /// The rule for a request to `service` on `port`; `nil` when routes exist but none matches
    /// (Gateway API: 404) or when no route is attached (use ``hasRoutes(for:)`` to tell apart).
    public func select(service: ObjectKey, port: UInt16, request: RouteRequest) -> RouteSelection? {
        guard let candidates = entries[service] else { return nil }
        for entry in candidates where entry.port == nil || entry.port == port {
            if entry.compiled.matches(request, match: entry.match) {
                return RouteSelection(
                    route: entry.route,
                    ruleIndex: entry.ruleIndex,
                    rule: entry.rule,
                    match: entry.match
                )
            }
        }
        return nil
    }
}

/// One HTTPRoute match with its regular expressions compiled.
struct CompiledMatch: @unchecked Sendable {
    // `Regex` is not Sendable; these are only read after construction.
    private let pathRegex: Regex<AnyRegexOutput>?
    private let headerRegexes: [Int: Regex<AnyRegexOutput>]
    private let queryRegexes: [Int: Regex<AnyRegexOutput>]
    /// 3 exact, 2 regular expression, 1 prefix.
    let pathKind: Int
    let pathLength: Int

    init(_ match: HTTPRoute.Match?) throws {
        let path = match?.path ?? HTTPRoute.PathMatch(.pathPrefix, "/")
        switch path.kind {
        case .exact:
            pathKind = 3
            pathRegex = nil
        case .pathPrefix, .stringPrefix:
            pathKind = 1
            pathRegex = nil
        case .regularExpression:
            pathKind = 2
            pathRegex = try Self.regex(path.value, what: "path")
        }
        pathLength = path.value.count
        var headerRegexes: [Int: Regex<AnyRegexOutput>] = [:]
        for (index, header) in (match?.headers ?? []).enumerated() where header.kind == .regularExpression {
            headerRegexes[index] = try Self.regex(header.value, what: "header \(header.name)")
        }
        var queryRegexes: [Int: Regex<AnyRegexOutput>] = [:]
        for (index, query) in (match?.queryParams ?? []).enumerated() where query.kind == .regularExpression {
            queryRegexes[index] = try Self.regex(query.value, what: "query parameter \(query.name)")
        }
        self.headerRegexes = headerRegexes
        self.queryRegexes = queryRegexes
    }

    private static func regex(_ pattern: String, what: String) throws -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern)
        } catch {
            throw RouteMatchError(description: "\(what): invalid regular expression \"\(pattern)\"")
        }
    }

    func matches(_ request: RouteRequest, match: HTTPRoute.Match?) -> Bool {
        let path = request.path
        let pathMatch = match?.path ?? HTTPRoute.PathMatch(.pathPrefix, "/")
        switch pathMatch.kind {
        case .exact:
            guard path == pathMatch.value else { return false }
        case .pathPrefix:
            guard Self.hasPathPrefix(path, pathMatch.value) else { return false }
        case .stringPrefix:
            guard path.hasPrefix(pathMatch.value) else { return false }
        case .regularExpression:
            guard let pathRegex, (try? pathRegex.wholeMatch(in: path)) != nil else { return false }
        }
        guard let match else { return true }
        if let method = match.method, request.method != method { return false }
        for (index, header) in match.headers.enumerated() {
            guard let value = request.header(header.name) else { return false }
            if let regex = headerRegexes[index] {
                guard (try? regex.wholeMatch(in: value)) != nil else { return false }
            } else if value != header.value {
                return false
            }
        }
        if !match.queryParams.isEmpty {
            let query = request.query
            for (index, parameter) in match.queryParams.enumerated() {
                guard let value = query.first(where: { $0.name == parameter.name })?.value else { return false }
                if let regex = queryRegexes[index] {
                    guard (try? regex.wholeMatch(in: value)) != nil else { return false }
                } else if value != parameter.value {
                    return false
                }
            }
        }
        return true
    }

    /// Gateway API prefix matching is by path element: `/foo` matches `/foo` and `/foo/bar`,
    /// not `/foobar`; a trailing `/` in the prefix is ignored.
    static func hasPathPrefix(_ path: String, _ prefix: String) -> Bool {
        var prefix = Substring(prefix)
        while prefix.count > 1, prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        if prefix == "/" { return path.hasPrefix("/") }
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        return rest.isEmpty || rest.hasPrefix("/")
    }
}

struct RouteMatchError: Error, CustomStringConvertible {
    let description: String
}
