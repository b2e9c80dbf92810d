import AmbitModel

// Pods and Services: the fields the data path needs, read leniently (real manifests carry many
// fields Ambit does not use) but with strict types for the fields it reads.
extension ManifestDecoder {
    func decodePod(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> Pod {
        var pod = Pod(metadata: metadata)
        if let spec = try document["spec"]?.mapping() {
            pod.nodeName = try spec["nodeName"]?.nonEmptyString()
            // `serviceAccount` is the deprecated spelling Kubernetes still accepts.
            if let account = spec["serviceAccountName"] ?? spec["serviceAccount"] {
                let name = try account.nonEmptyString()
                guard KubernetesNames.isDNSSubdomain(name) else {
                    throw account.error("\"\(name)\" is not a valid service account name")
                }
                pod.serviceAccountName = name
            }
            pod.hostNetwork = try spec["hostNetwork"]?.bool() ?? false
            for field in ["containers", "initContainers"] {
                for container in try spec[field]?.sequence() ?? [] {
                    guard let ports = try container.mapping()["ports"] else { continue }
                    pod.containerPorts += try ports.list(decodeContainerPort)
                }
            }
        }
        if let status = try document["status"]?.mapping() {
            var addresses: [IPAddress] = []
            if let podIP = status["podIP"] {
                addresses.append(try podIP.parsed { try IPAddress(parsing: $0) })
            }
            for entry in try status["podIPs"]?.sequence() ?? [] {
                let address = try entry.mapping().required("ip").parsed { try IPAddress(parsing: $0) }
                if !addresses.contains(address) { addresses.append(address) }
            }
            pod.podIPs = addresses
            if let phase = status["phase"] {
                pod.phase = try phase.parsed { text in
                    guard let phase = PodPhase(rawValue: text) else {
                        throw ValueError(
                            "\"\(text)\" is not a pod phase (Pending, Running, Succeeded, Failed, Unknown)"
                        )
                    }
                    return phase
                }
            }
            for condition in try status["conditions"]?.sequence() ?? [] {
                let mapping = try condition.mapping()
                guard try mapping["type"]?.string() == "Ready" else { continue }
                pod.ready = try mapping.required("status").string() == "True"
            }
        }
        return pod
    }

    private func decodeContainerPort(_ value: YAMLValue) throws(FieldError) -> ContainerPort {
        let mapping = try value.mapping()
        let name = try mapping["name"].map { (value) throws(FieldError) in try portName(value) }
        return ContainerPort(
            name: name,
            containerPort: try mapping.required("containerPort").port(),
            transport: try transport(mapping["protocol"])
        )
    }

    func decodeService(metadata: ObjectMeta, document: YAMLMapping) throws(FieldError) -> Service {
        var service = Service(metadata: metadata)
        guard let spec = try document["spec"]?.mapping() else { return service }
        var addresses: [IPAddress] = []
        var candidates: [YAMLValue] = []
        if let clusterIP = spec["clusterIP"] { candidates.append(clusterIP) }
        candidates += try spec["clusterIPs"]?.sequence() ?? []
        for candidate in candidates {
            let text = try candidate.string()
            if text == "None" {
                service.headless = true
                continue
            }
            if text.isEmpty { continue }
            let address = try candidate.parsed { try IPAddress(parsing: $0) }
            if !addresses.contains(address) { addresses.append(address) }
        }
        service.clusterIPs = service.headless ? [] : addresses
        if let selector = spec["selector"] {
            let labels = try selector.stringMap()
            // An empty selector in a Service means "no selector" (endpoints are managed elsewhere).
            service.selector = labels.isEmpty ? nil : LabelSelector(matchLabels: labels)
        }
        var seenPorts: Set<UInt16> = []
        service.ports =
            try spec["ports"]?.list { (value) throws(FieldError) in
                let mapping = try value.mapping()
                let portValue = try mapping.required("port")
                let port = try portValue.port()
                let transport = try transport(mapping["protocol"])
                if transport == .tcp {
                    guard seenPorts.insert(port).inserted else {
                        throw portValue.error("port \(port) is listed twice")
                    }
                }
                return ServicePort(
                    name: try mapping["name"].map { (value) throws(FieldError) in try portName(value) },
                    port: port,
                    targetPort: try mapping["targetPort"].map { (value) throws(FieldError) in try targetPort(value) },
                    transport: transport,
                    appProtocol: try mapping["appProtocol"]?.string()
                )
            } ?? []
        return service
    }

    /// `targetPort` is an IntOrString: a port number, or the name of a container port.
    private func targetPort(_ value: YAMLValue) throws(FieldError) -> TargetPort {
        if let number = try? value.port() {
            return .number(number)
        }
        guard case .scalar = value.node, let name = try? value.string() else {
            throw value.error("expected a port number or a port name, got \(value.kindDescription)")
        }
        guard KubernetesNames.isPortName(name) else {
            throw value.error("\"\(name)\" is neither a port number in 1...65535 nor a valid port name")
        }
        return .name(name)
    }

    private func portName(_ value: YAMLValue) throws(FieldError) -> String {
        let name = try value.string()
        guard KubernetesNames.isPortName(name) || KubernetesNames.isDNSLabel(name) else {
            throw value.error("\"\(name)\" is not a valid port name")
        }
        return name
    }

    func transport(_ value: YAMLValue?) throws(FieldError) -> TransportProtocol {
        guard let value else { return .tcp }
        return try value.parsed { text in
            guard let transport = TransportProtocol(rawValue: text) else {
                throw ValueError("\"\(text)\" is not a protocol (TCP, UDP, SCTP)")
            }
            return transport
        }
    }
}

/// A value-level error message, turned into a ``FieldError`` by ``YAMLValue/parsed(_:)``.
struct ValueError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
