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
        let state = scratch.path + "/state"
        let pins = scratch.path + "/pins"
        #expect(try AgentLock.holder(stateDirectory: state) == nil)

        var lock: AgentLock? = try AgentLock(stateDirectory: state)
        #expect(lock != nil)
        #expect(try AgentLock.holder(stateDirectory: state) == "\(getpid())")
        do {
            _ = try CaptureRemoval.run(stateDirectory: state, cniSocket: state + "/cni.sock", pinDirectory: pins)
            Issue.record("uninstall ran while the lock was held")
        } catch {
            #expect("\(error)".hasPrefix("an ambit-node (pid \(getpid())) holds \(state)/agent.lock: stop it first"))
        }

        lock = nil
        #expect(try AgentLock.holder(stateDirectory: state) == nil)
        let report = try CaptureRemoval.run(stateDirectory: state, cniSocket: state + "/cni.sock", pinDirectory: pins)
        #expect(report == CaptureRemoval.Report())
        // Nothing was created for a state directory without records.
        #expect(!FileManager.default.fileExists(atPath: state + "/pods"))
    }
}
