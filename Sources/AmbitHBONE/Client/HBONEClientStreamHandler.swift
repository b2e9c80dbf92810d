import AmbitModel
import AmbitRelay
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The client half of one HBONE stream: sends CONNECT with `forwarded`, `baggage` and
/// `traceparent`, waits for the response, and on `200` joins the stream to the downstream
/// socket with a relay (or, without a downstream, stays as the stream's bytes codec and hands
/// the stream channel to whoever asked for it). Any other status (or none before the timeout) fails
/// the tunnel; the downstream socket is its owner's to end.
final class HBONEClientStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case idle
        case awaitingResponse(Scheduled<Void>?)
        case relaying
        case failed
    }

    private var state = State.idle
    private let request: HBONETunnelRequest
    /// The socket to relay, and the promise its relay completes when it ends.
    private let downstream: (channel: any Channel, finished: EventLoopPromise<RelaySummary>?)?
    private let responseTimeout: TimeAmount
    private let established: EventLoopPromise<any Channel>

    init(
        request: HBONETunnelRequest,
        downstream: (channel: any Channel, finished: EventLoopPromise<RelaySummary>?)?,
        responseTimeout: TimeAmount,
        established: EventLoopPromise<any Channel>
    ) {
        self.request = request
        self.downstream = downstream
        self.responseTimeout = responseTimeout
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private func sendRequest(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "CONNECT")
        headers.add(name: ":authority", value: request.authority.description)
        if let forwarded = request.headers.forwardedValue { headers.add(name: "forwarded", value: forwarded) }
        if let baggage = request.headers.baggage { headers.add(name: "baggage", value: baggage) }
        headers.add(name: "traceparent", value: request.headers.traceparent ?? HBONEHeaders.newTraceparent())
        let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: responseTimeout) { [self] in
            fail(
                context: context,
                HBONEError(.responseTimeout, "no response to CONNECT \(request.authority) within \(responseTimeout)")
            )
        }
        state = .awaitingResponse(timeout)
        let sent = context.eventLoop.makePromise(of: Void.self)
        sent.futureResult.assumeIsolated().whenFailure { [self] error in
            guard case .awaitingResponse = state else { return }
            fail(context: context, HBONEError(.streamRefused, "CONNECT \(request.authority) not sent: \(error)"))
        }
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: sent)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch state {
        case .awaitingResponse(let timeout):
            guard case .headers(let headers) = payload else {
                if case .rstStream(let code) = payload {
                    // A server that is going away refuses streams past its GOAWAY (REFUSED_STREAM).
                    fail(
                        context: context,
                        HBONEError(Self.resetCode(code, byPeer: true), "CONNECT \(request.authority): reset \(code)")
                    )
                    return
                }
                fail(
                    context: context,
                    HBONEError(.status(0), "CONNECT \(request.authority): \(payload) before the response headers")
                )
                return
            }
            timeout?.cancel()
            let status = headers.headers.first(name: ":status").flatMap(Int.init) ?? 0
            guard status == 200 else {
                fail(
                    context: context,
                    HBONEError(.status(status), "CONNECT \(request.authority) was answered \(status)")
                )
                return
            }
            startRelay(context: context, endStream: headers.endStream)
        case .relaying:
            StreamBytesCoding.deliver(payload, to: context)
        case .idle, .failed:
            break
        }
    }

    private func startRelay(context: ChannelHandlerContext, endStream: Bool) {
        guard let downstream else {
            state = .relaying
            established.succeed(context.channel)
            if endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
            return
        }
        let finished = downstream.finished
        let stats = RelayStats { stats in finished?.succeed(stats.summary) }
        let streamSide = RelayHandler(isSocket: false)
        let downstreamSide: RelayHandler
        do {
            downstreamSide = try downstream.channel.pipeline.syncOperations.relayHandler()
            try context.pipeline.syncOperations.addHandler(streamSide, position: .after(self))
        } catch {
            fail(context: context, HBONEError(.connectionClosed, "cannot set up the relay: \(error)"))
            return
        }
        state = .relaying
        established.succeed(context.channel)
        if endStream { context.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        RelayHandler.join(requestSide: downstreamSide, responseSide: streamSide, stats: stats)
    }

    private func fail(context: ChannelHandlerContext, _ error: HBONEError) {
        if case .failed = state { return }
        if case .awaitingResponse(let timeout) = state { timeout?.cancel() }
        state = .failed
        established.fail(error)
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .awaitingResponse = state {
            let code = (error as? NIOHTTP2Errors.StreamClosed)?.errorCode
            fail(
                context: context,
                HBONEError(Self.resetCode(code, byPeer: false), "CONNECT \(request.authority): \(error)")
            )
        } else {
            context.fireErrorCaught(error)
        }
    }

    /// A reset before the response that leaves the CONNECT unprocessed, so that it may go again on another
    /// connection (nothing of the downstream has been sent): the peer's REFUSED_STREAM, or a stream NIO closed
    /// with CANCEL itself (`byPeer` false: the stream a GOAWAY left out; a peer's RST_STREAM arrives as a frame
    /// first). A peer's CANCEL may come after it dialed the destination: not sent again.
    static func resetCode(_ code: HTTP2ErrorCode?, byPeer: Bool) -> HBONEErrorCode {
        if code == .refusedStream || (!byPeer && code == .cancel) { return .streamRefused }
        return .streamReset
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .awaitingResponse = state {
            fail(
                context: context,
                HBONEError(.streamReset, "CONNECT \(request.authority): the stream closed before a response")
            )
        }
        context.fireChannelInactive()
    }

    // MARK: Outbound: bytes from the downstream socket.

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        StreamBytesCoding.write(unwrapOutboundIn(data), to: context, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .output else {
            context.close(mode: mode, promise: promise)
            return
        }
        context.writeAndFlush(
            wrapOutboundOut(StreamBytesCoding.endStream(allocator: context.channel.allocator)),
            promise: promise
        )
    }
}
