/// Ports and socket marks of Istio ambient, used unchanged so the two interoperate.
public enum MeshPorts {
    /// Outbound capture listener inside each enrolled pod's network namespace.
    public static let outbound: UInt16 = 15001
    /// Inbound plaintext capture listener.
    public static let inboundPlaintext: UInt16 = 15006
    /// HBONE (mutual TLS, HTTP/2 CONNECT).
    public static let hbone: UInt16 = 15008
    /// Admin: config dump and log level, bound to localhost only.
    public static let admin: UInt16 = 15000
    /// Prometheus metrics.
    public static let metrics: UInt16 = 15020
    /// Readiness.
    public static let readiness: UInt16 = 15021
    /// DNS proxy (not yet served).
    public static let dns: UInt16 = 15053
}

/// Packet and connection marks of the in-pod capture rules.
public enum MeshMarks {
    /// `SO_MARK` on every socket the agent opens, so its own traffic is never captured again.
    public static let agentSocket: UInt32 = 0x539
    /// Connection mark for replies to connections the agent made with a spoofed source.
    public static let returnPath: UInt32 = 0x111
    /// The bits of the mark Ambit owns.
    public static let mask: UInt32 = 0xfff
    /// Policy routing table for the return path.
    public static let routeTable: UInt32 = 100
}
