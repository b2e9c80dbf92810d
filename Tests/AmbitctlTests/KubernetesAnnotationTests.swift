import AmbitTestSupport
import Foundation
import Testing

/// Istio's coexistence marker: `ambit-node`, reading the (fake) Kubernetes API, captures a pod that lives
/// in a real network namespace and writes `ambient.istio.io/redirection: enabled` on it with a merge patch
/// of `pods/status`; it removes the annotation when the pod leaves the mesh, and retries a refused write.
@Suite(.serialized) struct KubernetesAnnotationTests {
    static let podIP = "10.250.0.5"

    @Test func aCapturedPodIsAnnotatedAndTheAnnotationGoesWhenItIsReleased() async throws {
        let cluster = try await KubernetesModeTests.Cluster()
        // The pod's network namespace, as a container runtime would have made it.
        let netns = "ambit-annot-\(getpid())"
        #expect(try ProcessRunner.run("/usr/sbin/ip", ["netns", "add", netns]).status == 0)
        defer { _ = try? ProcessRunner.run("/usr/sbin/ip", ["netns", "delete", netns]) }
        for command in [
            ["link", "add", "eth0", "type", "veth", "peer", "name", "eth1"],
            ["addr", "add", "\(Self.podIP)/32", "dev", "eth0"],
            ["link", "set", "eth0", "up"], ["link", "set", "lo", "up"],
        ] {
            #expect(try ProcessRunner.run("/usr/sbin/ip", ["-n", netns] + command).status == 0)
        }
        let pod = "web-0"
        let path = "/api/v1/namespaces/demo/pods/\(pod)/status"
        var object = try #require(
            try JSONSerialization.jsonObject(
                with: Data(KubernetesFixtures.pod(pod, ip: Self.podIP, nodeName: "node-9").utf8)
            ) as? [String: Any]
        )
        var metadata = object["metadata"] as? [String: Any] ?? [:]
        metadata["annotations"] = ["kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"]
        object["metadata"] = metadata
        cluster.server.put(
            KubernetesFixtures.pods,
            String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        )
        // The first write is refused (as by a missing RBAC rule); the agent tries again.
        cluster.server.fail(path, status: 403)

        let state = cluster.directory.path + "/state"
        let readiness = TestPorts.free()
        try cluster.start(
            "ambit-node",
            [
                "--node-name", "node-9", "--kubeconfig", cluster.kubeconfig, "--ca-dir", cluster.ca,
                "--state-dir", state, "--netns-dir", "/var/run/netns", "--netns-prefix", netns,
                "--metrics-port", "\(TestPorts.free())", "--readiness-port", "\(readiness)",
                "--admin-port", "\(TestPorts.free())", "--log-format", "json",
            ]
        )
        func annotation() -> String? {
            let object = cluster.server.object(KubernetesFixtures.pods, namespace: "demo", name: pod)
            let metadata = object?["metadata"] as? [String: Any]
            return (metadata?["annotations"] as? [String: Any])?["ambient.istio.io/redirection"] as? String
        }
        #expect(KubernetesModeTests.eventually(30) { annotation() == "enabled" }, "\(cluster.log("ambit-node"))")
        let patches = cluster.server.requests.filter { $0.method == "PATCH" }
        #expect(patches.count >= 2, "the refused write was made again: \(patches)")
        #expect(patches.allSatisfy { $0.path == path && $0.contentType == "application/merge-patch+json" })
        #expect(patches.last?.body == #"{"metadata":{"annotations":{"ambient.istio.io/redirection":"enabled"}}}"#)
        #expect(cluster.log("ambit-node").contains("cannot write the pod's capture annotation"))
        // The pod's other annotations are untouched (a merge patch, not a replace).
        let patched = cluster.server.object(KubernetesFixtures.pods, namespace: "demo", name: pod)
        let annotations = (patched?["metadata"] as? [String: Any])?["annotations"] as? [String: Any]
        #expect(annotations?["kubectl.kubernetes.io/restartedAt"] as? String == "2026-12-01T10:00:00Z")

        // The namespace leaves the mesh: the pod is released and its annotation removed.
        cluster.server.put(
            KubernetesFixtures.namespaces,
            KubernetesFixtures.json("namespace-demo").replacingOccurrences(
                of: "\"istio.io/dataplane-mode\": \"ambient\",",
                with: ""
            )
        )
        #expect(KubernetesModeTests.eventually(30) { annotation() == nil }, "\(cluster.log("ambit-node"))")
        let removal = cluster.server.requests.last { $0.method == "PATCH" }
        #expect(removal?.body == #"{"metadata":{"annotations":{"ambient.istio.io/redirection":null}}}"#)
        await cluster.close()
    }
}
