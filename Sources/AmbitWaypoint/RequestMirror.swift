import AmbitModel
import NIOCore
import NIOHTTP1

/// Route mirroring (Gateway API's `RequestMirror`, Istio's `mirror`): a copy of a forwarded request
/// goes to another service, fire and forget. Its response is read and dropped; it never delays, fails
/// or changes the real request.
enum RequestMirror {
    /// Sends `head` (with a shadow `host`) to one endpoint of each of `plan`'s mirrors, each with its
    /// percentage's chance.
    static func send(
        _ plan: ForwardPlan,
        head: HTTPRequestHead,
        body: ByteBuffer,
        trailers: HTTPHeaders?,
        grpc: Bool,
        tunnel: TunnelContext,
        on eventLoop: (any EventLoop)?
    ) {
        guard let eventLoop else { return }
        let waypoint = tunnel.waypoint
        for mirror in plan.mirrors where chance(mirror.percent) {
            guard
                let endpoint = try? waypoint.chooseEndpoint(.service(mirror.binding), snapshot: waypoint.state.snapshot)
            else { continue }
            // As Envoy does, the mirrored request's host says it is a shadow.
            var shadow = head
            if let host = shadow.headers.first(name: "host") {
                shadow.headers.replaceOrAdd(name: "host", value: shadowHost(host))
            }
            let http2 = UpstreamCodec.speaksHTTP2(.service(mirror.binding), grpc: grpc)
            waypoint.openUpstream(to: endpoint, tunnel: tunnel, traceparent: nil, on: eventLoop)
                .assumeIsolated().whenSuccess { [shadow] stream in
                    let sink = MirrorSink(stream: stream)
                    do {
                        try UpstreamCodec.send(
                            on: stream,
                            http2: http2,
                            head: shadow,
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

    /// `host:port` becomes `host-shadow:port`.
    static func shadowHost(_ host: String) -> String {
        if let colon = host.lastIndex(of: ":"), !host[colon...].contains("]") {
            return "\(host[..<colon])-shadow\(host[colon...])"
        }
        return host + "-shadow"
    }

    /// True with probability `percent` / 100.
    static func chance(_ percent: Double) -> Bool {
        var random = FastRandom()
        return percent >= 100 || Double.random(in: 0..<100, using: &random) < percent
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
