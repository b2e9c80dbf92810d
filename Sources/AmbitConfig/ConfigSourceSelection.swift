public import Logging
public import NIOCore

/// Which ``ConfigSource`` a daemon runs, chosen on its command line.
public enum ConfigSourceSelection: Sendable, CustomStringConvertible {
    case manifests(directory: String)
    case kubernetes(KubernetesClusterConfig)

    public var description: String {
        switch self {
        case .manifests(let directory): return "manifests in \(directory)"
        case .kubernetes(let cluster): return "Kubernetes API \(cluster)"
        }
    }

    /// Makes the source feeding `store`; `userAgent` names the process to the API server.
    public func makeSource(
        store: ConfigStore,
        group: any EventLoopGroup,
        userAgent: String,
        logger: Logger
    ) throws -> any ConfigSource {
        switch self {
        case .manifests(let directory):
            return ManifestDirectorySource(directory: directory, store: store, logger: logger)
        case .kubernetes(let cluster):
            var options = KubernetesSource.Options()
            options.userAgent = userAgent
            return try KubernetesSource(cluster: cluster, store: store, group: group, options: options, logger: logger)
        }
    }
}
