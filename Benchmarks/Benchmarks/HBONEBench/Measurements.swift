import Foundation
import Histogram
import NIOCore

// The two measurements every HBONEBench comparison makes, whatever paths it compares.

/// Bulk throughput in Gbit/s of each named port: `repetitions` transfers of `size` bytes each, the ports
/// interleaved within every repetition; the sink's count of every transfer is checked.
func bulkThroughput(_ ports: [(name: String, port: Int)], group: any EventLoopGroup, size: Int, repetitions: Int)
    async throws -> [String: [Double]]
{
    var results: [String: [Double]] = [:]
    for _ in 0..<repetitions {
        for (name, port) in ports {
            let promise = group.next().makePromise(of: String.self)
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try await connect(port: port, group: group) { BulkSender(total: size, done: promise) }
            let reply = try await promise.futureResult.get()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard reply == "\(size)" else { fatalError("\(name): sink counted \(reply), expected \(size)") }
            results[name, default: []].append(Double(size) * 8 / seconds / 1e9)
        }
    }
    return results
}

/// `rounds` sequential 1 KiB round trips on one connection to `port`, after a warm-up connection of
/// 200 (connection set-up, pool, TLS).
func roundTrips(port: Int, group: any EventLoopGroup, rounds: Int) async throws -> Histogram<UInt64> {
    let warm = group.next().makePromise(of: Histogram<UInt64>.self)
    _ = try await connect(port: port, group: group) { PingPong(rounds: 200, done: warm) }
    _ = try await warm.futureResult.get()
    let promise = group.next().makePromise(of: Histogram<UInt64>.self)
    _ = try await connect(port: port, group: group) { PingPong(rounds: rounds, done: promise) }
    return try await promise.futureResult.get()
}

/// A percentile of a histogram of nanoseconds, in microseconds with one decimal.
func microseconds(_ histogram: Histogram<UInt64>, _ percentile: Double) -> String {
    String(format: "%.1f", Double(histogram.valueAtPercentile(percentile)) / 1000)
}
