public import AmbitModel
public import NIOHPACK

/// The first checks on an incoming CONNECT, before the inbound handler sees it: the method must
/// be CONNECT (not extended CONNECT) and `:authority` an `ip:port`. Anything else is answered
/// with 400 and a reason.
public enum ConnectRequestValidator {
    public enum Outcome: Hashable, Sendable {
        case valid(authority: IPEndpoint, headers: HBONEHeaders)
        case reject(status: Int, reason: String)
    }

    public static func validate(_ headers: HPACKHeaders) -> Outcome {
        guard let method = headers.first(name: ":method") else {
            return .reject(status: 400, reason: "missing :method")
        }
        guard method == "CONNECT" else {
            return .reject(status: 400, reason: "method \(method) is not allowed; HBONE accepts CONNECT only")
        }
        if headers.first(name: ":protocol") != nil {
            return .reject(status: 400, reason: "extended CONNECT (:protocol) is not HBONE")
        }
        guard let authority = headers.first(name: ":authority"), !authority.isEmpty else {
            return .reject(status: 400, reason: "missing :authority")
        }
        let endpoint: IPEndpoint
        do {
            endpoint = try IPEndpoint(parsing: authority)
        } catch {
            return .reject(status: 400, reason: ":authority \(error)")
        }
        var extra = HBONEHeaders()
        if let forwarded = headers.first(name: "forwarded") {
            (extra.forwardedFor, extra.forwardedHost) = HBONEHeaders.parseForwarded(forwarded)
        }
        extra.baggage = headers.first(name: "baggage")
        if let traceparent = headers.first(name: "traceparent"), HBONEHeaders.isValidTraceparent(traceparent) {
            extra.traceparent = traceparent
        }
        return .valid(authority: endpoint, headers: extra)
    }
}
