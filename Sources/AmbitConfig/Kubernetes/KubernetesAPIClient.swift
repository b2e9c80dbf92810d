import AmbitModel
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Why a request to the API server failed.
enum KubernetesAPIError: Error, CustomStringConvertible {
    /// The server answered with a non-2xx status; `message` is its `Status.message` when it sent one.
    case status(code: Int, reason: String, message: String?)
    /// Could not connect, TLS failed, the connection broke or went silent.
    case transport(String)
    /// A list response larger than the client accepts.
    case tooLarge(limit: Int)
    case malformed(String)

    var description: String {
        switch self {
        case .status(let code, let reason, let message):
            return "HTTP \(code) \(reason)" + (message.map { ": \($0)" } ?? "")
        case .transport(let detail): return detail
        case .tooLarge(let limit): return "response larger than \(limit) bytes"
        case .malformed(let detail): return "malformed response: \(detail)"
        }
    }
}

/// A minimal HTTPS/1.1 client for the Kubernetes API: one connection per request (lists and
/// long-lived watches do not benefit from keep-alive), server certificate verified against the
/// cluster CA, bearer token or client certificate. A connection that receives nothing for
/// `idleTimeout` is closed (watches see bookmarks at least every minute or so).
final class KubernetesAPIClient: Sendable {
    let config: KubernetesClusterConfig
    private let group: any EventLoopGroup
    private let context: NIOSSLContext
    private let userAgent: String

    init(config: KubernetesClusterConfig, group: any EventLoopGroup, userAgent: String) throws(KubernetesConfigError) {
        self.config = config
        self.group = group
        self.userAgent = userAgent
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        do {
            if let pem = config.certificateAuthorityPEM {
                let roots = try NIOSSLCertificate.fromPEMBytes(pem)
                guard !roots.isEmpty else { throw KubernetesConfigError("the cluster CA holds no certificate") }
                tls.trustRoots = .certificates(roots)
            }
            if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if case .clientCertificate(let certificatePEM, let keyPEM) = config.credentials {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificatePEM).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: keyPEM, format: .pem))
            }
            context = try NIOSSLContext(configuration: tls)
        } catch let error as KubernetesConfigError {
            throw error
        } catch {
            throw KubernetesConfigError("cannot set up TLS to the API server \(config): \(error)")
        }
    }

    /// GET `path`; the whole body, at most `limit` bytes. Non-2xx statuses throw ``KubernetesAPIError/status``.
    func get(_ path: String, query: [(String, String)], limit: Int, idleTimeout: TimeAmount) async throws -> ByteBuffer
    {
        try await exchange(.GET, path, query: query, idleTimeout: idleTimeout) { body in
            try await Self.collect(&body, limit: limit)
        }
    }

    /// PATCH `path` with a JSON merge patch (RFC 7386, `application/merge-patch+json`); the answer's
    /// body, at most `limit` bytes. Non-2xx statuses throw ``KubernetesAPIError/status``.
    func mergePatch(_ path: String, _ patch: String, limit: Int = 1 << 20) async throws -> ByteBuffer {
        let request = RequestBody(contentType: "application/merge-patch+json", bytes: ByteBuffer(string: patch))
        return try await exchange(.PATCH, path, query: [], body: request, idleTimeout: .seconds(10)) { body in
            try await Self.collect(&body, limit: limit)
        }
    }

    /// POST `path` with a JSON body (a TokenReview); the answer's body, at most `limit` bytes. Non-2xx
    /// statuses throw ``KubernetesAPIError/status``.
    func postJSON(_ path: String, _ json: String, limit: Int = 1 << 20) async throws -> ByteBuffer {
        let request = RequestBody(contentType: "application/json", bytes: ByteBuffer(string: json))
        return try await exchange(.POST, path, query: [], body: request, idleTimeout: .seconds(10)) { body in
            try await Self.collect(&body, limit: limit)
        }
    }

    private static func collect(_ body: inout Body, limit: Int) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        while let chunk = try await body.next() {
            guard collected.readableBytes + chunk.readableBytes <= limit else {
                throw KubernetesAPIError.tooLarge(limit: limit)
            }
            collected.writeImmutableBuffer(chunk)
        }
        return collected
    }

    struct RequestBody: Sendable {
        var contentType: String
        var bytes: ByteBuffer
    }

    /// GET `path` whose body is newline-delimited JSON (a watch); `line` gets each line as it
    /// arrives. Returns when the server ends the response (a watch's `timeoutSeconds`).
    func streamLines(
        _ path: String,
        query: [(String, String)],
        idleTimeout: TimeAmount,
        maximumLine: Int,
        line: (ByteBuffer) async throws -> Void
    ) async throws {
        try await exchange(.GET, path, query: query, idleTimeout: idleTimeout) { body in
            var pending = ByteBuffer()
            while let chunk = try await body.next() {
                pending.writeImmutableBuffer(chunk)
                while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                    let length = newline - pending.readerIndex
                    let slice = pending.readSlice(length: length)!
                    pending.moveReaderIndex(forwardBy: 1)
                    if slice.readableBytes > 0 { try await line(slice) }
                }
                guard pending.readableBytes <= maximumLine else {
                    throw KubernetesAPIError.tooLarge(limit: maximumLine)
                }
                pending.discardReadBytes()
            }
            if pending.readableBytes > 0 { try await line(pending) }
        }
    }

    /// The body of a response, chunk by chunk.
    struct Body {
        fileprivate var iterator: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator

        mutating func next() async throws -> ByteBuffer? {
            while let part = try await nextPart() {
                switch part {
                case .head: throw KubernetesAPIError.malformed("a second response head")
                case .body(let buffer): return buffer
                case .end: return nil
                }
            }
            throw KubernetesAPIError.transport("the API server closed the connection mid-response")
        }

        /// The connection's own failures (a broken or malformed response) as transport errors, so that they
        /// are not taken for errors of the code reading the body.
        private mutating func nextPart() async throws -> HTTPClientResponsePart? {
            do {
                return try await iterator.next()
            } catch {
                throw KubernetesAPIError.transport("the response from the API server broke off: \(error)")
            }
        }
    }

    private func exchange<Result: Sendable>(
        _ method: HTTPMethod,
        _ path: String,
        query: [(String, String)],
        body request: RequestBody? = nil,
        idleTimeout: TimeAmount,
        _ handle: (inout Body) async throws -> Result
    ) async throws -> Result {
        let authorization = try config.authorization()
        let serverName = config.serverName ?? (Self.isIPAddress(config.host) ? nil : config.host)
        let context = self.context
        let tlsFailure = TLSFailure()
        let closeOnIdle = CloseOnIdle()
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: config.host, port: config.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                        try sync.addHandler(tlsFailure)
                        try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                        try sync.addHandler(closeOnIdle)
                        try sync.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel
                        )
                    }
                }
        } catch {
            throw KubernetesAPIError.transport("cannot connect to the API server \(config): \(error)")
        }
        var headers = HTTPHeaders()
        headers.add(name: "host", value: config.hostHeader)
        headers.add(name: "accept", value: "application/json")
        headers.add(name: "user-agent", value: userAgent)
        if let authorization { headers.add(name: "authorization", value: authorization) }
        if let request {
            headers.add(name: "content-type", value: request.contentType)
            headers.add(name: "content-length", value: String(request.bytes.readableBytes))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: Self.uri(path, query), headers: headers)
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // One write: the server may answer and close as soon as it has the whole request,
                // so a second write could find the channel closed although the answer has arrived.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let request { parts.append(.body(.byteBuffer(request.bytes))) }
                parts.append(.end(nil))
                var writeFailure: (any Error)?
                do {
                    try await outbound.write(contentsOf: parts)
                } catch {
                    writeFailure = error  // a server may also answer early and close: read what it sent
                }
                var iterator = inbound.makeAsyncIterator()
                guard case .head(let response)? = try await iterator.next() else {
                    if let writeFailure { throw writeFailure }
                    throw KubernetesAPIError.transport("the API server closed the connection without answering")
                }
                var body = Body(iterator: iterator)
                guard (200..<300).contains(response.status.code) else {
                    var text = ByteBuffer()
                    while let chunk = try await body.next(), text.readableBytes < 65536 {
                        text.writeImmutableBuffer(chunk)
                    }
                    throw KubernetesAPIError.status(
                        code: Int(response.status.code),
                        reason: response.status.reasonPhrase,
                        message: KubernetesStatus(json: text)?.message
                    )
                }
                do {
                    return try await handle(&body)
                } catch let error as KubernetesAPIError {
                    throw error
                } catch {
                    throw HandlerError(underlying: error)  // the caller's own error, passed through unchanged
                }
            }
        } catch let error as HandlerError {
            throw error.underlying
        } catch  where closeOnIdle.fired {
            throw KubernetesAPIError.transport(
                "the API server \(config) sent nothing for \(idleTimeout); the connection was closed"
            )
        } catch let error as KubernetesAPIError {
            throw error
        } catch let error as NIOSSLError {
            throw tlsError(error)
        } catch {
            // A failed handshake may reach the request as a closed channel before its own error does.
            if let failure = tlsFailure.error { throw tlsError(failure) }
            throw KubernetesAPIError.transport("request to \(config) failed: \(error)")
        }
    }

    private func tlsError(_ error: NIOSSLError) -> KubernetesAPIError {
        .transport("TLS with the API server \(config) failed (\(error)); check the cluster CA and the server name")
    }

    /// Sits after the TLS handler and remembers a failed handshake (and passes the error on).
    private final class TLSFailure: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny
        private let recorded = Mutex<NIOSSLError?>(nil)

        var error: NIOSSLError? { recorded.withLock { $0 } }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let tls = error as? NIOSSLError, case .handshakeFailed = tls { recorded.withLock { $0 = $0 ?? tls } }
            context.fireErrorCaught(error)
        }
    }

    private struct HandlerError: Error {
        let underlying: any Error
    }

    static func uri(_ path: String, _ query: [(String, String)]) -> String {
        guard !query.isEmpty else { return path }
        let encoded = query.map { key, value in "\(key)=\(percentEncoded(value))" }
        return "\(path)?\(encoded.joined(separator: "&"))"
    }

    /// A query value with every byte percent-encoded except RFC 3986's unreserved characters and the
    /// query's `!$'()*,:@/?` (`&`, `=`, `+` and `;` would split or change the query).
    static func percentEncoded(_ value: String) -> String {
        let allowed = Set("!$'()*,:@/?-._~".utf8)
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in value.utf8 {
            let alphanumeric =
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
            if alphanumeric || allowed.contains(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Closes the connection when `IdleStateHandler` reports that nothing was read for too long, and
    /// remembers it, so the request's error says so rather than what the close made of it.
    private final class CloseOnIdle: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny
        private let closed = Atomic<Bool>(false)

        var fired: Bool { closed.load(ordering: .relaxed) }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
                closed.store(true, ordering: .relaxed)
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// The `Status` object the API server sends with errors (and in watch `ERROR` events).
struct KubernetesStatus: Hashable, Sendable {
    var code: Int?
    var reason: String?
    var message: String?

    init(code: Int?, reason: String?, message: String?) {
        self.code = code
        self.reason = reason
        self.message = message
    }

    init?(_ value: JSONValue) {
        guard value["kind"]?.stringValue == "Status" else { return nil }
        if case .number(let text)? = value["code"] { code = Int(text) }
        reason = value["reason"]?.stringValue
        message = value["message"]?.stringValue
    }

    init?(json buffer: ByteBuffer) {
        guard let value = try? JSONValue.parse(buffer.readableBytesView) else { return nil }
        self.init(value)
    }
}
