import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A keep-alive HTTP/1.1 server answering every request with `responseBytes` of body: the app of
/// the benchmark pods, light enough that the mesh, not the app, dominates what is measured.
enum LoadServer {
    static func run(host: String, port: Int, responseBytes: Int, threads: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let body = ByteBuffer(repeating: UInt8(ascii: "a"), count: responseBytes)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Responder(body: body))
                }
            }
            .bind(host: host, port: port).wait()
        FileHandle.standardError.write(Data("MeshLoad serving on \(host):\(port)\n".utf8))
        try channel.closeFuture.wait()
    }

    final class Responder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let body: ByteBuffer
        var keepAlive = true

        init(body: ByteBuffer) { self.body = body }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                keepAlive = head.isKeepAlive
            case .body:
                break
            case .end:
                var headers = HTTPHeaders()
                headers.add(name: "content-length", value: "\(body.readableBytes)")
                headers.add(name: "content-type", value: "application/octet-stream")
                if !keepAlive { headers.add(name: "connection", value: "close") }
                context.write(
                    wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil
                )
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                let close = !keepAlive
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    if close { context.close(promise: nil) }
                }
            }
        }
    }
}
