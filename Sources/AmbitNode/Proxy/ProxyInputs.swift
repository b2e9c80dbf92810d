import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import Logging

/// What the node agent's proxies share (ztunnel's `ProxyInputs`): the configuration, the pods this
/// agent serves, their certificates, the HBONE client, the live connections and their telemetry,
/// and the kernel side (the namespace executor and the capture backend).
struct ProxyInputs: Sendable {
    let store: ConfigStore
    let registry: PodRegistry
    let certificates: CertificateManager
    /// The current certificate per identity, for the HBONE servers' synchronous lookups.
    let certificateCache: CertificateCache
    let client: HBONEClient
    let connections: ConnectionTracker
    let telemetry: ConnectionTelemetry
    let executor: NetnsExecutor
    let backend: CaptureBackend
    let logger: Logger
    /// How long a dial from a pod's namespace (to an application, or to a destination outside the mesh) may take.
    var dialTimeout: Duration = .seconds(10)

    /// Dials from the namespace of the pod that owns the source address (outbound).
    var sourcePodDialer: NetnsDialer {
        NetnsDialer(registry: registry, executor: executor, placement: .sourcePod, timeout: dialTimeout)
    }

    /// Dials an application inside `pod` from the client's address (inbound), marked as the backend wants.
    func destinationPodDialer(_ pod: CapturedPod) -> NetnsDialer {
        NetnsDialer(
            registry: registry,
            executor: executor,
            placement: .destinationPod(pod),
            timeout: dialTimeout,
            transparentMark: backend.transparentDialMark
        )
    }
}
