import AmbitCapture
import AmbitModel
import AmbitRelay
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

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
        let mark = transparent ? transparentMark : MeshMarks.agentSocket
        let timeout = self.timeout
        let deadline = ContinuousClock.now.advanced(by: timeout)
        let descriptor = eventLoop.makePromise(of: Int32.self)
        // The socket must be born in the pod's namespace; everything after acts there from any thread. So
        // the event loop creates it itself (setns in and out) and starts the connect, which an application
        // in the same pod completes at once; only a connect still in progress waits on a worker thread.
        var socket: Int32 = -1
        do {
            socket = try executor.runOnCallingThread(in: pod.netns) {
                try CaptureSockets.socket(for: destination.address)
            }
            let fd = socket
            if try CaptureSockets.startConnect(
                fd,
                to: destination,
                from: bindSource,
                mark: mark,
                transparent: transparent
            ) {
                descriptor.succeed(fd)
            } else {
                // The worker owns nothing: whatever ends the wait without a connection closes the socket here.
                let connected = eventLoop.makePromise(of: Int32.self)
                connected.futureResult.whenFailure { _ in close(fd) }
                connected.futureResult.cascade(to: descriptor)
                executor.run(in: pod.netns, completing: connected) {
                    try CaptureSockets.finishConnect(fd, destination, deadline: deadline, timeout: timeout)
                    return fd
                }
            }
        } catch {
            if socket >= 0 { close(socket) }
            descriptor.fail(error)
        }
        return descriptor.futureResult.flatMap { fd in
            ClientBootstrap.forRelay(on: eventLoop, prepare: prepare).withConnectedSocket(fd)
        }
    }
}
