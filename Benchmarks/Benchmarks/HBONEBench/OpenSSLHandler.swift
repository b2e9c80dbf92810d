import CSystemOpenSSL
import NIOCore

/// A TLS 1.3 context of the system's OpenSSL 3 (see `CSystemOpenSSL`), for the comparison with
/// swift-nio-ssl's BoringSSL (`HBONEBench tls-backends`). Not part of Ambit.
final class OpenSSLContext: @unchecked Sendable {
    let pointer: OpaquePointer

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `ciphersuites` is an OpenSSL TLS 1.3 list; nil keeps OpenSSL's default order.
    init(server: Bool, chainPEM: String, keyPEM: String, rootsPEM: String, ciphersuites: String?) throws {
        var error = [CChar](repeating: 0, count: 512)
        let made = system_tls_context_new(server ? 1 : 0, chainPEM, keyPEM, rootsPEM, ciphersuites, &error, error.count)
        guard let made else {
            throw Failure(description: String(decoding: error.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self))
        }
        pointer = made
    }

    deinit { system_tls_context_free(pointer) }

    static var version: String { String(cString: system_tls_version()) }
}

/// The smallest NIO TLS handler over OpenSSL: OpenSSL reads ciphertext straight from the buffer the
/// socket read (a BIO of our own, as swift-nio-ssl has), and writes it to a buffer copied out on
/// flush. Reads decrypt all that came in into one buffer; writes are encrypted as they come and the ciphertext is
/// written out on flush (or once 1 MiB is waiting). No close_notify, no renegotiation, no
/// session resumption: enough to carry HTTP/2 for a throughput comparison.
final class OpenSSLHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let context: OpenSSLContext
    private let tls: OpaquePointer
    private var handshaken = false
    private var failed = false
    /// Writes made before the handshake completed.
    private var early: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var earlyFlush = false
    /// Promises of writes encrypted but not yet handed to the socket.
    private var promises: [EventLoopPromise<Void>] = []

    /// The suite the handshake must have negotiated (checked, so the comparison is of what it says).
    private let expectedCipher: String

    init(context: OpenSSLContext, expectedCipher: String) {
        self.context = context
        self.expectedCipher = expectedCipher
        guard let tls = system_tls_new(context.pointer) else { fatalError("OpenSSL: out of memory") }
        self.tls = tls
    }

    deinit { system_tls_free(tls) }

    /// The negotiated suite (after the handshake).
    var cipher: String { String(cString: system_tls_cipher(tls)) }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { advanceHandshake(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        advanceHandshake(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        // OpenSSL reads the ciphertext straight from this buffer, so all of it is consumed before the
        // closure returns (a handshake or read that wants more input has taken everything).
        bytes.withUnsafeReadableBytes { raw in
            system_tls_feed(tls, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count)
            if !handshaken { advanceHandshake(context) }
            if handshaken { decrypt(context) }
            system_tls_feed(tls, nil, 0)
        }
        // What reading produced (a KeyUpdate answer, an alert) goes out at once.
        if system_tls_pending(tls) > 0 {
            sendCiphertext(context)
            context.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failPending("the connection closed")
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        guard !failed else {
            promise?.fail(OpenSSLContext.Failure(description: "the TLS connection failed"))
            return
        }
        guard handshaken else {
            early.append((bytes, promise))
            return
        }
        encrypt(bytes, promise: promise, context: context)
        if system_tls_pending(tls) >= 1 << 20 { sendCiphertext(context) }
    }

    func flush(context: ChannelHandlerContext) {
        guard handshaken else {
            earlyFlush = true
            return
        }
        sendCiphertext(context)
        context.flush()
    }

    private func encrypt(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        let result = bytes.withUnsafeReadableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return 1 }
            return system_tls_write(tls, base.assumingMemoryBound(to: UInt8.self), raw.count)
        }
        guard result == 1 else {
            promise?.fail(OpenSSLContext.Failure(description: "SSL_write failed"))
            fail(context, "SSL_write failed")
            return
        }
        if let promise { promises.append(promise) }
    }

    private func sendCiphertext(_ context: ChannelHandlerContext) {
        let pending = system_tls_pending(tls)
        guard pending > 0 else {
            // Nothing new to send: writes that produced no ciphertext (empty buffers) are done.
            for promise in promises { promise.succeed(()) }
            promises.removeAll(keepingCapacity: true)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: pending)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { raw in
            system_tls_take(tls, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), pending)
        }
        let promise: EventLoopPromise<Void>?
        switch promises.count {
        case 0: promise = nil
        case 1: promise = promises[0]
        default:
            let combined = context.eventLoop.makePromise(of: Void.self)
            let waiting = promises
            combined.futureResult.whenComplete { result in
                for promise in waiting { promise.completeWith(result) }
            }
            promise = combined
        }
        promises.removeAll(keepingCapacity: true)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    private func advanceHandshake(_ context: ChannelHandlerContext) {
        guard !handshaken, !failed else { return }
        let result = system_tls_handshake(tls)
        sendCiphertext(context)
        context.flush()
        switch result {
        case 1:
            guard cipher == expectedCipher else {
                fail(context, "negotiated \(cipher), expected \(expectedCipher)")
                return
            }
            handshaken = true
            let waiting = early
            early = []
            for (bytes, promise) in waiting { encrypt(bytes, promise: promise, context: context) }
            if earlyFlush || !waiting.isEmpty {
                sendCiphertext(context)
                context.flush()
            }
            // Application data may have come in the same read as the handshake's last message.
            decrypt(context)
        case 0:
            return
        default:
            fail(context, "TLS handshake failed")
        }
    }

    /// Decrypts everything handed in into one buffer (the plaintext is never larger than the
    /// ciphertext), passed on in one read as NIOSSL does.
    private func decrypt(_ context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: system_tls_pending_input(tls) + (16 << 10))
        while !failed {
            var status: Int32 = 0
            if buffer.writableBytes < 16 << 10 {
                context.fireChannelRead(wrapInboundOut(buffer))
                buffer = context.channel.allocator.buffer(capacity: system_tls_pending_input(tls) + (16 << 10))
            }
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { raw in
                status = system_tls_read(tls, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), raw.count)
                return max(Int(status), 0)
            }
            if status < 0 {
                if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
                fail(context, "TLS record failed, or the peer closed")
                return
            }
            if status == 0 { break }
        }
        if buffer.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(buffer)) }
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        guard !failed else { return }
        failed = true
        failPending(reason)
        context.fireErrorCaught(OpenSSLContext.Failure(description: reason))
        context.close(promise: nil)
    }

    private func failPending(_ reason: String) {
        let error = OpenSSLContext.Failure(description: reason)
        for (_, promise) in early { promise?.fail(error) }
        for promise in promises { promise.fail(error) }
        early = []
        promises = []
    }
}
