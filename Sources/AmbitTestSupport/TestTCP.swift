import AmbitRelay
import Crypto
import Glibc
public import NIOCore
import NIOPosix

/// What a ``TestTCPServer`` does with each connection.
public enum TestTCPBehaviour: Sendable {
    /// Writes back what it reads; half-closes when the client does.
    case echo
    /// Reads everything, then replies `"<byte count> <sha256 hex>"` and closes.
    case digest
    /// Writes `count` bytes of ``TestPattern`` and closes its output; reads and discards input.
    case source(Int)
    /// Closes its output at once (half-close towards the client), reads until the client's end of
    /// stream and then reports `"<byte count> <sha256 hex>"` of what it read.
    case closeOutputFirst(report: @Sendable (String) -> Void)
    /// Reads `count` bytes, stops reading for `stall` (so the sender backs up), then closes the
    /// connection completely without reading the rest (an application that gives up on a
    /// client that is still sending, as iperf3's server does at the end of a test).
    case closeAfterReading(Int, stall: TimeAmount)
    /// Reads `count` bytes, then closes with a TCP reset (SO_LINGER 0), as a crashing
    /// application's socket does.
    case resetAfterReading(Int)
    /// Reads and discards; reports how the client's side ended: `"eof"` (FIN) or `"reset"` (RST).
    case reportEnd(@Sendable (String) -> Void)
}

/// A plain TCP server on 127.0.0.1 for relay tests: the "application" behind HBONE.
public final class TestTCPServer: Sendable {
    public let channel: any Channel
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) {
        self.channel = channel
    }

    public static func start(_ behaviour: TestTCPBehaviour, group: any EventLoopGroup, host: String = "127.0.0.1")
        async throws
        -> TestTCPServer
    {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TestServerHandler(behaviour))
                }
            }
            .bind(host: host, port: 0)
            .get()
        return TestTCPServer(channel: channel)
    }

    public func close() async {
        try? await channel.close()
    }
}

/// Deterministic test bytes that are cheap to make even in a debug build: a fixed 1 MiB
/// pseudo-random block repeated, with each 64 KiB stamped with its index (so reordered or
/// duplicated blocks change the digest).
public enum TestPattern {
    private static let blockSize = 1 << 20
    private static let stampEvery = 1 << 16

    private static let block: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes = [UInt8](repeating: 0, count: blockSize)
        for index in 0..<blockSize {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        return bytes
    }()

    public static func bytes(from offset: Int, count: Int) -> [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(count)
        var position = offset
        while position < offset + count {
            let inBlock = position % blockSize
            let take = min(blockSize - inBlock, offset + count - position)
            result += block[inBlock..<(inBlock + take)]
            position += take
        }
        // Stamp the index of every 64 KiB unit into its first 8 bytes.
        var unit = (offset + stampEvery - 1) / stampEvery * stampEvery
        while unit < offset + count {
            var index = UInt64(unit / stampEvery)
            for byte in 0..<min(8, offset + count - unit) {
                result[unit - offset + byte] = UInt8(truncatingIfNeeded: index)
                index >>= 8
            }
            unit += stampEvery
        }
        return result
    }

    public static func digest(count: Int, chunk: Int = 1 << 20) -> String {
        var hasher = SHA256()
        var offset = 0
        while offset < count {
            let size = min(chunk, count - offset)
            hasher.update(data: bytes(from: offset, count: size))
            offset += size
        }
        return hex(hasher.finalize())
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { String($0 >> 4, radix: 16) + String($0 & 0xf, radix: 16) }.joined()
    }

    /// SHA-256 over bytes that arrive in pieces.
    public struct StreamingDigest: Sendable {
        private var hasher = SHA256()

        public init() {}

        public mutating func update(_ buffer: ByteBuffer) {
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        }

        public var hex: String { TestPattern.hex(hasher.finalize()) }
    }

    /// SHA-256 of `bytes`, in hex.
    public static func sha256(_ bytes: [UInt8]) -> String {
        hex(SHA256.hash(data: bytes))
    }
}

private final class TestServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let behaviour: TestTCPBehaviour
    private var stalled = false
    private var hasher = SHA256()
    private var received = 0
    private var sender: PatternSender?

    init(_ behaviour: TestTCPBehaviour) {
        self.behaviour = behaviour
    }

    func channelActive(context: ChannelHandlerContext) {
        switch behaviour {
        case .source(let count):
            sender = PatternSender(total: count, halfCloseWhenDone: true)
            sender?.pump(context: context)
        case .closeOutputFirst:
            context.close(mode: .output, promise: nil)
        default:
            break
        }
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sender?.pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received += buffer.readableBytes
        switch behaviour {
        case .echo:
            context.write(data, promise: nil)
        case .digest, .closeOutputFirst:
            buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        case .source:
            break
        case .reportEnd:
            break
        case .resetAfterReading(let count):
            guard received >= count, !stalled else { break }
            stalled = true
            RelaySockets.reset(context.channel)
        case .closeAfterReading(let count, let stall):
            guard received >= count, !stalled else { break }
            stalled = true
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: stall) { loopBound.value.close(promise: nil) }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else { return }
        switch behaviour {
        case .echo:
            context.flush()
            context.close(mode: .output, promise: nil)
        case .digest:
            let reply = "\(received) \(TestPattern.hex(hasher.finalize()))"
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: reply))).assumeIsolated()
                .whenComplete { _ in context.close(promise: nil) }
        case .source, .closeAfterReading, .resetAfterReading:
            break
        case .reportEnd:
            reportEnd("eof")
            context.close(promise: nil)
        case .closeOutputFirst:
            reportOnce()
            context.close(promise: nil)
        }
    }

    /// NIO closes a socket fully, without an `inputClosed` event, when its second half closes.
    func channelInactive(context: ChannelHandlerContext) {
        reportOnce()
        reportEnd("closed")
        context.fireChannelInactive()
    }

    private var reported = false

    /// For ``TestTCPBehaviour/reportEnd(_:)``: the first way the connection ended, once.
    private func reportEnd(_ how: @autoclosure () -> String) {
        guard case .reportEnd(let report) = behaviour, !reported else { return }
        reported = true
        report(how())
    }

    private func reportOnce() {
        guard case .closeOutputFirst(let report) = behaviour, !reported else { return }
        reported = true
        report("\(received) \(TestPattern.hex(hasher.finalize()))")
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reportEnd((error as? IOError)?.errnoCode == ECONNRESET ? "reset" : "error: \(error)")
        context.close(promise: nil)
    }
}

/// Writes `total` pattern bytes while the channel is writable; call `pump` again whenever it
/// becomes writable. Half-closes when done, if asked to.
final class PatternSender {
    let total: Int
    private(set) var sent = 0
    private var hasher = SHA256()
    private let halfCloseWhenDone: Bool
    private let chunk = 256 << 10
    private(set) var finished = false

    init(total: Int, halfCloseWhenDone: Bool) {
        self.total = total
        self.halfCloseWhenDone = halfCloseWhenDone
    }

    var digest: String {
        TestPattern.hex(hasher.finalize())
    }

    func pump(context: ChannelHandlerContext) {
        guard !finished else { return }
        while sent < total && context.channel.isWritable {
            let size = min(chunk, total - sent)
            let bytes = TestPattern.bytes(from: sent, count: size)
            hasher.update(data: bytes)
            sent += size
            context.write(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
        }
        context.flush()
        if sent >= total {
            finished = true
            if halfCloseWhenDone { context.close(mode: .output, promise: nil) }
        }
    }
}

/// A test client: sends bytes (or a pattern), half-closes, and reads until the server closes.
public enum TestTCPClient {
    public struct Result: Sendable {
        /// Everything received (up to `keep` bytes), the total count and its SHA-256.
        public let received: [UInt8]
        public let receivedCount: Int
        public let receivedDigest: String
        /// SHA-256 of what was sent.
        public let sentDigest: String
        /// Set when the connection ended with an error (a reset) rather than a clean end of stream.
        public let error: String?

        public var text: String { String(decoding: received, as: UTF8.self) }
    }

    public enum Payload: Sendable {
        case bytes([UInt8])
        case pattern(Int)
    }

    /// Connects to `host:port`, sends `payload`, half-closes (when `halfClose`), and collects the
    /// reply until end of stream. Never throws for a reset: `Result.error` says what happened.
    public static func exchange(
        host: String = "127.0.0.1",
        port: Int,
        payload: Payload,
        halfClose: Bool = true,
        keep: Int = 1 << 20,
        group: any EventLoopGroup
    ) async throws -> Result {
        let promise = group.next().makePromise(of: Result.self)
        let connecting = ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        TestClientHandler(payload: payload, halfClose: halfClose, keep: keep, promise: promise)
                    )
                }
            }
            .connect(host: host, port: port)
        let channel: any Channel
        do {
            channel = try await connecting.get()
        } catch {
            // A peer that resets at once can fail the connect itself (the handler never ran): that is a
            // reset too, reported the same way.
            let sent: String
            switch payload {
            case .bytes(let bytes): sent = TestPattern.sha256(bytes)
            case .pattern(let count): sent = TestPattern.digest(count: count)
            }
            let result = Result(
                received: [],
                receivedCount: 0,
                receivedDigest: TestPattern.sha256([]),
                sentDigest: sent,
                error: "\(error)"
            )
            promise.succeed(result)
            return result
        }
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }
}

private final class TestClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let sender: PatternSender?
    private let bytes: [UInt8]?
    private let halfClose: Bool
    private let keep: Int
    private let promise: EventLoopPromise<TestTCPClient.Result>
    private var received: [UInt8] = []
    private var count = 0
    private var hasher = SHA256()
    private var sentDigest = ""
    private var error: String?
    private var done = false

    init(payload: TestTCPClient.Payload, halfClose: Bool, keep: Int, promise: EventLoopPromise<TestTCPClient.Result>) {
        switch payload {
        case .bytes(let bytes):
            self.bytes = bytes
            self.sender = nil
            var hasher = SHA256()
            hasher.update(data: bytes)
            self.sentDigest = TestPattern.hex(hasher.finalize())
        case .pattern(let count):
            self.bytes = nil
            self.sender = PatternSender(total: count, halfCloseWhenDone: halfClose)
        }
        self.halfClose = halfClose
        self.keep = keep
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        if let bytes {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            if halfClose { context.close(mode: .output, promise: nil) }
        }
        sender?.pump(context: context)
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sender?.pump(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        count += buffer.readableBytes
        buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        if received.count < keep {
            received += buffer.readableBytesView.prefix(keep - received.count)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            finish(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = "\(error)" }
        finish(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(context: context)
    }

    private func finish(context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        let digest = sender?.digest ?? sentDigest
        promise.succeed(
            TestTCPClient.Result(
                received: received,
                receivedCount: count,
                receivedDigest: TestPattern.hex(hasher.finalize()),
                sentDigest: digest,
                error: error
            )
        )
        context.close(promise: nil)
    }
}
