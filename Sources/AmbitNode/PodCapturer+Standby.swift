import AmbitCapture

extension PodCapturer {
    /// A standby keeps up with the active agent: it serves the pods recorded since it started and lets go of
    /// the ones whose record is gone (released by the active agent, which removed their capture itself).
    func followRecords() async {
        let (saved, errors) = records.loadAll()
        await queue.serialized {
            guard !isActive else { return }
            let recorded = Set(saved.map(\.uid))
            // Only a complete reading of the records says which pods are gone.
            for pod in inputs.registry.all where errors.isEmpty && !recorded.contains(pod.record.uid) {
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
            standbyServes(saved, unreadable: errors)
        }
    }

    /// This agent now holds the node: it owns capture from here on, and installs it again for every pod it
    /// serves (its own rules and eBPF enrollment, in case they differ from its predecessor's; with eBPF, the
    /// pod's inbound connections come to its listener).
    func takeOver() async {
        await queue.serialized {
            becomeActive()
            let backend = inputs.backend
            for pod in inputs.registry.all {
                let (netns, addresses, listener) = (pod.netns, pod.record.addresses, pod.inboundListenerFD)
                do {
                    try await inputs.executor.run(in: netns) {
                        try backend.prepare()
                        try backend.activate(netns: netns, addresses: addresses, inboundListener: listener)
                    }
                } catch {
                    inputs.logger.error(
                        "cannot install capture for a pod taken over",
                        metadata: ["pod": "\(pod.record.displayName)", "error": "\(error)"]
                    )
                }
            }
        }
    }

    /// With eBPF, the active agent's inbound listeners back in `inbound_listeners` where an entry vanished (a
    /// standby that pointed them at its own listener stopped without taking over).
    func repairInboundListeners() async {
        guard case .ebpf = inputs.backend else { return }
        // Serialized with release, so every descriptor used is still its pod's open listener.
        await queue.serialized {
            guard isActive else { return }
            for pod in inputs.registry.all
            where inputs.backend.repairInboundListener(addresses: pod.addresses, inboundListener: pod.inboundListenerFD)
            {
                inputs.logger.warning(
                    "inbound listener entry was missing and is restored",
                    metadata: ["pod": "\(pod.record.displayName)"]
                )
            }
        }
    }
}
