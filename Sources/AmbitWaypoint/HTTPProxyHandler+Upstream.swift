import AmbitModel
import NIOCore
import NIOHTTP1

/// The upstream side of a forwarded request: sending a try, and the response coming back.
extension HTTPProxyHandler: UpstreamResponseDelegate {
    /// Sends try `attempt` of `inFlight` to an endpoint of its backend.
    func send(_ inFlight: InFlight, attempt: Int, avoiding: Set<IPEndpoint>, timeout: Duration?) {
        guard let context else { return }
        let serial = inFlight.attemptBase + attempt
        attemptsOnConnection = max(attemptsOnConnection, serial)
        let waypoint = tunnel.waypoint
        let endpoint: ChosenEndpoint
        do {
            endpoint = try waypoint.chooseEndpoint(
                inFlight.plan.backend,
                snapshot: waypoint.state.snapshot,
                avoiding: avoiding
            )
        } catch {
            run(inFlight.machine.failed(attempt: attempt, .noEndpoint("\(error)")), for: inFlight)
            return
        }
        inFlight.endpoint = endpoint
        inFlight.machine.chose(attempt: attempt, endpoint: endpoint.address)
        if let timeout {
            inFlight.perTryTimer?.cancel()
            inFlight.perTryTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .init(timeout)) { [self] in
                run(inFlight.machine.perTryTimedOut(attempt: attempt), for: inFlight)
            }
        }
        let traceparent = inFlight.head.headers.first(name: "traceparent")
        let http2 = UpstreamCodec.speaksHTTP2(inFlight.plan.backend, grpc: inFlight.grpc)
        let pool = waypoint.upstreamPool(on: context.eventLoop)
        let key = UpstreamPool.Key(address: endpoint.address, local: tunnel.toLocalApplication)
        if !http2, let pooled = pool.take(key) {
            use(pooled, for: inFlight, attempt: attempt, serial: serial)
            return
        }
        waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: traceparent, on: context.eventLoop)
            .assumeIsolated().whenComplete { [self] result in
                guard inFlight.machine.awaits(attempt: attempt) else {
                    if case .success(let stream) = result { stream.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    run(inFlight.machine.failed(attempt: attempt, .connect("\(error)")), for: inFlight)
                case .success(let stream) where http2:
                    inFlight.upstream = stream
                    do {
                        try UpstreamCodec.send(
                            on: stream,
                            http2: true,
                            head: inFlight.head,
                            body: inFlight.body,
                            trailers: inFlight.trailers,
                            handler: UpstreamResponseHandler(delegate: self, attempt: serial)
                        )
                    } catch {
                        stream.close(promise: nil)
                        run(inFlight.machine.failed(attempt: attempt, .send("\(error)")), for: inFlight)
                    }
                case .success(let stream):
                    do {
                        let pooled = try PooledUpstream.configure(stream, key: key, pool: pool)
                        use(pooled, for: inFlight, attempt: attempt, serial: serial)
                    } catch {
                        stream.close(promise: nil)
                        run(inFlight.machine.failed(attempt: attempt, .send("\(error)")), for: inFlight)
                    }
                }
            }
    }

    /// HTTP/1.1 upstream: the request goes out on a pooled connection (new, or idle and kept).
    private func use(_ pooled: PooledUpstream, for inFlight: InFlight, attempt: Int, serial: Int) {
        inFlight.upstream = pooled.channel
        inFlight.pooled = pooled
        if pooled.used { inFlight.machine.sentOnReusedConnection(attempt: attempt) }
        var head = inFlight.head
        UpstreamCodec.stripHopByHop(&head.headers)
        head.version = .http1_1
        if inFlight.trailers?.isEmpty ?? true {
            head.headers.replaceOrAdd(name: "content-length", value: String(inFlight.body.readableBytes))
        } else {
            head.headers.add(name: "transfer-encoding", value: "chunked")
        }
        pooled.send(head: head, body: inFlight.body, trailers: inFlight.trailers, delegate: self, attempt: serial)
    }

    /// The committed response's head, as the client gets it: hop-by-hop headers off, the route's
    /// header changes on, the client's HTTP version.
    func writeResponseHead(_ inFlight: InFlight) {
        guard let context, var head = inFlight.responseHead else { return }
        UpstreamCodec.stripHopByHop(&head.headers)
        if let modifier = inFlight.plan.responseHeaders { RequestPlanner.apply(modifier, to: &head.headers) }
        head.version = inFlight.head.version
        if !inFlight.keepAlive { head.headers.add(name: "connection", value: "close") }
        if inFlight.grpc, head.headers.contains(name: "grpc-status") {
            // gRPC "trailers-only": one HEADERS frame holding the status, ending the stream. The head and
            // the end are written separately here, so the status goes in the trailers (a response with no
            // messages, which every gRPC client reads the same way).
            var trailers = HTTPHeaders()
            for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                for value in head.headers[name] { trailers.add(name: name, value: value) }
                head.headers.remove(name: name)
            }
            inFlight.statusTrailers = trailers
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    // MARK: UpstreamResponseDelegate (callbacks carry the connection-wide try number)

    /// The request in flight and its own number for the try `serial`.
    private func current(_ serial: Int) -> (InFlight, Int)? {
        guard let inFlight else { return nil }
        return (inFlight, serial - inFlight.attemptBase)
    }

    func upstreamHead(_ head: HTTPResponseHead, attempt serial: Int) {
        guard let (inFlight, attempt) = current(serial) else { return }
        inFlight.responseHead = head
        run(inFlight.machine.responseHead(attempt: attempt, status: Int(head.status.code)), for: inFlight)
    }

    func upstreamBody(_ body: ByteBuffer, attempt serial: Int) {
        guard let (inFlight, attempt) = current(serial), inFlight.machine.forwardsBody(attempt: attempt), let context
        else { return }
        inFlight.responseBytes += body.readableBytes
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if !context.channel.isWritable {
            inFlight.upstream?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        }
    }

    func upstreamEnd(_ trailers: HTTPHeaders?, attempt serial: Int) {
        guard let (inFlight, attempt) = current(serial) else { return }
        inFlight.pendingTrailers = trailers
        run(inFlight.machine.responseEnd(attempt: attempt), for: inFlight)
    }

    func upstreamFailed(_ error: any Error, attempt serial: Int) {
        guard let (inFlight, attempt) = current(serial) else { return }
        if attempt == inFlight.machine.attempts {
            // This try's upstream is gone: nothing to close or release later.
            inFlight.upstream = nil
            inFlight.pooled = nil
        }
        run(inFlight.machine.failed(attempt: attempt, .reset("\(error)")), for: inFlight)
    }
}
