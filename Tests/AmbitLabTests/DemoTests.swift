import Foundation
import Testing

/// The README's main job (`./scripts/demo`) run as a user runs it, on the binaries `swift build` produced, in
/// its own state directory and under its own lab name. Part of the serialized lab suite.
extension LabRootTests {
    @Test(arguments: captureModes)
    func readmeDemoRunsEndToEndAndTearsDown(capture: String) throws {
        let name = LabCLI.uniqueLabName()
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("ambit-demo-test-\(UUID())")
        defer {
            _ = try? LabCLI.lab(["down", "--name", name, "--state-dir", state.path])
            try? FileManager.default.removeItem(at: state)
        }
        let binDirectory = URL(fileURLWithPath: LabCLI.ambitctl).deletingLastPathComponent().path
        let (status, output) = try Self.shell(
            "AMBIT_SKIP_SETUP=1 AMBIT_BIN_DIR=\(binDirectory) AMBIT_DEMO_STATE_DIR=\(state.path) AMBIT_CAPTURE=\(capture) "
                + "AMBIT_DEMO_LAB=\(name) \(LabCLI.packageRoot.path)/scripts/demo"
        )
        #expect(status == 0, "\(output)")
        for line in [
            "hello from demo/server to 10.244.2.2:8080 from 10.244.1.2:",
            "hello from demo/server-2 to 10.244.1.3:8080 from 10.244.1.2:",
            "10.244.1.2 -> 10.244.2.2:15008  TLSv1.3",
            "segments of anything else",
            "is nowhere in the capture; legacy-client's header is (it is not in the mesh)",
            "applied examples/lab/policies/deny-client.yaml",
            #"istio_tcp_connections_closed_total{reporter="destination",source_workload="client","#
                + #"destination_workload="server",destination_service="server.demo.svc.cluster.local","#
                + #"response_flags="DENY",connection_security_policy="mutual_tls"} 1"#,
            "(plain TCP from the pod to 172.31.0.11:6443: the endpoint is a node, not a mesh workload)",
            "server: True http 10.244.2.2:8080/ready: status 200",
            "==> demo finished",
            "netns     removed ambit-\(name)-ul",
        ] {
            #expect(output.contains(line), "missing \(line)")
        }
        #expect(output.contains(" 0 segments of anything else"), "\(output)")
        #expect(LabCLI.netnsList().filter { $0.hasPrefix("ambit-\(name)-") }.isEmpty)
    }
}
