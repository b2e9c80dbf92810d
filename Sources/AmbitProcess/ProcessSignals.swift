import Dispatch
import Foundation
import Synchronization

/// Waiting for SIGTERM or SIGINT, the start of a graceful shutdown for the mesh's daemons.
public enum ProcessSignals {
    /// Returns when the process receives SIGTERM or SIGINT (both are ignored from then on, so a
    /// second signal does not kill a draining process).
    public static func waitForTermination() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let once = Mutex(false)
            var sources: [any DispatchSourceSignal] = []
            for signalNumber in [SIGTERM, SIGINT] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber)
                source.setEventHandler {
                    let first = once.withLock { fired in
                        defer { fired = true }
                        return !fired
                    }
                    if first { continuation.resume() }
                }
                source.resume()
                sources.append(source)
            }
            // Keep the sources alive for the life of the process.
            SignalSources.keep(sources)
        }
    }
}

/// Keeps signal sources alive.
private enum SignalSources {
    // Written only from the start-up path.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
    static func keep(_ new: [any DispatchSourceSignal]) { sources.append(contentsOf: new) }
}
