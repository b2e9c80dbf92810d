public import AmbitModel

/// Something that feeds a ``ConfigStore``: a manifest directory, or the Kubernetes API.
public protocol ConfigSource: Sendable {
    /// Returns once the store holds a complete first view (every collection read once), so that
    /// nothing acts on a partial configuration (say, releasing pods whose namespace is not read yet).
    func start() async throws
    /// Keeps the store current until the task is cancelled.
    func run() async throws
    /// What the source is reading and how it is doing, for `/config_dump` (JSON-compatible values).
    func statusDump() -> [String: Any]
    /// Brings the store up to date now, waiting briefly for `key` to appear (the CNI plugin may
    /// announce a pod before the source has delivered its object).
    func catchUp(awaiting key: ObjectKey) async
    /// Writes annotations back on pods, where the source can (the Kubernetes API); `nil` for a
    /// manifest directory, which is the user's and never written to.
    var podAnnotations: (any PodAnnotationWriter)? { get }
    /// What is rejected now and why (files or objects whose last good state stays in force), for
    /// readiness details, metrics and logs; empty when everything applied.
    var problems: [String] { get }
}

extension ConfigSource {
    public var podAnnotations: (any PodAnnotationWriter)? { nil }
    public var problems: [String] { [] }
}

/// Sets or removes one annotation on a pod, as a JSON merge patch of the pod's `status`
/// subresource (what istio-cni does, so the agent needs `patch` on `pods/status` only).
public protocol PodAnnotationWriter: Sendable {
    /// `value` nil removes the annotation. Throws with the API server's answer when it refuses.
    func setAnnotation(_ name: String, to value: String?, onPod pod: ObjectKey) async throws
}
