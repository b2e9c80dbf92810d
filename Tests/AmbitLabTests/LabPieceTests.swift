import AmbitModel
import Foundation
import Testing

@testable import AmbitLab

/// The lab's pieces that need no root: manifests, labels, CNI result and admin API parsing.
@Suite struct LabPieceTests {
    func temporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("labpieces-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func manifestsCarryLabelsUidsAndIPsAndEnrollmentFollowsThem() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var spec = try LabSpec.defaultLab()
        let manifests = LabManifests(directory: directory.path)
        try manifests.writeNamespaces(spec)
        try manifests.writeServices(spec)
        let records = spec.pods.enumerated().map { index, pod in
            LabRecord.PodRecord(
                name: pod.name,
                namespace: pod.namespace,
                node: pod.node,
                netns: "ns",
                containerID: LabBuilder.randomContainerID(),
                uid: "uid-\(index)",
                ip: index == 0 ? nil : "10.244.1.\(index + 1)"
            )
        }
        try manifests.writePods(Array(zip(spec.pods, records)).map { (spec: $0, record: $1) })

        let pods = try String(contentsOf: directory.appendingPathComponent("pods.yaml"), encoding: .utf8)
        #expect(pods.contains("uid: uid-1"))
        #expect(pods.contains("podIP: 10.244.1.2"))
        #expect(pods.contains("phase: Pending"))  // the first pod has no IP yet
        #expect(pods.contains("serviceAccountName: server"))
        let namespaces = try String(contentsOf: directory.appendingPathComponent("namespaces.yaml"), encoding: .utf8)
        #expect(namespaces.contains("istio.io/dataplane-mode: ambient"))
        #expect(namespaces.contains("kind: ServiceAccount"))
        let services = try String(contentsOf: directory.appendingPathComponent("services.yaml"), encoding: .utf8)
        #expect(services.contains("clusterIP: 10.96.0.10"))
        #expect(services.contains("targetPort: 8080"))

        var labels = ManifestLabels.read(directory: directory.path)
        #expect(labels.isEnrolled(namespace: "demo", pod: "client"))
        #expect(!labels.isEnrolled(namespace: "legacy", pod: "legacy-client"))

        // `lab label namespace legacy istio.io/dataplane-mode=ambient` then opt one demo pod out.
        let index = try #require(spec.namespaces.firstIndex { $0.name == "legacy" })
        try LabelEdit.parse("istio.io/dataplane-mode=ambient").apply(to: &spec.namespaces[index].labels)
        try manifests.writeNamespaces(spec)
        let optOut =
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: demo\n"
            + "  labels:\n    istio.io/dataplane-mode: none\n"
        try optOut.write(to: directory.appendingPathComponent("zz-optout.yaml"), atomically: true, encoding: .utf8)
        labels = ManifestLabels.read(directory: directory.path)
        #expect(labels.isEnrolled(namespace: "legacy", pod: "legacy-client"))
        #expect(!labels.isEnrolled(namespace: "demo", pod: "client"))
        #expect(labels.isEnrolled(namespace: "demo", pod: "server"))
    }

    @Test func labelEdits() throws {
        #expect(try LabelEdit.parse("a=b") == .set("a", "b"))
        #expect(try LabelEdit.parse("a=") == .set("a", ""))
        #expect(try LabelEdit.parse("istio.io/dataplane-mode-") == .remove("istio.io/dataplane-mode"))
        #expect(throws: LabError.self) { try LabelEdit.parse("novalue") }
        #expect(throws: LabError.self) { try LabelEdit.parse("=x") }
    }

    @Test func podIPFromBridgeResult() {
        let result = """
            {"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/x"}],
             "ips":[{"interface":1,"address":"10.244.1.7/24","gateway":"10.244.1.1"}],"routes":[{"dst":"0.0.0.0/0"}]}
            """
        #expect(CNIChain.podIP(fromResult: result) == "10.244.1.7")
        #expect(CNIChain.podIP(fromResult: "{}") == nil)
        #expect(CNIChain.podIP(fromResult: "not json") == nil)
    }

    @Test func configDumpParsing() throws {
        let snapshot = try #require(
            AgentProbe.parse(configDump: #"{"capturedPods":[{"uid":"a"},{"uid":"b"}],"connections":{"active":3}}"#)
        )
        #expect(snapshot.capturedUIDs == ["a", "b"])
        #expect(snapshot.activeConnections == 3)
        let bare = try #require(AgentProbe.parse(configDump: "{}"))
        #expect(bare.capturedUIDs.isEmpty && bare.activeConnections == nil)
        #expect(AgentProbe.parse(configDump: "[1]") == nil)
    }

    @Test func cniInvocationFollowsTheRuntimeContract() throws {
        let layout = LabLayout(stateDirectory: "/run/ambit-lab", name: "demo")
        let tools = HostTools(nsenter: "/usr/bin/nsenter", ip: "/usr/sbin/ip", python3: nil, curl: nil)
        let chain = CNIChain(
            tools: tools,
            runner: ProcessCommandRunner(),
            layout: layout,
            cniBinDirectory: "/usr/lib/cni",
            binDirectory: "/opt/ambit/bin",
            mesh: true
        )
        let pod = CNIChain.Pod(
            name: "client",
            namespace: "demo",
            uid: "u-1",
            containerID: "c0ffee",
            netns: layout.podNetns("client"),
            node: "node1",
            nodeNetns: layout.nodeNetns("node1"),
            podCIDR: try IPCIDR.lab("10.244.1.0/24").get()
        )
        #expect(chain.plugins == ["bridge", "ambit-cni"])
        #expect(chain.executable("ambit-cni") == "/opt/ambit/bin/ambit-cni")
        let environment = chain.environment(command: "ADD", pod: pod)
        #expect(environment["CNI_NETNS"] == "/var/run/netns/ambit-demo-p-client")
        #expect(environment["CNI_IFNAME"] == "eth0")
        #expect(environment["CNI_PATH"] == "/usr/lib/cni:/opt/ambit/bin")
        #expect(
            environment["CNI_ARGS"]
                == "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=client;K8S_POD_INFRA_CONTAINER_ID=c0ffee;"
                + "K8S_POD_UID=u-1"
        )
        let bridge = chain.config(plugin: "bridge", pod: pod)
        #expect(bridge["bridge"] as? String == "cni0")
        let ipam = try #require(bridge["ipam"] as? [String: Any])
        #expect(ipam["dataDir"] as? String == "/run/ambit-lab/demo/ipam/node1")
        let ambit = chain.config(plugin: "ambit-cni", pod: pod)
        #expect(ambit["agentSocket"] as? String == "/run/ambit-lab/demo/run/node1/cni.sock")
        #expect(ambit["enrollmentFile"] as? String == "/run/ambit-lab/demo/run/node1/enrollment.json")
        #expect(LabBuilder.randomContainerID().count == 64)
    }

    @Test func statusTableShowsUnknownsAsDashes() {
        let report = LabStatusReport(
            name: "demo",
            phase: "up",
            mesh: true,
            stateDirectory: "/run/ambit-lab/demo",
            nodes: [
                .init(
                    name: "node1",
                    netns: "ambit-demo-node1",
                    underlayIP: "172.31.0.11",
                    podCIDR: "10.244.1.0/24",
                    agentPid: 42,
                    agentAlive: false,
                    tunnels: nil
                )
            ],
            pods: [
                .init(
                    name: "client",
                    namespace: "demo",
                    node: "node1",
                    ip: "10.244.1.2",
                    uid: "u",
                    enrolled: true,
                    captured: nil,
                    appPid: nil,
                    appAlive: nil
                )
            ]
        )
        #expect(report.table.contains("node1  ambit-demo-node1  172.31.0.11  10.244.1.0/24  42 dead  -"))
        #expect(report.table.contains("client  demo       node1  10.244.1.2  yes       -         -"))
        #expect(report.json.contains("\"captured\" : null"))
    }
}
