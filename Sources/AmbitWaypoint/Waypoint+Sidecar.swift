public import AmbitModel
public import AmbitRelay
public import NIOCore

/// What a sidecar needs from the capture layer, which this library does not link: the process
/// (`ambit-sidecar`) provides it from AmbitCapture.
public struct SidecarCapture: Sendable {
    /// The pod whose sidecar this is.
    public var pod: ObjectKey
    /// Installs the pod's capture rules in the current (the pod's) network namespace.
    public var install: @Sendable () throws -> Void
    /// Removes them again (on exit).
    public var remove: @Sendable () -> Void
    /// A listening socket for the pod's captured outbound connections (127.0.0.1:15001, marked).
    public var outboundListener: @Sendable () throws -> Int32
    /// The original destination of a connection accepted on that listener (`SO_ORIGINAL_DST`).
    public var originalDestination: @Sendable (any Channel) -> EventLoopFuture<IPEndpoint>
    /// `SO_MARK` of the sidecar's own connections, which the capture lets pass.
    public var mark: UInt32

    public init(
        pod: ObjectKey,
        install: @escaping @Sendable () throws -> Void,
        remove: @escaping @Sendable () -> Void,
        outboundListener: @escaping @Sendable () throws -> Int32,
        originalDestination: @escaping @Sendable (any Channel) -> EventLoopFuture<IPEndpoint>,
        mark: UInt32
    ) {
        self.pod = pod
        self.install = install
        self.remove = remove
        self.outboundListener = outboundListener
        self.originalDestination = originalDestination
        self.mark = mark
    }
}

extension Waypoint {
    /// A connection of the sidecar's pod that the capture redirected (accepted with `autoRead`
    /// off), to `destination` (its SO_ORIGINAL_DST). A mesh destination (a service or an enrolled
    /// pod) is proxied: HTTP per request with routes, other TCP at L4, over HBONE with the pod's
    /// identity. Anything else is relayed as plain TCP to where the application asked.
    public func acceptOutbound(_ channel: any Channel, destination: IPEndpoint, passthrough: any Dialer) {
        let snapshot = state.snapshot
        guard let pod = options.sidecarPod, let own = snapshot.workload(for: pod) else {
            logger.warning("outbound connection refused: the sidecar's own pod is unknown (fail closed)")
            channel.close(promise: nil)
            return
        }
        let target: WaypointTarget
        if let binding = snapshot.service(at: destination) {
            target = .service(binding)
        } else if let workload = snapshot.workload(at: destination.address), workload.enrollment.isEnrolled {
            target = .workload(workload, port: destination.port)
        } else {
            do {
                try RelaySockets.prepare(channel)
            } catch {
                channel.close(promise: nil)
                return
            }
            TCPPassthrough.relay(downstream: channel, to: destination, dialer: passthrough).whenFailure { _ in
                RelaySockets.reset(channel)
            }
            return
        }
        let tunnel = TunnelContext(
            waypoint: self,
            target: target,
            authority: destination,
            peerIdentity: own.identity,
            peerAddress: own.pod.podIPs.first ?? destination.address,
            traceparent: nil,
            direction: .outbound
        )
        do {
            try channel.pipeline.syncOperations.addHandler(ProtocolSniffer(tunnel: tunnel))
        } catch {
            channel.close(promise: nil)
            return
        }
        channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in channel.close(promise: nil) }
    }
}
