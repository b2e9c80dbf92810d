public import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// The request headers of an HBONE CONNECT beyond the pseudo-headers.
public struct HBONEHeaders: Hashable, Sendable {
    /// `forwarded: for="<ip>:<port>"` — the original client.
    public var forwardedFor: IPEndpoint?
    /// `;host=<service FQDN>` in `forwarded`, when known.
    public var forwardedHost: String?
    /// W3C baggage: `k8s.namespace.name=...,k8s.pod.name=...` (see ``baggage(namespace:workload:kind:service:version:cluster:)``).
    public var baggage: String?
    /// W3C `traceparent`; generated when not given.
    public var traceparent: String?

    public init(
        forwardedFor: IPEndpoint? = nil,
        forwardedHost: String? = nil,
        baggage: String? = nil,
        traceparent: String? = nil
    ) {
        self.forwardedFor = forwardedFor
        self.forwardedHost = forwardedHost
        self.baggage = baggage
        self.traceparent = traceparent
    }

    /// `for="10.0.0.1:34567"` or `for="[fd00::1]:34567";host=web.shop.svc.cluster.local`.
    public var forwardedValue: String? {
        guard let forwardedFor else { return nil }
        var value = "for=\"\(forwardedFor)\""
        if let forwardedHost { value += ";host=\(forwardedHost)" }
        return value
    }

    /// Reads the first `for=` (and `host=`) of a `forwarded` header (RFC 7239). Unparseable
    /// values yield `nil`: the header is informational, the TCP peer is authoritative.
    public static func parseForwarded(_ value: String) -> (for: IPEndpoint?, host: String?) {
        let first = value.split(separator: ",", maxSplits: 1).first ?? ""
        var endpoint: IPEndpoint?
        var host: String?
        for pair in first.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingSpaces.lowercased()
            var item = parts[1].trimmingSpaces
            if item.hasPrefix("\""), item.hasSuffix("\""), item.count >= 2 { item = item.dropFirst().dropLast() }
            switch key {
            case "for": endpoint = try? IPEndpoint(parsing: item)
            case "host": host = String(item)
            default: break
            }
        }
        return (endpoint, host)
    }

    /// W3C baggage with the keys ztunnel sends; absent values are left out.
    public static func baggage(
        namespace: String?,
        workload: String?,
        kind: String = "deployment",
        service: String?,
        version: String?,
        cluster: String? = "Kubernetes"
    ) -> String {
        var pairs: [String] = []
        if let namespace { pairs.append("k8s.namespace.name=\(namespace)") }
        if let workload { pairs.append("k8s.\(kind).name=\(workload)") }
        if let service { pairs.append("service.name=\(service)") }
        if let version { pairs.append("service.version=\(version)") }
        if let cluster { pairs.append("k8s.cluster.name=\(cluster)") }
        return pairs.joined(separator: ",")
    }

    /// A new `traceparent`: version 00, random 16-byte trace id and 8-byte span id, not sampled.
    public static func newTraceparent<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        "00-\(randomID(16, using: &generator))-\(randomID(8, using: &generator))-00"
    }

    /// `count` (a multiple of 8) random bytes in lower-case hex, never all zero (all-zero ids are invalid). One
    /// 64-bit draw per 8 bytes.
    private static func randomID<Generator: RandomNumberGenerator>(_ count: Int, using generator: inout Generator)
        -> String
    {
        var words = (0..<count / 8).map { _ in generator.next() }
        if words.allSatisfy({ $0 == 0 }) { words[words.count - 1] = 1 }
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(count * 2)
        for word in words {
            for shift in stride(from: 60, through: 0, by: -4) {
                hex.append(digits[Int((word >> UInt64(shift)) & 0xf)])
            }
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// A new `traceparent` from the system's random source (one `getrandom` call per tunnel, not three).
    public static func newTraceparent() -> String {
        var generator = PrefetchedRandom()
        return newTraceparent(using: &generator)
    }

    /// A `traceparent` for one request inside a traced tunnel: the parent's trace id and flags with
    /// a span id of its own, so requests sharing a tunnel stay distinguishable; a new trace when
    /// `parent` is absent or malformed.
    public static func childTraceparent(of parent: String?) -> String {
        guard let parent, isValidTraceparent(parent) else { return newTraceparent() }
        var generator = SystemRandomNumberGenerator()
        let parts = parent.split(separator: "-")
        return "00-\(parts[1])-\(randomID(8, using: &generator))-\(parts[3])"
    }

    /// Whether `value` is a well-formed version-00 `traceparent`.
    public static func isValidTraceparent(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2 else {
            return false
        }
        let hex = parts.dropFirst().allSatisfy { part in
            part.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        }
        return hex && parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}

/// The system's random bytes drawn 24 at a time (a traceparent's trace and span ids) with one
/// `arc4random_buf` call, where `SystemRandomNumberGenerator` makes a `getrandom` call per 8 bytes.
struct PrefetchedRandom: RandomNumberGenerator {
    private var words: (UInt64, UInt64, UInt64) = (0, 0, 0)
    private var used = 0

    init() {
        withUnsafeMutableBytes(of: &words) { arc4random_buf($0.baseAddress!, $0.count) }
    }

    mutating func next() -> UInt64 {
        defer { used += 1 }
        switch used {
        case 0: return words.0
        case 1: return words.1
        case 2: return words.2
        default:
            var system = SystemRandomNumberGenerator()
            return system.next()
        }
    }
}
