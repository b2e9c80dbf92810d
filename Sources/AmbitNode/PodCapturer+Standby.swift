import AmbitCapture

extension PodCapturer {
    /// A standby keeps up with the active agent: it serves the pods recorded since it started and lets go of
    /// the ones whose record is gone (released by the active agent, which removed their capture itself).
    func followRecords() async {
        let (saved, _) = records.loadAll()
        await queue.serialized {
            guard !isActive else { return }
            let recorded = Set(saved.map(\.uid))
            for pod in inputs.registry.all where !recorded.contains(pod.record.uid) {
                await release(uid: pod.record.uid, reason: "the active agent released it")
            }
            for record in saved where inputs.registry.pod(uid: record.uid) == nil {
                // A namespace already gone belongs to a deleted pod: the active agent drops its record.
                guard let netns = try? NetworkNamespace.open(path: record.netnsPath) else { continue }
                do {
                    try await capture(record, netns: netns)
                } catch {
                    inputs.logger.warning(
                        "standby cannot serve a recorded pod",
                        metadata: ["pod": "\(record.displayName)", "error": "\(error)"]
                    )
                }
            }
        }
    }
}
