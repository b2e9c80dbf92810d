import AmbitModel

// Istio VirtualService, read for its HTTP routes and translated to HTTPRoute rules. Strict like
// route rules: a field Ambit cannot honour is an error naming it, never silently dropped.
extension ManifestDecoder {
    func decodeVirtualService(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> VirtualService {
        let spec = try document.required("spec").mapping()
        for section in ["tcp", "tls"] where spec[section] != nil {
            throw spec.values[section]!.error(
                "\(section) routes are not supported (a waypoint forwards non-HTTP traffic at L4 to the service)"
            )
        }
        try spec.rejectUnknownKeys(["hosts", "gateways", "http", "exportTo"])
        if let exportTo = spec["exportTo"], try exportTo.strings() != ["*"] {
            throw exportTo.error("only [\"*\"] is supported (a waypoint applies the routes to every client)")
        }
        let hosts = try spec.required("hosts").strings()
        guard !hosts.isEmpty else { throw spec.values["hosts"]!.error("needs at least one host") }
        return VirtualService(
            metadata: metadata,
            hosts: hosts,
            gateways: try spec["gateways"]?.strings() ?? [],
            http: try spec["http"]?.list { (value) throws(FieldError) in
                try virtualServiceRoute(value, namespace: metadata.namespace)
            } ?? []
        )
    }

    private func virtualServiceRoute(_ value: YAMLValue, namespace: String) throws(FieldError) -> HTTPRoute.Rule {
        let mapping = try value.mapping()
        try rejectUnsupported(mapping, ["delegate", "directResponse", "corsPolicy", "mirrors", "mirror_percent"])
        try mapping.rejectUnknownKeys([
            "name", "match", "route", "redirect", "rewrite", "timeout", "retries", "fault", "mirror",
            "mirrorPercentage", "headers",
        ])
        var rule = HTTPRoute.Rule(name: try mapping["name"]?.nonEmptyString())
        rule.matches = try mapping["match"]?.list(virtualServiceMatch) ?? []
        if let headers = mapping["headers"] { rule.filters += try headerOperations(headers) }
        if let rewrite = mapping["rewrite"] { rule.filters.append(try self.rewrite(rewrite)) }
        if let redirect = mapping["redirect"] {
            guard mapping["route"] == nil else {
                throw redirect.error("give either redirect or route, not both")
            }
            rule.filters.append(try self.redirect(redirect))
        }
        if let mirror = mapping["mirror"] {
            var percent = 100.0
            if let percentage = mapping["mirrorPercentage"] {
                let fields = try percentage.mapping()
                try fields.rejectUnknownKeys(["value"])
                percent = try fields.required("value").number()
                guard (0...100).contains(percent) else {
                    throw fields.values["value"]!.error("must be between 0 and 100")
                }
            }
            rule.filters.append(
                .requestMirror(
                    HTTPRoute.Mirror(backend: try destination(mirror, namespace: namespace), percent: percent)
                )
            )
        } else if let percentage = mapping["mirrorPercentage"] {
            throw percentage.error("mirrorPercentage needs mirror")
        }
        if let routes = mapping["route"] {
            let entries = try routes.sequence()
            rule.backendRefs = try routes.list { (entry) throws(FieldError) in
                let fields = try entry.mapping()
                try fields.rejectUnknownKeys(["destination", "weight", "headers"])
                return HTTPRoute.BackendRef(
                    backend: try destination(fields.required("destination"), namespace: namespace),
                    // Istio: a single destination takes all traffic; with several, a missing weight is 0.
                    weight: try fields["weight"]?.integer(Int.self, in: 0...100) ?? (entries.count == 1 ? 100 : 0),
                    filters: try fields["headers"].map(headerOperations) ?? []
                )
            }
            guard !entries.isEmpty else { throw routes.error("needs at least one destination") }
        } else if mapping["redirect"] == nil {
            throw value.error("an http route needs route or redirect")
        }
        if let timeout = mapping["timeout"], let request = try istioDuration(timeout).nonZero {
            rule.timeouts = HTTPRoute.Timeouts(request: request)
        }
        if let retries = mapping["retries"] { rule.retry = try istioRetries(retries) }
        if let fault = mapping["fault"] { rule.fault = try istioFault(fault) }
        return rule
    }

    private func rejectUnsupported(_ mapping: YAMLMapping, _ fields: [String]) throws(FieldError) {
        for field in fields where mapping[field] != nil {
            throw mapping.values[field]!.error("\(field) is not supported by Ambit's waypoint")
        }
    }

    /// `match[]`: `uri`, `headers`, `queryParams` (each `exact`, `prefix` or `regex`) and `method` (`exact`).
    private func virtualServiceMatch(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Match {
        let mapping = try value.mapping()
        try rejectUnsupported(
            mapping,
            ["port", "sourceLabels", "gateways", "sourceNamespace", "withoutHeaders", "authority", "scheme"]
        )
        try mapping.rejectUnknownKeys(["name", "uri", "headers", "queryParams", "method", "ignoreUriCase"])
        if let ignoreCase = mapping["ignoreUriCase"], try ignoreCase.bool() {
            throw ignoreCase.error("ignoreUriCase: true is not supported by Ambit's waypoint")
        }
        var match = HTTPRoute.Match()
        if let uri = mapping["uri"] {
            let (kind, text) = try stringMatch(uri)
            switch kind {
            case "exact", "prefix":
                guard text.hasPrefix("/") else { throw uri.error("uri \"\(text)\" must start with \"/\"") }
                match.path = HTTPRoute.PathMatch(kind == "exact" ? .exact : .stringPrefix, text)
            default:
                match.path = HTTPRoute.PathMatch(.regularExpression, text)
            }
        }
        func valueMatches(_ value: YAMLValue?) throws(FieldError) -> [HTTPRoute.ValueMatch] {
            guard let value else { return [] }
            let entries = try value.mapping()
            var result: [HTTPRoute.ValueMatch] = []
            for name in entries.keys {
                let (kind, text) = try stringMatch(entries.values[name]!)
                switch kind {
                case "exact": result.append(HTTPRoute.ValueMatch(.exact, name: name, value: text))
                case "regex": result.append(HTTPRoute.ValueMatch(.regularExpression, name: name, value: text))
                default:
                    let escaped = text.map { "\\.^$|?*+()[]{}".contains($0) ? "\\\($0)" : String($0) }.joined()
                    result.append(HTTPRoute.ValueMatch(.regularExpression, name: name, value: escaped + ".*"))
                }
            }
            return result
        }
        match.headers = try valueMatches(mapping["headers"]).map { header in
            var header = header
            header.name = header.name.lowercased()
            return header
        }
        match.queryParams = try valueMatches(mapping["queryParams"])
        if let method = mapping["method"] {
            let (kind, text) = try stringMatch(method)
            guard kind == "exact" else { throw method.error("method: only exact is supported") }
            match.method = text
        }
        return match
    }

    /// Istio's StringMatch: exactly one of `exact`, `prefix`, `regex` (validated).
    private func stringMatch(_ value: YAMLValue) throws(FieldError) -> (kind: String, text: String) {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["exact", "prefix", "regex"])
        guard mapping.keys.count == 1, let kind = mapping.keys.first else {
            throw value.error("give exactly one of exact, prefix, regex")
        }
        let text = try mapping.required(kind).string()
        if kind == "regex" { try validateRegex(text, at: mapping.values[kind]!) }
        return (kind, text)
    }

    /// `destination` (and `mirror`): `host` naming a Service, optional `port.number`; no `subset`.
    private func destination(_ value: YAMLValue, namespace: String) throws(FieldError)
        -> HTTPRoute.BackendObjectReference
    {
        let mapping = try value.mapping()
        if let subset = mapping["subset"] {
            throw subset.error("subsets need a DestinationRule, which Ambit does not read")
        }
        try mapping.rejectUnknownKeys(["host", "port"])
        let hostValue = try mapping.required("host")
        let host = try hostValue.nonEmptyString()
        let parts = host.split(separator: ".").map(String.init)
        guard !host.contains("*"), parts.count >= 1, parts.count == 1 || parts.count == 2 || parts[2] == "svc" else {
            throw hostValue.error("\"\(host)\" is not a Kubernetes Service (name, name.namespace or its svc name)")
        }
        var port: UInt16?
        if let portValue = mapping["port"] {
            let fields = try portValue.mapping()
            try fields.rejectUnknownKeys(["number"])
            port = try fields.required("number").port()
        }
        return HTTPRoute.BackendObjectReference(
            group: "",
            kind: "Service",
            name: parts[0],
            namespace: parts.count >= 2 ? parts[1] : namespace,
            port: port
        )
    }

    /// `headers: {request: {set, add, remove}, response: {...}}` (set and add are maps).
    private func headerOperations(_ value: YAMLValue) throws(FieldError) -> [HTTPRoute.Filter] {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["request", "response"])
        func modifier(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.HeaderModifier {
            let fields = try value.mapping()
            try fields.rejectUnknownKeys(["set", "add", "remove"])
            func headers(_ key: String) throws(FieldError) -> [HTTPRoute.Header] {
                guard let entries = try fields[key]?.mapping() else { return [] }
                var result: [HTTPRoute.Header] = []
                for name in entries.keys {
                    result.append(HTTPRoute.Header(name: name, value: try entries.values[name]!.string()))
                }
                return result
            }
            return HTTPRoute.HeaderModifier(
                set: try headers("set"),
                add: try headers("add"),
                remove: try fields["remove"]?.strings() ?? []
            )
        }
        var filters: [HTTPRoute.Filter] = []
        if let request = mapping["request"] { filters.append(.requestHeaderModifier(try modifier(request))) }
        if let response = mapping["response"] { filters.append(.responseHeaderModifier(try modifier(response))) }
        return filters
    }

    /// `rewrite: {uri, authority}`: the uri replaces what the match matched (``HTTPRoute/PathModifier/virtualServiceURI(_:)``).
    private func rewrite(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Filter {
        let mapping = try value.mapping()
        try rejectUnsupported(mapping, ["uriRegexRewrite"])
        try mapping.rejectUnknownKeys(["uri", "authority"])
        return .urlRewrite(
            HTTPRoute.Rewrite(
                hostname: try mapping["authority"]?.nonEmptyString(),
                path: try mapping["uri"].map { (uri) throws(FieldError) in .virtualServiceURI(try uri.string()) }
            )
        )
    }

    /// `redirect: {uri, authority, port, scheme, redirectCode}` (301 by default, as in Istio).
    private func redirect(_ value: YAMLValue) throws(FieldError) -> HTTPRoute.Filter {
        let mapping = try value.mapping()
        try rejectUnsupported(mapping, ["derivePort"])
        try mapping.rejectUnknownKeys(["uri", "authority", "port", "scheme", "redirectCode"])
        let code = try mapping["redirectCode"]?.integer(Int.self, in: 301...308) ?? 301
        guard ![304, 305, 306].contains(code) else {
            throw mapping.values["redirectCode"]!.error("\(code) is not a redirect status (301, 302, 303, 307, 308)")
        }
        return .requestRedirect(
            HTTPRoute.Redirect(
                scheme: try mapping["scheme"]?.nonEmptyString(),
                hostname: try mapping["authority"]?.nonEmptyString(),
                path: try mapping["uri"].map { (uri) throws(FieldError) in .replaceFullPath(try uri.string()) },
                port: try mapping["port"]?.port(),
                statusCode: code
            )
        )
    }
}
