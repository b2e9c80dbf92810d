public import AmbitModel
import AmbitYAML

/// The part of Istio's MeshConfig Ambit reads: `extensionProviders`, the external authorizers CUSTOM
/// AuthorizationPolicies name.
public struct MeshConfig: Hashable, Sendable {
    public var extensionProviders: [String: ExtensionProvider] = [:]
    /// Providers skipped or not usable, and why.
    public var warnings: [String] = []

    public init(extensionProviders: [String: ExtensionProvider] = [:], warnings: [String] = []) {
        self.extensionProviders = extensionProviders
        self.warnings = warnings
    }
}

/// Reads a MeshConfig from YAML as Istio keeps it: the MeshConfig itself (what ConfigMap `istio`'s
/// key `mesh` holds, mounted as a file), or the whole ConfigMap (`kind: ConfigMap`, `data.mesh`).
/// Fields other than `extensionProviders` are Istio's business and are ignored; inside a provider
/// every field is checked, and errors name the file, line and field.
public enum MeshConfigDecoder {
    public static func decode(_ text: String, file: String) throws(ManifestError) -> MeshConfig {
        let root = try parse(text, file: file)
        guard let root else { return MeshConfig() }
        do throws(FieldError) {
            let mapping = try root.mapping()
            if let kind = mapping["kind"] {
                guard try kind.string() == "ConfigMap" else {
                    throw kind.error("expected a MeshConfig or a ConfigMap holding one (data.mesh)")
                }
                guard let mesh = try mapping["data"]?.mapping()["mesh"] else { return MeshConfig() }
                let inner = try mesh.string()
                do {
                    return try decode(inner, file: "\(file) (data.mesh)")
                } catch {
                    throw mesh.error("\(error)")
                }
            }
            return try meshConfig(mapping)
        } catch {
            throw ManifestError(file: file, line: error.line, field: error.path.description, message: error.message)
        }
    }

    private static func parse(_ text: String, file: String) throws(ManifestError) -> YAMLValue? {
        let node: YAMLNode
        do throws(YAMLError) {
            guard let root = try YAMLReader(yaml: text).nextDocument() else { return nil }
            node = root
        } catch {
            throw ManifestDecoder.syntaxError(error, file: file)
        }
        let value = YAMLValue(node: node, path: .root)
        return value.isNull ? nil : value
    }

    /// Provider kinds Istio knows that are not authorizers (telemetry, tracing, access logs).
    private static let otherProviderKinds: Set<String> = [
        "zipkin", "lightstep", "datadog", "stackdriver", "opencensus", "skywalking", "opentelemetry",
        "prometheus", "envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "sds",
    ]

    private static func meshConfig(_ mapping: YAMLMapping) throws(FieldError) -> MeshConfig {
        var config = MeshConfig()
        let entries = try mapping["extensionProviders"]?.sequence() ?? []
        for entry in entries {
            let fields = try entry.mapping()
            let name = try fields.required("name").nonEmptyString()
            let kinds = fields.keys.filter { $0 != "name" }
            guard kinds.count == 1, let kindName = kinds.first else {
                throw entry.error("extension provider \"\(name)\" needs exactly one provider field, has \(kinds.count)")
            }
            let value = fields[kindName]
            let kind: ExtensionProvider.Kind
            switch kindName {
            case "envoyExtAuthzGrpc":
                guard let value else { throw entry.error("envoyExtAuthzGrpc is empty") }
                kind = try extAuthzGrpc(value)
            case "envoyExtAuthzHttp":
                kind = .unsupported(
                    "HTTP ext_authz providers (envoyExtAuthzHttp) are not implemented; use envoyExtAuthzGrpc"
                )
            case _ where otherProviderKinds.contains(kindName):
                config.warnings.append(
                    "extension provider \"\(name)\" (\(kindName)) is not an authorizer; Ambit ignores it"
                )
                continue
            default:
                throw fields.values[kindName]!.error("unknown extension provider kind \"\(kindName)\"")
            }
            if config.extensionProviders[name] != nil {
                config.warnings.append("extension provider \"\(name)\" is defined twice; using the first")
                continue
            }
            if case .unsupported(let why) = kind {
                config.warnings.append("extension provider \"\(name)\": \(why); CUSTOM policies naming it deny")
            }
            config.extensionProviders[name] = ExtensionProvider(name: name, kind: kind)
        }
        return config
    }

    private static func extAuthzGrpc(_ value: YAMLValue) throws(FieldError) -> ExtensionProvider.Kind {
        let fields = try value.mapping()
        try fields.rejectUnknownKeys([
            "service", "port", "timeout", "failOpen", "statusOnError", "includeRequestBodyInCheck", "clearRouteCache",
        ])
        var provider = ExtensionProvider.ExtAuthzGrpc(
            service: try fields.required("service").nonEmptyString(),
            port: try fields.required("port").port()
        )
        if let timeout = fields["timeout"] { provider.timeout = try ManifestDecoder().istioDuration(timeout) }
        if let failOpen = fields["failOpen"] { provider.failOpen = try failOpen.bool() }
        if let status = fields["statusOnError"] {
            let text = try status.string()
            guard let code = Int(text), (200...599).contains(code) else {
                throw status.error("\"\(text)\" is not an HTTP status code")
            }
            provider.statusOnError = code
        }
        if fields["includeRequestBodyInCheck"] != nil {
            return .unsupported(
                "includeRequestBodyInCheck (sending the request body to the authorizer) is not implemented"
            )
        }
        return .extAuthzGrpc(provider)
    }
}
