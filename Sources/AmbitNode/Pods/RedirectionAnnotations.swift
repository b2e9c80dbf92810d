import AmbitConfig
import AmbitModel
import Logging
import Synchronization

/// Istio's coexistence marker: a captured pod carries `ambient.istio.io/redirection: enabled`, so
/// Istio's own gateways and sidecars know to speak HBONE to it, and loses it when released (what
/// istio-cni writes). Level-based: each ``sync(captured:snapshot:)`` compares the pods this node
/// captures with the annotations the watched pods carry and writes only the differences, so a write
/// that failed (API server away, RBAC missing) is made again on a later sync, and an agent that
/// restarts corrects whatever changed meanwhile. Writes only through a source that can write (the
/// Kubernetes API); with a manifest directory nothing is written.
final class RedirectionAnnotations: Sendable {
    static let name = "ambient.istio.io/redirection"
    static let enabled = "enabled"

    private let writer: any PodAnnotationWriter
    private let nodeName: String
    private let logger: Logger
    /// Writes under way (pod → the value being written), so a sync does not start the same one twice.
    private let inFlight = Mutex<[ObjectKey: Bool]>([:])
    /// Pods whose last write failed, so the warning is logged once per failure streak.
    private let failing = Mutex<Set<ObjectKey>>([])

    init(writer: any PodAnnotationWriter, nodeName: String, logger: Logger) {
        self.writer = writer
        self.nodeName = nodeName
        self.logger = logger
    }

    /// What must change: pod → `true` (annotate) or `false` (remove), for the pods of `node`.
    static func pending(captured: Set<ObjectKey>, snapshot: ConfigSnapshot, node: String) -> [ObjectKey: Bool] {
        var changes: [ObjectKey: Bool] = [:]
        for pod in snapshot.pods(onNode: node) {
            let current = pod.metadata.annotations[name]
            if captured.contains(pod.key) {
                if current != enabled { changes[pod.key] = true }
            } else if current != nil {
                changes[pod.key] = false
            }
        }
        return changes
    }

    /// Starts the writes that bring the annotations in line with `captured`; returns at once.
    func sync(captured: Set<ObjectKey>, snapshot: ConfigSnapshot) {
        let changes = Self.pending(captured: captured, snapshot: snapshot, node: nodeName)
        let started = inFlight.withLock { inFlight in
            let new = changes.filter { inFlight[$0.key] != $0.value }
            for (pod, value) in new { inFlight[pod] = value }
            return new
        }
        for (pod, annotate) in started {
            Task { await write(annotate, on: pod) }
        }
    }

    private func write(_ annotate: Bool, on pod: ObjectKey) async {
        let display = "\(pod.namespace)/\(pod.name)"
        do {
            try await writer.setAnnotation(Self.name, to: annotate ? Self.enabled : nil, onPod: pod)
            if failing.withLock({ $0.remove(pod) != nil }) {
                logger.info("pod annotation written after earlier failures", metadata: ["pod": "\(display)"])
            }
            logger.debug(
                annotate ? "pod annotated as captured" : "pod's capture annotation removed",
                metadata: ["pod": "\(display)", "annotation": "\(Self.name)"]
            )
        } catch {
            if failing.withLock({ $0.insert(pod).inserted }) {
                logger.warning(
                    "cannot write the pod's capture annotation; Istio gateways and sidecars may not use HBONE to it; retrying",
                    metadata: ["pod": "\(display)", "annotation": "\(Self.name)", "error": "\(error)"]
                )
            }
        }
        // Done either way: the next sync retries whatever still differs.
        inFlight.withLock { _ = $0.removeValue(forKey: pod) }
    }
}
