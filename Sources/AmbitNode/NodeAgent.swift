import AmbitCNI
import AmbitCapture
public import AmbitConfig
public import AmbitHBONE
public import AmbitIdentity
import AmbitModel
public import AmbitPolicy
public import AmbitProcess
public import AmbitTelemetry
import Foundation
public import Logging
import NIOCore
import NIOPosix
import Synchronization
import X509

/// Settings of `ambit-node`.
public struct NodeAgentOptions: Sendable {
    public var nodeName: String
    /// Where the configuration comes from (a manifest directory, the Kubernetes API).
    public var config: ConfigSourceSelection
    public var caDirectory: String
    public var stateDirectory: String
    public var cniSocket: String
    public var enrollmentFile: String
    /// Where the container runtime keeps pod network namespaces (scanned to find running pods
    /// that become enrolled after they started).
    public var netnsDirectory: String = "/var/run/netns"
    /// Only namespaces whose file name starts with this (empty: all).
    public var netnsPrefix: String = ""
    public var metricsPort = Int(MeshPorts.metrics)
    public var readinessPort = Int(MeshPorts.readiness)
    public var adminPort = Int(MeshPorts.admin)
    public var drainDeadline: Duration = .seconds(5)

    /// HBONE settings for the pods' servers and the agent's client: defaults, with the drain
    /// deadline (GOAWAY grace on shutdown) taken from `drainDeadline`.
    var hboneConfiguration: HBONEConfiguration {
        var configuration = HBONEConfiguration()
        configuration.drainDeadline = .init(drainDeadline)
        return configuration
    }
    public var eventLoopThreads = 2
    /// How pods are captured.
    public var capture: CaptureMode = .nftables
    /// With `capture == .ebpf`: use nftables instead when the host cannot run the eBPF capture.
    public var fallbackToNFTables = false
    /// With eBPF: where maps and links are pinned (default `/sys/fs/bpf/ambit/<node name>`).
    public var bpfPinDirectory: String?
    /// With eBPF: the cgroup-v2 directory the outbound programs attach to (default: the cgroup2 mount).
    public var cgroupPath: String?

    public init(
        nodeName: String,
        config: ConfigSourceSelection,
        caDirectory: String,
        stateDirectory: String,
        cniSocket: String? = nil,
        enrollmentFile: String? = nil
    ) {
        self.nodeName = nodeName
        self.config = config
        self.caDirectory = caDirectory
        self.stateDirectory = stateDirectory
        self.cniSocket = cniSocket ?? "\(stateDirectory)/cni.sock"
        self.enrollmentFile = enrollmentFile ?? "\(stateDirectory)/enrollment.json"
    }
}

/// `ambit-node`: captures the enrolled pods of one node (in-pod mode) and carries their
/// traffic in HBONE tunnels. See docs/architecture.md, "Data path".
public final class NodeAgent: Sendable {
    public let options: NodeAgentOptions
    let logger: Logger
    let store: ConfigStore
    let source: any ConfigSource
    let certificates: CertificateManager
    let certificateCache = CertificateCache()
    let roots: [Certificate]
    let trustDomain: String
    let group: MultiThreadedEventLoopGroup
    let executor: NetnsExecutor
    let registry = PodRegistry()
    let client: HBONEClient
    let metrics: MeshMetrics
    let telemetry: ConnectionTelemetry
    let records: PodRecordStore
    let lifecycle: PodLifecycle
    let backend: CaptureBackend
    /// Held from before any capture is loaded until the agent is gone (see ``AgentLock``).
    let lock: AgentLock
    private let operational = Mutex<[any Channel]>([])
    let readiness = Mutex<(restored: Bool, missing: [String])>((false, ["initial configuration not loaded"]))

    public init(options: NodeAgentOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let authority = try CertificateAuthority.load(directory: options.caDirectory)
        trustDomain = authority.trustDomain
        roots = [authority.root]
        metrics = MeshMetrics()
        certificates = CertificateManager(
            signer: LocalCertificateSigner(authority: authority),
            metrics: CertificateMetrics(registry: metrics.registry),
            logger: logger
        )
        store = ConfigStore(options: ConfigOptions(trustDomain: authority.trustDomain))
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopThreads)
        source = try options.config.makeSource(
            store: store,
            group: group,
            userAgent: "ambit-node/\(options.nodeName)",
            logger: logger
        )
        executor = NetnsExecutor(threadCount: 2, name: "ambit-netns")
        telemetry = ConnectionTelemetry(metrics: metrics, logger: logger)
        records = try PodRecordStore(directory: "\(options.stateDirectory)/pods")
        lifecycle = PodLifecycle()
        lock = try AgentLock(stateDirectory: options.stateDirectory) { holder in
            logger.warning(
                "another ambit-node holds the state directory; waiting for it to exit",
                metadata: ["lock": "\(AgentLock.path(stateDirectory: options.stateDirectory))", "pid": "\(holder)"]
            )
        }
        backend = try Self.makeBackend(options, logger: logger)
        let registry = self.registry
        let executor = self.executor
        client = HBONEClient(
            configuration: options.hboneConfiguration,
            trustDomain: authority.trustDomain,
            roots: roots,
            dialer: NetnsDialer(registry: registry, executor: executor, placement: .sourcePod, timeout: .seconds(10)),
            logger: logger
        )
    }

    private static func makeBackend(_ options: NodeAgentOptions, logger: Logger) throws -> CaptureBackend {
        guard options.capture == .ebpf else { return .nftables }
        let pins = options.bpfPinDirectory ?? "/sys/fs/bpf/ambit/\(options.nodeName)"
        do {
            let capture = try EBPFCapture(options: .init(pinDirectory: pins, cgroupPath: options.cgroupPath))
            logger.info(
                "eBPF capture loaded",
                metadata: ["pins": "\(capture.pinDirectory)", "cgroup": "\(capture.cgroupPath)"]
            )
            return .ebpf(capture)
        } catch {
            guard options.fallbackToNFTables else { throw NodeAgentError.ebpfUnavailable("\(error)") }
            logger.warning(
                "eBPF capture unavailable; falling back to nftables as --capture-fallback allows",
                metadata: ["error": "\(error)"]
            )
            return .nftables
        }
    }

    /// Runs until SIGTERM/SIGINT, then drains.
    public func run() async throws {
        try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true)
        // Metrics and readiness answer while the first configuration loads (not ready until then).
        try await startOperationalEndpoints()
        logger.info("loading configuration", metadata: ["source": "\(options.config)"])
        do {
            try await source.start()
        } catch {
            logger.error("cannot load the configuration", metadata: ["error": "\(error)"])
            throw error
        }
        publishEnrollment(store.snapshot)

        let certificateTask = Task { await certificates.run() }
        let sourceTask = Task { try await source.run() }
        let changes = store.changes()
        let changeTask = Task {
            for await change in changes { await self.configChanged(change.current) }
        }

        await restoreCapturedPods()
        await reconcile()
        // Pods that could not be captured yet (no namespace found, a transient error) are retried.
        let retryTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                if !self.readiness.withLock({ $0.missing.isEmpty }) { await self.reconcile() }
            }
        }
        let cniServer = try CNIServer(path: options.cniSocket, agent: self)
        cniServer.start()
        logger.info(
            "ambit-node started",
            metadata: [
                "node": "\(options.nodeName)", "trust_domain": "\(trustDomain)", "cni_socket": "\(options.cniSocket)",
                "captured_pods": "\(registry.all.count)",
            ]
        )

        await ProcessSignals.waitForTermination()
        logger.info("draining", metadata: ["deadline": "\(options.drainDeadline)"])
        cniServer.stop()
        await drain()
        changeTask.cancel()
        retryTask.cancel()
        sourceTask.cancel()
        certificateTask.cancel()
        store.finish()
        for channel in operational.withLock({ $0 }) { try? await channel.close() }
        executor.shutdown()
        try? await group.shutdownGracefully()
        // No pod to keep failing closed: leave nothing attached to the host. Checked with no capture in
        // flight, and only while this agent holds the state directory's lock (no other agent shares the pins).
        let detached = await lifecycle.serialized { () -> Bool in
            guard case .ebpf(let capture) = backend, registry.all.isEmpty, capture.capturesNoPod else { return false }
            capture.detachFromHost()
            return true
        }
        if detached {
            logger.info("ambit-node stopped; no pod was captured, so the eBPF programs are detached and unpinned")
        } else {
            logger.info("ambit-node stopped; capture rules stay in place so enrolled pods fail closed until restart")
        }
    }

    /// Stop accepting, GOAWAY on every HBONE connection, wait for connections to end (up to
    /// the deadline). Capture rules are left in place on purpose.
    private func drain() async {
        let pods = registry.all
        for pod in pods {
            for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
        }
        await withTaskGroup(of: Void.self) { tasks in
            for pod in pods {
                let eventLoop = group.next()
                tasks.addTask { try? await pod.server.shutdown(on: eventLoop).get() }
            }
            tasks.addTask { await self.client.shutdown() }
            tasks.addTask {
                let deadline = ContinuousClock.now + self.options.drainDeadline
                while !Task.isCancelled, ContinuousClock.now < deadline,
                    pods.contains(where: { $0.connections.count > 0 })
                {
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            // The drain deadline bounds everything.
            tasks.addTask { try? await Task.sleep(for: self.options.drainDeadline + .milliseconds(500)) }
            _ = await tasks.next()
            _ = await tasks.next()
            tasks.cancelAll()
        }
    }

    // MARK: Configuration changes

    func configChanged(_ snapshot: ConfigSnapshot) async {
        publishEnrollment(snapshot)
        await reconcile()
        recheckConnections(snapshot)
    }

    /// Closes live inbound connections the current policy denies.
    func recheckConnections(_ snapshot: ConfigSnapshot) {
        for pod in registry.all {
            guard let workload = snapshot.workload(for: pod.record.key) else { continue }
            for connection in pod.connections.all {
                guard let previous = connection.authorization else { continue }
                let request = AuthorizationRequest(
                    to: workload,
                    port: previous.destinationPort,
                    from: previous.sourceIdentity,
                    sourceAddress: previous.sourceAddress
                )
                let decision = snapshot.authorization.evaluate(request)
                if !decision.isAllowed {
                    logger.info(
                        "closing connection now denied by policy",
                        metadata: [
                            "pod": "\(pod.record.displayName)", "src": "\(connection.source.map { "\($0)" } ?? "-")",
                            "reason": "\(decision.reason)",
                        ]
                    )
                    connection.closeDenied()
                }
            }
        }
    }

    /// The enrollment state the CNI plugin reads (it makes no API calls of its own).
    func publishEnrollment(_ snapshot: ConfigSnapshot) {
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
            node: options.nodeName,
            enrolledNamespaces: enrolled,
            podOverrides: overrides,
            updated: Date()
        )
        do {
            try state.save(path: options.enrollmentFile)
        } catch {
            logger.error(
                "cannot publish enrollment state",
                metadata: ["file": "\(options.enrollmentFile)", "error": "\(error)"]
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

    // MARK: Operational endpoints

    private func startOperationalEndpoints() async throws {
        let metrics = try await OperationalHTTPServer.listenMetrics(
            port: options.metricsPort,
            group: group,
            metrics: self.metrics
        ).get()
        let readiness = try await OperationalHTTPServer.listen(
            host: "0.0.0.0",
            port: options.readinessPort,
            group: group
        ) {
            _,
            path,
            _ in
            guard path == "/healthz/ready" else { return .text("not found; try /healthz/ready\n", status: .notFound) }
            let state = self.readiness.withLock { $0 }
            if state.restored && state.missing.isEmpty { return .text("ready\n") }
            return .text("not ready: \(state.missing.joined(separator: "; "))\n", status: .serviceUnavailable)
        }.get()
        // Admin: localhost only (config dump, log level).
        let admin = try await OperationalHTTPServer.listen(host: "127.0.0.1", port: options.adminPort, group: group) {
            method,
            path,
            query in
            await self.admin(method: method, path: path, query: query)
        }.get()
        operational.withLock { $0 = [metrics, readiness, admin] }
    }
}
