import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Waiting for SIGTERM or SIGINT, the start of a graceful shutdown for the mesh's daemons.
public enum ProcessSignals {
    /// Takes SIGTERM and SIGINT over now: from this call on they no longer end the process (they are
    /// ignored, so a second one does not kill a draining process) and the returned ``Termination``
    /// reports the first. Call it before the daemon says it is ready, so that a SIGTERM sent as soon as
    /// it is ready always starts a drain.
    public static func termination() -> Termination {
        let termination = Termination()
        var sources: [any DispatchSourceSignal] = []
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber)
            source.setEventHandler { termination.arrived() }
            source.resume()
            sources.append(source)
        }
        // Keep the sources alive for the life of the process.
        SignalSources.keep(sources)
        return termination
    }
}

/// SIGTERM or SIGINT, once one has arrived (``ProcessSignals/termination()``).
public final class Termination: Sendable {
    private let state = Mutex<(arrived: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    fileprivate init() {}

    fileprivate func arrived() {
        let waiting = state.withLock { state in
            defer { state = (true, []) }
            return state.arrived ? [] : state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns once a signal has arrived (at once if one already has).
    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = state.withLock { state in
                if !state.arrived { state.waiting.append(continuation) }
                return state.arrived
            }
            if already { continuation.resume() }
        }
    }
}

/// Keeps signal sources alive.
private enum SignalSources {
    // Written only from the start-up path.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
    static func keep(_ new: [any DispatchSourceSignal]) { sources.append(contentsOf: new) }
}
