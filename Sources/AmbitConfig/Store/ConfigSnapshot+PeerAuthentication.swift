public import AmbitModel

/// PeerAuthentication policies by level, resolved the way Istio does: workload (selector, in the
/// pod's namespace), then namespace (no selector), then mesh (root namespace, no selector).
/// Within a level the oldest policy wins; `UNSET` inherits from the level above.
struct PeerAuthenticationIndex {
    private var mesh: PeerAuthentication?
    private var namespaceWide: [String: PeerAuthentication] = [:]
    private var withSelector: [String: [PeerAuthentication]] = [:]

    init(policies: some Collection<PeerAuthentication>, rootNamespace: String) {
        // Oldest first; the name breaks ties so the choice is stable.
        let ordered = policies.sorted {
            ($0.metadata.creationTimestamp ?? "", $0.metadata.name) < (
                $1.metadata.creationTimestamp ?? "", $1.metadata.name
            )
        }
        for policy in ordered {
            let namespace = policy.metadata.namespace
            if let selector = policy.selector, !selector.isEmpty {
                // Istio ignores selector policies in the root namespace.
                if namespace != rootNamespace { withSelector[namespace, default: []].append(policy) }
            } else if namespace == rootNamespace {
                if mesh == nil { mesh = policy }
            } else if namespaceWide[namespace] == nil {
                namespaceWide[namespace] = policy
            }
        }
    }

    func mode(for pod: Pod, port: UInt16) -> PeerAuthentication.Mode {
        let workload = withSelector[pod.metadata.namespace]?.first { $0.selector!.matches(pod.metadata.labels) }
        for mode in [
            workload?.portLevelModes[port], workload?.mode, namespaceWide[pod.metadata.namespace]?.mode, mesh?.mode,
        ] {
            if let mode, mode != .unset { return mode }
        }
        return .permissive
    }
}

extension ConfigSnapshot {
    /// The effective mTLS mode for plaintext arriving at `port` of `pod`: STRICT rejects it,
    /// PERMISSIVE and DISABLE accept it. Never `UNSET`.
    public func peerAuthenticationMode(for pod: Pod, port: UInt16) -> PeerAuthentication.Mode {
        peerAuthenticationIndex.mode(for: pod, port: port)
    }
}
