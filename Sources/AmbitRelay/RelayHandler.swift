import Glibc
public import NIOCore
public import NIOPosix

/// One end of a byte relay between two channels on the same event loop (a downstream TCP
/// socket and an HTTP/2 stream, or a stream and an upstream socket).
///
/// A socket gets its relay handler as soon as it exists (in its channel initializer), before
/// the other end is known: NIO drains a socket on end-of-input even when `autoRead` is off, so
/// bytes and a FIN from a quick client must have a place to wait. Until ``join(requestSide:responseSide:stats:)``
/// the handler holds them (bounded by the socket's receive buffer, since nothing else is read).
///
/// Invariants once joined:
/// - **Backpressure:** a side only asks its channel to read while the partner's channel is
///   writable, so at most one read batch per direction is held; the rest waits in the kernel's
///   socket buffers or behind HTTP/2 flow control, never in an unbounded queue.
/// - **Half-close:** end of input on one side (`ChannelEvent.inputClosed`, which an HTTP/2
///   stream raises on END_STREAM) becomes `close(mode: .output)` on the other side (which an
///   HTTP/2 stream turns into END_STREAM). A channel is closed once it has both received and
///   sent its end of stream.
/// - **Reset:** an error on one side (a TCP reset, an RST_STREAM), or a side that closes without
///   an end of stream (an HTTP/2 stream whose connection died), resets the other: sockets close
///   abortively (TCP RST via SO_LINGER 0); streams close before END_STREAM, which sends RST_STREAM.
///   A relay never turns a loss into a clean end of stream.
/// - **Partner gone:** once one channel has closed completely, the other never waits for it
///   to become writable again: it reads on, and data that can no longer be delivered resets it,
///   as a TCP stack answers data for a closed socket. (Waiting would leave a sender that
///   blocked on backpressure stuck forever, holding its buffers and flow-control window.)
/// - Both handlers are used on one event loop; they are not Sendable.
package final class RelayHandler: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    private var stats: RelayStats?
    /// Whether this side's reads are the request direction (client to server).
    private var isRequestSide = false
    private var pendingRead = false
    private var inputClosed = false
    private var outputClosing = false
    private var outputClosed = false
    private var inactive = false
    private var readWhenActive = false
    /// Set when this side ended with an error: the partner is reset, not half-closed.
    private var failed = false
    private var early: [ByteBuffer] = []
    /// TCP sockets (as opposed to HTTP/2 streams) are reset with SO_LINGER 0, and their output
    /// is shut only after everything queued was written (see `partnerHalfClose`).
    private let isSocket: Bool

    package init(isSocket: Bool) {
        self.isSocket = isSocket
    }

    /// Joins two relay handlers (already in their pipelines) and starts the flow: what either
    /// side buffered is passed on, then both channels read.
    package static func join(requestSide: RelayHandler, responseSide: RelayHandler, stats: RelayStats) {
        requestSide.isRequestSide = true
        for (side, partner) in [(requestSide, responseSide), (responseSide, requestSide)] {
            side.partner = partner
            side.stats = stats
            stats.channelJoined()
        }
        for side in [requestSide, responseSide] { side.start() }
    }

    private func start() {
        guard let context else { return }
        if inactive {
            // The channel closed before the relay was ready.
            stats?.channelLeft()
            partner?.partnerClose(abort: !inputClosed)
            return
        }
        for buffer in early {
            stats?.add(buffer.readableBytes, request: isRequestSide)
            _ = partner?.partnerWrite(buffer)
        }
        if !early.isEmpty { partner?.partnerFlush() }
        early = []
        if inputClosed {
            partner?.partnerHalfClose()
        }
        if context.channel.isActive {
            startReading(context)
        } else {
            // Joined before the channel became active (a loopback connect can complete inside
            // the accepted socket's initializer): a read asked for now would be dropped.
            readWhenActive = true
        }
    }

    private func startReading(_ context: ChannelHandlerContext) {
        context.channel.setOption(ChannelOptions.autoRead, value: true).assumeIsolated().whenFailure { _ in
            context.close(promise: nil)
        }
        if !inputClosed { context.read() }
    }

    package func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        if readWhenActive {
            readWhenActive = false
            startReading(context)
        }
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    // MARK: Inbound from our channel.

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let partner else {
            early.append(buffer)
            return
        }
        stats?.add(buffer.readableBytes, request: isRequestSide)
        if !partner.partnerWrite(buffer) {
            // The partner's channel is gone: these bytes cannot be delivered.
            abortSelf()
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            partner?.partnerBecameWritable()
        }
        context.fireChannelWritabilityChanged()
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        inputClosed = true
        guard let partner else { return }  // replayed by start()
        partner.partnerHalfClose()
        closeIfFinished()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        // A clean end needs an end of stream first. The one exception is a socket whose peer's FIN came
        // after our own: NIO then closes it fully without a separate end of input.
        let endedCleanly = inputClosed || (isSocket && outputClosing)
        if partner != nil, !failed, !endedCleanly {
            // Gone without an end of stream (an HTTP/2 stream whose connection died, a socket closed under
            // us): what was still coming is lost, so the partner is reset, never ended cleanly.
            failed = true
            stats?.recordError(RelayError.closedWithoutEndOfStream(isSocket ? "socket" : "stream"))
        }
        // A joined side counts its end even when it reset itself (and so let go of its partner):
        // the summary, and the tracking of the connection, must always complete.
        stats?.channelLeft()
        if let partner {
            if failed {
                partner.partnerClose(abort: true)
            } else if !inputClosed {
                inputClosed = true
                partner.partnerHalfClose()
            }
            partner.partnerWentAway()
        }
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stats?.recordError(error)
        failed = true
        partner?.partnerClose(abort: true)
        context.close(promise: nil)
    }

    // MARK: Outbound to our channel.

    package func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerIsWritable || partner.isGone {
            context.read()
        } else {
            pendingRead = true
        }
    }

    // MARK: Calls from the partner.

    /// Writes the partner's bytes to our channel; `false` when our channel is gone (the partner
    /// then resets itself, as a TCP stack answers data for a closed socket).
    private func partnerWrite(_ buffer: ByteBuffer) -> Bool {
        guard let context, !inactive else { return false }
        context.write(wrapOutboundOut(buffer), promise: nil)
        return true
    }

    /// Our channel closed completely.
    private var isGone: Bool { inactive || context == nil }

    /// The partner's channel closed: stop waiting for it to become writable. A read that waited
    /// goes ahead, so that end of input ends this side cleanly and data resets it.
    private func partnerWentAway() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    private func abortSelf() {
        guard let context, !failed else { return }
        failed = true
        partner = nil
        closeAbortively(context)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private var partnerIsWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerBecameWritable() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    private func partnerHalfClose() {
        guard let context, !outputClosing else { return }
        outputClosing = true
        context.flush()
        // Counted as closed only once the end of stream is written: closing the channel before
        // would drop data still queued (and reset an HTTP/2 stream).
        let closed = context.eventLoop.makePromise(of: Void.self)
        closed.futureResult.assumeIsolated().whenComplete { [self] _ in
            outputClosed = true
            closeIfFinished()
        }
        guard isSocket else {
            context.close(mode: .output, promise: closed)
            return
        }
        // NIO turns a socket's output shutdown into a full close (dropping queued writes) when
        // its input is already shut; an empty write completes once everything before it is out.
        let drained = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: drained)
        drained.futureResult.assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: closed)
        }
    }

    private func partnerClose(abort: Bool) {
        guard let context else { return }
        if abort {
            closeAbortively(context)
        } else {
            context.close(promise: nil)
        }
    }

    /// A reset on the other side becomes a TCP RST here (SO_LINGER 0), or RST_STREAM on a stream.
    private func closeAbortively(_ context: ChannelHandlerContext) {
        if isSocket, let socket = context.channel as? any SocketOptionProvider {
            socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }

    private func closeIfFinished() {
        guard inputClosed && outputClosed, let context else { return }
        guard !isSocket else {
            context.close(promise: nil)
            return
        }
        // An HTTP/2 stream that has sent and received END_STREAM is closed on the wire, but NIO raises the end
        // of input before it marks the stream closed: closing it now would send a needless RST_STREAM (a frame
        // and a wake-up for the peer on every tunnel). On the next tick NIO has closed it (and this does
        // nothing); a stream still open then is reset as before.
        context.eventLoop.assumeIsolated().execute {
            context.close(promise: nil)
        }
    }
}

/// Why a relay ended abnormally without its channel reporting an error.
enum RelayError: Error, CustomStringConvertible {
    case closedWithoutEndOfStream(String)

    var description: String {
        switch self {
        case .closedWithoutEndOfStream(let what):
            return "the \(what) closed without an end of stream; the peer was reset"
        }
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// The relay handler of a socket, added when the socket was created (see ``RelaySockets``);
    /// if the creator did not add one, it is added now.
    package func relayHandler() throws -> RelayHandler {
        if let existing = try? handler(type: RelayHandler.self) { return existing }
        let handler = RelayHandler(isSocket: true)
        try addHandler(handler)
        return handler
    }
}

/// Preparing sockets that will be relayed: call from the channel initializer, before the
/// socket can read anything.
public enum RelaySockets {
    public static func prepare(_ channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHandler(RelayHandler(isSocket: true))
    }

    /// A server bootstrap whose accepted sockets are ready to relay (autoRead off, half-closure
    /// allowed, relay handler in place) before `accept` sees them: the node agent's capture
    /// listeners, the HBONE forwarder and the plain relay share it.
    public static func acceptingBootstrap(
        group: any EventLoopGroup,
        accept: @escaping @Sendable (any Channel) -> Void
    ) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: SocketTuning.recvAllocator)
            .childChannelInitializer { channel in
                do {
                    try prepare(channel)
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
                accept(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
    }

    /// Closes a socket with a TCP reset (SO_LINGER 0): how a refused or revoked connection ends.
    public static func reset(_ channel: any Channel) {
        guard let socket = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }
}
