public import AmbitTelemetry
public import Logging
public import NIOCore
public import NIOHTTP1
import NIOPosix

/// A response of a process's small HTTP endpoints (metrics, readiness, admin).
public struct OperationalHTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var contentType: String
    public var body: String

    public static func text(_ body: String, status: HTTPResponseStatus = .ok) -> OperationalHTTPResponse {
        OperationalHTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    public static func json(_ body: String, status: HTTPResponseStatus = .ok) -> OperationalHTTPResponse {
        OperationalHTTPResponse(status: status, contentType: "application/json", body: body)
    }
}

/// Plain HTTP/1.1 for the operational ports of `ambit-node` and `ambit-waypoint`; one request
/// at a time per connection. A connection that sends nothing for `idleTimeout` (30 s) is closed, so
/// clients that open connections and leave them (or never send a request) hold nothing for long.
public enum OperationalHTTPServer {
    public typealias Route =
        @Sendable (_ method: HTTPMethod, _ path: String, _ query: [String: String]) async -> OperationalHTTPResponse

    public static let idleTimeout: TimeAmount = .seconds(30)

    public static func listen(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        idleTimeout: TimeAmount = idleTimeout,
        route: @escaping Route
    )
        -> EventLoopFuture<any Channel>
    {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try sync.addHandler(CloseWhenIdle())
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(RequestHandler(route: route))
                }
            }
            .bind(host: host, port: port)
    }

    /// Closes the connection when `IdleStateHandler` reports that nothing was read for too long.
    final class CloseWhenIdle: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
        }
    }

    private final class RequestHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let route: Route

        init(route: @escaping Route) {
            self.route = route
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let (path, query) = Self.split(head.uri)
            let route = self.route
            let keepAlive = head.isKeepAlive
            let version = head.version
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let promise = context.eventLoop.makePromise(of: OperationalHTTPResponse.self)
            promise.completeWithTask { await route(head.method, path, query) }
            promise.futureResult.assumeIsolated().whenSuccess { response in
                let context = loopBound.value
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: response.contentType)
                headers.add(name: "content-length", value: "\(response.body.utf8.count)")
                if !keepAlive { headers.add(name: "connection", value: "close") }
                context.write(
                    self.wrapOutboundOut(
                        .head(HTTPResponseHead(version: version, status: response.status, headers: headers))
                    ),
                    promise: nil
                )
                context.write(
                    self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: response.body)))),
                    promise: nil
                )
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if !keepAlive { context.close(promise: nil) }
                }
            }
        }

        static func split(_ uri: String) -> (String, [String: String]) {
            let parts = uri.split(separator: "?", maxSplits: 1)
            let path = parts.first.map(String.init) ?? "/"
            var query: [String: String] = [:]
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    query[String(kv[0])] = kv.count == 2 ? String(kv[1]) : ""
                }
            }
            return (path, query)
        }
    }
}

extension OperationalHTTPServer {
    /// The Prometheus endpoint on all addresses: `/metrics` (and Envoy's `/stats/prometheus`).
    /// `beforeRender` refreshes gauges that are computed at scrape time.
    public static func listenMetrics(
        port: Int,
        group: any EventLoopGroup,
        idleTimeout: TimeAmount = idleTimeout,
        metrics: MeshMetrics,
        beforeRender: @escaping @Sendable () -> Void = {}
    )
        -> EventLoopFuture<any Channel>
    {
        listen(host: "0.0.0.0", port: port, group: group, idleTimeout: idleTimeout) { _, path, _ in
            switch path {
            case "/metrics", "/stats/prometheus":
                beforeRender()
                return .text(metrics.render())
            default: return .text("not found; try /metrics\n", status: .notFound)
            }
        }
    }
}

extension LogLevelControl {
    /// The admin port's `/logging`: `GET` shows the level, `POST ?level=LEVEL` changes it.
    public func adminRequest(method: HTTPMethod, query: [String: String], logger: Logger) -> OperationalHTTPResponse {
        if let requested = query["level"] {
            guard method == .POST else {
                return .text("use POST /logging?level=LEVEL\n", status: .methodNotAllowed)
            }
            guard let level = Logger.Level(rawValue: requested) else {
                let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                return .text("unknown level \"\(requested)\"; one of: \(levels)\n", status: .badRequest)
            }
            self.level = level
            logger.notice("log level changed", metadata: ["level": "\(level)"])
        }
        return .text("level: \(self.level)\n")
    }
}
