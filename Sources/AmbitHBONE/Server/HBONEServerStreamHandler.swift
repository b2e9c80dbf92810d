import AmbitModel
import AmbitRelay
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Serves one HBONE stream: validates the CONNECT, asks the ``HBONEInboundHandler`` to
/// authorize and connect, answers `200` only once the upstream is connected (or 400/401/503),
/// and then relays bytes between the stream and the upstream.
///
/// The stream channel runs with `autoRead` off until the relay is in place. DATA that arrives
/// early is held here; that is bounded by the stream's flow-control window, since no
/// WINDOW_UPDATE is sent for unread data.
final class HBONEServerStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case awaitingHeaders
        case connecting(early: [HTTP2Frame.FramePayload])
        case relaying
        case finished
    }

    private var state = State.awaitingHeaders
    /// Bytes each way when the inbound handler terminates the tunnel itself (a relay counts its own).
    private var terminated: (finished: EventLoopPromise<RelaySummary>?, received: Int, sent: Int)?
    private let peerIdentity: () throws -> SpiffeID
    private let inbound: any HBONEInboundHandler
    private let onResult: (Int, String) -> Void

    /// `onResult` receives the status sent and the reason, for logs and metrics (the server also learns
    /// from it that the stream was answered: see ``HBONEServerLimits/maxPrematureResets``).
    init(
        peerIdentity: @escaping () throws -> SpiffeID,
        inbound: any HBONEInboundHandler,
        onResult: @escaping (Int, String) -> Void = { _, _ in }
    ) {
        self.peerIdentity = peerIdentity
        self.inbound = inbound
        self.onResult = onResult
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch state {
        case .awaitingHeaders:
            guard case .headers(let headers) = payload else {
                respond(context: context, status: 400, reason: "the first frame of an HBONE stream must be HEADERS")
                return
            }
            handleRequest(context: context, headers: headers.headers, endStream: headers.endStream)
        case .connecting(var early):
            early.append(payload)
            state = .connecting(early: early)
        case .relaying:
            deliver(payload, context: context)
        case .finished:
            break
        }
    }

    private func handleRequest(context: ChannelHandlerContext, headers: HPACKHeaders, endStream: Bool) {
        switch ConnectRequestValidator.validate(headers) {
        case .reject(let status, let reason):
            respond(context: context, status: status, reason: reason)
        case .valid(let authority, let extra):
            let identity: SpiffeID
            do {
                identity = try peerIdentity()
            } catch {
                respond(context: context, status: 401, reason: "no verified peer identity: \(error)")
                return
            }
            let connection = context.channel.parent
            let request = HBONEInboundRequest(
                peerIdentity: identity,
                peerAddress: connection?.remoteAddress,
                localAddress: connection?.localAddress,
                authority: authority,
                headers: extra
            )
            state = .connecting(
                early: endStream ? [.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))] : []
            )
            // The upstream is opened once the frames of this read are processed: a stream reset in the same read
            // (HTTP/2 rapid reset: HEADERS and RST_STREAM together) costs no connection to the destination.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.execute {
                let (handler, context) = loopBound.value
                guard case .connecting = handler.state, context.channel.isActive else { return }
                handler.open(request, context: context)
            }
        }
    }

    private func open(_ request: HBONEInboundRequest, context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        inbound.open(request, on: context.eventLoop).hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = loopBound.value
            switch result {
            case .success(.connected(let upstream, let finished)):
                handler.startRelay(context: context, upstream: upstream, request: request, finished: finished)
            case .success(.terminate(let configure, let finished)):
                handler.startTerminated(
                    context: context,
                    configure: configure,
                    request: request,
                    finished: finished
                )
            case .success(.badRequest(let reason)):
                handler.respond(context: context, status: 400, reason: reason)
            case .success(.denied(let reason)):
                handler.respond(context: context, status: 401, reason: reason)
            case .success(.unavailable(let reason)):
                handler.respond(context: context, status: 503, reason: reason)
            case .failure(let error):
                handler.respond(context: context, status: 503, reason: "upstream: \(error)")
            }
        }
    }

    private func startRelay(
        context: ChannelHandlerContext,
        upstream: any Channel,
        request: HBONEInboundRequest,
        finished: EventLoopPromise<RelaySummary>?
    ) {
        guard case .connecting(let early) = state, context.channel.isActive else {
            // The client went away while we connected.
            upstream.close(promise: nil)
            finished?.fail(HBONEError(.streamReset, "CONNECT \(request.authority): the client left before the relay"))
            return
        }
        precondition(upstream.eventLoop === context.eventLoop, "the upstream must be on the stream's event loop")
        let stats = RelayStats { stats in finished?.succeed(stats.summary) }
        let streamSide = RelayHandler(isSocket: false)
        let upstreamSide: RelayHandler
        do {
            upstreamSide = try upstream.pipeline.syncOperations.relayHandler()
            try context.pipeline.syncOperations.addHandler(streamSide, position: .after(self))
        } catch {
            upstream.close(promise: nil)
            finished?.fail(error)
            respond(context: context, status: 503, reason: "cannot set up the relay: \(error)")
            return
        }
        state = .relaying
        onResult(200, "connected to \(request.authority)")
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: "200")
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        // Early DATA goes into the stream's relay handler, which passes it on once joined.
        for payload in early {
            StreamBytesCoding.deliver(payload, to: context)
        }
        RelayHandler.join(requestSide: streamSide, responseSide: upstreamSide, stats: stats)
    }

    private func startTerminated(
        context: ChannelHandlerContext,
        configure: (any Channel) throws -> Void,
        request: HBONEInboundRequest,
        finished: EventLoopPromise<RelaySummary>?
    ) {
        guard case .connecting(let early) = state, context.channel.isActive else {
            finished?.fail(HBONEError(.streamReset, "CONNECT \(request.authority): the client left first"))
            return
        }
        do {
            try configure(context.channel)
        } catch {
            finished?.fail(error)
            respond(context: context, status: 503, reason: "cannot set up the tunnel's handlers: \(error)")
            return
        }
        state = .relaying
        terminated = (finished, 0, 0)
        onResult(200, "terminated for \(request.authority)")
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: "200")
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        for payload in early {
            deliver(payload, context: context)
        }
        // Frames that arrived after the headers wait in the stream until someone reads: turning
        // autoRead on does not itself read, so read once now.
        let channel = context.channel
        channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in channel.close(promise: nil) }
        context.read()
    }

    private func deliver(_ payload: HTTP2Frame.FramePayload, context: ChannelHandlerContext) {
        if terminated != nil, case .data(let data) = payload { terminated!.received += data.data.readableBytes }
        StreamBytesCoding.deliver(payload, to: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHeaders, .connecting:
            state = .finished
        case .relaying, .finished:
            break
        }
        if let terminated {
            self.terminated = nil
            terminated.finished?.succeed(
                RelaySummary(requestBytes: terminated.received, responseBytes: terminated.sent, error: nil)
            )
        }
        context.fireChannelInactive()
    }

    private func respond(context: ChannelHandlerContext, status: Int, reason: String) {
        if case .finished = state { return }
        state = .finished
        onResult(status, reason)
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(status))
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
        // The client may still be sending; resetting after the final response tells it to stop.
        context.close(promise: nil)
    }

    // MARK: Outbound: bytes from the upstream.

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = unwrapOutboundIn(data)
        if terminated != nil { terminated!.sent += buffer.readableBytes }
        StreamBytesCoding.write(buffer, to: context, promise: promise)
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
