import AmbitModel
import AmbitTelemetry
import Benchmark
import Glibc
import Logging

/// The waypoint writes one access-log line per request (the node agent one per connection): the line
/// written straight into the log's buffer (with a `write(2)` per line, or queued for the log's own
/// thread), against the same fields passed through `Logger` metadata (sorted by the JSON handler),
/// which is how every line was written before 2026-12-07. All write to `/dev/null`, so the `write(2)`
/// is counted and no terminal is.
func accessLogBenchmarks() {
    let devNull = open("/dev/null", O_WRONLY)
    guard devNull >= 0 else { fatalError("cannot open /dev/null") }
    let logger = Logger(label: "ambit.waypoint") {
        JSONLogHandler(label: $0, sink: LogSink(fileDescriptor: devNull))
    }
    let entry = AccessLogEntry(
        direction: .destination,
        source: .init(
            address: "10.244.1.5:40312",
            workload: "client-7d9f8c6b5-x2lqz",
            namespace: "demo",
            identity: try? SpiffeID(namespace: "demo", serviceAccount: "client")
        ),
        destination: .init(
            address: "10.244.2.9:8080",
            workload: "server-5c4b7d8f9-k8s2m",
            namespace: "demo",
            identity: try? SpiffeID(namespace: "demo", serviceAccount: "server")
        ),
        hboneAddress: try? IPEndpoint(parsing: "10.96.0.20:8080"),
        service: "server.demo.svc.cluster.local",
        requestBytes: 1024,
        responseBytes: 1024,
        duration: .microseconds(830),
        responseFlags: .none,
        request: .init(
            method: "POST",
            path: "/echo",
            protocolName: "HTTP/1.1",
            status: 200,
            route: "default",
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )
    )
    let log = AccessLog(logger: logger)
    Benchmark("Access log line, waypoint request (JSON, written directly)") { benchmark in
        for _ in benchmark.scaledIterations {
            log.record(entry)
        }
    }
    // As the processes write it since 2026-12-07: the line is queued for the log's own thread, which
    // writes batches of up to 50 ms (its `write(2)` calls are not the logging thread's; a flush here
    // would measure the thread's wake-up instead).
    let background = LogSink(backgroundFileDescriptor: devNull)
    let queued = AccessLog(logger: Logger(label: "ambit.waypoint") { JSONLogHandler(label: $0, sink: background) })
    Benchmark("Access log line, waypoint request (JSON, queued for the log's thread)") { benchmark in
        for _ in benchmark.scaledIterations {
            queued.record(entry)
        }
        // A line dropped (the log's thread starved of CPU) would cost less than one queued.
        precondition(background.droppedLines == 0, "the log's thread fell behind and lines were dropped")
    }
    Benchmark("Access log line, waypoint request (through Logger metadata)") { benchmark in
        for _ in benchmark.scaledIterations {
            logger.log(level: .info, entry.message, metadata: entry.metadata)
        }
    }
}
