import Foundation
public import Logging
import Synchronization

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
        var fields: [(String, String)] = [
            ("level", Self.quote(event.level.rawValue)),
            ("time", Self.quote(Self.timestamp())),
            ("scope", Self.quote(label)),
            ("message", Self.quote(event.message.description)),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            fields.append((key, Self.json(merged[key]!)))
        }
        var line = "{"
        for (index, field) in fields.enumerated() {
            if index > 0 { line += "," }
            line += Self.quote(field.0) + ":" + field.1
        }
        line += "}\n"
        sink.write(line)
    }

    static func timestamp() -> String {
        Date().formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
        )
    }

    /// A metadata value as JSON: integers as numbers, anything else as a string.
    static func json(_ value: Logger.Metadata.Value) -> String {
        if case .stringConvertible(let convertible) = value {
            switch convertible {
            case let number as Int: return String(number)
            case let number as UInt64: return String(number)
            case let number as Int64: return String(number)
            case let number as UInt32: return String(number)
            default: break
            }
        }
        return quote("\(value)")
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                result +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// Where log lines go: standard error, or a buffer in tests.
public final class LogSink: Sendable {
    private let target: Mutex<Target>

    private enum Target {
        case standardError
        case buffer([String])
    }

    public static let standardError = LogSink(buffered: false)

    public init(buffered: Bool = true) {
        target = Mutex(buffered ? .buffer([]) : .standardError)
    }

    func write(_ line: String) {
        target.withLock { target in
            switch target {
            case .standardError:
                FileHandle.standardError.write(Data(line.utf8))
            case .buffer(var lines):
                lines.append(line)
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
    private var inner: any LogHandler
    private let control: LogLevelControl

    public init(_ inner: any LogHandler, control: LogLevelControl) {
        var inner = inner
        inner.logLevel = .trace
        self.inner = inner
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
