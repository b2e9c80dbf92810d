import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitProcess
import AmbitTelemetry
import Foundation
public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// `ambit-node`: captures the enrolled pods of one node (in-pod mode) and carries their traffic in
/// HBONE tunnels. See docs/architecture.md, "Data path".
///
/// The agent is a composition: ``ProxyInputs`` (what the proxies share), the ``OutboundProxy`` and
/// ``InboundProxy`` (one ``ProxiedConnection`` per connection they carry), the ``PodCapturer``
/// (which pods are captured, and their listeners), the CNI server, and the operational ports.
public final class NodeAgent: Sendable {
    public let options: NodeAgentOptions
    let logger: Logger
    let source: any ConfigSource
    let trustDomain: String
    let group: MultiThreadedEventLoopGroup
    let metrics: MeshMetrics
    let inputs: ProxyInputs
    let capturer: PodCapturer
    /// Held from before any capture is loaded until the agent is gone (see ``AgentLock``).
    let lock: AgentLock
    private let operational = Mutex<OperationalEndpoints?>(nil)

    public init(options: NodeAgentOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let authority = try CertificateAuthority.load(directory: options.caDirectory)
        trustDomain = authority.trustDomain
        metrics = MeshMetrics()
        metrics.declareLimits(HBONELimit.allCases.map(\.rawValue))
        let certificates = CertificateManager(
            signer: LocalCertificateSigner(authority: authority),
            metrics: CertificateMetrics(registry: metrics.registry),
            logger: logger
        )
        let store = ConfigStore(
            options: ConfigOptions(trustDomain: authority.trustDomain, clusterID: options.clusterID)
        )
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopThreads)
        source = try options.config.makeSource(
            store: store,
            group: group,
            userAgent: "ambit-node/\(options.nodeName)",
            logger: logger
        )
        let executor = NetnsExecutor(threadCount: 2, name: "ambit-netns")
        let records = try PodRecordStore(directory: "\(options.stateDirectory)/pods")
        lock = try AgentLock(stateDirectory: options.stateDirectory) { holder in
            logger.warning(
                "another ambit-node holds the state directory; waiting for it to exit",
                metadata: ["lock": "\(AgentLock.path(stateDirectory: options.stateDirectory))", "pid": "\(holder)"]
            )
        }
        let backend = try Self.makeBackend(options, logger: logger)
        let registry = PodRegistry()
        let client = HBONEClient(
            configuration: options.hboneConfiguration,
            trustDomain: authority.trustDomain,
            roots: [authority.root],
            dialer: NetnsDialer(registry: registry, executor: executor, placement: .sourcePod, timeout: .seconds(10)),
            logger: logger
        )
        inputs = ProxyInputs(
            store: store,
            registry: registry,
            certificates: certificates,
            certificateCache: CertificateCache(),
            client: client,
            connections: ConnectionTracker(),
            telemetry: ConnectionTelemetry(metrics: metrics, logger: logger),
            executor: executor,
            backend: backend,
            logger: logger
        )
        capturer = PodCapturer(
            settings: .init(
                nodeName: options.nodeName,
                netnsDirectory: options.netnsDirectory,
                netnsPrefix: options.netnsPrefix,
                enrollmentFile: options.enrollmentFile
            ),
            hbone: .init(
                configuration: options.hboneConfiguration,
                trustDomain: authority.trustDomain,
                roots: [authority.root],
                limiter: HBONEConnectionLimiter(limits: options.hboneLimits),
                onLimit: { [metrics] in metrics.limitHit($0.rawValue) }
            ),
            inputs: inputs,
            source: source,
            records: records,
            group: group
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
        let endpoints = try await OperationalEndpoints.start(
            "ambit-node",
            ports: options.ports,
            group: group,
            metrics: metrics,
            logger: logger,
            readiness: { [capturer] in
                let state = capturer.readiness
                return state.isReady ? nil : state.missing.joined(separator: "; ")
            },
            configDump: { await self.configDump() },
            configProblems: { [source] in source.problems }
        )
        operational.withLock { $0 = endpoints }
        logger.info("loading configuration", metadata: ["source": "\(options.config)"])
        do {
            try await source.start()
        } catch {
            logger.error("cannot load the configuration", metadata: ["error": "\(error)"])
            throw error
        }
        capturer.publishEnrollment(inputs.store.snapshot)

        let certificateTask = Task { await inputs.certificates.run() }
        let trimTask = Task { [logger] in await HeapTrimmer.run(logger: logger) }
        let sourceTask = Task { try await source.run() }
        let changes = inputs.store.changes()
        let changeTask = Task {
            for await change in changes { await self.configChanged(change.current) }
        }

        await capturer.restoreCapturedPods()
        await capturer.reconcile()
        // Pods that could not be captured yet (no namespace found, a transient error) are retried.
        let retryTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                if !self.capturer.readiness.missing.isEmpty { await self.capturer.reconcile() }
                // Annotation writes that failed are made again.
                self.capturer.syncAnnotations()
            }
        }
        let cniServer = try CNIServer(path: options.cniSocket, capturer: capturer)
        cniServer.start()
        logger.info(
            "ambit-node started",
            metadata: [
                "node": "\(options.nodeName)", "trust_domain": "\(trustDomain)", "cni_socket": "\(options.cniSocket)",
                "captured_pods": "\(inputs.registry.all.count)",
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
        trimTask.cancel()
        inputs.store.finish()
        await endpoints.close()
        inputs.executor.shutdown()
        try? await group.shutdownGracefully()
        // No pod to keep failing closed: leave nothing attached to the host. Checked with no capture in
        // flight, and only while this agent holds the state directory's lock (no other agent shares the pins).
        let detached = await capturer.queue.serialized { () -> Bool in
            guard case .ebpf(let capture) = inputs.backend, inputs.registry.all.isEmpty, capture.capturesNoPod else {
                return false
            }
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
        let pods = inputs.registry.all
        for pod in pods {
            for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
        }
        await withTaskGroup(of: Void.self) { tasks in
            for pod in pods {
                let eventLoop = group.next()
                tasks.addTask { try? await pod.server.shutdown(on: eventLoop).get() }
            }
            tasks.addTask { await self.inputs.client.shutdown() }
            tasks.addTask {
                let deadline = ContinuousClock.now + self.options.drainDeadline
                while !Task.isCancelled, ContinuousClock.now < deadline, self.inputs.connections.count > 0 {
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

    /// A new configuration: publish enrollment, capture or release pods, and re-check live
    /// connections with the decision that admitted them.
    func configChanged(_ snapshot: ConfigSnapshot) async {
        capturer.publishEnrollment(snapshot)
        await capturer.reconcile()
        capturer.inbound.recheck(snapshot)
    }
}
