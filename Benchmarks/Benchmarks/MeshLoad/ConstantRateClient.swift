import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix

/// Open-loop HTTP/1.1 load at a fixed rate, latencies recorded from the intended send times.
enum ConstantRateClient {
    struct Plan: Sendable {
        var target: (host: String, port: Int)
        var path: String
        var rate: Double
        var connections: Int
        var duration: Double
        var warmup: Double
        var requestBytes: Int
    }

    /// What one connection measured (merged on its event loop, then across connections).
    struct Tally: Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var completed = 0
        var errors = 0
        var statuses: [Int: Int] = [:]
    }

    static func run(_ plan: Plan) throws -> String {
        guard plan.rate > 0, plan.connections > 0, plan.duration > 0 else {
            throw OptionError("--rate, --connections and --duration must be positive")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let interval = TimeAmount.nanoseconds(Int64(1e9 * Double(plan.connections) / plan.rate))
        let start = NIODeadline.now() + .milliseconds(200)
        let measureFrom = start + .nanoseconds(Int64(plan.warmup * 1e9))
        let end = measureFrom + .nanoseconds(Int64(plan.duration * 1e9))
        var body = ByteBuffer(repeating: UInt8(ascii: "b"), count: plan.requestBytes)
        body.moveWriterIndex(forwardBy: 0)
        var futures: [EventLoopFuture<Tally>] = []
        for index in 0..<plan.connections {
            let first = start + .nanoseconds(interval.nanoseconds * Int64(index) / Int64(plan.connections))
            let promise = group.next().makePromise(of: Tally.self)
            let request = RequestSchedule(
                host: plan.target.host,
                path: plan.path,
                body: body,
                first: first,
                interval: interval,
                measureFrom: measureFrom,
                end: end
            )
            ClientBootstrap(group: group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            ScheduledRequester(schedule: request, done: promise)
                        )
                    }
                }
                .connect(host: plan.target.host, port: plan.target.port)
                .whenFailure { error in promise.fail(error) }
            futures.append(promise.futureResult)
        }
        var total = Tally()
        var failures: [String] = []
        for future in futures {
            do {
                let tally = try future.wait()
                total.histogram.add(tally.histogram)
                total.completed += tally.completed
                total.errors += tally.errors
                total.statuses.merge(tally.statuses, uniquingKeysWith: +)
            } catch {
                failures.append("\(error)")
                total.errors += 1
            }
        }
        let histogram = total.histogram
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        let report: [String: Any] = [
            "target_rate": plan.rate, "connections": plan.connections, "duration_s": plan.duration,
            "request_bytes": plan.requestBytes, "completed": total.completed,
            "achieved_rate": Double(total.completed) / plan.duration, "errors": total.errors,
            "statuses": Dictionary(uniqueKeysWithValues: total.statuses.map { ("\($0.key)", $0.value) }),
            "latency_ms": [
                "p50": ms(50), "p90": ms(90), "p99": ms(99), "p99.9": ms(99.9),
                "max": Double(histogram.max) / 1000, "mean": histogram.mean / 1000,
            ],
            "connection_failures": failures,
        ]
        let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    struct RequestSchedule {
        let host: String
        let path: String
        let body: ByteBuffer
        let first: NIODeadline
        let interval: TimeAmount
        let measureFrom: NIODeadline
        let end: NIODeadline
    }

    /// Sends request k at `first + k × interval` (or as soon as the previous response is in, if
    /// later) and records `response time − intended time` for those intended inside the window.
    final class ScheduledRequester: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        let schedule: RequestSchedule
        let done: EventLoopPromise<Tally>
        var tally = Tally()
        var intended: NIODeadline
        var status = 0
        var finished = false

        init(schedule: RequestSchedule, done: EventLoopPromise<Tally>) {
            self.schedule = schedule
            self.done = done
            self.intended = schedule.first
        }

        func channelActive(context: ChannelHandlerContext) {
            sendWhenDue(context: context)
        }

        private func sendWhenDue(context: ChannelHandlerContext) {
            guard intended < schedule.end else {
                finish(context: context)
                return
            }
            let now = NIODeadline.now()
            if intended > now {
                let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.eventLoop.assumeIsolated().scheduleTask(deadline: intended) { [self] in
                    send(context: loopBound.value)
                }
            } else {
                send(context: context)
            }
        }

        private func send(context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "host", value: schedule.host)
            headers.add(name: "content-length", value: "\(schedule.body.readableBytes)")
            headers.add(name: "content-type", value: "application/octet-stream")
            context.write(
                wrapOutboundOut(.head(.init(version: .http1_1, method: .POST, uri: schedule.path, headers: headers))),
                promise: nil
            )
            context.write(wrapOutboundOut(.body(.byteBuffer(schedule.body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = Int(head.status.code)
            case .body: break
            case .end:
                if intended >= schedule.measureFrom {
                    let latency = NIODeadline.now() - intended
                    _ = tally.histogram.record(UInt64(max(latency.nanoseconds / 1000, 1)))
                    tally.completed += 1
                    tally.statuses[status, default: 0] += 1
                    if status != 200 { tally.errors += 1 }
                }
                intended = intended + schedule.interval
                sendWhenDue(context: context)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            tally.errors += 1
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !finished {
                // The connection died early: the requests it still owed count as errors.
                let missing = max(0, Int((schedule.end - intended).nanoseconds / max(schedule.interval.nanoseconds, 1)))
                tally.errors += missing
                finished = true
                done.succeed(tally)
            }
        }

        private func finish(context: ChannelHandlerContext) {
            guard !finished else { return }
            finished = true
            done.succeed(tally)
            context.close(promise: nil)
        }
    }
}
