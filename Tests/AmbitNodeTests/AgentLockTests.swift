import AmbitCapture
import AmbitModel
import AmbitTestSupport
import Foundation
import Testing

@testable import AmbitNode

#if canImport(Glibc)
    import Glibc
#endif

/// The state directory's lock: held by a running agent, seen by `ambit-node uninstall`, gone with its holder.
@Suite struct AgentLockTests {
    @Test func uninstallRefusesWhileTheLockIsHeldAndProceedsOnceItIsReleased() throws {
        let scratch = try TemporaryDirectory(prefix: "ambit-lock")
        defer { scratch.remove() }
        // Uninstall acts on the calling thread's network namespace (the node's probe rule): a private one.
        let netns = "ambit-lock-\(getpid())"
        #expect(try ProcessRunner.run("/usr/sbin/ip", ["netns", "add", netns]).status == 0)
        defer { _ = try? ProcessRunner.run("/usr/sbin/ip", ["netns", "delete", netns]) }
        let namespace = try NetworkNamespace.open(path: "/run/netns/\(netns)")
        let state = scratch.path + "/state"
        let pins = scratch.path + "/pins"
        #expect(try AgentLock.holder(stateDirectory: state) == nil)

        var lock: AgentLock? = try AgentLock.acquire(stateDirectory: state)
        #expect(lock != nil)
        #expect(try AgentLock.holder(stateDirectory: state) == "\(getpid())")
        do {
            _ = try NetnsExecutor.runOnCurrentThread(in: namespace) {
                try CaptureRemoval.run(stateDirectory: state, cniSocket: state + "/cni.sock", pinDirectory: pins)
            }
            Issue.record("uninstall ran while the lock was held")
        } catch {
            #expect("\(error)".hasPrefix("an ambit-node (pid \(getpid())) holds \(state)/agent.lock: stop it first"))
        }

        lock = nil
        #expect(try AgentLock.holder(stateDirectory: state) == nil)
        let report = try NetnsExecutor.runOnCurrentThread(in: namespace) {
            try CaptureRemoval.run(stateDirectory: state, cniSocket: state + "/cni.sock", pinDirectory: pins)
        }
        #expect(report == CaptureRemoval.Report())
        // The node's probe rule, left by an agent that stopped with pods captured, goes too.
        let withRule = try NetnsExecutor.runOnCurrentThread(in: namespace) {
            try HostRules.apply(podAddresses: [IPAddress("10.244.1.5")!])
            return try CaptureRemoval.run(stateDirectory: state, cniSocket: state + "/cni.sock", pinDirectory: pins)
        }
        #expect(withRule.removedHostRules)
        #expect(try NetnsExecutor.runOnCurrentThread(in: namespace) { try HostRules.isApplied() } == false)
        // Nothing was created for a state directory without records.
        #expect(!FileManager.default.fileExists(atPath: state + "/pods"))
    }

    /// An upgrade: the successor finds the node held, waits, and holds it the moment its predecessor lets go.
    @Test func aSuccessorTakesTheLockTheMomentItsHolderLetsGo() async throws {
        let scratch = try TemporaryDirectory(prefix: "ambit-lock")
        defer { scratch.remove() }
        let state = scratch.path + "/state"
        let first = try AgentLock.acquire(stateDirectory: state)
        let successor = try AgentLock(stateDirectory: state)
        #expect(try successor.tryLock() == false)
        #expect(successor.holder == "\(getpid())")
        let taken = Task { try await successor.lockInBackground() }
        first.unlock()
        try await taken.value
        #expect(try AgentLock.holder(stateDirectory: state) == "\(getpid())")
        // Held by the successor now: a third agent waits in turn, until the successor lets go.
        let third = try AgentLock(stateDirectory: state)
        #expect(try third.tryLock() == false)
        successor.unlock()
        #expect(try third.tryLock())
        third.unlock()
        #expect(try AgentLock.holder(stateDirectory: state) == nil)
    }
}
