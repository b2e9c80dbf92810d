import AmbitCapture
import AmbitModel
import AmbitRelay
import NIOCore
import NIOPosix

/// Dials from inside a captured pod's network namespace, marked 0x539 so the pod's capture
/// rules let it pass. Serves both the HBONE client (source = the pod's own address) and the
/// inbound side (connecting to the application from the client's address, with IP_TRANSPARENT,
/// so the application sees the real client).
struct NetnsDialer: Dialer {
    enum Placement: Sendable {
        /// The namespace of the pod that owns the source address (outbound).
        case sourcePod
        /// The namespace of `pod`, with a transparent bind to the source address (inbound).
        case destinationPod(CapturedPod)
    }

    let registry: PodRegistry
    let executor: NetnsExecutor
    let placement: Placement
    let timeout: Duration
    /// `SO_MARK` of transparent dials (``CaptureBackend/transparentDialMark``); other dials carry 0x539.
    var transparentMark: UInt32 = MeshMarks.agentSocket

    func connect(
        to destination: IPEndpoint,
        from source: IPAddress?,
        on eventLoop: any EventLoop,
        prepare: (@Sendable (any Channel) throws -> Void)?
    ) -> EventLoopFuture<any Channel> {
        let pod: CapturedPod
        let bindSource: IPAddress?
        let transparent: Bool
        switch placement {
        case .sourcePod:
            guard let source, let owner = registry.pod(at: source) else {
                return eventLoop.makeFailedFuture(NodeAgentError.noNetworkNamespace(source.map { "\($0)" } ?? "?"))
            }
            pod = owner
            bindSource = nil
            transparent = false
        case .destinationPod(let owner):
            pod = owner
            // Keep the client's address unless it is the pod itself (hairpin) or unknown.
            if let source, !owner.addresses.contains(source) {
                bindSource = source
                transparent = true
            } else {
                bindSource = nil
                transparent = false
            }
        }
        let executor = self.executor
        let timeout = self.timeout
        let mark = transparent ? transparentMark : MeshMarks.agentSocket
        let descriptor = eventLoop.makePromise(of: Int32.self)
        executor.run(in: pod.netns, completing: descriptor) {
            try CaptureSockets.connect(
                to: destination,
                from: bindSource,
                mark: mark,
                transparent: transparent,
                timeout: timeout
            )
        }
        return descriptor.futureResult.flatMap { fd in
            ClientBootstrap.forRelay(on: eventLoop, prepare: prepare).withConnectedSocket(fd)
        }
    }
}
