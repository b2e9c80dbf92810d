import AmbitHBONE
import AmbitModel
import AmbitRelay
import AmbitTestSupport
import Foundation
import Histogram
import Logging
import NIOCore
import NIOPosix

// Loopback comparison of three paths between the same load generator and the same sink:
//   direct:  client → sink
//   relay:   client → plain TCP relay (Ambit's relay, no TLS, no HTTP/2) → sink
//   hbone:   client → forwarder → HBONE client pool ⇒ mTLS HTTP/2 CONNECT ⇒ HBONE server → sink
// Run in release mode:  swift run -c release HBONEBench [throughput|latency|memory|all]
//                        swift run -c release HBONEBench tls-primitives   (BoringSSL's AEAD, ECDH, ECDSA;
//                                                                          peer chain verification)
//                        swift run -c release HBONEBench tls-backends     (the HBONE path with BoringSSL
//                                                                          and with the system's OpenSSL)
// Each component has its own event loop thread, as separate processes would; all share the
// machine's cores, so ratios are what this measures, not absolute network capacity.

let arguments = CommandLine.arguments.dropFirst()
let modes: Set<String> = ["throughput", "latency", "memory"]
let selected =
    ["memory-path", "churn", "bulk", "tls-primitives", "tls-backends"].contains(arguments.first)
    ? []
    : (arguments.contains { modes.contains($0) } ? modes.intersection(arguments) : modes)
let quick = arguments.contains("--quick")
/// `--path hbone` (or direct, relay) limits a run to one path, for profiling.
let onlyPath = arguments.firstIndex(of: "--path").flatMap {
    arguments.index(after: $0) < arguments.endIndex ? arguments[arguments.index(after: $0)] : nil
}
let allPaths = onlyPath.map { [$0] } ?? ["direct", "relay", "hbone"]

func rssKiB() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}

func endpoint(_ channel: any Channel) -> IPEndpoint {
    IPEndpoint(.v4(0x7F00_0001), UInt16(channel.localAddress!.port!))
}

/// The three paths, built once.
final class Paths: Sendable {
    let sinkGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let forwarderGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let sink: any Channel
    let relay: any Channel
    let forwarder: any Channel
    let server: HBONEServer
    let serverChannel: any Channel
    let client: HBONEClient

    init(sinkBehaviour: BenchSink.Mode) async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        sink = try await ServerBootstrap(group: sinkGroup)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BenchSink(mode: sinkBehaviour))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let target = endpoint(sink)
        relay = try await TCPPassthrough.listen(host: "127.0.0.1", port: 0, group: forwarderGroup, destination: target)
            .get()

        let pki = try TestPKI(now: Date() - 3600)
        let serverCertificate = try pki.issue(.test("bench", "server"), now: Date() - 60)
        let clientCertificate = try pki.issue(.test("bench", "client"), now: Date() - 60)
        let inbound = PassInbound()
        server = HBONEServer(
            trustDomain: "cluster.local",
            roots: [pki.authority.root],
            certificate: { serverCertificate },
            inbound: inbound,
            logger: logger
        )
        serverChannel = try await server.listen(host: "127.0.0.1", port: 0, group: serverGroup).get()
        client = HBONEClient(trustDomain: "cluster.local", roots: [pki.authority.root], logger: logger)
        let request = HBONETunnelRequest(
            sourceCertificate: clientCertificate,
            destinationIdentities: [.test("bench", "server")],
            nextHop: endpoint(serverChannel),
            authority: target
        )
        forwarder = try await HBONEForwarder.listen(host: "127.0.0.1", port: 0, group: forwarderGroup, client: client) {
            _ in request
        }.get()
    }

    func port(_ path: String) -> Int {
        switch path {
        case "direct": return sink.localAddress!.port!
        case "relay": return relay.localAddress!.port!
        default: return forwarder.localAddress!.port!
        }
    }
}

struct PassInbound: HBONEInboundHandler {
    func open(_ request: HBONEInboundRequest, on eventLoop: any EventLoop) -> EventLoopFuture<HBONEInboundResult> {
        UpstreamConnector.connect(to: request.authority, on: eventLoop).map { .connected($0, finished: nil) }.recover {
            .unavailable("\($0)")
        }
    }
}

/// The application behind every path: counts bytes (replying with the count at end of input),
/// or echoes.
final class BenchSink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    enum Mode: Sendable {
        case count
        case echo
    }

    let mode: Mode
    var received = 0

    init(mode: Mode) { self.mode = mode }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        if mode == .echo { context.write(data, promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if mode == .echo { context.flush() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: "\(received)")), promise: nil)
            context.close(promise: nil)
        }
    }
}

/// Writes `total` bytes from one reused 256 KiB buffer as fast as the socket takes them,
/// half-closes, and completes when the sink's count arrives.
final class BulkSender: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let total: Int
    var sent = 0
    let chunk: ByteBuffer
    let done: EventLoopPromise<String>
    var reply = ""

    init(total: Int, done: EventLoopPromise<String>) {
        self.total = total
        self.done = done
        self.chunk = ByteBuffer(repeating: 0x61, count: 256 << 10)
    }

    func channelActive(context: ChannelHandlerContext) { pump(context) }
    func channelWritabilityChanged(context: ChannelHandlerContext) { pump(context) }

    func pump(_ context: ChannelHandlerContext) {
        guard sent < total else { return }
        while sent < total && context.channel.isWritable {
            let size = min(chunk.readableBytes, total - sent)
            context.write(NIOAny(chunk.getSlice(at: 0, length: size)!), promise: nil)
            sent += size
        }
        context.flush()
        if sent >= total { context.close(mode: .output, promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reply += String(buffer: unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) { done.succeed(reply) }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error) }
}

/// Sends 1 KiB, waits for the 1 KiB echo, records the round trip, repeats.
final class PingPong: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let rounds: Int
    var round = 0
    var pending = 0
    var started: UInt64 = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000_000)
    let done: EventLoopPromise<Histogram<UInt64>>
    let message = ByteBuffer(repeating: 0x62, count: 1024)

    init(rounds: Int, done: EventLoopPromise<Histogram<UInt64>>) {
        self.rounds = rounds
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) { send(context) }

    func send(_ context: ChannelHandlerContext) {
        pending = message.readableBytes
        started = DispatchTime.now().uptimeNanoseconds
        context.writeAndFlush(NIOAny(message), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending -= unwrapInboundIn(data).readableBytes
        guard pending <= 0 else { return }
        _ = histogram.record(DispatchTime.now().uptimeNanoseconds - started)
        round += 1
        if round < rounds {
            send(context)
        } else {
            done.succeed(histogram)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error) }
}

func connect<H: ChannelHandler>(port: Int, group: any EventLoopGroup, handler: @escaping @Sendable () -> H) async throws
    -> any Channel
{
    try await ClientBootstrap(group: group)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
        }
        .connect(host: "127.0.0.1", port: port).get()
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

// MARK: Throughput.

if selected.contains("throughput") {
    let paths = try await Paths(sinkBehaviour: .count)
    let size = quick ? 256 << 20 : 2 << 30
    let repetitions = quick ? 1 : 3
    print("## Single-connection bulk throughput (\(size >> 20) MiB per run, \(repetitions) runs each, interleaved)\n")
    let results = try await bulkThroughput(
        allPaths.map { ($0, paths.port($0)) },
        group: paths.clientGroup,
        size: size,
        repetitions: repetitions
    )
    let direct = median(results["direct"] ?? [1])
    print("| path | Gbit/s (median) | runs | × direct |")
    print("|---|---:|---|---:|")
    for path in allPaths {
        let value = median(results[path]!)
        let runs = results[path]!.map { String(format: "%.2f", $0) }.joined(separator: ", ")
        print(String(format: "| %@ | %.2f | %@ | %.2f |", path, value, runs, value / direct))
    }
    print("")
}

// MARK: Latency.

if selected.contains("latency") {
    let paths = try await Paths(sinkBehaviour: .echo)
    let rounds = quick ? 2_000 : 20_000
    print("## 1 KiB request/response latency (\(rounds) sequential round trips on one connection)\n")
    print("| path | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in allPaths {
        let histogram = try await roundTrips(port: paths.port(path), group: paths.clientGroup, rounds: rounds)
        func us(_ percentile: Double) -> String { microseconds(histogram, percentile) }
        print(
            "| \(path) | \(us(50)) | \(us(90)) | \(us(99)) | \(us(99.9)) | \(String(format: "%.1f", Double(histogram.max) / 1000)) |"
        )
    }
    print("")
}

// MARK: Memory per idle tunnel.

// Each path is measured in a fresh process (this program, re-run with `memory-path <path>`), so
// memory freed by one path cannot hide the growth of the next.
if selected.contains("memory") {
    let count = quick ? 200 : 2_000
    print("## Memory per idle connection (\(count) idle connections, RSS growth of a fresh process)\n")
    print("| path | RSS growth KiB | per connection KiB | per connection net of direct KiB |")
    print("|---|---:|---:|---:|")
    var directPer = 0.0
    for path in ["direct", "relay", "hbone"] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["memory-path", path, "\(count)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let grown = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            fatalError("memory-path \(path): \(text)")
        }
        let per = Double(grown) / Double(count)
        if path == "direct" { directPer = per }
        print(String(format: "| %@ | %d | %.1f | %.1f |", path, grown, per, per - directPer))
    }
    print("")
}

if arguments.first == "tls-primitives" {
    boringSSLPrimitives(seconds: quick ? 0.5 : 3)
    try await peerVerification(seconds: quick ? 0.5 : 3)
    exit(0)
}

if arguments.first == "tls-backends" {
    try await tlsBackends(quick: quick)
    exit(0)
}

if arguments.first == "memory-path" {
    let path = arguments.dropFirst().first ?? "hbone"
    let count = Int(arguments.dropFirst(2).first ?? "") ?? 1000
    let paths = try await Paths(sinkBehaviour: .echo)
    // A few warm-up connections so pools, TLS contexts and allocator arenas exist before the baseline.
    for _ in 0..<8 {
        let warm = paths.clientGroup.next().makePromise(of: Histogram<UInt64>.self)
        _ = try await connect(port: paths.port(path), group: paths.clientGroup) { PingPong(rounds: 1, done: warm) }
        _ = try await warm.futureResult.get()
    }
    try await Task.sleep(for: .milliseconds(300))
    let before = rssKiB()
    var channels: [any Channel] = []
    var ready: [EventLoopFuture<Void>] = []
    for _ in 0..<count {
        let promise = paths.clientGroup.next().makePromise(of: Void.self)
        // One round trip proves the connection is up; then it stays open and idle.
        channels.append(
            try await connect(port: paths.port(path), group: paths.clientGroup) { IdleAfterOneRound(done: promise) }
        )
        ready.append(promise.futureResult)
    }
    for future in ready { _ = try await future.get() }
    try await Task.sleep(for: .milliseconds(500))
    print(rssKiB() - before)
    if ProcessInfo.processInfo.environment["AMBIT_MALLOC_STATS"] != nil,
        let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_stats")
    {
        unsafeBitCast(symbol, to: (@convention(c) () -> Void).self)()
    }
    exit(0)
}

// Connection churn: `churn <path> <count>` opens and closes `count` connections one after the
// other (one 1 KiB round trip each) and prints the RSS every tenth of the way: memory that grows
// with the number of connections that came and went is a leak.
// Bulk churn: `bulk <path> <count>` sends 256 MiB through `count` connections one after the other
// and prints the RSS after each: buffers a bulk transfer grows must be given back when it ends.
if arguments.first == "bulk" {
    let path = arguments.dropFirst().first ?? "hbone"
    let count = Int(arguments.dropFirst(2).first ?? "") ?? 5
    let paths = try await Paths(sinkBehaviour: .count)
    print("| transfers | RSS KiB |")
    print("|---:|---:|")
    for index in 1...count {
        let promise = paths.clientGroup.next().makePromise(of: String.self)
        _ = try await connect(port: paths.port(path), group: paths.clientGroup) {
            BulkSender(total: 256 << 20, done: promise)
        }
        _ = try await promise.futureResult.get()
        try await Task.sleep(for: .milliseconds(300))
        print("| \(index) | \(rssKiB()) |")
    }
    exit(0)
}

if arguments.first == "churn" {
    let path = arguments.dropFirst().first ?? "hbone"
    let count = Int(arguments.dropFirst(2).first ?? "") ?? 10_000
    let paths = try await Paths(sinkBehaviour: .echo)
    print("| connections | RSS KiB |")
    print("|---:|---:|")
    for index in 1...count {
        let promise = paths.clientGroup.next().makePromise(of: Void.self)
        let channel = try await connect(port: paths.port(path), group: paths.clientGroup) {
            IdleAfterOneRound(done: promise)
        }
        try await promise.futureResult.get()
        try await channel.close()
        if index % max(count / 10, 1) == 0 {
            try await Task.sleep(for: .milliseconds(200))
            print("| \(index) | \(rssKiB()) |")
        }
    }
    exit(0)
}

/// Does one 1 KiB round trip and then keeps the connection open without traffic.
final class IdleAfterOneRound: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<Void>
    var pending = 1024
    init(done: EventLoopPromise<Void>) { self.done = done }
    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(ByteBuffer(repeating: 0x63, count: 1024)), promise: nil)
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending -= unwrapInboundIn(data).readableBytes
        if pending <= 0 { done.succeed(()) }
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { done.fail(error) }
}
