import AmbitHBONE
import AmbitModel
import AmbitPolicy
import AmbitTelemetry
import Logging
import NIOCore
import NIOHTTP1

/// Proxies the HTTP requests of one tunnel (HTTP/1.1: one connection, requests in turn) or of
/// one HTTP/2 stream: L7 authorization, routing, faults, then the request goes to an endpoint
/// over a new HBONE tunnel with retries and timeouts, and the response comes back with the
/// route's header changes. Request bodies are buffered (bounded) so retries and mirrors can
/// resend them; responses stream through with backpressure.
final class HTTPProxyHandler: ChannelInboundHandler, UpstreamResponseDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum DownstreamProtocol {
        case http1
        case http2
    }

    private let tunnel: TunnelContext
    private let downstreamProtocol: DownstreamProtocol
    private var context: ChannelHandlerContext?

    // The request being received.
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var rejection: LocalResponse?

    // The request being forwarded.
    private var exchange: Exchange?
    /// Numbers every upstream attempt of this connection, across its requests: a late callback from an
    /// earlier request's upstream can never pass for the current attempt of a later one.
    private var attemptSerial = 0
    /// The client ended its side (HTTP/1.1 half-close): close once the response in flight is out.
    private var clientDone = false

    private final class Exchange {
        let head: HTTPRequestHead
        let body: ByteBuffer
        let trailers: HTTPHeaders?
        let plan: ForwardPlan
        let started: ContinuousClock.Instant
        let keepAlive: Bool
        let grpc: Bool
        /// How many attempts were made (retries are counted against the policy with it).
        var attempt = 0
        /// The connection-wide number (``HTTPProxyHandler/attemptSerial``) of the current attempt; the
        /// upstream callbacks carry it.
        var currentAttempt = 0
        var upstream: (any Channel)?
        /// The upstream connection when it is a pooled HTTP/1.1 one (kept for the next request).
        var pooled: PooledUpstream?
        /// Sends again after a pooled connection turned out closed by the endpoint while idle;
        /// they do not count as retries.
        var staleConnectionRetries = 0
        /// The current attempt went out on a connection that had carried requests before.
        var reusedConnection = false
        var endpoint: ChosenEndpoint?
        /// Endpoints earlier attempts went to: a retry prefers another one.
        var triedEndpoints: Set<IPEndpoint> = []
        var committed = false
        var finished = false
        var status = 0
        var flag = "-"
        var responseBytes = 0
        /// A gRPC "trailers-only" response's status, moved from the head to the trailers.
        var statusTrailers: HTTPHeaders?
        var perTryTimer: Scheduled<Void>?
        var requestTimer: Scheduled<Void>?

        init(head: HTTPRequestHead, body: ByteBuffer, trailers: HTTPHeaders?, plan: ForwardPlan, keepAlive: Bool) {
            self.head = head
            self.body = body
            self.trailers = trailers
            self.plan = plan
            self.started = .now
            self.keepAlive = keepAlive
            self.grpc = head.headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false
        }

        var attemptsAllowed: Int { 1 + (plan.retry?.attempts ?? 0) + staleConnectionRetries }

        /// An attempt given up on (a per-try timeout, a status that is retried): what its upstream still
        /// reports, its own closing included, must not count as a failure of the request.
        var abandonedAttempt = 0

        /// Whether a callback of attempt number `attempt` still speaks for this exchange.
        func isCurrent(_ attempt: Int) -> Bool { attempt == currentAttempt && attempt != abandonedAttempt }
    }

    init(tunnel: TunnelContext, downstreamProtocol: DownstreamProtocol) {
        self.tunnel = tunnel
        self.downstreamProtocol = downstreamProtocol
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandonUpstream()
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
                metadata: ["busy": "\(exchange != nil || head != nil)"]
            )
            if exchange == nil && head == nil { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Backpressure: read the upstream only while the client keeps up.
        if let upstream = exchange?.upstream {
            upstream.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonUpstream()
        context.fireChannelInactive()
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
            respondLocally(rejection, head: head, keepAlive: false, started: .now)
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
        // Authorized where the traffic arrives: a sidecar's outbound side leaves it to the destination.
        let decision =
            tunnel.direction == .outbound
            ? AuthorizationDecision.allowedWithoutPolicy
            : state.authorization.evaluate(request, service: tunnel.target.serviceKey)
        decision.logObservations(
            to: waypoint.logger,
            [
                "method": "\(head.method.rawValue)", "path": "\(path)", "authority": "\(tunnel.authority)",
                "src.identity": "\(tunnel.peerIdentity)",
            ]
        )
        if !decision.isAllowed {
            waypoint.count { $0.deniedRequests += 1 }
            waypoint.logger.info(
                "request denied",
                metadata: [
                    "method": "\(head.method.rawValue)", "path": "\(path)", "authority": "\(tunnel.authority)",
                    "src.identity": "\(tunnel.peerIdentity)", "reason": "\(decision.reason)",
                ]
            )
            respondLocally(
                LocalResponse(status: .forbidden, body: "RBAC: access denied", flag: "DENY"),
                head: head,
                keepAlive: keepAlive,
                started: .now
            )
            return
        }
        let plan: RequestPlan
        switch tunnel.target {
        case .service(let binding):
            plan = RequestPlanner(snapshot: state.snapshot, routes: state.routes).plan(head, to: binding)
        case .workload(let workload, let port):
            plan = .forward(
                ForwardPlan(
                    backend: .workload(workload, port: port),
                    head: head,
                    responseHeaders: nil,
                    mirrors: [],
                    timeouts: nil,
                    retry: nil,
                    fault: nil,
                    routeName: "-"
                )
            )
        }
        switch plan {
        case .respond(let local):
            respondLocally(local, head: head, keepAlive: keepAlive, started: .now)
        case .forward(let forward):
            let exchange = Exchange(
                head: forward.head,
                body: body,
                trailers: trailers,
                plan: forward,
                keepAlive: keepAlive
            )
            self.exchange = exchange
            start(exchange)
        }
    }

    private func start(_ exchange: Exchange) {
        guard let context else { return }
        if let timeout = exchange.plan.timeouts?.request {
            exchange.requestTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .init(timeout)) { [self] in
                timedOut(exchange)
            }
        }
        sendMirrors(exchange)
        if let fault = exchange.plan.fault {
            if let status = fault.abortStatus, Self.chance(fault.abortPercent) {
                exchange.flag = "FI"
                finishLocally(
                    exchange,
                    LocalResponse(status: .init(statusCode: status), body: "fault filter abort", flag: "FI")
                )
                return
            }
            if let delay = fault.delay, Self.chance(fault.delayPercent) {
                exchange.flag = "DI"
                context.eventLoop.assumeIsolated().scheduleTask(in: .init(delay)) { [self] in
                    guard !exchange.finished else { return }
                    tryUpstream(exchange)
                }
                return
            }
        }
        tryUpstream(exchange)
    }

    // MARK: Upstream attempts.

    private func tryUpstream(_ exchange: Exchange) {
        guard let context, !exchange.finished else { return }
        exchange.attempt += 1
        attemptSerial += 1
        exchange.currentAttempt = attemptSerial
        let attempt = attemptSerial
        let waypoint = tunnel.waypoint
        let endpoint: ChosenEndpoint
        do {
            endpoint = try waypoint.chooseEndpoint(
                exchange.plan.backend,
                snapshot: waypoint.state.snapshot,
                avoiding: exchange.triedEndpoints
            )
        } catch {
            finishLocally(exchange, LocalResponse(status: .serviceUnavailable, body: "\(error)\n", flag: "UH"))
            return
        }
        exchange.endpoint = endpoint
        exchange.triedEndpoints.insert(endpoint.address)
        if let perTry = exchange.plan.retry?.perTryTimeout ?? exchange.plan.timeouts?.backendRequest {
            exchange.perTryTimer?.cancel()
            exchange.perTryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .init(perTry)) { [self] in
                guard exchange.isCurrent(attempt), !exchange.committed else { return }
                abandonUpstream(exchange)
                retryOrFail(
                    exchange,
                    reason: "per-try timeout",
                    condition: "reset",
                    status: .gatewayTimeout,
                    flag: "UT"
                )
            }
        }
        let traceparent = exchange.head.headers.first(name: "traceparent")
        let http2 = UpstreamCodec.speaksHTTP2(exchange.plan.backend, grpc: exchange.grpc)
        if !http2 {
            sendPooled(exchange, to: endpoint, attempt: attempt, traceparent: traceparent)
            return
        }
        waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: traceparent, on: context.eventLoop)
            .assumeIsolated().whenComplete { [self] result in
                guard exchange.isCurrent(attempt), !exchange.finished else {
                    if case .success(let stream) = result { stream.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    retryOrFail(
                        exchange,
                        reason: "upstream connect error: \(error)",
                        condition: "connect-failure",
                        status: .serviceUnavailable,
                        flag: "UF"
                    )
                case .success(let stream):
                    exchange.upstream = stream
                    do {
                        try UpstreamCodec.send(
                            on: stream,
                            http2: UpstreamCodec.speaksHTTP2(exchange.plan.backend, grpc: exchange.grpc),
                            head: exchange.head,
                            body: exchange.body,
                            trailers: exchange.trailers,
                            handler: UpstreamResponseHandler(delegate: self, attempt: attempt)
                        )
                    } catch {
                        stream.close(promise: nil)
                        retryOrFail(
                            exchange,
                            reason: "cannot send upstream: \(error)",
                            condition: "reset",
                            status: .serviceUnavailable,
                            flag: "UR"
                        )
                    }
                }
            }
    }

    /// HTTP/1.1 upstream: an idle pooled connection to the endpoint if there is one, else a new one
    /// that joins the pool once its response has ended.
    private func sendPooled(_ exchange: Exchange, to endpoint: ChosenEndpoint, attempt: Int, traceparent: String?) {
        guard let context else { return }
        let waypoint = tunnel.waypoint
        let pool = waypoint.upstreamPool(on: context.eventLoop)
        let key = UpstreamPool.Key(address: endpoint.address, local: tunnel.toLocalApplication)
        if let pooled = pool.take(key) {
            use(pooled, for: exchange, attempt: attempt)
            return
        }
        waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: traceparent, on: context.eventLoop)
            .assumeIsolated().whenComplete { [self] result in
                guard exchange.isCurrent(attempt), !exchange.finished else {
                    if case .success(let stream) = result { stream.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    retryOrFail(
                        exchange,
                        reason: "upstream connect error: \(error)",
                        condition: "connect-failure",
                        status: .serviceUnavailable,
                        flag: "UF"
                    )
                case .success(let stream):
                    do {
                        use(try PooledUpstream.configure(stream, key: key, pool: pool), for: exchange, attempt: attempt)
                    } catch {
                        stream.close(promise: nil)
                        retryOrFail(
                            exchange,
                            reason: "cannot send upstream: \(error)",
                            condition: "reset",
                            status: .serviceUnavailable,
                            flag: "UR"
                        )
                    }
                }
            }
    }

    private func use(_ pooled: PooledUpstream, for exchange: Exchange, attempt: Int) {
        exchange.upstream = pooled.channel
        exchange.pooled = pooled
        if pooled.used { exchange.reusedConnection = true }
        var head = exchange.head
        UpstreamCodec.stripHopByHop(&head.headers)
        head.version = .http1_1
        if exchange.trailers == nil || exchange.trailers!.isEmpty {
            head.headers.replaceOrAdd(name: "content-length", value: String(exchange.body.readableBytes))
        } else {
            head.headers.add(name: "transfer-encoding", value: "chunked")
        }
        pooled.send(head: head, body: exchange.body, trailers: exchange.trailers, delegate: self, attempt: attempt)
    }

    /// Gives up on the current attempt's upstream and closes it; its later callbacks are ignored.
    private func abandonUpstream(_ exchange: Exchange) {
        exchange.abandonedAttempt = exchange.currentAttempt
        let upstream = exchange.upstream
        exchange.upstream = nil
        exchange.pooled = nil
        upstream?.close(promise: nil)
    }

    private func retryAfterBackoff(_ exchange: Exchange) {
        guard let backoff = exchange.plan.retry?.backoff, let context else {
            tryUpstream(exchange)
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: .init(backoff)) { [self] in tryUpstream(exchange) }
    }

    private func retryOrFail(
        _ exchange: Exchange,
        reason: String,
        condition: String,
        status: HTTPResponseStatus,
        flag: String
    ) {
        if let retry = exchange.plan.retry, retry.retries(failure: condition),
            exchange.attempt < exchange.attemptsAllowed
        {
            tunnel.waypoint.logger.debug(
                "retrying",
                metadata: ["reason": "\(reason)", "attempt": "\(exchange.attempt)"]
            )
            retryAfterBackoff(exchange)
            return
        }
        finishLocally(exchange, LocalResponse(status: status, body: reason + "\n", flag: flag))
    }

    private func timedOut(_ exchange: Exchange) {
        guard !exchange.finished else { return }
        if exchange.committed {
            // The response has started: the client can only learn of the timeout by a reset.
            exchange.flag = "UT"
            finish(exchange, status: exchange.status)
            context?.close(promise: nil)
            return
        }
        finishLocally(exchange, LocalResponse(status: .gatewayTimeout, body: "upstream request timeout\n", flag: "UT"))
    }

    func upstreamHead(_ head: HTTPResponseHead, attempt: Int) {
        guard let exchange, exchange.isCurrent(attempt), !exchange.finished, let context else { return }
        exchange.perTryTimer?.cancel()
        if let retry = exchange.plan.retry, retry.retries(status: Int(head.status.code)),
            exchange.attempt < exchange.attemptsAllowed
        {
            abandonUpstream(exchange)
            retryAfterBackoff(exchange)
            return
        }
        exchange.committed = true
        exchange.status = Int(head.status.code)
        var head = head
        UpstreamCodec.stripHopByHop(&head.headers)
        if let modifier = exchange.plan.responseHeaders { RequestPlanner.apply(modifier, to: &head.headers) }
        head.version = exchange.head.version
        if !exchange.keepAlive { head.headers.add(name: "connection", value: "close") }
        if exchange.grpc, head.headers.contains(name: "grpc-status") {
            // gRPC "trailers-only": one HEADERS frame holding the status, ending the stream. The
            // head and the end are written separately here, so the status goes in the trailers
            // (a response with no messages, which every gRPC client reads the same way).
            var trailers = HTTPHeaders()
            for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                for value in head.headers[name] { trailers.add(name: name, value: value) }
                head.headers.remove(name: name)
            }
            exchange.statusTrailers = trailers
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func upstreamBody(_ body: ByteBuffer, attempt: Int) {
        guard let exchange, exchange.isCurrent(attempt), exchange.committed, !exchange.finished, let context else {
            return
        }
        exchange.responseBytes += body.readableBytes
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if !context.channel.isWritable {
            exchange.upstream?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        }
    }

    func upstreamEnd(_ trailers: HTTPHeaders?, attempt: Int) {
        guard let exchange, exchange.isCurrent(attempt), !exchange.finished, let context else { return }
        guard exchange.committed else { return }
        let keepAlive = exchange.keepAlive && !clientDone
        var trailers = trailers
        if let status = exchange.statusTrailers {
            trailers = (trailers ?? HTTPHeaders()).isEmpty ? status : trailers
        }
        finish(exchange, status: exchange.status, upstreamComplete: true)
        context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
            if !keepAlive { Self.endConnection(context) }
        }
    }

    func upstreamFailed(_ error: any Error, attempt: Int) {
        guard let exchange, exchange.isCurrent(attempt), !exchange.finished else { return }
        exchange.upstream = nil
        exchange.pooled = nil
        if !exchange.committed && exchange.reusedConnection {
            // The endpoint had closed the idle connection as the request went out: send it again
            // on a new connection (what every pooling proxy does), without counting a retry.
            exchange.reusedConnection = false
            exchange.staleConnectionRetries += 1
            tryUpstream(exchange)
            return
        }
        if exchange.committed {
            exchange.flag = "UR"
            finish(exchange, status: exchange.status)
            context?.close(promise: nil)
            return
        }
        retryOrFail(
            exchange,
            reason: "upstream connect error or disconnect/reset before headers: \(error)",
            condition: "reset",
            status: .serviceUnavailable,
            flag: "UR"
        )
    }

    // MARK: Finishing.

    private func finishLocally(_ exchange: Exchange, _ response: LocalResponse) {
        guard !exchange.finished else { return }
        exchange.flag = response.flag
        exchange.status = Int(response.status.code)
        if exchange.committed {
            finish(exchange, status: exchange.status)
            context?.close(promise: nil)
            return
        }
        finish(exchange, status: exchange.status)
        writeLocal(response, head: exchange.head, keepAlive: exchange.keepAlive)
    }

    /// Records the request and releases the upstream (back to the pool when its response ended
    /// cleanly); the caller writes the end of the response.
    private func finish(_ exchange: Exchange, status: Int, upstreamComplete: Bool = false) {
        exchange.finished = true
        exchange.perTryTimer?.cancel()
        exchange.requestTimer?.cancel()
        if let pooled = exchange.pooled, upstreamComplete, let context {
            exchange.pooled = nil
            exchange.upstream = nil
            tunnel.waypoint.upstreamPool(on: context.eventLoop).release(pooled)
        } else if let upstream = exchange.upstream {
            exchange.upstream = nil
            exchange.pooled = nil
            // Close the stream once the response is in; the endpoint's END_STREAM may still be on its way.
            upstream.close(promise: nil)
        }
        self.exchange = nil
        record(
            head: exchange.head,
            status: status,
            flag: exchange.flag,
            started: exchange.started,
            requestBytes: exchange.body.readableBytes,
            responseBytes: exchange.responseBytes,
            endpoint: exchange.endpoint,
            route: exchange.plan.routeName,
            grpc: exchange.grpc
        )
    }

    private func respondLocally(
        _ response: LocalResponse,
        head: HTTPRequestHead,
        keepAlive: Bool,
        started: ContinuousClock.Instant
    ) {
        record(
            head: head,
            status: Int(response.status.code),
            flag: response.flag,
            started: started,
            requestBytes: body.readableBytes,
            responseBytes: response.body.utf8.count,
            endpoint: nil,
            route: "-",
            grpc: false
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

    private func abandonUpstream() {
        guard let exchange, !exchange.finished else { return }
        exchange.flag = "DC"  // downstream connection termination
        finish(exchange, status: exchange.committed ? exchange.status : 0)
    }

    private func record(
        head: HTTPRequestHead,
        status: Int,
        flag: String,
        started: ContinuousClock.Instant,
        requestBytes: Int,
        responseBytes: Int,
        endpoint: ChosenEndpoint?,
        route: String,
        grpc: Bool
    ) {
        let waypoint = tunnel.waypoint
        let snapshot = waypoint.state.snapshot
        let source = snapshot.workload(at: tunnel.peerAddress)
        let serviceName: String? = {
            if case .service(let binding) = tunnel.target {
                return "\(binding.service.name).\(binding.service.namespace).svc.\(snapshot.options.clusterDomain)"
            }
            return nil
        }()
        let labels = TrafficLabels(
            reporter: tunnel.reporter,
            sourceWorkload: source?.name ?? TrafficLabels.unknown,
            sourceWorkloadNamespace: source?.namespace ?? TrafficLabels.unknown,
            sourcePrincipal: tunnel.peerIdentity,
            destinationWorkload: endpoint?.workload?.name ?? TrafficLabels.unknown,
            destinationWorkloadNamespace: endpoint?.workload?.namespace ?? TrafficLabels.unknown,
            destinationPrincipal: endpoint?.workload?.identity,
            destinationService: serviceName ?? TrafficLabels.unknown,
            requestProtocol: grpc ? "grpc" : "http",
            responseFlags: flag,
            connectionSecurityPolicy: .mutualTLS
        )
        let duration = (ContinuousClock.now - started).milliseconds
        waypoint.metrics.http.record(
            labels,
            responseCode: status,
            milliseconds: duration,
            requestBytes: requestBytes,
            responseBytes: responseBytes
        )
        waypoint.logger.info(
            "request",
            metadata: [
                "method": "\(head.method.rawValue)",
                "path": "\(head.uri)",
                "protocol": "\(downstreamProtocol == .http2 ? "HTTP/2" : "HTTP/1.1")",
                "authority": "\(tunnel.authority)",
                "status": "\(status)",
                "flags": "\(flag)",
                "route": "\(route)",
                "upstream": "\(endpoint.map { "\($0.address)" } ?? "-")",
                "src.identity": "\(tunnel.peerIdentity)",
                "src.workload": "\(labels.sourceWorkload)",
                "dst.service": "\(labels.destinationService)",
                "bytes_sent": "\(requestBytes)",
                "bytes_received": "\(responseBytes)",
                "duration_ms": "\(Int(duration.rounded()))",
                "traceparent": "\(head.headers.first(name: "traceparent") ?? "-")",
            ]
        )
    }

    // MARK: Mirrors.

    private func sendMirrors(_ exchange: Exchange) {
        guard let context else { return }
        let waypoint = tunnel.waypoint
        for mirror in exchange.plan.mirrors where Self.chance(mirror.percent) {
            guard
                let endpoint = try? waypoint.chooseEndpoint(.service(mirror.binding), snapshot: waypoint.state.snapshot)
            else { continue }
            // As Envoy does, the mirrored request's host says it is a shadow.
            let head = {
                var head = exchange.head
                if let host = head.headers.first(name: "host") {
                    head.headers.replaceOrAdd(name: "host", value: Self.shadowHost(host))
                }
                return head
            }()
            let body = exchange.body
            let trailers = exchange.trailers
            let http2 = UpstreamCodec.speaksHTTP2(.service(mirror.binding), grpc: exchange.grpc)
            waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: nil, on: context.eventLoop)
                .assumeIsolated().whenSuccess { stream in
                    let sink = MirrorSink(stream: stream)
                    do {
                        try UpstreamCodec.send(
                            on: stream,
                            http2: http2,
                            head: head,
                            body: body,
                            trailers: trailers,
                            handler: UpstreamResponseHandler(delegate: sink, attempt: 1)
                        )
                        sink.retain()
                    } catch {
                        stream.close(promise: nil)
                    }
                }
        }
    }

    static func shadowHost(_ host: String) -> String {
        if let colon = host.lastIndex(of: ":"), !host[colon...].contains("]") {
            return "\(host[..<colon])-shadow\(host[colon...])"
        }
        return host + "-shadow"
    }

    static func chance(_ percent: Double) -> Bool {
        percent >= 100 || Double.random(in: 0..<100) < percent
    }

}

/// Discards a mirrored request's response and closes its stream; keeps itself alive until then.
final class MirrorSink: UpstreamResponseDelegate {
    private let stream: any Channel
    private var selfReference: MirrorSink?

    init(stream: any Channel) {
        self.stream = stream
    }

    func retain() { selfReference = self }

    func upstreamHead(_ head: HTTPResponseHead, attempt: Int) {}
    func upstreamBody(_ body: ByteBuffer, attempt: Int) {}

    func upstreamEnd(_ trailers: HTTPHeaders?, attempt: Int) {
        stream.close(promise: nil)
        selfReference = nil
    }

    func upstreamFailed(_ error: any Error, attempt: Int) {
        stream.close(promise: nil)
        selfReference = nil
    }
}
