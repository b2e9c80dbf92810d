public import AmbitModel

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
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var result = self
        while result.first == " " { result = result.dropFirst() }
        while result.last == " " { result = result.dropLast() }
        return result
    }
}
