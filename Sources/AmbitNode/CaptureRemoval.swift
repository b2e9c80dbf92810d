import AmbitCNI
import AmbitCapture
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// `ambit-node uninstall`: takes the capture a stopped agent left in place off its node, for good. An agent
/// that stops keeps every captured pod's capture on purpose (its pods fail closed until it is back); this is
/// the way to end that when the agent will not come back (the node leaves the mesh, a broken install).
///
/// For each pod the agent recorded under `<state-dir>/pods`: the in-pod nftables table and policy routing
/// (nftables capture) or the return-path routing and sysctls (eBPF capture) are removed inside the pod's
/// namespace, and the record is deleted. The node's probe rule (``HostRules``) goes. Then the eBPF pins go (`EBPFCapture.uninstall`): with no agent
/// holding them, that detaches the cgroup programs and every pod's `sk_lookup` link and frees the maps.
/// Refuses while an agent holds `<state-dir>/agent.lock` (from before it loads any capture until it exits) or
/// answers on the CNI socket: it would pull the capture from under running pods. When a pod's capture cannot
/// be removed, the pins stay too, so a second run still knows which pods had eBPF capture.
public enum CaptureRemoval {
    public struct Report: Sendable, Equatable {
        /// Pods whose capture was removed, as `namespace/name: what`.
        public var released: [String] = []
        /// Pods whose namespace is gone (nothing left to remove there; the record is deleted).
        public var gone: [String] = []
        /// Pods whose capture could not be removed (the record is kept, so a second run retries).
        public var failed: [String] = []
        /// The pin directory removed, if there was one.
        public var removedPins: String?
        /// Pins left in place because some pod failed (they still tell which pods had eBPF capture).
        public var keptPins: String?
        /// Whether the node's probe rule (`table inet ambit-host`) was removed.
        public var removedHostRules = false
    }

    public enum Failure: Error, CustomStringConvertible {
        case agentRunning(String)
        case cannotCheck(String)

        public var description: String {
            switch self {
            case .agentRunning(let what):
                "\(what): stop it first (to release pods while it runs, remove the namespace's "
                    + "istio.io/dataplane-mode label instead)"
            case .cannotCheck(let reason): "cannot tell whether an ambit-node is running: \(reason)"
            }
        }
    }

    public static func run(stateDirectory: String, cniSocket: String, pinDirectory: String) throws(Failure) -> Report {
        let holder: String?
        do {
            holder = try AgentLock.holder(stateDirectory: stateDirectory)
        } catch {
            throw .cannotCheck("\(error)")
        }
        if let holder {
            throw .agentRunning("an ambit-node (pid \(holder)) holds \(AgentLock.path(stateDirectory: stateDirectory))")
        }
        if try agentAnswers(on: cniSocket) { throw .agentRunning("an ambit-node answers on \(cniSocket)") }
        var report = Report()
        let records = PodRecordStore(existing: "\(stateDirectory)/pods")
        let (saved, errors) = records.loadAll()
        report.failed += errors.map { "unreadable pod record \($0)" }
        for record in saved {
            if access(record.netnsPath, F_OK) != 0 && errno == ENOENT {
                report.gone.append(record.displayName)
                records.delete(record.uid)
                continue
            }
            do {
                let netns = try NetworkNamespace.open(path: record.netnsPath)
                let removed = try NetnsExecutor.runOnCurrentThread(in: netns) {
                    try removeCaptureInCurrentNamespace(pinDirectory: pinDirectory)
                }
                report.released.append("\(record.displayName): \(removed)")
                records.delete(record.uid)
            } catch {
                report.failed.append("\(record.displayName): \(error)")
            }
        }
        // The node's probe rule: only useful while pods are captured.
        do {
            if try HostRules.isApplied() {
                try HostRules.remove()
                report.removedHostRules = true
            }
        } catch {
            report.failed.append("the node's probe rule (table inet \(HostRules.tableName)): \(error)")
        }
        if access(pinDirectory, F_OK) == 0 {
            if report.failed.isEmpty {
                EBPFCapture.uninstall(pinDirectory: pinDirectory)
                report.removedPins = pinDirectory
            } else {
                report.keptPins = pinDirectory
            }
        }
        return report
    }

    /// Whether something accepts connections on the CNI socket. Only a socket that is not there, or that
    /// nobody listens on, means no agent; any other error means we cannot tell.
    private static func agentAnswers(on path: String) throws(Failure) -> Bool {
        do {
            try SeqpacketSocket.connect(path: path).close()
            return true
        } catch  where error.errno == ENOENT || error.errno == ECONNREFUSED {
            return false
        } catch {
            throw .cannotCheck("\(error)")
        }
    }

    /// Inside a pod's namespace: removes whichever capture is there; says what it removed.
    private static func removeCaptureInCurrentNamespace(pinDirectory: String) throws -> String {
        var removed: [String] = []
        if try InPodRules.isApplied() {
            try InPodRules.remove()
            removed.append("nftables rules and policy routing")
        }
        let cookie = try EBPFCapture.currentNamespaceCookie()
        if EBPFCapture.hasPinnedPod(pinDirectory: pinDirectory, cookie: cookie) {
            _ = try EBPFCapture.cleanCurrentNamespace()
            removed.append("eBPF return-path routing and sysctls")
        }
        return removed.isEmpty ? "no capture left in its namespace" : removed.joined(separator: ", ")
    }
}
