import AmbitModel

// Gateway API objects. Route rules are strict about their fields (a misspelled match would
// match everything); the rest of a Gateway is read leniently.
extension ManifestDecoder {
    func decodeGateway(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> Gateway {
        let spec = try document.required("spec").mapping()
        var gateway = Gateway(
            metadata: metadata,
            gatewayClassName: try spec.required("gatewayClassName").nonEmptyString()
        )
        gateway.listeners =
            try spec["listeners"]?.list { (value) throws(FieldError) in
                let mapping = try value.mapping()
                return Gateway.Listener(
                    name: try mapping.required("name").nonEmptyString(),
                    port: try mapping.required("port").port(),
                    protocolName: try mapping.required("protocol").nonEmptyString(),
                    hostname: try mapping["hostname"]?.string(),
                    allowedNamespaces: try allowedNamespaces(mapping["allowedRoutes"])
                )
            } ?? []
        var addresses: [IPAddress] = []
        var entries = try spec["addresses"]?.sequence() ?? []
        entries += try document["status"]?.mapping()["addresses"]?.sequence() ?? []
        for entry in entries {
            let mapping = try entry.mapping()
            let type = try mapping["type"]?.string() ?? "IPAddress"
            guard type == "IPAddress" else { continue }  // host names are resolved by DNS, not here
            let address = try mapping.required("value").parsed { try IPAddress(parsing: $0) }
            if !addresses.contains(address) { addresses.append(address) }
        }
        gateway.addresses = addresses
        return gateway
    }

    /// `allowedRoutes.namespaces`: `from` Same (default), All or Selector (with `selector.matchLabels`).
    private func allowedNamespaces(_ value: YAMLValue?) throws(FieldError) -> Gateway.Listener.AllowedNamespaces {
        guard let namespaces = try value?.mapping()["namespaces"]?.mapping() else { return .same }
        let from = namespaces["from"]
        switch try from?.string() ?? "Same" {
        case "Same": return .same
        case "All": return .all
        case "Selector":
            let selector = try namespaces.required("selector").mapping()
            if let expressions = selector["matchExpressions"] {
                throw expressions.error("matchExpressions are not supported; use matchLabels")
            }
            return .selector(LabelSelector(matchLabels: try selector["matchLabels"]?.stringMap() ?? [:]))
        case let other:
            throw (from ?? value!).error("\"\(other)\" is not Same, All or Selector")
        }
    }

    func decodeGatewayClass(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> GatewayClass {
        let spec = try document.required("spec").mapping()
        return GatewayClass(metadata: metadata, controllerName: try spec.required("controllerName").nonEmptyString())
    }

    func decodeHTTPRoute(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> HTTPRoute {
        let spec = try document.required("spec").mapping()
        var route = HTTPRoute(metadata: metadata)
        route.parentRefs = try spec["parentRefs"]?.list(parentReference) ?? []
        route.hostnames = try spec["hostnames"]?.strings() ?? []
        route.rules = try spec["rules"]?.list(routeRule) ?? []
        return route
    }

    private func parentReference(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.ParentReference {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["group", "kind", "namespace", "name", "sectionName", "port"])
        return HTTPRoute.ParentReference(
            group: try mapping["group"]?.string() ?? "gateway.networking.k8s.io",
            kind: try mapping["kind"]?.nonEmptyString() ?? "Gateway",
            namespace: try mapping["namespace"]?.nonEmptyString(),
            name: try mapping.required("name").nonEmptyString(),
            sectionName: try mapping["sectionName"]?.nonEmptyString(),
            port: try mapping["port"]?.port()
        )
    }

    private func routeRule(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Rule {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys([
            "name", "matches", "filters", "backendRefs", "timeouts", "retry", "retries", "fault",
        ])
        var rule = HTTPRoute.Rule(name: try mapping["name"]?.nonEmptyString())
        rule.matches = try mapping["matches"]?.list(routeMatch) ?? []
        rule.filters = try mapping["filters"]?.list(routeFilter) ?? []
        rule.backendRefs =
            try mapping["backendRefs"]?.list { (value) throws(FieldError) in
                let entry = try value.mapping()
                try entry.rejectUnknownKeys(["group", "kind", "name", "namespace", "port", "weight", "filters"])
                return HTTPRoute.BackendRef(
                    backend: try backendObjectReference(entry),
                    weight: try entry["weight"]?.integer(Int.self, in: 0...1_000_000) ?? 1,
                    filters: try entry["filters"]?.list(routeFilter) ?? []
                )
            } ?? []
        if let timeouts = mapping["timeouts"] {
            let entry = try timeouts.mapping()
            try entry.rejectUnknownKeys(["request", "backendRequest"])
            // A zero timeout means none (Gateway API and Istio alike).
            rule.timeouts = HTTPRoute.Timeouts(
                request: try entry["request"]?.parsed { try GatewayDuration(parsing: $0).duration }.nonZero,
                backendRequest: try entry["backendRequest"]?.parsed { try GatewayDuration(parsing: $0).duration }
                    .nonZero
            )
        }
        if mapping["retry"] != nil && mapping["retries"] != nil {
            throw mapping.values["retries"]!.error("give either retry (Gateway API) or retries (Istio), not both")
        }
        if let retry = mapping["retry"] { rule.retry = try gatewayRetry(retry) }
        if let retries = mapping["retries"] { rule.retry = try istioRetries(retries) }
        if let fault = mapping["fault"] { rule.fault = try istioFault(fault) }
        return rule
    }

    /// Gateway API's `retry` (GEP-1731, experimental channel): `attempts`, `codes`, `backoff`.
    /// Connection failures and resets are retried too, as Istio does by default.
    private func gatewayRetry(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Retry {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["attempts", "codes", "backoff"])
        let codes =
            try mapping["codes"]?.list { (code) throws(FieldError) in try code.integer(Int.self, in: 400...599) } ?? []
        return HTTPRoute.Retry(
            attempts: try mapping["attempts"]?.integer(Int.self, in: 0...10) ?? 1,
            backoff: try mapping["backoff"]?.parsed { try GatewayDuration(parsing: $0).duration },
            retryOn: Set(["connect-failure", "reset"] + codes.map(String.init))
        )
    }

    /// Istio VirtualService `retries`: `attempts`, `perTryTimeout`, `retryOn` (comma-separated
    /// conditions: connect-failure, reset, 5xx, gateway-error, retriable-status-codes or status codes).
    func istioRetries(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Retry {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["attempts", "perTryTimeout", "retryOn"])
        var conditions: Set<String> = ["connect-failure", "reset", "503"]
        if let retryOn = mapping["retryOn"] {
            let text = try retryOn.nonEmptyString()
            conditions = []
            for part in text.split(separator: ",").map({ $0.trimmingWhitespace(newlines: false) }) {
                guard
                    HTTPRoute.Retry.knownConditions.contains(part)
                        || (Int(part).map { (100...599).contains($0) } ?? false)
                else {
                    throw retryOn.error(
                        "unknown retry condition \"\(part)\" (known: \(HTTPRoute.Retry.knownConditions.sorted().joined(separator: ", ")), or a status code)"
                    )
                }
                conditions.insert(part)
            }
        }
        return HTTPRoute.Retry(
            attempts: try mapping["attempts"]?.integer(Int.self, in: 0...10) ?? 2,
            perTryTimeout: try mapping["perTryTimeout"].map(istioDuration)?.nonZero,
            retryOn: conditions
        )
    }

    /// Istio VirtualService `fault`: `delay` (`fixedDelay`, `percentage.value`) and `abort`
    /// (`httpStatus`, `percentage.value`).
    func istioFault(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Fault {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["delay", "abort"])
        var fault = HTTPRoute.Fault()
        func percentage(_ entry: YAMLMapping) throws(FieldError) -> Double {
            guard let percentage = entry["percentage"] else { return 100 }
            let fields = try percentage.mapping()
            try fields.rejectUnknownKeys(["value"])
            let number = try fields.required("value").number()
            guard (0...100).contains(number) else { throw fields.values["value"]!.error("must be between 0 and 100") }
            return number
        }
        if let delay = mapping["delay"] {
            let entry = try delay.mapping()
            try entry.rejectUnknownKeys(["fixedDelay", "percentage"])
            fault.delay = try istioDuration(entry.required("fixedDelay"))
            fault.delayPercent = try percentage(entry)
        }
        if let abort = mapping["abort"] {
            let entry = try abort.mapping()
            try entry.rejectUnknownKeys(["httpStatus", "percentage"])
            fault.abortStatus = try entry.required("httpStatus").integer(Int.self, in: 200...599)
            fault.abortPercent = try percentage(entry)
        }
        if fault.delay == nil && fault.abortStatus == nil {
            throw value.error("a fault needs delay or abort")
        }
        return fault
    }

    private func routeMatch(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Match {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["path", "headers", "queryParams", "method"])
        var match = HTTPRoute.Match()
        if let pathValue = mapping["path"] {
            let path = try pathValue.mapping()
            try path.rejectUnknownKeys(["type", "value"])
            let kind = try enumValue(path["type"], default: HTTPRoute.PathMatch.Kind.pathPrefix)
            let text = try path["value"]?.string() ?? "/"
            switch kind {
            case .exact, .pathPrefix:
                guard text.hasPrefix("/") else { throw pathValue.error("path \"\(text)\" must start with \"/\"") }
            case .regularExpression:
                try validateRegex(text, at: path["value"] ?? pathValue)
            case .stringPrefix:
                throw (path["type"] ?? pathValue).error("unsupported type \"\(kind.rawValue)\"")
            }
            match.path = HTTPRoute.PathMatch(kind, text)
        }
        match.headers = try mapping["headers"]?.list(valueMatch) ?? []
        match.queryParams = try mapping["queryParams"]?.list(valueMatch) ?? []
        if let method = mapping["method"] {
            let text = try method.string()
            let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
            guard known.contains(text) else {
                throw method.error("\"\(text)\" is not an HTTP method (\(known.joined(separator: ", ")))")
            }
            match.method = text
        }
        return match
    }

    private func valueMatch(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.ValueMatch {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["type", "name", "value"])
        let kind = try enumValue(mapping["type"], default: HTTPRoute.ValueMatch.Kind.exact)
        let text = try mapping.required("value").string()
        if kind == .regularExpression {
            try validateRegex(text, at: mapping.values["value"]!)
        }
        return HTTPRoute.ValueMatch(kind, name: try mapping.required("name").nonEmptyString(), value: text)
    }

    private func routeFilter(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Filter {
        let mapping = try value.mapping()
        let type = try mapping.required("type").nonEmptyString()
        func body(_ key: String) throws(FieldError) -> YAMLMapping {
            try mapping.rejectUnknownKeys(["type", key])
            return try mapping.required(key).mapping()
        }
        switch type {
        case "RequestHeaderModifier":
            return .requestHeaderModifier(try headerModifier(body("requestHeaderModifier")))
        case "ResponseHeaderModifier":
            return .responseHeaderModifier(try headerModifier(body("responseHeaderModifier")))
        case "RequestMirror":
            let mirror = try body("requestMirror")
            try mirror.rejectUnknownKeys(["backendRef", "percent", "fraction"])
            let backend = try mirror.required("backendRef").mapping()
            try backend.rejectUnknownKeys(["group", "kind", "name", "namespace", "port"])
            var percent = 100.0
            if let value = mirror["percent"] {
                percent = Double(try value.integer(Int.self, in: 0...100))
            }
            if let fraction = try mirror["fraction"]?.mapping() {
                let numerator = try fraction.required("numerator").integer(Int.self, in: 0...Int(Int32.max))
                let denominator = try fraction["denominator"]?.integer(Int.self, in: 1...Int(Int32.max)) ?? 100
                guard numerator <= denominator else {
                    throw fraction.value.error("numerator must not exceed denominator")
                }
                percent = Double(numerator) * 100 / Double(denominator)
            }
            return .requestMirror(HTTPRoute.Mirror(backend: try backendObjectReference(backend), percent: percent))
        case "RequestRedirect":
            let redirect = try body("requestRedirect")
            try redirect.rejectUnknownKeys(["scheme", "hostname", "path", "port", "statusCode"])
            let status = try redirect["statusCode"]?.integer(Int.self, in: 300...399) ?? 302
            guard status == 301 || status == 302 else {
                throw redirect.values["statusCode"]!.error("statusCode must be 301 or 302")
            }
            return .requestRedirect(
                HTTPRoute.Redirect(
                    scheme: try redirect["scheme"]?.nonEmptyString(),
                    hostname: try redirect["hostname"]?.nonEmptyString(),
                    path: try redirect["path"].map { (value) throws(FieldError) in try pathModifier(value) },
                    port: try redirect["port"]?.port(),
                    statusCode: status
                )
            )
        case "URLRewrite":
            let rewrite = try body("urlRewrite")
            try rewrite.rejectUnknownKeys(["hostname", "path"])
            return .urlRewrite(
                HTTPRoute.Rewrite(
                    hostname: try rewrite["hostname"]?.nonEmptyString(),
                    path: try rewrite["path"].map { (value) throws(FieldError) in try pathModifier(value) }
                )
            )
        default:
            throw mapping.values["type"]!.error(
                "unsupported filter type \"\(type)\" (supported: RequestHeaderModifier, ResponseHeaderModifier, "
                    + "RequestMirror, RequestRedirect, URLRewrite)"
            )
        }
    }

    /// A duration in an Istio field: Gateway API notation (`500ms`, `1m30s`) or protobuf's decimal
    /// seconds (`0.5s`, `1.25s`), as Istio writes them.
    func istioDuration(_ value: YAMLValue) throws(FieldError) -> Duration {
        try value.parsed { text in
            if let gateway = try? GatewayDuration(parsing: text) { return gateway.duration }
            guard text.hasSuffix("s"), let seconds = Double(text.dropLast()), seconds >= 0, seconds < 1e9,
                text.dropLast().allSatisfy({ $0.isNumber || $0 == "." })
            else { throw IstioDurationError(text: text) }
            return .milliseconds(Int64((seconds * 1000).rounded()))
        }
    }

    fileprivate struct IstioDurationError: Error, CustomStringConvertible {
        let text: String
        var description: String { "\"\(text)\" is not a duration (examples: 500ms, 0.5s, 10s, 1m30s)" }
    }

    func headerModifier(_ mapping: YAMLMapping) throws(FieldError) -> HTTPRoute.HeaderModifier {
        try mapping.rejectUnknownKeys(["set", "add", "remove"])
        func headers(_ value: YAMLValue?) throws(FieldError) -> [HTTPRoute.Header] {
            try value?.list { (item) throws(FieldError) in
                let header = try item.mapping()
                try header.rejectUnknownKeys(["name", "value"])
                return HTTPRoute.Header(
                    name: try header.required("name").nonEmptyString(),
                    value: try header.required("value").string()
                )
            } ?? []
        }
        return HTTPRoute.HeaderModifier(
            set: try headers(mapping["set"]),
            add: try headers(mapping["add"]),
            remove: try mapping["remove"]?.strings() ?? []
        )
    }

    private func pathModifier(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.PathModifier {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["type", "replaceFullPath", "replacePrefixMatch"])
        switch try mapping.required("type").string() {
        case "ReplaceFullPath": return .replaceFullPath(try mapping.required("replaceFullPath").string())
        case "ReplacePrefixMatch": return .replacePrefixMatch(try mapping.required("replacePrefixMatch").string())
        case let other:
            throw mapping.values["type"]!.error("\"\(other)\" is not ReplaceFullPath or ReplacePrefixMatch")
        }
    }

    private func backendObjectReference(_ mapping: YAMLMapping) throws(FieldError) -> HTTPRoute.BackendObjectReference {
        let reference = HTTPRoute.BackendObjectReference(
            group: try mapping["group"]?.string() ?? "",
            kind: try mapping["kind"]?.nonEmptyString() ?? "Service",
            name: try mapping.required("name").nonEmptyString(),
            namespace: try mapping["namespace"]?.nonEmptyString(),
            port: try mapping["port"]?.port()
        )
        if reference.kind == "Service" && reference.port == nil {
            throw mapping.value.error("port is required for a Service backend")
        }
        return reference
    }

    func enumValue<T: RawRepresentable<String>>(_ value: YAMLValue?, default fallback: T) throws(FieldError)
        -> T
    {
        guard let value else { return fallback }
        let text = try value.string()
        guard let result = T(rawValue: text) else {
            throw value.error("unsupported type \"\(text)\"")
        }
        return result
    }

    func validateRegex(_ pattern: String, at value: YAMLValue) throws(FieldError) {
        do {
            _ = try Regex(pattern)
        } catch {
            throw value.error("invalid regular expression \"\(pattern)\": \(error)")
        }
    }
}

extension Duration {
    /// `nil` for zero: a timeout of zero means no timeout.
    var nonZero: Duration? { self == .zero ? nil : self }
}
