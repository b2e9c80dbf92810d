import AmbitModel

/// The list-then-watch cycle of one Kubernetes collection (what client-go calls a reflector),
/// as a pure state machine: the source performs the steps it returns and reports the outcome.
///
/// Invariants:
/// - a watch always starts from the resourceVersion of the last list, event or bookmark, so no
///   change is missed between two watches;
/// - `410 Gone` (the version is older than the server's history) is the only way back to a full
///   list once synced, and it never waits: the cache must catch up with deletions it missed;
/// - every failure waits, exponentially longer (with jitter) the more failures in a row, up to
///   `maximumDelay`; a successful list or a watch that delivered something resets the count.
struct ReflectorStateMachine: Sendable {
    enum Step: Hashable, Sendable {
        case list
        case watch(resourceVersion: String)
    }

    enum Action: Hashable, Sendable {
        case perform(Step)
        case wait(Duration, then: Step)
    }

    private(set) var resourceVersion: String?
    private(set) var consecutiveFailures = 0
    let backoff: RetryBackoff
    /// Multiplies each delay; the default spreads the reconnects of many agents over ±20 %.
    let jitter: @Sendable () -> Double
    /// How long to wait before looking again for a collection the cluster does not serve.
    let absentRecheck: Duration

    init(
        backoff: RetryBackoff,
        jitter: @escaping @Sendable () -> Double = { Double.random(in: 0.8...1.2) },
        absentRecheck: Duration = .seconds(60)
    ) {
        self.backoff = backoff
        self.jitter = jitter
        self.absentRecheck = absentRecheck
    }

    var first: Action { .perform(.list) }

    mutating func listed(resourceVersion: String) -> Action {
        self.resourceVersion = resourceVersion
        consecutiveFailures = 0
        return .perform(.watch(resourceVersion: resourceVersion))
    }

    mutating func listFailed() -> Action {
        consecutiveFailures += 1
        return .wait(backoff.delay(afterFailures: consecutiveFailures) * jitter(), then: .list)
    }

    /// No version of the collection is served (its CRD is not installed): treated as empty, looked for again later.
    mutating func listNotServed() -> Action {
        resourceVersion = nil
        consecutiveFailures = 0
        return .wait(absentRecheck, then: .list)
    }

    /// An event or a bookmark carried `resourceVersion`.
    mutating func observed(resourceVersion: String) {
        self.resourceVersion = resourceVersion
        consecutiveFailures = 0
    }

    /// The server ended the watch normally (its timeout): watch again at once.
    mutating func watchEnded() -> Action {
        guard let resourceVersion else { return .perform(.list) }
        return .perform(.watch(resourceVersion: resourceVersion))
    }

    /// `410 Gone`, as a status or as an `ERROR` event: the version is too old; list again now.
    mutating func watchExpired() -> Action {
        resourceVersion = nil
        return .perform(.list)
    }

    mutating func watchFailed() -> Action {
        consecutiveFailures += 1
        let delay = backoff.delay(afterFailures: consecutiveFailures) * jitter()
        guard let resourceVersion else { return .wait(delay, then: .list) }
        return .wait(delay, then: .watch(resourceVersion: resourceVersion))
    }
}
