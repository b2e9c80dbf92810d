import AmbitCNI
import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitRelay
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Puts the node's enrolled pods under capture and takes them out again (ztunnel's in-pod workload
/// manager): installs a pod's capture inside its network namespace, opens its three listeners there
/// and hands them to the proxies; releases a pod that left the mesh; restores every recorded pod
/// after a restart; reconciles with the configuration; answers the CNI plugin. Every capture and
/// release runs one at a time (``CaptureQueue``).
final class PodCapturer: Sendable {
    /// What the capturer needs to know about its node and the pods' HBONE servers.
    struct Settings: Sendable {
        var nodeName: String
        var netnsDirectory: String
        var netnsPrefix: String
        var enrollmentFile: String
    }

    /// The HBONE servers' settings and trust, and the connection budget all of them share.
    struct ServerSettings: Sendable {
        var configuration: HBONEConfiguration
        /// The trust (roots and trust domain) and clients' chains, verified once per chain for all
        /// the pods' servers.
        var peerVerifier: CachingPeerVerifier
        var limiter: HBONEConnectionLimiter
        /// Told of every limit a server hits (`ambit_limit_hits_total`).
        var onLimit: @Sendable (HBONELimit) -> Void
    }

    /// Whether every pod that should be captured is, for readiness.
    struct Readiness: Sendable {
        /// Recorded pods were restored after start-up.
        var restored = false
        /// Pods that should be captured but are not yet, with why.
        var missing = ["initial configuration not loaded"]

        var isReady: Bool { restored && missing.isEmpty }
    }

    let settings: Settings
    let hbone: ServerSettings
    let inputs: ProxyInputs
    let outbound: OutboundProxy
    let inbound: InboundProxy
    let source: any ConfigSource
    let records: PodRecordStore
    let group: any EventLoopGroup
    let queue = CaptureQueue()
    private let state = Mutex(Readiness())
    /// Set once this agent stops changing capture (it drains, or hands the node to a successor).
    private let changesStopped = Atomic<Bool>(false)
    /// Whether this agent holds the node (``AgentLock``) and owns capture: rules, records, pins, the node's probe
    /// rule and the pods' annotations. A standby only serves, with listeners of its own, the pods the active
    /// agent recorded.
    private let activeRole: Atomic<Bool>
    /// Istio's coexistence annotation on captured pods, where the source can write (the Kubernetes API).
    let annotations: RedirectionAnnotations?

    init(
        settings: Settings,
        hbone: ServerSettings,
        inputs: ProxyInputs,
        source: any ConfigSource,
        records: PodRecordStore,
        group: any EventLoopGroup,
        active: Bool = true
    ) {
        activeRole = Atomic(active)
        self.settings = settings
        self.hbone = hbone
        self.inputs = inputs
        self.outbound = OutboundProxy(inputs: inputs)
        self.inbound = InboundProxy(inputs: inputs)
        self.source = source
        self.records = records
        self.group = group
        annotations = source.podAnnotations.map {
            RedirectionAnnotations(writer: $0, nodeName: settings.nodeName, logger: inputs.logger)
        }
    }

    var readiness: Readiness { state.withLock { $0 } }

    var isActive: Bool { activeRole.load(ordering: .relaxed) }

    /// This agent now holds the node: from here on it owns capture (see ``activeRole``).
    func becomeActive() { activeRole.store(true, ordering: .relaxed) }

    /// No capture or release from now on, and the capture is no longer this agent's (it is about to let go of
    /// the node): waits for a change in progress to finish.
    func stopChanges() async {
        await queue.serialized {
            changesStopped.store(true, ordering: .relaxed)
            activeRole.store(false, ordering: .relaxed)
        }
    }

    // MARK: Capture and release

    /// Installs the capture rules in the pod's namespace and opens its three listeners there.
    /// Idempotent: a pod already captured is left as it is.
    func capture(_ record: PodRecord, netns: NetworkNamespace) async throws {
        if inputs.registry.pod(uid: record.uid) != nil { return }
        guard !changesStopped.load(ordering: .relaxed) else {
            throw NodeAgentError.capture(pod: record.displayName, reason: "the agent is stopping")
        }
        guard let hboneAddress = record.addresses.first(where: \.isIPv4) ?? record.addresses.first else {
            throw NodeAgentError.capture(pod: record.displayName, reason: "the pod has no IP address")
        }
        let loopback: IPAddress = hboneAddress.isIPv4 ? .v4(0x7F00_0001) : IPAddress("::1")!
        let any: IPAddress = hboneAddress.isIPv4 ? .v4(0) : IPAddress("::")!
        let mark = MeshMarks.agentSocket
        let descriptors: [Int32]
        let migrates: Bool
        // A standby only serves: the capture (rules, eBPF enrollment) is the active agent's.
        let active = isActive
        do {
            let backend = inputs.backend
            (descriptors, migrates) = try await inputs.executor.run(in: netns) {
                if active { try backend.prepare() }
                // A successor's listeners join these (SO_REUSEPORT); when these close, the connections
                // still in their accept queues move to the successor's instead of being reset.
                let migrates = ListenerMigration.enableInCurrentNamespace()
                var opened: [Int32] = []
                do {
                    for endpoint in [
                        IPEndpoint(loopback, MeshPorts.outbound),
                        IPEndpoint(any, MeshPorts.inboundPlaintext),
                        IPEndpoint(hboneAddress, MeshPorts.hbone),
                    ] {
                        opened.append(
                            try CaptureSockets.listener(
                                address: endpoint,
                                mark: mark,
                                reusePort: true,
                                transparent: false
                            )
                        )
                    }
                    if active {
                        try backend.activate(netns: netns, addresses: record.addresses, inboundListener: opened[1])
                    } else {
                        try backend.serve(addresses: record.addresses, inboundListener: opened[1])
                    }
                } catch {
                    for fd in opened { close(fd) }
                    throw error
                }
                return (opened, migrates)
            }
        } catch {
            throw NodeAgentError.capture(pod: record.displayName, reason: "\(error)")
        }
        if !migrates {
            inputs.logger.warning(
                "net.ipv4.tcp_migrate_req unavailable: a hand-over to a successor will reset queued connections",
                metadata: ["pod": "\(record.displayName)"]
            )
        }

        let uid = record.uid
        let server = HBONEServer(
            configuration: hbone.configuration,
            trustDomain: hbone.peerVerifier.trustDomain,
            roots: hbone.peerVerifier.roots,
            certificate: { [self] in try serverCertificate(forPod: uid) },
            inbound: PodInbound(proxy: inbound, podUID: uid),
            logger: inputs.logger,
            limiter: hbone.limiter,
            onLimit: hbone.onLimit,
            peerVerifier: hbone.peerVerifier
        )
        let pod = CapturedPod(record: record, netns: netns, server: server, inboundListenerFD: descriptors[1])
        // Registered before the listeners serve, so the first connection finds its pod.
        inputs.registry.insert(pod)
        let (outbound, inbound) = (self.outbound, self.inbound)
        do {
            let outboundListener = try await relayListener(descriptors[0]) { outbound.accept($0, from: pod) }
            pod.listeners.withLock { $0.append(outboundListener) }
            let plaintextListener = try await relayListener(descriptors[1]) { inbound.acceptPlaintext($0, to: pod) }
            pod.listeners.withLock { $0.append(plaintextListener) }
            let hboneListener = try await server.listen(boundSocket: descriptors[2], group: group).get()
            pod.listeners.withLock { $0.append(hboneListener) }
            pod.hboneListener.withLock { $0 = hboneListener }
        } catch {
            inputs.registry.remove(uid: uid)
            for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
            for fd in descriptors[pod.listeners.withLock({ $0.count })...] { close(fd) }
            throw NodeAgentError.capture(pod: record.displayName, reason: "listener: \(error)")
        }
        capturedSetChanged()
        do {
            if isActive { try records.save(record) }
        } catch {
            inputs.logger.error(
                "cannot persist pod record",
                metadata: ["pod": "\(record.displayName)", "error": "\(error)"]
            )
        }
        if let workload = inputs.store.snapshot.workload(for: record.key) {
            await warmCertificate(workload.identity)
        }
        inputs.logger.info(
            "pod captured",
            metadata: [
                "pod": "\(record.displayName)", "uid": "\(uid)", "ips": "\(record.ips)", "netns": "\(record.netnsPath)",
            ]
        )
    }

    private func relayListener(_ fd: Int32, accept: @escaping @Sendable (any Channel) -> Void) async throws
        -> any Channel
    {
        try await RelaySockets.acceptingBootstrap(group: group, accept: accept).withBoundSocket(fd).get()
    }

    /// Removes the pod's capture completely: listeners, live connections, rules, record. A standby only lets
    /// go of its own listeners and connections: the rules and the record belong to the active agent.
    func release(uid: String, reason: String) async {
        guard let pod = inputs.registry.remove(uid: uid) else {
            if isActive { records.delete(uid) }
            return
        }
        for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
        for connection in inputs.connections.of(pod: uid) {
            connection.revoke(reason: "closed: the pod left the mesh (\(reason))")
        }
        _ = try? await pod.server.shutdown(on: group.next()).get()
        guard isActive else {
            inputs.logger.info(
                "pod no longer served",
                metadata: ["pod": "\(pod.record.displayName)", "reason": "\(reason)"]
            )
            return
        }
        do {
            let backend = inputs.backend
            try await inputs.executor.run(in: pod.netns) { try backend.remove() }
        } catch {
            inputs.logger.warning(
                "cannot remove capture rules",
                metadata: ["pod": "\(pod.record.displayName)", "error": "\(error)"]
            )
        }
        records.delete(uid)
        capturedSetChanged()
        inputs.logger.info("pod released", metadata: ["pod": "\(pod.record.displayName)", "reason": "\(reason)"])
    }

    // MARK: Certificates

    func serverCertificate(forPod uid: String) throws -> WorkloadCertificate {
        guard let pod = inputs.registry.pod(uid: uid),
            let workload = inputs.store.snapshot.workload(for: pod.record.key)
        else {
            throw NodeAgentError.unknownSourcePod(uid)
        }
        if let certificate = inputs.certificateCache.current(workload.identity) { return certificate }
        Task { await warmCertificate(workload.identity) }
        throw NodeAgentError.capture(pod: pod.record.displayName, reason: "no certificate yet for \(workload.identity)")
    }

    func warmCertificate(_ identity: SpiffeID) async {
        do {
            // The manager hands what it issues to the cache (NodeAgent's onIssued).
            _ = try await inputs.certificates.certificate(for: identity)
        } catch {
            inputs.logger.warning(
                "certificate request failed",
                metadata: ["identity": "\(identity)", "error": "\(error)"]
            )
        }
    }

    // MARK: Restore, reconcile

    /// Restores the capture of every pod recorded on disk (after a restart). A record whose
    /// namespace file is gone belongs to a deleted pod and is dropped, and eBPF capture of pods not restored
    /// is removed. A standby only opens its listeners: records and pins belong to the active agent, whose view
    /// may be ahead of the standby's.
    func restoreCapturedPods() async {
        let active = isActive
        let (saved, errors) = records.loadAll()
        for error in errors { inputs.logger.warning("unreadable pod record", metadata: ["error": "\(error)"]) }
        await queue.serialized {
            // Pruning eBPF capture is only safe when every pod still alive was re-enrolled: a pod whose
            // record is unreadable or whose restore failed keeps its old capture (fail closed).
            var safeToPrune = errors.isEmpty && active
            for record in saved {
                do {
                    guard let netns = try? NetworkNamespace.open(path: record.netnsPath) else {
                        throw NodeAgentError.noNetworkNamespace(record.netnsPath)
                    }
                    do {
                        try await capture(record, netns: netns)
                    } catch {
                        safeToPrune = false
                        throw error
                    }
                } catch {
                    guard active else {
                        inputs.logger.warning(
                            "standby cannot serve a recorded pod",
                            metadata: ["pod": "\(record.displayName)", "error": "\(error)"]
                        )
                        continue
                    }
                    inputs.logger.warning(
                        "cannot restore capture; dropping the record",
                        metadata: ["pod": "\(record.displayName)", "error": "\(error)"]
                    )
                    records.delete(record.uid)
                }
            }
            if case .ebpf(let capture) = inputs.backend, safeToPrune {
                let pruned = capture.pruneUnknownPods()
                if !pruned.isEmpty {
                    inputs.logger.info(
                        "eBPF capture of vanished pods removed",
                        metadata: ["netns_cookies": "\(pruned)"]
                    )
                }
            }
        }
        capturedSetChanged()
        state.withLock { $0.restored = true }
        // A standby is ready once it serves what the active agent recorded; it reconciles after taking over.
        if !active { standbyServes(saved, unreadable: errors) }
    }

    /// A standby's readiness: every recorded pod whose namespace still exists is served, every record read.
    func standbyServes(_ recorded: [PodRecord], unreadable: [String]) {
        let unserved = recorded.filter { record in
            inputs.registry.pod(uid: record.uid) == nil && FileManager.default.fileExists(atPath: record.netnsPath)
        }
        state.withLock {
            $0.missing =
                unserved.map { "standby does not serve \($0.displayName) yet" }
                + unreadable.map { "standby cannot read a pod record: \($0)" }
        }
    }

    /// Brings capture in line with the configuration: enroll running pods of newly enrolled
    /// namespaces, release pods that left the mesh.
    func reconcile() async {
        await queue.serialized {
            guard !changesStopped.load(ordering: .relaxed) else { return }
            let snapshot = inputs.store.snapshot
            for pod in inputs.registry.all {
                let (wanted, reason) = shouldCapture(pod.record, in: snapshot)
                if !wanted { await release(uid: pod.record.uid, reason: reason) }
            }
            var missing: [String] = []
            for workload in snapshot.workloads(onNode: settings.nodeName) where workload.enrollment.isEnrolled {
                let addresses = workload.pod.podIPs
                guard let first = addresses.first else { continue }
                if inputs.registry.pod(at: first) != nil {
                    await warmCertificate(workload.identity)
                    continue
                }
                do {
                    guard let (netns, path) = try await findNamespace(owning: first) else {
                        missing.append("\(workload.namespace)/\(workload.name): no network namespace with \(first)")
                        continue
                    }
                    let record = PodRecord(
                        uid: workload.pod.metadata.uid ?? "\(workload.namespace)-\(workload.name)",
                        namespace: workload.namespace,
                        name: workload.name,
                        ips: addresses.map { "\($0)" },
                        netnsPath: path,
                        containerID: nil
                    )
                    try await capture(record, netns: netns)
                } catch {
                    inputs.logger.error(
                        "cannot capture pod",
                        metadata: ["pod": "\(workload.namespace)/\(workload.name)", "error": "\(error)"]
                    )
                    missing.append("\(workload.namespace)/\(workload.name): \(error)")
                }
            }
            state.withLock { $0.missing = missing }
            syncAnnotations()
        }
    }

    /// Finds the network namespace (under the runtime's netns directory) that has `address`
    /// on one of its interfaces, as the container runtime created it.
    func findNamespace(owning address: IPAddress) async throws -> (NetworkNamespace, String)? {
        let directory = settings.netnsDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasPrefix(settings.netnsPrefix) {
            let path = "\(directory)/\(name)"
            guard let netns = try? NetworkNamespace.open(path: path) else { continue }
            let addresses = (try? await inputs.executor.run(in: netns) { InterfaceAddresses.current() }) ?? []
            if addresses.contains(address) { return (netns, path) }
        }
        return nil
    }

    /// The node's rule for kubelet probes (``HostRules``), for exactly the pods captured now. A failure
    /// leaves probes refused by captured pods under STRICT: logged, and retried at the next change.
    /// What follows the set of captured pods: the node's probe rule and the pods' annotations.
    func capturedSetChanged() {
        guard isActive else { return }
        syncHostRules()
        syncAnnotations()
    }

    /// Brings the pods' capture annotations in line with what is captured now (no-op without a writer).
    func syncAnnotations() {
        guard isActive else { return }
        let captured = Set(inputs.registry.all.map(\.record.key))
        annotations?.sync(captured: captured, snapshot: inputs.store.snapshot)
    }

    func syncHostRules() {
        let addresses = inputs.registry.all.flatMap(\.addresses)
        do {
            try HostRules.apply(podAddresses: addresses)
        } catch {
            inputs.logger.error(
                "cannot install the node's rule for kubelet probes; probes to captured pods will be refused",
                metadata: ["table": "inet \(HostRules.tableName)", "error": "\(error)"]
            )
        }
    }

    // MARK: Enrollment

    /// The enrollment state the CNI plugin reads (it makes no API calls of its own).
    func publishEnrollment(_ snapshot: ConfigSnapshot) {
        guard isActive else { return }
        let enrolled = snapshot.namespaces.values
            .filter { $0.metadata.labels[WellKnownLabels.dataplaneMode] == WellKnownLabels.dataplaneModeAmbient }
            .map(\.metadata.name).sorted()
        var overrides: [String: Bool] = [:]
        for pod in snapshot.pods.values {
            switch pod.metadata.labels[WellKnownLabels.dataplaneMode] {
            case WellKnownLabels.dataplaneModeNone: overrides["\(pod.metadata.namespace)/\(pod.metadata.name)"] = false
            case WellKnownLabels.dataplaneModeAmbient:
                overrides["\(pod.metadata.namespace)/\(pod.metadata.name)"] = true
            default: break
            }
        }
        let state = EnrollmentState(
            node: settings.nodeName,
            enrolledNamespaces: enrolled,
            podOverrides: overrides,
            updated: Date()
        )
        do {
            try state.save(path: settings.enrollmentFile)
        } catch {
            inputs.logger.error(
                "cannot publish enrollment state",
                metadata: ["file": "\(settings.enrollmentFile)", "error": "\(error)"]
            )
        }
    }

    /// Whether a pod must be captured: the Istio rules when the pod is known, else its
    /// namespace's label (a pod the CNI plugin announces before its manifest arrives).
    func shouldCapture(_ record: PodRecord, in snapshot: ConfigSnapshot) -> (Bool, String) {
        if let pod = snapshot.pods[record.key] {
            let enrollment = ConfigSnapshot.enrollment(of: pod, namespace: snapshot.namespaces[record.namespace])
            return (enrollment.isEnrolled, "\(enrollment)")
        }
        let label = snapshot.namespaces[record.namespace]?.metadata.labels[WellKnownLabels.dataplaneMode]
        let enrolled = label == WellKnownLabels.dataplaneModeAmbient
        return (enrolled, enrolled ? "namespace label" : "namespace \(record.namespace) is not enrolled")
    }
}
