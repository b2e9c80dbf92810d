public import AmbitConfig
import AmbitModel
public import AmbitTelemetry
public import ArgumentParser
import FoundationEssentials
public import Logging

/// `--log-format` and `--log-level`, as every Ambit process takes them.
public struct LoggingOptions: ParsableArguments {
    @Option(help: "Log format: text or json.")
    public var logFormat: LogFormat = .text

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .info

    public init() {}

    /// Installs the logging backend (the level can be changed at run time on the admin port).
    public func bootstrap(label: String) -> Logger {
        logFormat.bootstrapControlled(level: logLevel)
        return Logger(label: label)
    }
}

/// Where a daemon reads its configuration: exactly one of a manifest directory, the Kubernetes
/// API from inside a pod, or the Kubernetes API through a kubeconfig.
public struct ConfigSourceOptions: ParsableArguments {
    @Option(help: "Directory of Kubernetes-style YAML manifests, watched for changes.")
    public var manifests: String?

    @Flag(help: "Read configuration from the Kubernetes API with the pod's service account (in-cluster).")
    public var kubernetes = false

    @Option(help: "Read configuration from the Kubernetes API through this kubeconfig file.")
    public var kubeconfig: String?

    @Option(help: "With --kubeconfig: the context to use (default: its current-context).")
    public var kubeContext: String?

    public init() {}

    public mutating func validate() throws {
        let chosen = [manifests != nil, kubernetes, kubeconfig != nil].filter { $0 }.count
        guard chosen == 1 else {
            throw ValidationError(
                "give exactly one configuration source: --manifests DIR, --kubernetes (in a pod) or --kubeconfig FILE"
            )
        }
        if kubeContext != nil && kubeconfig == nil {
            throw ValidationError("--kube-context needs --kubeconfig")
        }
    }

    /// The chosen source; reads credentials now so that a bad kubeconfig fails at start-up.
    public func selection() throws -> ConfigSourceSelection {
        if let manifests { return .manifests(directory: manifests) }
        if let kubeconfig {
            return .kubernetes(try KubernetesClusterConfig.kubeconfig(path: kubeconfig, context: kubeContext))
        }
        return .kubernetes(try KubernetesClusterConfig.inCluster())
    }
}

extension LogFormat: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--mesh-config`: Istio's MeshConfig, for the external authorizers CUSTOM policies name.
public struct MeshConfigOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Istio MeshConfig YAML: the file ConfigMap istio's key `mesh` mounts, or the ConfigMap itself.",
            discussion: "Its extensionProviders (envoyExtAuthzGrpc) are the authorizers CUSTOM policies call."
        )
    )
    public var meshConfig: String?

    public init() {}

    /// The file decoded; an empty MeshConfig without `--mesh-config`. Errors name file, line and field.
    public func load() throws -> MeshConfig {
        guard let meshConfig else { return MeshConfig() }
        let text: String
        do {
            text = try String(contentsOfFile: meshConfig, encoding: .utf8)
        } catch {
            throw ValidationError("--mesh-config \(meshConfig): cannot read it (\(error.readableDescription))")
        }
        return try MeshConfigDecoder.decode(text, file: meshConfig)
    }
}
