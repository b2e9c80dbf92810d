import AmbitYAML

extension LabSpec {
    /// A container probe as the Pod spec declares it (`readinessProbe`, `livenessProbe`), with the
    /// same field names and defaults; the lab's kubelet (``LabKubelet``) runs it from the pod's node.
    public struct Probe: Codable, Sendable, Equatable {
        public enum Action: Codable, Sendable, Equatable {
            /// `httpGet: {path, port, httpHeaders}`: success is a status of 200-399.
            case httpGet(path: String, port: Int, headers: [String: String])
            /// `tcpSocket: {port}`: success is an accepted connection.
            case tcpSocket(port: Int)

            public var port: Int {
                switch self {
                case .httpGet(_, let port, _), .tcpSocket(let port): return port
                }
            }
        }

        public var action: Action
        public var initialDelaySeconds = 0
        public var periodSeconds = 10
        public var timeoutSeconds = 1
        public var successThreshold = 1
        public var failureThreshold = 3
    }
}

extension LabFileReader {
    /// Parses a `readinessProbe` / `livenessProbe` mapping.
    func probe(_ node: YAMLNode, _ path: String) throws -> LabSpec.Probe {
        let fields = try mapping(
            node,
            path,
            known: [
                "httpGet", "tcpSocket", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
                "successThreshold", "failureThreshold",
            ]
        )
        func port(_ owner: YAMLNode, _ fields: [String: YAMLNode], _ path: String) throws -> Int {
            guard let portNode = fields["port"] else { throw error(owner, "\(path).port", "is required") }
            guard let value = Int(portNode.scalar?.string ?? "") else {
                throw error(portNode, "\(path).port", "named ports are not supported in the lab; give the number")
            }
            guard (1...65535).contains(value) else { throw error(portNode, "\(path).port", "\(value) is not a port") }
            return value
        }
        let action: LabSpec.Probe.Action
        switch (fields["httpGet"], fields["tcpSocket"]) {
        case (let http?, nil):
            let httpFields = try mapping(http, "\(path).httpGet", known: ["path", "port", "httpHeaders", "scheme"])
            if let scheme = try httpFields["scheme"].map({ try string($0, "\(path).httpGet.scheme") }), scheme != "HTTP"
            {
                throw error(httpFields["scheme"], "\(path).httpGet.scheme", "only HTTP is supported in the lab")
            }
            let probePath = try httpFields["path"].map { try string($0, "\(path).httpGet.path") } ?? "/"
            guard probePath.hasPrefix("/") else {
                throw error(httpFields["path"], "\(path).httpGet.path", "\"\(probePath)\" must start with /")
            }
            var headers: [String: String] = [:]
            if let list = httpFields["httpHeaders"] {
                for (index, item) in try sequence(list, "\(path).httpGet.httpHeaders").enumerated() {
                    let header = try mapping(item, "\(path).httpGet.httpHeaders[\(index)]", known: ["name", "value"])
                    guard let name = header["name"], let value = header["value"] else {
                        throw error(item, "\(path).httpGet.httpHeaders[\(index)]", "needs name and value")
                    }
                    headers[try string(name, "\(path).httpGet.httpHeaders[\(index)].name")] = try string(
                        value,
                        "\(path).httpGet.httpHeaders[\(index)].value"
                    )
                }
            }
            action = .httpGet(path: probePath, port: try port(http, httpFields, "\(path).httpGet"), headers: headers)
        case (nil, let tcp?):
            action = .tcpSocket(
                port: try port(tcp, try mapping(tcp, "\(path).tcpSocket", known: ["port"]), "\(path).tcpSocket")
            )
        case (nil, nil):
            throw error(node, path, "needs httpGet or tcpSocket (exec and grpc probes are not supported in the lab)")
        case (_?, _?):
            throw error(node, path, "has both httpGet and tcpSocket; a probe has one handler")
        }
        var probe = LabSpec.Probe(action: action)
        func positive(_ key: String, minimum: Int) throws -> Int? {
            guard let value = try fields[key].map({ try int($0, "\(path).\(key)") }) else { return nil }
            guard value >= minimum else { throw error(fields[key], "\(path).\(key)", "must be at least \(minimum)") }
            return value
        }
        probe.initialDelaySeconds = try positive("initialDelaySeconds", minimum: 0) ?? probe.initialDelaySeconds
        probe.periodSeconds = try positive("periodSeconds", minimum: 1) ?? probe.periodSeconds
        probe.timeoutSeconds = try positive("timeoutSeconds", minimum: 1) ?? probe.timeoutSeconds
        probe.successThreshold = try positive("successThreshold", minimum: 1) ?? probe.successThreshold
        probe.failureThreshold = try positive("failureThreshold", minimum: 1) ?? probe.failureThreshold
        return probe
    }
}
