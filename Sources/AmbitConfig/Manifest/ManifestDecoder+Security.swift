import AmbitModel

// Istio security policies. Unknown fields are errors here: a misspelled field in a rule would
// silently widen what the rule matches.
extension ManifestDecoder {
    func decodeAuthorizationPolicy(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError)
        -> AuthorizationPolicy
    {
        var policy = AuthorizationPolicy(metadata: metadata)
        if let annotations = try document.required("metadata").mapping()["annotations"],
            let value = try annotations.mapping()[AuthorizationPolicy.dryRunAnnotation]
        {
            switch try value.string() {
            case "true": policy.dryRun = true
            case "false": policy.dryRun = false
            case let other: throw value.error("\"\(other)\" must be \"true\" or \"false\"")
            }
        }
        guard let specValue = document["spec"] else { return policy }
        let spec = try specValue.mapping()
        try spec.rejectUnknownKeys(["selector", "targetRef", "targetRefs", "action", "provider", "rules"])
        policy.selector = try spec["selector"].map { (value) throws(FieldError) in try selector(value) }
        if let single = spec["targetRef"] {
            policy.targetRefs.append(try targetReference(single, namespace: metadata.namespace))
        }
        policy.targetRefs +=
            try spec["targetRefs"]?.list { (value) throws(FieldError) in
                try targetReference(value, namespace: metadata.namespace)
            } ?? []
        if policy.selector != nil && !policy.targetRefs.isEmpty {
            throw specValue.error("selector and targetRef(s) are mutually exclusive")
        }
        if let action = spec["action"] {
            policy.action = try action.parsed { text in
                guard let action = AuthorizationPolicy.Action(rawValue: text) else {
                    throw ValueError("unknown action \"\(text)\" (expected ALLOW, DENY, AUDIT or CUSTOM)")
                }
                return action
            }
        }
        if let provider = spec["provider"] {
            let mapping = try provider.mapping()
            try mapping.rejectUnknownKeys(["name"])
            policy.provider = try mapping.required("name").nonEmptyString()
        }
        if policy.action == .custom && policy.provider == nil {
            throw specValue.error("action CUSTOM needs provider.name")
        }
        if policy.action != .custom && policy.provider != nil {
            throw spec["provider"]!.error("provider is only allowed with action CUSTOM")
        }
        policy.rules =
            try spec["rules"]?.list { (value) throws(FieldError) in
                try rule(value, policyNamespace: metadata.namespace)
            } ?? []
        if policy.action == .deny && policy.rules.isEmpty {
            // Istio's validation refuses this too: it would silently do nothing.
            throw specValue.error("a DENY policy needs at least one rule (to deny everything, use rules: [{}])")
        }
        return policy
    }

    private func rule(_ value: YAMLValue, policyNamespace: String) throws(FieldError) -> AuthorizationPolicy.Rule {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["from", "to", "when"])
        var rule = AuthorizationPolicy.Rule()
        rule.from =
            try mapping["from"]?.list { (entry) throws(FieldError) in
                let wrapper = try entry.mapping()
                try wrapper.rejectUnknownKeys(["source"])
                return try source(wrapper.required("source"), policyNamespace: policyNamespace)
            } ?? []
        rule.to =
            try mapping["to"]?.list { (entry) throws(FieldError) in
                let wrapper = try entry.mapping()
                try wrapper.rejectUnknownKeys(["operation"])
                return try operation(wrapper.required("operation"))
            } ?? []
        rule.when = try mapping["when"]?.list(condition) ?? []
        return rule
    }

    private func source(_ value: YAMLValue, policyNamespace: String) throws(FieldError) -> AuthorizationPolicy.Source {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys([
            "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
            "serviceAccounts", "notServiceAccounts", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
        ])
        var source = AuthorizationPolicy.Source()
        source.principals = try matches(mapping["principals"])
        source.notPrincipals = try matches(mapping["notPrincipals"])
        source.requestPrincipals = try matches(mapping["requestPrincipals"])
        source.notRequestPrincipals = try matches(mapping["notRequestPrincipals"])
        source.namespaces = try matches(mapping["namespaces"])
        source.notNamespaces = try matches(mapping["notNamespaces"])
        source.serviceAccounts = try serviceAccounts(mapping["serviceAccounts"], policyNamespace: policyNamespace)
        source.notServiceAccounts = try serviceAccounts(mapping["notServiceAccounts"], policyNamespace: policyNamespace)
        source.ipBlocks = try cidrs(mapping["ipBlocks"])
        source.notIpBlocks = try cidrs(mapping["notIpBlocks"])
        source.remoteIpBlocks = try cidrs(mapping["remoteIpBlocks"])
        source.notRemoteIpBlocks = try cidrs(mapping["notRemoteIpBlocks"])
        let usesAccounts = !source.serviceAccounts.isEmpty || !source.notServiceAccounts.isEmpty
        let usesIdentities =
            !(source.principals.isEmpty && source.notPrincipals.isEmpty && source.namespaces.isEmpty
            && source.notNamespaces.isEmpty)
        if usesAccounts && usesIdentities {
            throw value.error("serviceAccounts cannot be combined with principals or namespaces in one source")
        }
        return source
    }

    private func operation(_ value: YAMLValue) throws(FieldError) -> AuthorizationPolicy.Operation {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys([
            "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths",
        ])
        var operation = AuthorizationPolicy.Operation()
        operation.hosts = try matches(mapping["hosts"])
        operation.notHosts = try matches(mapping["notHosts"])
        operation.ports = try ports(mapping["ports"])
        operation.notPorts = try ports(mapping["notPorts"])
        operation.methods = try matches(mapping["methods"])
        operation.notMethods = try matches(mapping["notMethods"])
        operation.paths = try pathPatterns(mapping["paths"])
        operation.notPaths = try pathPatterns(mapping["notPaths"])
        return operation
    }

    private func condition(_ value: YAMLValue) throws(FieldError) -> AuthorizationPolicy.Condition {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["key", "values", "notValues"])
        let key = try mapping.required("key").parsed { try ConditionKey(parsing: $0) }
        let values = try mapping["values"]?.sequence() ?? []
        let notValues = try mapping["notValues"]?.sequence() ?? []
        if values.isEmpty && notValues.isEmpty {
            throw value.error("a condition needs values or notValues")
        }
        for item in values + notValues {
            try validateConditionValue(item, key: key)
        }
        return AuthorizationPolicy.Condition(
            key: key,
            values: try values.map { (item) throws(FieldError) in try item.string() },
            notValues: try notValues.map { (item) throws(FieldError) in try item.string() }
        )
    }

    /// Checks a condition value has the shape its key needs, so evaluation never meets a bad one.
    private func validateConditionValue(_ value: YAMLValue, key: ConditionKey) throws(FieldError) {
        switch key {
        case .sourceIP, .remoteIP, .destinationIP:
            _ = try value.parsed { try IPCIDR(parsing: $0) }
        case .destinationPort:
            _ = try value.parsed(Self.parsePort)
        case .sourceNamespace, .sourcePrincipal:
            _ = try value.parsed { try StringMatch(parsing: $0) }
        default:
            _ = try value.string()
        }
    }

    func selector(_ value: YAMLValue) throws(FieldError) -> LabelSelector {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["matchLabels"])
        return LabelSelector(matchLabels: try mapping["matchLabels"]?.stringMap() ?? [:])
    }

    private func targetReference(_ value: YAMLValue, namespace: String) throws(FieldError) -> PolicyTargetReference {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["group", "kind", "name", "namespace"])
        let kind = try mapping.required("kind").nonEmptyString()
        let group = try mapping["group"]?.string() ?? ""
        switch (group, kind) {
        case ("gateway.networking.k8s.io", "Gateway"), ("gateway.networking.k8s.io", "GatewayClass"), ("", "Service"),
            ("core", "Service"), ("networking.istio.io", "ServiceEntry"):
            break
        default:
            throw mapping.values["kind"]!.error(
                "unsupported target \(group.isEmpty ? "" : group + "/")\(kind) (expected gateway.networking.k8s.io/Gateway or Service)"
            )
        }
        let targetNamespace = try mapping["namespace"]?.string()
        if let targetNamespace, targetNamespace != namespace {
            throw mapping.values["namespace"]!.error(
                "a policy can only target objects in its own namespace \"\(namespace)\""
            )
        }
        return PolicyTargetReference(group: group, kind: kind, name: try mapping.required("name").nonEmptyString())
    }

    private func matches(_ value: YAMLValue?) throws(FieldError) -> [StringMatch] {
        try value?.list { (item) throws(FieldError) in try item.parsed { try StringMatch(parsing: $0) } } ?? []
    }

    private func pathPatterns(_ value: YAMLValue?) throws(FieldError) -> [PathPattern] {
        try value?.list { (item) throws(FieldError) in try item.parsed { try PathPattern(parsing: $0) } } ?? []
    }

    private func cidrs(_ value: YAMLValue?) throws(FieldError) -> [IPCIDR] {
        try value?.list { (item) throws(FieldError) in try item.parsed { try IPCIDR(parsing: $0) } } ?? []
    }

    /// Ports are strings in Istio's API; a plain YAML integer is accepted too, it cannot mean anything else.
    private func ports(_ value: YAMLValue?) throws(FieldError) -> [UInt16] {
        try value?.list { (item) throws(FieldError) in
            if let number = try? item.port() { return number }
            return try item.parsed(Self.parsePort)
        } ?? []
    }

    static func parsePort(_ text: String) throws -> UInt16 {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let port = UInt16(text), port > 0 else {
            throw ValueError("\"\(text)\" is not a port number in 1...65535 (ranges are not supported)")
        }
        return port
    }

    private func serviceAccounts(_ value: YAMLValue?, policyNamespace: String) throws(FieldError)
        -> [AuthorizationPolicy.ServiceAccountRef]
    {
        guard let value else { return [] }
        let items = try value.sequence()
        if items.count > 16 {
            throw value.error("at most 16 service accounts are allowed, got \(items.count)")
        }
        return try items.map { (item) throws(FieldError) in
            try item.parsed { text in
                let parts = text.split(separator: "/", omittingEmptySubsequences: false)
                guard !text.contains("*"), parts.count <= 2,
                    parts.allSatisfy({ KubernetesNames.isDNSSubdomain(String($0)) })
                else {
                    throw ValueError(
                        "\"\(text)\" must be \"namespace/serviceaccount\" or \"serviceaccount\" (no wildcards)"
                    )
                }
                return parts.count == 2
                    ? AuthorizationPolicy.ServiceAccountRef(namespace: String(parts[0]), name: String(parts[1]))
                    : AuthorizationPolicy.ServiceAccountRef(namespace: policyNamespace, name: text)
            }
        }
    }

    func decodePeerAuthentication(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> PeerAuthentication
    {
        var policy = PeerAuthentication(metadata: metadata)
        guard let specValue = document["spec"] else { return policy }
        let spec = try specValue.mapping()
        try spec.rejectUnknownKeys(["selector", "mtls", "portLevelMtls"])
        policy.selector = try spec["selector"].map { (value) throws(FieldError) in try selector(value) }
        if let mtls = spec["mtls"] {
            policy.mode = try mode(mtls)
        }
        if let portLevel = spec["portLevelMtls"] {
            guard policy.selector != nil else {
                throw portLevel.error("portLevelMtls needs a selector (it applies to workload ports)")
            }
            let mapping = try portLevel.mapping()
            for key in mapping.keys {
                let entry = mapping.values[key]!
                let port: UInt16
                do {
                    port = try Self.parsePort(key)
                } catch {
                    throw entry.error("\(error)")
                }
                policy.portLevelModes[port] = try mode(entry)
            }
        }
        return policy
    }

    private func mode(_ value: YAMLValue) throws(FieldError) -> PeerAuthentication.Mode {
        let mapping = try value.mapping()
        try mapping.rejectUnknownKeys(["mode"])
        guard let mode = mapping["mode"] else { return .unset }
        return try mode.parsed { text in
            guard let mode = PeerAuthentication.Mode(rawValue: text) else {
                throw ValueError("unknown mode \"\(text)\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)")
            }
            return mode
        }
    }
}
