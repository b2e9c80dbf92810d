public import AmbitModel
public import Logging

/// One line of the access log that every Ambit proxy writes: per finished connection (node agent,
/// message `connection complete`) or per request (waypoint, `request complete`). The keys are
/// ztunnel's, so one log pipeline reads Ambit and ztunnel alike; a value that is not known is left
/// out rather than written as `unknown`.
public struct AccessLogEntry: Sendable {
    /// One end of the connection.
    public struct Peer: Sendable, Equatable {
        /// `ip:port`, or only the IP when the port is not known.
        public var address: String?
        /// The pod's name (as ztunnel logs it; metrics carry the workload's).
        public var workload: String?
        public var namespace: String?
        /// Logged only for mutual-TLS connections.
        public var identity: SpiffeID?

        public init(
            address: String? = nil,
            workload: String? = nil,
            namespace: String? = nil,
            identity: SpiffeID? = nil
        ) {
            self.address = address
            self.workload = workload
            self.namespace = namespace
            self.identity = identity
        }
    }

    /// What a waypoint adds for an HTTP request.
    public struct Request: Sendable, Equatable {
        public var method: String
        public var path: String
        public var protocolName: String
        public var status: Int
        public var route: String
        public var traceparent: String?

        public init(
            method: String,
            path: String,
            protocolName: String,
            status: Int,
            route: String,
            traceparent: String?
        ) {
            self.method = method
            self.path = path
            self.protocolName = protocolName
            self.status = status
            self.route = route
            self.traceparent = traceparent
        }
    }

    /// `inbound` where the destination reports (node agent's inbound side, the waypoint), else `outbound`.
    public var direction: TrafficLabels.Reporter
    public var source: Peer
    public var destination: Peer
    /// The HBONE `:authority`, when the connection went through a tunnel.
    public var hboneAddress: IPEndpoint?
    /// The destination service's hostname.
    public var service: String?
    /// Bytes from the client towards the server, and back.
    public var requestBytes: Int
    public var responseBytes: Int
    public var duration: Duration
    public var responseFlags: ResponseFlag
    public var error: String?
    public var request: Request?

    public init(
        direction: TrafficLabels.Reporter,
        source: Peer,
        destination: Peer,
        hboneAddress: IPEndpoint? = nil,
        service: String? = nil,
        requestBytes: Int,
        responseBytes: Int,
        duration: Duration,
        responseFlags: ResponseFlag,
        error: String? = nil,
        request: Request? = nil
    ) {
        self.direction = direction
        self.source = source
        self.destination = destination
        self.hboneAddress = hboneAddress
        self.service = service
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.duration = duration
        self.responseFlags = responseFlags
        self.error = error
        self.request = request
    }

    /// The line's message: ztunnel's for connections, its HTTP counterpart for requests.
    public var message: Logger.Message { request == nil ? "connection complete" : "request complete" }

    /// A field's value: text, or a JSON number (`bytes_sent`, `status`), or whole milliseconds written
    /// with their unit (`duration`, `"12ms"`).
    enum FieldValue {
        case text(String)
        case integer(Int)
        case milliseconds(Int64)
    }

    /// The fields of the line, in ztunnel's order. `bytes_sent` and `bytes_recv` are what the reporting
    /// proxy sent and received towards its client: the request bytes are received at the destination's
    /// side and sent at the source's (as ztunnel logs them). One enumeration serves both renderings
    /// (``metadata`` and the JSON line), so they cannot disagree.
    func forEachField(_ body: (String, FieldValue) -> Void) {
        func put(_ key: String, _ value: String?) {
            if let value, !value.isEmpty, value != TrafficLabels.unknown { body(key, .text(value)) }
        }
        put("src.addr", source.address)
        put("src.workload", source.workload)
        put("src.namespace", source.namespace)
        put("src.identity", source.identity?.uri)
        put("dst.addr", destination.address)
        put("dst.hbone_addr", hboneAddress?.description)
        put("dst.service", service)
        put("dst.workload", destination.workload)
        put("dst.namespace", destination.namespace)
        put("dst.identity", destination.identity?.uri)
        let outbound = direction == .source
        body("direction", .text(outbound ? "outbound" : "inbound"))
        body("bytes_sent", .integer(outbound ? requestBytes : responseBytes))
        body("bytes_recv", .integer(outbound ? responseBytes : requestBytes))
        body("duration", .milliseconds(duration.wholeMilliseconds))
        body("response_flags", .text(responseFlags.rawValue))
        put("error", error)
        if let request {
            body("method", .text(request.method))
            body("path", .text(request.path))
            body("protocol", .text(request.protocolName))
            body("status", .integer(request.status))
            body("route", .text(request.route))
            put("traceparent", request.traceparent)
        }
    }

    /// The fields of the line, as `Logger` metadata (for handlers other than the JSON one).
    public var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [:]
        forEachField { key, value in
            switch value {
            case .text(let text): fields[key] = .string(text)
            case .integer(let number): fields[key] = .stringConvertible(number)
            case .milliseconds(let milliseconds): fields[key] = .string("\(milliseconds)ms")
            }
        }
        return fields
    }

    /// The fields as JSON members, each preceded by a comma: `,"src.addr":"10.0.0.1:4000",…`.
    func appendJSONFields(to line: inout [UInt8]) {
        forEachField { key, value in
            line.append(UInt8(ascii: ","))
            JSONValue.appendQuoted(key, to: &line)
            line.append(UInt8(ascii: ":"))
            switch value {
            case .text(let text):
                JSONValue.appendQuoted(text, to: &line)
            case .integer(let number):
                line.append(contentsOf: String(number).utf8)
            case .milliseconds(let milliseconds):
                line.append(UInt8(ascii: "\""))
                line.append(contentsOf: String(milliseconds).utf8)
                line.append(contentsOf: #"ms""#.utf8)
            }
        }
    }
}

/// Writes access-log lines (at `info`, or `error` when the entry carries one, as ztunnel does).
///
/// With the JSON log format the line is written straight into the log's buffer, its fields in
/// ztunnel's order: no `Logger.Metadata` dictionary, no sorting, no intermediate strings (a waypoint
/// writes a line per request). Any other handler, or a JSON handler carrying metadata of its own,
/// gets the same fields through `Logger`.
public struct AccessLog: Sendable {
    public let logger: Logger
    /// The logger's handler, when it writes JSON lines (cast once, not per line).
    private let writer: (any JSONLineWriting)?

    public init(logger: Logger) {
        self.logger = logger
        self.writer = logger.handler as? any JSONLineWriting
    }

    public func record(_ entry: AccessLogEntry) {
        let level: Logger.Level = entry.error == nil ? .info : .error
        guard logger.logLevel <= level else { return }
        if let writer,
            writer.writeJSONLine(level: level, message: entry.message.description, fields: entry.appendJSONFields)
        {
            return
        }
        logger.log(level: level, entry.message, metadata: entry.metadata)
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
