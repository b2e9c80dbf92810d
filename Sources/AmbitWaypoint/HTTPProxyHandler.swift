import AmbitHBONE
import AmbitPolicy
import AmbitTelemetry
import Logging
import NIOCore
import NIOHTTP1

/// Proxies the HTTP requests of one tunnel (HTTP/1.1: one connection, requests in turn) or of one
/// HTTP/2 stream. It receives a request (bounded), decides it (L7 authorization, then routing and
/// faults, ``RequestPlanner``), and either answers locally or forwards it, carrying out what the
/// request's ``HTTPExchange`` state machine says: tries, retries, timers, the response and how it
/// ends. Request bodies are buffered (bounded) so that retries and mirrors can send them again;
/// responses stream through with backpressure. Every request ends in ``record(_:)``, once.
final class HTTPProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum DownstreamProtocol {
        case http1
        case http2
    }

    /// A request being forwarded, with its state machine and what the machine's actions act on.
    final class InFlight {
        let head: HTTPRequestHead
        let body: ByteBuffer
        let trailers: HTTPHeaders?
        let plan: ForwardPlan
        let started = ContinuousClock.now
        let keepAlive: Bool
        let grpc: Bool
        var machine: HTTPExchange
        /// The current try's upstream, and the pooled connection it is when HTTP/1.1.
        var upstream: (any Channel)?
        var pooled: PooledUpstream?
        var endpoint: ChosenEndpoint?
        var perTryTimer: Scheduled<Void>?
        var requestTimer: Scheduled<Void>?
        var responseBytes = 0
        /// The current try's response head, kept until the machine commits it.
        var responseHead: HTTPResponseHead?
        /// The response's trailers, kept until the machine ends the response.
        var pendingTrailers: HTTPHeaders?
        /// A gRPC "trailers-only" response's status, moved from the head to the trailers.
        var statusTrailers: HTTPHeaders?
        /// Numbers of this connection's tries: the machine's attempt `n` is `attemptBase + n`, so a
        /// late callback of an earlier request's upstream never passes for one of this request.
        let attemptBase: Int

        init(
            head: HTTPRequestHead,
            body: ByteBuffer,
            trailers: HTTPHeaders?,
            plan: ForwardPlan,
            policy: HTTPExchange.Policy,
            keepAlive: Bool,
            attemptBase: Int
        ) {
            self.head = head
            self.body = body
            self.trailers = trailers
            self.plan = plan
            self.keepAlive = keepAlive
            self.grpc = head.headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false
            self.machine = HTTPExchange(policy: policy)
            self.attemptBase = attemptBase
        }
    }

    let tunnel: TunnelContext
    let downstreamProtocol: DownstreamProtocol
    var context: ChannelHandlerContext?

    // The request being received.
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var rejection: LocalResponse?

    /// The request being forwarded.
    var inFlight: InFlight?
    /// Tries made on this connection, over all its requests (see ``InFlight/attemptBase``).
    var attemptsOnConnection = 0
    /// The client ended its side (HTTP/1.1 half-close): close once the response in flight is out.
    var clientDone = false

    init(tunnel: TunnelContext, downstreamProtocol: DownstreamProtocol) {
        self.tunnel = tunnel
        self.downstreamProtocol = downstreamProtocol
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        downstreamGone()
        self.context = nil
    }

    // MARK: Receiving the request.

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let options = tunnel.waypoint.options
        switch unwrapInboundIn(data) {
        case .head(var head):
            body.clear()
            rejection = nil
            do {
                head.uri = try RequestTarget.normalize(head.uri)
            } catch {
                rejection = LocalResponse(status: .badRequest, body: "\(error)\n")
            }
            self.head = head
            let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
            if headerBytes > options.maxRequestHeaderBytes {
                rejection = LocalResponse(
                    status: .init(statusCode: 431),
                    body:
                        "request headers total \(headerBytes) bytes, more than the limit of \(options.maxRequestHeaderBytes)\n"
                )
            }
        case .body(var part):
            guard rejection == nil else { return }
            if body.readableBytes + part.readableBytes > options.maxRequestBodyBytes {
                rejection = LocalResponse(
                    status: .payloadTooLarge,
                    body: "request body larger than \(options.maxRequestBodyBytes) bytes\n"
                )
                body.clear()
                return
            }
            body.writeBuffer(&part)
        case .end(let trailers):
            guard let head else { return }
            self.head = nil
            handle(head: head, body: body, trailers: trailers)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // HTTP/1.1: no more requests will come. Close now if idle, else after the response.
            clientDone = true
            tunnel.waypoint.logger.debug(
                "client ended its side",
                metadata: ["busy": "\(inFlight != nil || head != nil)"]
            )
            if inFlight == nil && head == nil { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure: read the upstream only while the client keeps up.
        if let upstream = inFlight?.upstream {
            upstream.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        downstreamGone()
        context.fireChannelInactive()
    }

    private func downstreamGone() {
        guard let inFlight else { return }
        run(inFlight.machine.downstreamClosed(), for: inFlight)
    }

    // MARK: Deciding.

    private func handle(head: HTTPRequestHead, body: ByteBuffer, trailers: HTTPHeaders?) {
        let waypoint = tunnel.waypoint
        waypoint.count { $0.requests += 1 }
        var head = head
        if head.headers.first(name: "traceparent") == nil {
            head.headers.add(name: "traceparent", value: HBONEHeaders.childTraceparent(of: tunnel.traceparent))
        }
        let keepAlive = downstreamProtocol == .http2 || head.isKeepAlive
        if let rejection {
            respondLocally(rejection, head: head, body: body, keepAlive: false)
            return
        }
        let state = waypoint.state
        var (request, _) = TCPForwarding.labelsAndRequest(tunnel: tunnel, snapshot: state.snapshot)
        var headers: [String: [String]] = [:]
        for header in head.headers { headers[header.name.lowercased(), default: []].append(header.value) }
        let path = String(RequestTarget.split(head.uri).path)
        request.http = HTTPRequestAttributes(
            method: head.method.rawValue,
            path: path,
            host: head.headers.first(name: "host") ?? tunnel.authority.description,
            headers: headers
        )
        // CUSTOM policies first (their external authorizers), then DENY and ALLOW, as in Istio.
        let authorizers =
            tunnel.direction == .outbound
            ? [] : state.authorization.externalAuthorizers(for: request, service: tunnel.target.serviceKey)
        if !authorizers.isEmpty {
            checkExternally(
                authorizers,
                request: request,
                head: head,
                body: body,
                trailers: trailers,
                keepAlive: keepAlive
            )
            return
        }
        decide(request, head: head, body: body, trailers: trailers, keepAlive: keepAlive, state: state)
    }

    /// DENY and ALLOW, then routing; forwards the request or answers it here.
    func decide(
        _ request: AuthorizationRequest,
        head: HTTPRequestHead,
        body: ByteBuffer,
        trailers: HTTPHeaders?,
        keepAlive: Bool,
        state: WaypointState
    ) {
        let waypoint = tunnel.waypoint
        let path = request.http?.path ?? head.uri
        // Authorized where the traffic arrives: a sidecar's outbound side leaves it to the destination.
        let decision =
            tunnel.direction == .outbound
            ? AuthorizationDecision.allowedWithoutPolicy
            : state.authorization.evaluate(request, service: tunnel.target.serviceKey)
        let described: Logger.Metadata = [
            "method": "\(head.method.rawValue)", "path": "\(path)", "authority": "\(tunnel.authority)",
            "src.identity": "\(tunnel.peerIdentity)",
        ]
        decision.logObservations(to: waypoint.logger, described)
        if !decision.isAllowed {
            waypoint.count { $0.deniedRequests += 1 }
            waypoint.logger.info("request denied", metadata: described.merging(["reason": "\(decision.reason)"]) { $1 })
            respondLocally(
                LocalResponse(status: .forbidden, body: "RBAC: access denied", flag: .denied),
                head: head,
                body: body,
                keepAlive: keepAlive
            )
            return
        }
        let plan: RequestPlan
        switch tunnel.target {
        case .service(let binding):
            plan = RequestPlanner(snapshot: state.snapshot, routes: state.routes).plan(head, to: binding)
        case .workload(let workload, let port):
            plan = .forward(ForwardPlan(unrouted: head, to: .workload(workload, port: port)))
        }
        switch plan {
        case .respond(let local):
            respondLocally(local, head: head, body: body, keepAlive: keepAlive)
        case .forward(let forward):
            let inFlight = InFlight(
                head: forward.head,
                body: body,
                trailers: trailers,
                plan: forward,
                policy: forward.exchangePolicy(),
                keepAlive: keepAlive,
                attemptBase: attemptsOnConnection
            )
            self.inFlight = inFlight
            RequestMirror.send(
                forward,
                head: forward.head,
                body: body,
                trailers: trailers,
                grpc: inFlight.grpc,
                tunnel: tunnel,
                on: context?.eventLoop
            )
            run(inFlight.machine.start(), for: inFlight)
        }
    }

    // MARK: Carrying out the exchange's actions.

    /// Performs `actions` for `inFlight` (ignored once another request has taken its place).
    func run(_ actions: [HTTPExchange.Action], for inFlight: InFlight) {
        guard let context else { return }
        let loop = context.eventLoop.assumeIsolated()
        for action in actions {
            switch action {
            case .scheduleRequestTimeout(let timeout):
                inFlight.requestTimer = loop.scheduleTask(in: .init(timeout)) { [self] in
                    run(inFlight.machine.requestTimedOut(), for: inFlight)
                }
            case .delay(let delay):
                loop.scheduleTask(in: .init(delay)) { [self] in run(inFlight.machine.delayElapsed(), for: inFlight) }
            case .backoff(let backoff):
                loop.scheduleTask(in: .init(backoff)) { [self] in run(inFlight.machine.backoffElapsed(), for: inFlight)
                }
            case .send(let attempt, let avoiding, let timeout):
                send(inFlight, attempt: attempt, avoiding: avoiding, timeout: timeout)
            case .abandonUpstream:
                closeUpstream(inFlight)
            case .cancelPerTryTimeout:
                inFlight.perTryTimer?.cancel()
            case .commit:
                writeResponseHead(inFlight)
            case .finish(let completion):
                finish(inFlight, completion)
            }
        }
    }

    private func closeUpstream(_ inFlight: InFlight) {
        let upstream = inFlight.upstream
        inFlight.upstream = nil
        inFlight.pooled = nil
        upstream?.close(promise: nil)
    }

    /// The one way an exchange ends: timers off, the upstream released or closed, the request
    /// recorded, the client answered as the completion says.
    private func finish(_ inFlight: InFlight, _ completion: HTTPExchange.Completion) {
        inFlight.perTryTimer?.cancel()
        inFlight.requestTimer?.cancel()
        if completion.upstream == .release, let pooled = inFlight.pooled, let context {
            inFlight.pooled = nil
            inFlight.upstream = nil
            tunnel.waypoint.upstreamPool(on: context.eventLoop).release(pooled)
        } else {
            // A stream closes once its response is in; the endpoint's END_STREAM may still be on its way.
            closeUpstream(inFlight)
        }
        if self.inFlight === inFlight { self.inFlight = nil }
        let responseBytes: Int
        if case .respond(let local) = completion.downstream {
            responseBytes = local.body.utf8.count
        } else {
            responseBytes = inFlight.responseBytes
        }
        record(
            RequestOutcome(
                head: inFlight.head,
                status: completion.status,
                flag: completion.flag,
                started: inFlight.started,
                requestBytes: inFlight.body.readableBytes,
                responseBytes: responseBytes,
                endpoint: inFlight.endpoint,
                route: inFlight.plan.routeName,
                grpc: inFlight.grpc
            )
        )
        guard let context else { return }
        switch completion.downstream {
        case .endResponse:
            let keepAlive = inFlight.keepAlive && !clientDone
            var trailers = inFlight.pendingTrailers
            if let status = inFlight.statusTrailers {
                trailers = (trailers ?? HTTPHeaders()).isEmpty ? status : trailers
            }
            context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                if !keepAlive { Self.endConnection(context) }
            }
        case .respond(let local):
            writeLocal(local, head: inFlight.head, keepAlive: inFlight.keepAlive)
        case .reset:
            context.close(promise: nil)
        case .none:
            break
        }
    }

    // MARK: Local responses.

    func respondLocally(_ response: LocalResponse, head: HTTPRequestHead, body: ByteBuffer, keepAlive: Bool) {
        record(
            RequestOutcome(
                head: head,
                status: Int(response.status.code),
                flag: response.flag,
                started: .now,
                requestBytes: body.readableBytes,
                responseBytes: response.body.utf8.count,
                endpoint: nil,
                route: "-",
                grpc: false
            )
        )
        writeLocal(response, head: head, keepAlive: keepAlive)
    }

    private func writeLocal(_ response: LocalResponse, head: HTTPRequestHead, keepAlive: Bool) {
        guard let context else { return }
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(response.body.utf8.count))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))),
            promise: nil
        )
        if !response.body.isEmpty {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))),
                promise: nil
            )
        }
        let close = !keepAlive || clientDone
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if close { Self.endConnection(context) }
        }
    }

    /// Ends an HTTP/1.1 connection after a `connection: close` response: END_STREAM rather than a
    /// reset, so the client reads the whole response even while it is still sending (a rejected
    /// large request); the tunnel closes when the client ends its side.
    static func endConnection(_ context: ChannelHandlerContext) {
        if context.channel.isActive {
            context.close(mode: .output, promise: nil)
        }
    }
}
