import NIOCore
import NIOHTTP1
import NIOPosix

/// A response of the agent's small HTTP endpoints (metrics, readiness, admin).
struct AgentHTTPResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String

    static func text(_ body: String, status: HTTPResponseStatus = .ok) -> AgentHTTPResponse {
        AgentHTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }

    static func json(_ body: String, status: HTTPResponseStatus = .ok) -> AgentHTTPResponse {
        AgentHTTPResponse(status: status, contentType: "application/json", body: body)
    }
}

/// Plain HTTP/1.1 for the agent's operational ports; one request at a time per connection.
enum AgentHTTPServer {
    typealias Route =
        @Sendable (_ method: HTTPMethod, _ path: String, _ query: [String: String]) async -> AgentHTTPResponse

    static func listen(host: String, port: Int, group: any EventLoopGroup, route: @escaping Route)
        -> EventLoopFuture<any Channel>
    {
        ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(RequestHandler(route: route))
                }
            }
            .bind(host: host, port: port)
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
            let promise = context.eventLoop.makePromise(of: AgentHTTPResponse.self)
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
