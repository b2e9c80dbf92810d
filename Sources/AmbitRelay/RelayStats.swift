import NIOCore

/// Bytes relayed in each direction and how the relay ended, for metrics and the access log.
/// Lives on the relay's event loop; `onFinished` runs once both channels have closed.
package final class RelayStats {
    private(set) var requestBytes = 0
    private(set) var responseBytes = 0
    private(set) var firstError: (any Error)?
    private var activeChannels = 0
    private var joined = 0
    private var onFinished: ((RelayStats) -> Void)?
    /// Called for every chunk relayed, so live counters (metrics) move during long connections.
    var onBytes: ((_ count: Int, _ request: Bool) -> Void)?

    package init(onFinished: ((RelayStats) -> Void)? = nil) {
        self.onFinished = onFinished
    }

    func add(_ count: Int, request: Bool) {
        if request { requestBytes += count } else { responseBytes += count }
        onBytes?(count, request)
    }

    /// How the relay went, for the finished-tunnel callbacks.
    package var summary: RelaySummary {
        RelaySummary(
            requestBytes: requestBytes,
            responseBytes: responseBytes,
            error: firstError.map { "\($0)" }
        )
    }

    func recordError(_ error: any Error) {
        if firstError == nil { firstError = error }
    }

    func channelJoined() {
        activeChannels += 1
        joined += 1
    }

    func channelLeft() {
        activeChannels -= 1
        if activeChannels == 0 && joined == 2, let onFinished {
            self.onFinished = nil
            onFinished(self)
        }
    }
}

/// How a finished relay (a tunnel, a passthrough) went, for metrics and the access log.
public struct RelaySummary: Sendable {
    /// Bytes from the client to the upstream, and back.
    public let requestBytes: Int
    public let responseBytes: Int
    public let error: String?

    public init(requestBytes: Int, responseBytes: Int, error: String?) {
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.error = error
    }
}
