public import AmbitModel
public import AmbitTelemetry
public import NIOHTTP1

/// What happens to one proxied HTTP request, from the moment it is forwarded until it is finished:
/// attempts, retries and their backoff, per-try and whole-request timeouts, faults, when the
/// response is committed, and how everything ends. A pure state machine in the style of NIO's:
/// ``HTTPProxyHandler`` feeds it events and carries out the actions it returns, so every rule
/// below is tested without a socket (`HTTPExchangeTests`).
///
/// Invariants:
/// - Attempts are numbered; an event about an attempt other than the current one (a late answer
///   from an upstream that was given up on) is ignored.
/// - Nothing is written to the client before the response is **committed** (the upstream's head
///   was accepted); until then a failure can still be retried or answered locally. After it, a
///   failure can only reset the client.
/// - The exchange finishes exactly once (``Action/finish(_:)``), with its status and flag.
/// - A try on an idle pooled connection that turns out closed is sent again on a new connection
///   without counting as a retry (what every pooling proxy does).
public struct HTTPExchange: Sendable {
    /// The route's rules for this request, with the fault's dice already rolled.
    public struct Policy: Sendable, Equatable {
        public var retry: HTTPRoute.Retry?
        /// Per try: the retry policy's, else the route's `backendRequest` timeout.
        public var perTryTimeout: Duration?
        /// The whole request, retries included.
        public var requestTimeout: Duration?
        public var fault: Fault?

        public enum Fault: Sendable, Equatable {
            case abort(status: Int)
            case delay(Duration)
        }

        public init(
            retry: HTTPRoute.Retry? = nil,
            perTryTimeout: Duration? = nil,
            requestTimeout: Duration? = nil,
            fault: Fault? = nil
        ) {
            self.retry = retry
            self.perTryTimeout = perTryTimeout
            self.requestTimeout = requestTimeout
            self.fault = fault
        }
    }

    /// Why a try failed before a response was committed.
    public enum Failure: Sendable, Equatable {
        /// No healthy endpoint to send to (not retried: there is nothing else to try).
        case noEndpoint(String)
        /// The upstream connection could not be made (`connect-failure`).
        case connect(String)
        /// The request could not be written on the connection made (`reset`).
        case send(String)
        /// The upstream closed or reset before its response head (`reset`).
        case reset(String)
    }

    /// How a finished exchange leaves its two ends.
    public struct Completion: Sendable, Equatable {
        public enum Upstream: Sendable, Equatable {
            /// The response ended cleanly: the connection may serve the next request.
            case release
            /// Close it (if there is one).
            case close
        }

        public enum Downstream: Sendable, Equatable {
            /// The committed response ended: write its end.
            case endResponse
            /// Answer the client locally (nothing was committed).
            case respond(LocalResponse)
            /// The committed response cannot be finished: reset the client.
            case reset
            /// The client is gone.
            case none
        }

        public var status: Int
        public var flag: ResponseFlag
        public var upstream: Upstream
        public var downstream: Downstream
    }

    public enum Action: Sendable, Equatable {
        /// Start the whole-request timer (``requestTimedOut()`` when it fires).
        case scheduleRequestTimeout(Duration)
        /// Hold the request (a fault delay), then ``delayElapsed()``.
        case delay(Duration)
        /// Choose an endpoint, preferring one not in `avoiding`, and send try `attempt` there,
        /// with a per-try timer (``perTryTimedOut(attempt:)``) when `timeout` is set.
        case send(attempt: Int, avoiding: Set<IPEndpoint>, timeout: Duration?)
        /// Wait, then ``backoffElapsed()``.
        case backoff(Duration)
        /// Close the current try's upstream: its later events no longer count.
        case abandonUpstream
        /// The per-try timer is no longer needed.
        case cancelPerTryTimeout
        /// Write the upstream's response head to the client (the response is committed).
        case commit(status: Int)
        case finish(Completion)
    }

    private enum Stage: Sendable, Equatable {
        case idle
        case delaying
        case backingOff
        /// Try `n` is on its way, no response head yet.
        case trying(Int)
        /// Try `n`'s response head was written to the client.
        case streaming(Int)
        case finished
    }

    public let policy: Policy
    private var stage = Stage.idle
    /// Tries made so far (the current one included).
    public private(set) var attempts = 0
    /// Tries re-sent because an idle pooled connection had been closed; they do not count.
    private var staleResends = 0
    /// The current try went out on a connection that had served requests before.
    private var onReusedConnection = false
    /// Endpoints tried so far: a retry prefers another one.
    public private(set) var triedEndpoints: Set<IPEndpoint> = []
    /// What the access log and metrics will say.
    public private(set) var status = 0
    public private(set) var flag = ResponseFlag.none

    public init(policy: Policy) {
        self.policy = policy
    }

    public var isFinished: Bool { stage == .finished }
    public var isCommitted: Bool {
        if case .streaming = stage { return true }
        return false
    }

    /// Whether try `attempt` is the one under way (nothing received yet).
    public func awaits(attempt: Int) -> Bool { stage == .trying(attempt) }

    /// Tries allowed in all: the first, the retries, and the re-sends after stale connections.
    private var triesAllowed: Int { 1 + (policy.retry?.attempts ?? 0) + staleResends }

    // MARK: Events

    public mutating func start() -> [Action] {
        guard stage == .idle else { return [] }
        var actions: [Action] = policy.requestTimeout.map { [.scheduleRequestTimeout($0)] } ?? []
        switch policy.fault {
        case .abort(let status)?:
            return [
                finish(
                    status,
                    .faultAbort,
                    .close,
                    .respond(
                        LocalResponse(status: .init(statusCode: status), body: "fault filter abort", flag: .faultAbort)
                    )
                )
            ]
        case .delay(let delay)?:
            stage = .delaying
            flag = .faultDelay
            actions.append(.delay(delay))
            return actions
        case nil:
            return actions + [nextTry()]
        }
    }

    public mutating func delayElapsed() -> [Action] {
        guard stage == .delaying else { return [] }
        return [nextTry()]
    }

    public mutating func backoffElapsed() -> [Action] {
        guard stage == .backingOff else { return [] }
        return [nextTry()]
    }

    /// Try `attempt` goes to `endpoint`: a retry will prefer another one.
    public mutating func chose(attempt: Int, endpoint: IPEndpoint) {
        guard stage == .trying(attempt) else { return }
        triedEndpoints.insert(endpoint)
        onReusedConnection = false
    }

    /// Try `attempt` went out on a pooled connection that had served requests before.
    public mutating func sentOnReusedConnection(attempt: Int) {
        guard stage == .trying(attempt) else { return }
        onReusedConnection = true
    }

    /// Try `attempt` failed before a response head.
    public mutating func failed(attempt: Int, _ failure: Failure) -> [Action] {
        if stage == .streaming(attempt), case .reset = failure {
            return [finish(status, .upstreamReset, .close, .reset)]
        }
        guard stage == .trying(attempt) else { return [] }
        switch failure {
        case .noEndpoint(let reason):
            return [
                finish(
                    503,
                    .noHealthyUpstream,
                    .close,
                    .respond(.init(status: .serviceUnavailable, body: "\(reason)\n", flag: .noHealthyUpstream))
                )
            ]
        case .connect(let reason):
            return retryOrFail(
                condition: "connect-failure",
                status: .serviceUnavailable,
                flag: .upstreamConnectFailure,
                reason: "upstream connect error: \(reason)"
            )
        case .send(let reason):
            return retryOrFail(
                condition: "reset",
                status: .serviceUnavailable,
                flag: .upstreamReset,
                reason: "cannot send upstream: \(reason)"
            )
        case .reset(let reason):
            if onReusedConnection {
                // The endpoint closed the idle connection as the request went out: send it again.
                onReusedConnection = false
                staleResends += 1
                return [nextTry()]
            }
            return retryOrFail(
                condition: "reset",
                status: .serviceUnavailable,
                flag: .upstreamReset,
                reason: "upstream connect error or disconnect/reset before headers: \(reason)"
            )
        }
    }

    public mutating func perTryTimedOut(attempt: Int) -> [Action] {
        guard stage == .trying(attempt) else { return [] }
        return [.abandonUpstream]
            + retryOrFail(
                condition: "reset",
                status: .gatewayTimeout,
                flag: .upstreamRequestTimeout,
                reason: "per-try timeout"
            )
    }

    /// The upstream's response head for try `attempt`.
    public mutating func responseHead(attempt: Int, status code: Int) -> [Action] {
        guard stage == .trying(attempt) else { return [] }
        if let retry = policy.retry, retry.retries(status: code), attempts < triesAllowed {
            return [.cancelPerTryTimeout, .abandonUpstream, retryAfterBackoff()]
        }
        stage = .streaming(attempt)
        status = code
        return [.cancelPerTryTimeout, .commit(status: code)]
    }

    /// Whether a body part of try `attempt` goes to the client.
    public func forwardsBody(attempt: Int) -> Bool {
        stage == .streaming(attempt)
    }

    /// The upstream's response for try `attempt` ended cleanly.
    public mutating func responseEnd(attempt: Int) -> [Action] {
        guard stage == .streaming(attempt) else { return [] }
        return [finish(status, flag, .release, .endResponse)]
    }

    public mutating func requestTimedOut() -> [Action] {
        switch stage {
        case .finished, .idle:
            return []
        case .streaming:
            // The response has started: the client can only learn of the timeout by a reset.
            return [finish(status, .upstreamRequestTimeout, .close, .reset)]
        case .delaying, .backingOff, .trying:
            return [
                finish(
                    504,
                    .upstreamRequestTimeout,
                    .close,
                    .respond(
                        .init(
                            status: .gatewayTimeout,
                            body: "upstream request timeout\n",
                            flag: .upstreamRequestTimeout
                        )
                    )
                )
            ]
        }
    }

    /// The client went away.
    public mutating func downstreamClosed() -> [Action] {
        switch stage {
        case .finished, .idle: return []
        default: return [finish(isCommitted ? status : 0, .downstreamTermination, .close, .none)]
        }
    }

    // MARK: Transitions

    private mutating func nextTry() -> Action {
        attempts += 1
        stage = .trying(attempts)
        return .send(
            attempt: attempts,
            avoiding: triedEndpoints,
            timeout: policy.retry?.perTryTimeout ?? policy.perTryTimeout
        )
    }

    private mutating func retryAfterBackoff() -> Action {
        guard let backoff = policy.retry?.backoff else { return nextTry() }
        stage = .backingOff
        return .backoff(backoff)
    }

    private mutating func retryOrFail(
        condition: String,
        status: HTTPResponseStatus,
        flag: ResponseFlag,
        reason: String
    ) -> [Action] {
        if let retry = policy.retry, retry.retries(failure: condition), attempts < triesAllowed {
            return [retryAfterBackoff()]
        }
        return [
            finish(
                Int(status.code),
                flag,
                .close,
                .respond(LocalResponse(status: status, body: reason + "\n", flag: flag))
            )
        ]
    }

    private mutating func finish(
        _ status: Int,
        _ flag: ResponseFlag,
        _ upstream: Completion.Upstream,
        _ downstream: Completion.Downstream
    ) -> Action {
        stage = .finished
        self.status = status
        self.flag = flag
        return .finish(Completion(status: status, flag: flag, upstream: upstream, downstream: downstream))
    }
}
