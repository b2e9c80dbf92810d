import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// New connections per second: each of `concurrency` loops connects, sends one request with
/// `connection: close`, reads the response and the close, and starts again.
enum ConnectionRateClient {
    static func run(target: (host: String, port: Int), duration: Double, concurrency: Int) throws -> String {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let end = NIODeadline.now() + .nanoseconds(Int64(duration * 1e9))
        let loops = (0..<concurrency).map { _ in
            ConnectLoop(loop: group.next(), host: target.host, port: target.port, end: end)
        }
        var completed = 0
        var failed = 0
        for loop in loops {
            let (done, errors) = try loop.start().wait()
            completed += done
            failed += errors
        }
        let report: [String: Any] = [
            "duration_s": duration, "concurrency": concurrency, "completed": completed, "failed": failed,
            "connections_per_second": Double(completed) / duration,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// One connect-request-close loop. Its counters are touched only on `loop`.
    final class ConnectLoop: @unchecked Sendable {
        let loop: any EventLoop
        let host: String
        let port: Int
        let end: NIODeadline
        private var completed = 0
        private var failed = 0
        private let done: EventLoopPromise<(Int, Int)>

        init(loop: any EventLoop, host: String, port: Int, end: NIODeadline) {
            self.loop = loop
            self.host = host
            self.port = port
            self.end = end
            done = loop.makePromise()
        }

        func start() -> EventLoopFuture<(Int, Int)> {
            loop.execute { self.next() }
            return done.futureResult
        }

        private func next() {
            guard NIODeadline.now() < end else {
                done.succeed((completed, failed))
                return
            }
            let response = loop.makePromise(of: Void.self)
            let host = self.host
            ClientBootstrap(group: loop)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(OneRequest(host: host, done: response))
                    }
                }
                .connect(host: host, port: port)
                .whenFailure { response.fail($0) }
            response.futureResult.whenComplete { result in
                if case .success = result { self.completed += 1 } else { self.failed += 1 }
                self.next()
            }
        }
    }

    final class OneRequest: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        let host: String
        let done: EventLoopPromise<Void>
        var ok = false

        init(host: String, done: EventLoopPromise<Void>) {
            self.host = host
            self.done = done
        }

        func channelActive(context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "host", value: host)
            headers.add(name: "connection", value: "close")
            context.write(
                wrapOutboundOut(.head(.init(version: .http1_1, method: .GET, uri: "/", headers: headers))),
                promise: nil
            )
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): ok = head.status == .ok
            case .body: break
            case .end: context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            if ok { done.succeed(()) } else { done.fail(ChannelError.eof) }
        }
    }
}
