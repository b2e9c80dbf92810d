public import AmbitConfig
public import AmbitModel

/// Which identities a caller may obtain, following istiod's rules for ztunnel:
///
/// - any caller may obtain its own service account's identity;
/// - a trusted node account (`--node-account`, e.g. `ambit-system/ambit-node`) may ask, by impersonation,
///   for the identity of a pod scheduled on its node, and for nothing else. Its node is the token's node claim,
///   or, for a token bound only to a pod (Kubernetes before 1.30), that pod's `spec.nodeName`, as istiod does;
/// - nobody gets an identity outside the trust domain.
public struct CertificateRequestAuthorizer: Sendable {
    public let trustDomain: String
    /// `namespace/serviceaccount` of the node agents.
    public let nodeAccounts: Set<String>
    private let snapshot: @Sendable () -> ConfigSnapshot?
    private let catchUp: @Sendable () async -> Void
    private let settle: Duration

    /// Before a node agent is refused for want of a pod (one the CA has not seen yet may have just been
    /// scheduled), `catchUp` runs once (a manifest directory is read again) and then the snapshot is watched for
    /// up to `settle` (an API watch delivers the pod on its own).
    public init(
        trustDomain: String,
        nodeAccounts: Set<String>,
        snapshot: @escaping @Sendable () -> ConfigSnapshot?,
        catchUp: @escaping @Sendable () async -> Void = {},
        settle: Duration = .zero
    ) {
        self.trustDomain = trustDomain
        self.nodeAccounts = nodeAccounts
        self.snapshot = snapshot
        self.catchUp = catchUp
        self.settle = settle
    }

    /// Allows `caller` the identity its CSR asks for (`requested`), or says why not. `impersonated` is the
    /// request's `ImpersonatedIdentity`, when it has one.
    public func authorize(_ caller: CACaller, requested: SpiffeID, impersonated: SpiffeID?) async throws(CARefusal) {
        guard requested.trustDomain == trustDomain else {
            throw CARefusal(
                .permissionDenied,
                "\(requested) is outside the trust domain \"\(trustDomain)\" this CA signs for"
            )
        }
        if let impersonated, impersonated != requested {
            throw CARefusal(
                .invalidArgument,
                "the ImpersonatedIdentity \(impersonated) differs from the CSR's identity \(requested)"
            )
        }
        let own = requested.namespace == caller.namespace && requested.serviceAccount == caller.serviceAccount
        if impersonated == nil || own {
            guard own else {
                throw CARefusal(
                    .permissionDenied,
                    "\(caller) may obtain only its own identity, not \(requested)"
                )
            }
            return
        }
        guard nodeAccounts.contains(caller.account) else {
            throw CARefusal(
                .permissionDenied,
                "\(caller) is not a node agent account (\(nodeAccounts.sorted().joined(separator: ", "))) and may not impersonate \(requested)"
            )
        }
        guard caller.nodeName != nil || caller.podName != nil else {
            throw CARefusal(
                .permissionDenied,
                "the node agent's token is bound to neither a node nor a pod, so it may not impersonate \(requested)"
            )
        }
        func scheduled() throws(CARefusal) -> Bool {
            guard let snapshot = snapshot() else {
                throw CARefusal(.unavailable, "the CA has not loaded the cluster's pods yet; retry")
            }
            return snapshot.workloads(onNode: try callerNode(of: caller, in: snapshot)).contains {
                $0.identity == requested
            }
        }
        var found = try scheduled()
        if !found {
            await catchUp()
            found = try scheduled()
            let deadline = ContinuousClock.now + settle
            while !found, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
                found = try scheduled()
            }
        }
        guard found else {
            let node = snapshot().flatMap { try? callerNode(of: caller, in: $0) } ?? "?"
            throw CARefusal(
                .permissionDenied,
                "no pod with identity \(requested) is scheduled on node \(node), so its agent may not obtain it"
            )
        }
    }

    /// The caller's node: its token's node claim, else the node its pod (the token's pod claim, in the caller's
    /// namespace and of the caller's service account) is scheduled on.
    private func callerNode(of caller: CACaller, in snapshot: ConfigSnapshot) throws(CARefusal) -> String {
        if let node = caller.nodeName { return node }
        guard let name = caller.podName,
            let pod = snapshot.pods[ObjectKey(.pod, namespace: caller.namespace, name: name)],
            pod.serviceAccountName == caller.serviceAccount, let node = pod.nodeName
        else {
            throw CARefusal(
                .permissionDenied,
                "the node agent's token names no node, and its pod \(caller.namespace)/\(caller.podName ?? "?") is not a scheduled pod of \(caller.account)"
            )
        }
        return node
    }
}
