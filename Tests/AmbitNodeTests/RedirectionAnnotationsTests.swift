import AmbitConfig
import AmbitModel
import AmbitTestSupport
import Testing

@testable import AmbitNode

/// Which pods get `ambient.istio.io/redirection` written or removed: only this node's, only where the
/// watched pod differs from what is captured.
@Suite struct RedirectionAnnotationsTests {
    @Test func writesOnlyWhatDiffersOnThisNode() throws {
        let marker = ["ambient.istio.io/redirection": "enabled"]
        let snapshot = try DecisionTests.snapshot([
            Manifests.namespace("demo", labels: ["istio.io/dataplane-mode": "ambient"]),
            Manifests.pod("new", namespace: "demo", ip: "10.244.1.2", node: "n1"),
            Manifests.pod("done", namespace: "demo", ip: "10.244.1.3", node: "n1", annotations: marker),
            Manifests.pod("left", namespace: "demo", ip: "10.244.1.4", node: "n1", annotations: marker),
            Manifests.pod(
                "odd",
                namespace: "demo",
                ip: "10.244.1.5",
                node: "n1",
                annotations: ["ambient.istio.io/redirection": "disabled"]
            ),
            Manifests.pod("plain", namespace: "demo", ip: "10.244.1.6", node: "n1"),
            Manifests.pod("elsewhere", namespace: "demo", ip: "10.244.2.2", node: "n2", annotations: marker),
        ])
        func key(_ name: String) -> ObjectKey { ObjectKey(.pod, namespace: "demo", name: name) }
        let captured: Set = [key("new"), key("done"), key("odd")]
        let pending = RedirectionAnnotations.pending(captured: captured, snapshot: snapshot, node: "n1")
        #expect(pending == [key("new"): true, key("odd"): true, key("left"): false])
        #expect(RedirectionAnnotations.pending(captured: captured, snapshot: snapshot, node: "n3").isEmpty)
    }
}
