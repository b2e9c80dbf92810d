/// What Istio's telemetry calls a pod: its workload (the controller that made it, not the pod), and the
/// canonical service and revision. The rules are istiod's, so dashboards group the same way:
///
/// - workload: the label `service.istio.io/workload-name`; else, for a pod with a `generateName`, its
///   controller owner (one level): a ReplicaSet named `<deployment>-<pod-template-hash>` is its
///   Deployment, a Job named `<cronjob>-<8 to 10 digits>` its CronJob, any other controller (StatefulSet,
///   DaemonSet, a bare ReplicaSet or Job) itself; else the pod's own name.
/// - canonical service: `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`, else the
///   workload name; canonical revision: `service.istio.io/canonical-revision`, `app.kubernetes.io/version`,
///   `version`, else `latest`. The first label present wins, even when empty.
extension Pod {
    public static let workloadNameLabel = "service.istio.io/workload-name"

    /// The workload's name and kind (`Deployment`, `CronJob`, `StatefulSet`, ..., or `Pod`).
    public var workloadMeta: (name: String, kind: String) {
        if let name = metadata.labels[Self.workloadNameLabel] { return (name, "Pod") }
        guard metadata.generateName?.isEmpty == false,
            let owner = metadata.ownerReferences.first(where: \.controller)
        else { return (metadata.name, "Pod") }
        var meta = (name: owner.name, kind: owner.kind)
        if owner.kind == "ReplicaSet", let hash = metadata.labels["pod-template-hash"], !hash.isEmpty,
            owner.name.hasSuffix("-" + hash)
        {
            meta = (String(owner.name.dropLast(hash.count + 1)), "Deployment")
        } else if owner.kind == "Job", let cronJob = Self.cronJobName(ofJob: owner.name) {
            meta = (cronJob, "CronJob")
        }
        return meta.name.isEmpty ? (metadata.name, "Pod") : meta
    }

    public var workloadName: String { workloadMeta.name }

    /// `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`, else the workload's name.
    public var canonicalService: String {
        for key in ["service.istio.io/canonical-name", "app.kubernetes.io/name", "app"] {
            if let value = metadata.labels[key] { return value }
        }
        return workloadName
    }

    /// `service.istio.io/canonical-revision`, `app.kubernetes.io/version`, `version`, else `latest`.
    public var canonicalRevision: String {
        for key in ["service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"] {
            if let value = metadata.labels[key] { return value }
        }
        return "latest"
    }

    /// A CronJob names its Jobs `<cronjob>-<scheduled time>`, the time as 8 to 10 digits.
    static func cronJobName(ofJob job: String) -> String? {
        guard let dash = job.lastIndex(of: "-") else { return nil }
        let digits = job[job.index(after: dash)...]
        guard (8...10).contains(digits.count), digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
            dash > job.startIndex
        else { return nil }
        return String(job[..<dash])
    }
}
