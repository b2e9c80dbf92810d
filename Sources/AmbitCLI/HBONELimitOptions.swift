public import AmbitHBONE
public import ArgumentParser
import NIOCore

/// What an HBONE listener (port 15008) admits and for how long, as the node agent and the waypoint
/// take it on their command lines. Defaults: ``HBONEServerLimits``.
public struct HBONELimitOptions: ParsableArguments {
    private static let defaults = HBONEServerLimits()

    @Option(help: "Seconds from accept to a completed TLS handshake on port 15008 before the connection is closed.")
    public var hboneHandshakeTimeoutSeconds = Int(defaults.handshakeTimeout.nanoseconds / 1_000_000_000)

    @Option(help: "Seconds an HBONE connection may stay without streams before it is sent GOAWAY and closed.")
    public var hboneIdleTimeoutSeconds = Int(defaults.idleTimeout.nanoseconds / 1_000_000_000)

    @Option(help: "Seconds after a GOAWAY or a protocol error at which an HBONE connection is closed, streams or not.")
    public var hboneCloseAfterGoawaySeconds = Int(defaults.closeAfterGoAway.nanoseconds / 1_000_000_000)

    @Option(help: "HBONE connections open at once, over all listeners of the process.")
    public var hboneMaxConnections = defaults.maxConnections

    @Option(help: "HBONE connections in their TLS handshake at once, over all listeners of the process.")
    public var hboneMaxHandshakes = defaults.maxHandshakes

    @Option(help: "HBONE connections open at once from one source address (an IPv6 /64 counts as one).")
    public var hboneMaxConnectionsPerSource = defaults.maxConnectionsPerSource

    @Option(
        help: """
            Streams a peer may reset before their CONNECT is answered, per connection in 10 s, before the \
            connection is closed (HTTP/2 rapid reset).
            """
    )
    public var hboneMaxPrematureResets = defaults.maxPrematureResets

    @Option(
        help: """
            The same streams within one read of a connection (HEADERS and RST_STREAM sent together, hundreds \
            at a time), before the connection is closed.
            """
    )
    public var hboneMaxPrematureResetsPerRead = defaults.maxPrematureResetsPerRead

    public init() {}

    public func validate() throws {
        for (name, value) in [
            ("--hbone-handshake-timeout-seconds", hboneHandshakeTimeoutSeconds),
            ("--hbone-idle-timeout-seconds", hboneIdleTimeoutSeconds),
            ("--hbone-close-after-goaway-seconds", hboneCloseAfterGoawaySeconds),
            ("--hbone-max-connections", hboneMaxConnections),
            ("--hbone-max-handshakes", hboneMaxHandshakes),
            ("--hbone-max-connections-per-source", hboneMaxConnectionsPerSource),
            ("--hbone-max-premature-resets", hboneMaxPrematureResets),
            ("--hbone-max-premature-resets-per-read", hboneMaxPrematureResetsPerRead),
        ]
        where value <= 0 {
            throw ValidationError("\(name) must be positive, not \(value)")
        }
    }

    public var limits: HBONEServerLimits {
        var limits = HBONEServerLimits()
        limits.handshakeTimeout = .seconds(Int64(hboneHandshakeTimeoutSeconds))
        limits.idleTimeout = .seconds(Int64(hboneIdleTimeoutSeconds))
        limits.closeAfterGoAway = .seconds(Int64(hboneCloseAfterGoawaySeconds))
        limits.maxConnections = hboneMaxConnections
        limits.maxHandshakes = hboneMaxHandshakes
        limits.maxConnectionsPerSource = hboneMaxConnectionsPerSource
        limits.maxPrematureResets = hboneMaxPrematureResets
        limits.maxPrematureResetsPerRead = hboneMaxPrematureResetsPerRead
        return limits
    }
}
