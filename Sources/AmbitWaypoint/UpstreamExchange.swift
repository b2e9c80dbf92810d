import NIOCore
import NIOHTTP1
import NIOHTTP2

/// What an upstream request reports back, on the event loop of both ends.
protocol UpstreamResponseDelegate: AnyObject {
    func upstreamHead(_ head: HTTPResponseHead, attempt: Int)
    func upstreamBody(_ body: ByteBuffer, attempt: Int)
    func upstreamEnd(_ trailers: HTTPHeaders?, attempt: Int)
    /// The upstream closed or failed before the response ended.
    func upstreamFailed(_ error: any Error, attempt: Int)
}

/// Receives the response of one upstream attempt and passes it to the delegate, tagged with the
/// attempt number so that a late event from an abandoned attempt is ignored.
final class UpstreamResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private weak var delegate: (any UpstreamResponseDelegate)?
    private let attempt: Int
    private var ended = false

    init(delegate: any UpstreamResponseDelegate, attempt: Int) {
        self.delegate = delegate
        self.attempt = attempt
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ended else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            // 1xx informational responses are not passed on (the final response follows).
            if head.status.code >= 100 && head.status.code < 200 { return }
            delegate?.upstreamHead(head, attempt: attempt)
        case .body(let body):
            delegate?.upstreamBody(body, attempt: attempt)
        case .end(let trailers):
            ended = true
            delegate?.upstreamEnd(trailers, attempt: attempt)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(UpstreamExchangeError.reset("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(UpstreamExchangeError.reset("the upstream closed before the response ended"))
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        guard !ended else { return }
        ended = true
        delegate?.upstreamFailed(error, attempt: attempt)
    }
}

enum UpstreamExchangeError: Error, CustomStringConvertible {
    case reset(String)
    case timeout

    var description: String {
        switch self {
        case .reset(let reason): return "upstream reset: \(reason)"
        case .timeout: return "upstream timed out"
        }
    }
}

/// Speaking HTTP to an endpoint inside an HBONE stream (from ``HBONEClient/openStream(_:on:)``),
/// one request per stream: HTTP/2 with prior knowledge for gRPC and for service ports declared
/// HTTP/2 (as Istio decides: `appProtocol` `http2`, `grpc`, `kubernetes.io/h2c`, or a port name
/// starting with `http2`/`grpc`), HTTP/1.1 otherwise, whatever the client spoke.
enum UpstreamCodec {
    static func speaksHTTP2(_ backend: ForwardPlan.Backend, grpc: Bool) -> Bool {
        if grpc { return true }
        guard case .service(let binding) = backend else { return false }
        let declared = (binding.port.appProtocol ?? "").lowercased()
        if ["http2", "grpc", "grpc-web", "kubernetes.io/h2c"].contains(declared) { return true }
        let name = (binding.port.name ?? "").lowercased()
        return name == "http2" || name.hasPrefix("http2-") || name == "grpc" || name.hasPrefix("grpc-")
    }

    /// Headers that describe one hop and never travel further (RFC 9110 §7.6.1).
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "proxy-authorization",
        "proxy-authenticate",
    ]

    /// Removes hop-by-hop headers (and those named by `connection`); `te` survives only as `trailers`.
    static func stripHopByHop(_ headers: inout HTTPHeaders) {
        let named = headers[canonicalForm: "connection"].map { $0.lowercased() }
        for name in hopByHop.union(named) { headers.remove(name: name) }
        let te = headers[canonicalForm: "te"].map { $0.lowercased() }
        headers.remove(name: "te")
        if te.contains("trailers") { headers.add(name: "te", value: "trailers") }
    }

    /// Sends `head`, `body` and `trailers` on `stream` and reports the response to `handler`.
    static func send(
        on stream: any Channel,
        http2: Bool,
        head: HTTPRequestHead,
        body: ByteBuffer,
        trailers: HTTPHeaders?,
        handler: UpstreamResponseHandler
    ) throws {
        var request = head
        stripHopByHop(&request.headers)
        request.version = http2 ? .http2 : .http1_1
        if !http2 {
            request.headers.add(name: "connection", value: "close")
            if trailers == nil || trailers!.isEmpty {
                request.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
            } else {
                request.headers.add(name: "transfer-encoding", value: "chunked")
            }
            let sync = stream.pipeline.syncOperations
            try sync.addHTTPClientHandlers()
            try sync.addHandler(handler)
            write(to: stream, head: request, body: body, trailers: trailers)
            return
        }
        let multiplexer = try stream.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .client,
            connectionConfiguration: .init(),
            streamConfiguration: .init()
        ) { pushed in
            // Servers do not push to a waypoint; refuse any stream they open.
            pushed.close()
        }
        let head = request
        let promise = stream.eventLoop.makePromise(of: (any Channel).self)
        let boundHandler = NIOLoopBound(handler, eventLoop: stream.eventLoop)
        multiplexer.createStreamChannel(promise: promise) { h2stream in
            h2stream.eventLoop.makeCompletedFuture {
                try h2stream.pipeline.syncOperations.addHandlers([
                    HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http),
                    boundHandler.value,
                ])
            }
        }
        promise.futureResult.whenComplete { result in
            switch result {
            case .success(let h2stream):
                write(to: h2stream, head: head, body: body, trailers: trailers)
            case .failure:
                stream.close(promise: nil)
            }
        }
    }

    private static func write(to channel: any Channel, head: HTTPRequestHead, body: ByteBuffer, trailers: HTTPHeaders?)
    {
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if body.readableBytes > 0 { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
    }
}
