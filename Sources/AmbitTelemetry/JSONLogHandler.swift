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
        sink.write(line, urgent: event.level >= .warning)
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
        sink.write(line, urgent: level >= .warning)
        return true
    }
}

/// Where log lines go: standard error (or another descriptor), written by a background thread or by
/// the logging thread itself, or a buffer in tests.
public final class LogSink: Sendable {
    private enum Target: Sendable {
        /// Each line written as it is logged; the waits for a full non-blocking descriptor, in milliseconds:
        /// before a line's first byte (then it is dropped, whole), and between the parts of a line once it
        /// has begun (a log collector must never see half a line followed by the next one).
        case descriptor(Int32, waitBeforeDropping: Int32, waitWithinLine: Int32)
        case background(BackgroundLogWriter)
        case buffer
    }
    private let target: Target
    /// Serializes the writes of a synchronous descriptor (lines are never interleaved); holds the lines
    /// of a buffer sink.
    private let lock = Mutex<[String]>([])

    /// Standard error, written by a background thread (``BackgroundLogWriter``: a line waits up to
    /// 50 ms, a warning or error none) and flushed when the process exits.
    public static let standardError: LogSink = {
        let sink = LogSink(backgroundFileDescriptor: 2)
        atexit { LogSink.standardError.flush() }
        standardErrorStarted.store(true, ordering: .releasing)
        return sink
    }()
    private static let standardErrorStarted = Atomic<Bool>(false)

    /// Lines ``standardError`` dropped so far (0 until something logged through it: reading this does
    /// not start its thread).
    public static var standardErrorDroppedLines: Int {
        standardErrorStarted.load(ordering: .acquiring) ? standardError.droppedLines : 0
    }

    /// A sink that keeps its lines in memory (`buffered`, for tests) or writes each to standard error
    /// as it is logged.
    public init(buffered: Bool = true) {
        target = buffered ? .buffer : .descriptor(2, waitBeforeDropping: 100, waitWithinLine: 1_000)
    }

    /// Lines go to `fileDescriptor` as they are logged, each with its own `write(2)` (tests: a pipe).
    public init(fileDescriptor: Int32, waitBeforeDropping: Int32 = 100, waitWithinLine: Int32 = 1_000) {
        target = .descriptor(fileDescriptor, waitBeforeDropping: waitBeforeDropping, waitWithinLine: waitWithinLine)
    }

    /// Lines go to `fileDescriptor` in batches, from a thread of the sink's own: a line waits up to
    /// `flushInterval` (a warning or above none), at most `capacity` bytes wait (beyond that lines are
    /// dropped, counted in ``droppedLines`` and reported in the log).
    public init(
        backgroundFileDescriptor fileDescriptor: Int32,
        flushInterval: Duration = .milliseconds(50),
        capacity: Int = 1 << 20
    ) {
        target = .background(
            BackgroundLogWriter(descriptor: fileDescriptor, flushInterval: flushInterval, capacity: capacity)
        )
    }

    /// One line, written whole: queued for the background writer, written with `write(2)` (retried
    /// until all of it is out; a descriptor someone made non-blocking is waited on as a blocking one
    /// would be, within bounds), or kept. `urgent` (warning and above): not held back to join a batch.
    func write(_ line: [UInt8], urgent: Bool = false) {
        switch target {
        case .background(let writer):
            writer.append(line, urgent: urgent)
        case .descriptor(let fd, let waitBeforeDropping, let waitWithinLine):
            lock.withLock { _ in
                BackgroundLogWriter.writeWhole(
                    line,
                    to: fd,
                    waitBeforeDropping: waitBeforeDropping,
                    waitWithinLine: waitWithinLine
                )
            }
        case .buffer:
            lock.withLock { $0.append(String(decoding: line, as: UTF8.self)) }
        }
    }

    /// Waits until the lines logged so far are written (a background sink; at most `timeout`). True
    /// when they are.
    @discardableResult
    public func flush(timeout: Duration = .seconds(1)) -> Bool {
        guard case .background(let writer) = target else { return true }
        return writer.flush(timeout: timeout)
    }

    /// Writes what is pending and ends a background sink's thread (waiting at most `timeout`); later lines
    /// are not written. For a sink whose descriptor is about to be closed.
    public func close(timeout: Duration = .seconds(5)) {
        guard case .background(let writer) = target else { return }
        writer.stop(timeout: timeout)
    }

    deinit {
        close()
    }

    /// Lines a background sink dropped because its reader did not keep up.
    public var droppedLines: Int {
        guard case .background(let writer) = target else { return 0 }
        return writer.droppedLines
    }

    /// The background writer's `write(2)` batches so far.
    var batchesWritten: Int {
        guard case .background(let writer) = target else { return 0 }
        return writer.batchesWritten
    }

    /// Lines written so far (buffered sinks only).
    public var lines: [String] {
        lock.withLock { $0 }
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
