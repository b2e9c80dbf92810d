import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `ambit-node --capture ebpf` on a host that cannot run it: a clear error and exit, or nftables when
/// `--capture-fallback` says so. Each agent runs in a fresh network namespace (`unshare --net`).
extension LabRootTests {
    static func agent(_ directory: URL, _ extra: [String], waitFor: String? = nil) throws -> (Int32, String) {
        let bin = URL(fileURLWithPath: LabCLI.ambitctl).deletingLastPathComponent()
        let ca = directory.appendingPathComponent("ca").path
        let manifests = directory.appendingPathComponent("manifests").path
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: ca) {
            #expect(try shell("\(bin.path)/ambitctl ca init --dir \(ca)").status == 0)
        }
        let log = directory.appendingPathComponent("agent-\(UUID()).log")
        let agent = try Background(
            netns: "",
            [
                "unshare", "--net", bin.appendingPathComponent("ambit-node").path, "--node-name", "n1",
                "--manifests", manifests, "--ca-dir", ca, "--state-dir", directory.appendingPathComponent("state").path,
                "--log-format", "json", "--capture", "ebpf",
            ] + extra,
            output: log
        )
        defer { agent.stop() }
        if let waitFor {
            #expect(eventually(10) { agent.text.contains(waitFor) }, "\(agent.text)")
            return (agent.process.isRunning ? -1 : agent.process.terminationStatus, agent.text)
        }
        #expect(agent.waitForExit(seconds: 10))
        return (agent.process.terminationStatus, agent.text)
    }

    @Test func ebpfCaptureThatCannotRunSaysWhyOrFallsBackWhenAllowed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ambit-ebpf-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let notBPFFS = directory.appendingPathComponent("pins").path

        let (status, log) = try Self.agent(directory, ["--bpf-pin-dir", notBPFFS])
        #expect(status == 1)
        #expect(
            log.contains(
                "--capture ebpf cannot run here: bpffs is not available: \(directory.path) is not on a bpf file system"
            ),
            "\(log)"
        )

        let pins = "/sys/fs/bpf/ambit/test-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: pins) }
        let (cgroupStatus, cgroupLog) = try Self.agent(
            directory,
            ["--bpf-pin-dir", pins, "--cgroup-path", "/nonexistent"]
        )
        #expect(cgroupStatus == 1)
        #expect(cgroupLog.contains("open cgroup failed for /nonexistent: No such file or directory"), "\(cgroupLog)")

        let (running, fallbackLog) = try Self.agent(
            directory,
            ["--bpf-pin-dir", notBPFFS, "--capture-fallback"],
            waitFor: "ambit-node started"
        )
        #expect(running == -1, "\(fallbackLog)")
        #expect(fallbackLog.contains("falling back to nftables"), "\(fallbackLog)")
    }
}
