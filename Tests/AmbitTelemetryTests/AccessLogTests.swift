import AmbitModel
import AmbitTestSupport
import Foundation
import Logging
import Testing

@testable import AmbitTelemetry

/// The access log's JSON line is written straight into the log buffer (no metadata dictionary, no
/// sorting); these pin its contents to what the `Logger` path writes, and its keys to ztunnel's order.
@Suite struct AccessLogTests {
    /// A waypoint's line with every field known; the path carries a quote and non-ASCII text.
    static let request = AccessLogEntry(
        direction: .destination,
        source: .init(
            address: "10.0.1.5:40000",
            workload: "client-7d9f",
            namespace: "demo",
            identity: .test("demo", "client")
        ),
        destination: .init(
            address: "10.0.2.9:8080",
            workload: "server-5c4b",
            namespace: "demo",
            identity: .test("demo", "server")
        ),
        hboneAddress: try! IPEndpoint(parsing: "10.0.2.9:8080"),
        service: "server.demo.svc.cluster.local",
        requestBytes: 1024,
        responseBytes: 2048,
        duration: .milliseconds(12.7),
        responseFlags: .none,
        request: .init(
            method: "GET",
            path: #"/a"b/café"#,
            protocolName: "HTTP/1.1",
            status: 200,
            route: "default",
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )
    )

    /// The line without its `time` member (which differs between two lines).
    static func timeless(_ line: String) -> String {
        line.replacing(/"time":"[^"]*",/, with: "")
    }

    @Test func theJSONLineHasZtunnelsKeyOrder() throws {
        let sink = LogSink()
        let log = AccessLog(logger: Logger(label: "ambit.access") { JSONLogHandler(label: $0, sink: sink) })
        log.record(Self.request)
        let line = try #require(sink.lines.first)
        let expected =
            #"{"level":"info","scope":"ambit.access","message":"request complete","#
            + #""src.addr":"10.0.1.5:40000","src.workload":"client-7d9f","src.namespace":"demo","#
            + #""src.identity":"spiffe://cluster.local/ns/demo/sa/client","dst.addr":"10.0.2.9:8080","#
            + #""dst.hbone_addr":"10.0.2.9:8080","dst.service":"server.demo.svc.cluster.local","#
            + #""dst.workload":"server-5c4b","dst.namespace":"demo","#
            + #""dst.identity":"spiffe://cluster.local/ns/demo/sa/server","direction":"inbound","#
            + #""bytes_sent":2048,"bytes_recv":1024,"duration":"12ms","response_flags":"-","#
            + #""method":"GET","path":"/a\"b/café","protocol":"HTTP/1.1","status":200,"route":"default","#
            + #""traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"# + "\n"
        #expect(Self.timeless(line) == expected)
    }

    @Test(arguments: [
        request,
        AccessLogEntry(
            direction: .source,
            source: .init(address: "10.0.1.5:40000", workload: "unknown"),
            destination: .init(address: "10.0.2.9:8080", namespace: ""),
            requestBytes: 0,
            responseBytes: 7,
            duration: .seconds(3),
            responseFlags: .connectFailure,
            error: "connection refused\n(after 1 attempt)"
        ),
    ])
    func theJSONLineSaysWhatTheLoggerPathSays(entry: AccessLogEntry) throws {
        let direct = LogSink()
        AccessLog(logger: Logger(label: "a") { JSONLogHandler(label: $0, sink: direct) }).record(entry)
        let viaLogger = LogSink()
        let level: Logger.Level = entry.error == nil ? .info : .error
        Logger(label: "a") { JSONLogHandler(label: $0, sink: viaLogger) }
            .log(level: level, entry.message, metadata: entry.metadata)
        func object(_ sink: LogSink) throws -> NSDictionary {
            let line = try #require(sink.lines.first)
            var object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            object["time"] = nil
            return object as NSDictionary
        }
        let written = try object(direct)
        #expect(written == (try object(viaLogger)))
        #expect(written["level"] as? String == level.rawValue)
        if entry.request == nil {
            // Unknown and empty values are left out, not written.
            #expect(written["src.workload"] == nil && written["dst.namespace"] == nil)
            #expect(written["error"] as? String == "connection refused\n(after 1 attempt)")
        }
    }

    @Test func theLevelIsHonoured() throws {
        let sink = LogSink()
        let control = LogLevelControl(level: .warning)
        let logger = Logger(label: "a") {
            ControlledLogHandler(JSONLogHandler(label: $0, sink: sink), control: control)
        }
        let log = AccessLog(logger: logger)
        log.record(Self.request)
        #expect(sink.lines.isEmpty)
        var failed = Self.request
        failed.error = "upstream reset"
        log.record(failed)
        let line = try #require(sink.lines.first)
        #expect(line.hasPrefix(#"{"level":"error","#) && line.contains(#","error":"upstream reset","#))
        control.level = .info
        log.record(Self.request)
        #expect(sink.lines.count == 2)
    }

    @Test(arguments: [false, true])
    func aHandlerWithMetadataOfItsOwnKeepsIt(controlled: Bool) throws {
        let sink = LogSink()
        var logger = Logger(label: "a") { label -> any LogHandler in
            let handler = JSONLogHandler(label: label, sink: sink)
            return controlled ? ControlledLogHandler(handler, control: LogLevelControl()) : handler
        }
        // Set after the handler was made (a wrapper that cached its inner handler must see it).
        logger[metadataKey: "node"] = "node1"
        AccessLog(logger: logger).record(Self.request)
        let line = try #require(sink.lines.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["node"] as? String == "node1")
        #expect(object["dst.service"] as? String == "server.demo.svc.cluster.local")
    }

    @Test func textNeedingNoEscapeIsCopiedAndTheRestIsEscaped() {
        func quoted(_ text: String) -> String {
            var bytes: [UInt8] = []
            JSONValue.appendQuoted(text, to: &bytes)
            return String(decoding: bytes, as: UTF8.self)
        }
        #expect(quoted("") == #""""#)
        #expect(quoted("short") == #""short""#)
        #expect(
            quoted("a longer line with ünïcödé, past the small-string size")
                == #""a longer line with ünïcödé, past the small-string size""#
        )
        #expect(quoted(String(repeating: "x", count: 40) + "\"") == "\"" + String(repeating: "x", count: 40) + #"\"""#)
        #expect(quoted("tab\there\u{7F}") == #""tab\there\#u{7F}""#)
        #expect(quoted("\u{0}\\") == #""\u0000\\""#)
    }
}
