import AmbitModel
import Testing

/// Istio's workload names and canonical labels, from owner references and labels.
@Suite struct WorkloadNameTests {
    static func pod(
        _ name: String,
        generateName: String? = nil,
        owner: (kind: String, name: String)? = nil,
        labels: [String: String] = [:]
    ) -> Pod {
        Pod(
            metadata: ObjectMeta(
                name: name,
                namespace: "demo",
                labels: labels,
                generateName: generateName,
                ownerReferences: owner.map {
                    [OwnerReference(apiVersion: "apps/v1", kind: $0.kind, name: $0.name, controller: true)]
                } ?? []
            )
        )
    }

    @Test func aDeploymentsPodIsNamedAfterTheDeployment() {
        let pod = Self.pod(
            "reviews-v1-545db77b95-x2kzq",
            generateName: "reviews-v1-545db77b95-",
            owner: ("ReplicaSet", "reviews-v1-545db77b95"),
            labels: ["pod-template-hash": "545db77b95", "app": "reviews", "version": "v1"]
        )
        #expect(pod.workloadMeta.name == "reviews-v1" && pod.workloadMeta.kind == "Deployment")
        #expect(pod.canonicalService == "reviews" && pod.canonicalRevision == "v1")
    }

    @Test func cronJobsStatefulSetsDaemonSetsAndPlainPods() {
        let cron = Self.pod(
            "backup-28934460-abcde",
            generateName: "backup-28934460-",
            owner: ("Job", "backup-28934460")
        )
        #expect(cron.workloadMeta.name == "backup" && cron.workloadMeta.kind == "CronJob")
        let job = Self.pod("once-abcde", generateName: "once-", owner: ("Job", "once"))
        #expect(job.workloadMeta.name == "once" && job.workloadMeta.kind == "Job")
        let stateful = Self.pod("db-0", generateName: "db-", owner: ("StatefulSet", "db"))
        #expect(stateful.workloadName == "db")
        let daemon = Self.pod("agent-x1", generateName: "agent-", owner: ("DaemonSet", "agent"))
        #expect(daemon.workloadName == "agent")
        // A ReplicaSet whose name does not end in the pod's template hash is its own workload.
        let bare = Self.pod(
            "rs-abc",
            generateName: "rs-",
            owner: ("ReplicaSet", "rs"),
            labels: ["pod-template-hash": "zz"]
        )
        #expect(bare.workloadName == "rs")
        // Owner references count only for pods a controller named (generateName), as in istiod.
        #expect(Self.pod("standalone", owner: ("ReplicaSet", "x-1")).workloadName == "standalone")
        #expect(Self.pod("plain").workloadName == "plain" && Self.pod("plain").canonicalService == "plain")
        #expect(Self.pod("plain").canonicalRevision == "latest")
    }

    @Test func labelsWinInIstiosOrder() {
        let pod = Self.pod(
            "web-abc",
            generateName: "web-",
            owner: ("ReplicaSet", "web"),
            labels: [
                "service.istio.io/workload-name": "frontend", "app.kubernetes.io/name": "shop", "app": "web",
                "app.kubernetes.io/version": "2.1", "version": "v2",
            ]
        )
        #expect(pod.workloadName == "frontend")
        #expect(pod.canonicalService == "shop" && pod.canonicalRevision == "2.1")
        let canonical = Self.pod(
            "x",
            labels: ["service.istio.io/canonical-name": "", "app": "web", "service.istio.io/canonical-revision": "r7"]
        )
        #expect(canonical.canonicalService == "", "the first label present wins, even empty")
        #expect(canonical.canonicalRevision == "r7")
    }
}
