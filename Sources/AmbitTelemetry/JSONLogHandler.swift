import AmbitModel
public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes one JSON object per line: `{"level":…,"time":…,"scope":…,"message":…, …metadata}`, the
/// shape of ztunnel's JSON logs (so one pipeline reads both). Integer metadata (`bytes_sent`) are JSON
/// numbers, as ztunnel writes them; other metadata values are flattened to strings.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let sink: LogSink

    public init(label: String, level: Logger.Level = .info, sink: LogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Built as UTF-8 bytes in one buffer: a node agent writes a line per connection (the access log),
        // so no intermediate strings, no Foundation date formatter.
        var line = Self.head(level: event.level, label: label, message: event.message.description)
        let merged: Logger.Metadata
        if metadata.isEmpty {
            merged = event.metadata ?? [:]
        } else {
            merged = metadata.merging(event.metadata ?? [:]) { $1 }
        }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line.append(UInt8(ascii: ","))
            JSONValue.appendQuoted(key, to: &line)
            line.append(UInt8(ascii: ":"))
            Self.appendJSON(value, to: &line)
        }
        line.append(contentsOf: "}\n".utf8)
        sink.write(line)
    }

    /// A line's first members, `{"level":…,"time":…,"scope":…,"message":…` (no closing brace).
    static func head(level: Logger.Level, label: String, message: String) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(1024)  // a waypoint's access-log line is ~650 bytes
        line.append(contentsOf: #"{"level":"#.utf8)
        JSONValue.appendQuoted(level.rawValue, to: &line)
        line.append(contentsOf: #","time":""#.utf8)
        appendTimestamp(to: &line)
        line.append(contentsOf: #"","scope":"#.utf8)
        JSONValue.appendQuoted(label, to: &line)
        line.append(contentsOf: #","message":"#.utf8)
        JSONValue.appendQuoted(message, to: &line)
        return line
    }

    /// The current time in UTC, `2026-12-06T21:16:14.874Z` (ISO 8601, milliseconds).
    static func timestamp() -> String {
        var bytes: [UInt8] = []
        appendTimestamp(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func appendTimestamp(to line: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var fields = tm()
        gmtime_r(&seconds, &fields)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            var value = value
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                value %= divisor
                divisor /= 10
            }
        }
        digits(Int(fields.tm_year) + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(Int(fields.tm_mon) + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(Int(fields.tm_mday), 2)
        line.append(UInt8(ascii: "T"))
        digits(Int(fields.tm_hour), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(fields.tm_min), 2)
        line.append(UInt8(ascii: ":"))
        digits(Int(fields.tm_sec), 2)
        line.append(UInt8(ascii: "."))
        digits(now.tv_nsec / 1_000_000, 3)
        line.append(UInt8(ascii: "Z"))
    }

    /// A metadata value as JSON: integers as numbers, anything else as a string.
    static func appendJSON(_ value: Logger.Metadata.Value, to line: inout [UInt8]) {
        switch value {
        case .string(let text):
            JSONValue.appendQuoted(text, to: &line)
        case .stringConvertible(let convertible):
            switch convertible {
            case let number as Int: line.append(contentsOf: String(number).utf8)
            case let number as UInt64: line.append(contentsOf: String(number).utf8)
            case let number as Int64: line.append(contentsOf: String(number).utf8)
            case let number as UInt32: line.append(contentsOf: String(number).utf8)
            default: JSONValue.appendQuoted(convertible.description, to: &line)
            }
        case .dictionary, .array:
            JSONValue.appendQuoted("\(value)", to: &line)
        }
    }
}

/// A handler that writes a line whose fields the caller renders as JSON itself, in its own order (the
/// access log, ``AccessLog``). The caller has checked the level.
public protocol JSONLineWriting: Sendable {
    /// Writes the line and returns true, or returns false (writing nothing) when this handler cannot:
    /// it does not write JSON, or it carries metadata of its own that belongs in every line. `fields`
    /// appends the members, each preceded by a comma.
    func writeJSONLine(level: Logger.Level, message: String, fields: (inout [UInt8]) -> Void) -> Bool
}

extension JSONLogHandler: JSONLineWriting {
    public func writeJSONLine(level: Logger.Level, message: String, fields: (inout [UInt8]) -> Void) -> Bool {
        guard metadata.isEmpty else { return false }
        var line = Self.head(level: level, label: label, message: message)
        fields(&line)
        line.append(contentsOf: "}\n".utf8)
        sink.write(line)
        return true
    }
}

/// Where log lines go: standard error (or another descriptor), or a buffer in tests.
public final class LogSink: Sendable {
    private let target: Mutex<Target>

    private enum Target {
        case descriptor(Int32)
        case buffer([String])
    }

    public static let standardError = LogSink(buffered: false)

    /// How long a line waits, in milliseconds, for a full non-blocking descriptor: before its first
    /// byte (then the line is dropped, whole), and between the parts of a line once it has begun (a
    /// log collector must never see half a line followed by the next one).
    private let waitBeforeDropping: Int32
    private let waitWithinLine: Int32

    public init(buffered: Bool = true) {
        target = Mutex(buffered ? .buffer([]) : .descriptor(2))
        (waitBeforeDropping, waitWithinLine) = (100, 1_000)
    }

    /// Lines go to `fileDescriptor` (tests: a pipe; benchmarks: `/dev/null`).
    public init(fileDescriptor: Int32, waitBeforeDropping: Int32 = 100, waitWithinLine: Int32 = 1_000) {
        target = Mutex(.descriptor(fileDescriptor))
        (self.waitBeforeDropping, self.waitWithinLine) = (waitBeforeDropping, waitWithinLine)
    }

    /// One line, written whole: with `write(2)` (retried until all of it is out), or kept. A
    /// descriptor someone made non-blocking is waited on as a blocking one would be, within bounds.
    func write(_ line: [UInt8]) {
        target.withLock { target in
            switch target {
            case .descriptor(let fd):
                line.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                        if written >= 0 {
                            offset += written
                            continue
                        }
                        switch errno {
                        case EINTR: continue
                        case EAGAIN, EWOULDBLOCK:
                            var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                            let wait = offset == 0 ? waitBeforeDropping : waitWithinLine
                            let polled = poll(&ready, 1, wait)
                            if polled > 0 || (polled < 0 && errno == EINTR) { continue }
                            return  // the reader is stuck: drop the rest rather than stall the event loop
                        default:
                            return  // the descriptor is gone: nothing left to report it to
                        }
                    }
                }
            case .buffer(var lines):
                lines.append(String(decoding: line, as: UTF8.self))
                target = .buffer(lines)
            }
        }
    }

    /// Lines written so far (buffered sinks only).
    public var lines: [String] {
        target.withLock { target in
            if case .buffer(let lines) = target { return lines }
            return []
        }
    }
}

/// The log format chosen on the command line.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json

    /// Installs the process-wide log handler. Call once, at start-up, from an executable.
    public func bootstrap(level: Logger.Level) {
        switch self {
        case .json:
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
    }
}

/// A process-wide log level that can change at run time (the node agent's admin endpoint).
public final class LogLevelControl: Sendable {
    public static let shared = LogLevelControl()
    private let current: Mutex<Logger.Level>

    public init(level: Logger.Level = .info) {
        current = Mutex(level)
    }

    public var level: Logger.Level {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// Wraps a handler so its level is the shared ``LogLevelControl``'s.
public struct ControlledLogHandler: LogHandler {
    private var inner: any LogHandler {
        didSet { writer = inner as? any JSONLineWriting }
    }
    /// `inner` as a JSON line writer, cast once rather than per access-log line.
    private var writer: (any JSONLineWriting)?
    private let control: LogLevelControl

    public init(_ inner: any LogHandler, control: LogLevelControl) {
        var inner = inner
        inner.logLevel = .trace
        self.inner = inner
        self.writer = inner as? any JSONLineWriting
        self.control = control
    }

    public var logLevel: Logger.Level {
        get { control.level }
        set { control.level = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        inner.log(event: event)
    }
}

extension ControlledLogHandler: JSONLineWriting {
    public func writeJSONLine(level: Logger.Level, message: String, fields: (inout [UInt8]) -> Void) -> Bool {
        writer?.writeJSONLine(level: level, message: message, fields: fields) ?? false
    }
}

extension LogFormat {
    /// Installs the process-wide handler with a level that ``LogLevelControl/shared`` can change later.
    public func bootstrapControlled(level: Logger.Level) {
        let control = LogLevelControl.shared
        control.level = level
        switch self {
        case .json:
            LoggingSystem.bootstrap { label in ControlledLogHandler(JSONLogHandler(label: label), control: control) }
        case .text:
            LoggingSystem.bootstrap { label in
                ControlledLogHandler(StreamLogHandler.standardError(label: label), control: control)
            }
        }
    }
}
