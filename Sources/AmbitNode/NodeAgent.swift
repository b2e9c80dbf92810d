import AmbitCA
import AmbitCapture
import AmbitConfig
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitProcess
import AmbitRelay
import AmbitTelemetry
import FoundationEssentials
public import Logging
import NIOCore
import NIOPosix
import Prometheus
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
    /// The node's lock (``AgentLock``): taken at start when free, else once the active agent hands it over.
    let lock: AgentLock
    /// `ambit_node_active`: 1 while this agent holds the node, 0 while it stands by.
    let activeGauge: Gauge
    private let operational = Mutex<OperationalEndpoints?>(nil)

    public init(options: NodeAgentOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        OpenFileLimit.raiseToHardLimit(logger: logger)
        group = MultiThreadedEventLoopGroup(numberOfThreads: options.eventLoopThreads)
        let (signer, trustDomain) = try options.certificates.makeSigner(group: group)
        self.trustDomain = trustDomain
        metrics = MeshMetrics()
        metrics.declareLimits(HBONELimit.allCases.map(\.rawValue))
        // Every certificate issued (renewals too) goes to the cache the handshakes and new connections read, so a
        // renewed certificate replaces the old one at once instead of when it expires.
        let certificateCache = CertificateCache()
        let certificates = CertificateManager(
            signer: signer,
            metrics: CertificateMetrics(registry: metrics.registry),
            logger: logger,
            onIssued: { certificateCache.store($0) }
        )
        let store = ConfigStore(
            options: ConfigOptions(trustDomain: trustDomain, clusterID: options.clusterID)
        )
        source = try options.config.makeSource(
            store: store,
            group: group,
            userAgent: "ambit-node/\(options.nodeName)",
            logger: logger
        )
        let executor = NetnsExecutor(threadCount: 2, name: "ambit-netns")
        let records = try PodRecordStore(directory: "\(options.stateDirectory)/pods")
        // Taken before any capture is loaded when free. Held by another agent (an upgrade's predecessor), this
        // one starts as its standby: it serves the recorded pods beside it and takes over when it lets go.
        lock = try AgentLock(stateDirectory: options.stateDirectory)
        let active = try lock.tryLock()
        if !active {
            logger.info(
                "another ambit-node holds the node: starting as its standby, to take over when it stops",
                metadata: ["lock": "\(lock.path)", "pid": "\(lock.holder)"]
            )
        }
        activeGauge = metrics.registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "ambit_node_active",
                unitName: "",
                helpText: "1 while this agent holds the node (captures pods, answers CNI), 0 while it stands by"
            )
        )
        activeGauge.set(to: active ? 1.0 : 0.0)
        let backend = try Self.makeBackend(options, logger: logger)
        let registry = PodRegistry()
        let client = HBONEClient(
            configuration: options.hboneConfiguration,
            trustDomain: trustDomain,
            roots: signer.trustAnchors,
            dialer: NetnsDialer(registry: registry, executor: executor, placement: .sourcePod, timeout: .seconds(10)),
            logger: logger
        )
        inputs = ProxyInputs(
            store: store,
            registry: registry,
            certificates: certificates,
            certificateCache: certificateCache,
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
                peerVerifier: CachingPeerVerifier(roots: signer.trustAnchors, trustDomain: trustDomain),
                limiter: HBONEConnectionLimiter(limits: options.hboneLimits),
                onLimit: { [metrics] in metrics.limitHit($0.rawValue) }
            ),
            inputs: inputs,
            source: source,
            records: records,
            group: group,
            active: active
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

    /// Runs until SIGTERM/SIGINT, then drains. A standby serves beside the active agent until it takes over.
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
            configProblems: { [source] in source.problems },
            readinessNotes: { [inputs] in await inputs.certificates.problems() }
        )
        operational.withLock { $0 = endpoints }
        logger.info("loading configuration", metadata: ["source": "\(options.config)"])
        do {
            try await source.start()
        } catch {
            logger.error("cannot load the configuration", metadata: ["error": "\(error)"])
            throw error
        }
        if capturer.isActive { capturer.publishEnrollment(inputs.store.snapshot) }
        // From here on SIGTERM/SIGINT start a drain (before, while the configuration loads, they end the process).
        let signals = ProcessSignals.termination()
        let termination = Task { await signals.wait() }

        let certificateTask = Task { await inputs.certificates.run() }
        let trimTask = Task { [logger] in await HeapTrimmer.run(logger: logger) }
        let sourceTask = Task { try await source.run() }
        let changes = inputs.store.changes()
        let changeTask = Task {
            for await change in changes { await self.configChanged(change.current) }
        }
        func stopTasks() {
            changeTask.cancel()
            sourceTask.cancel()
            certificateTask.cancel()
            trimTask.cancel()
        }

        await capturer.restoreCapturedPods()
        if !capturer.isActive {
            guard await standBy(until: termination) else {
                logger.info("draining (standby)", metadata: ["deadline": "\(options.drainDeadline)"])
                await drainConnections(await stopAccepting())
                stopTasks()
                await shutDown(endpoints)
                logger.info("ambit-node stopped before taking over; capture is the active agent's")
                return
            }
        }
        await capturer.reconcile()
        // Pods that could not be captured yet (no namespace found, a transient error) are retried.
        let retryTask = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(2))
                if !self.capturer.readiness.missing.isEmpty { await self.capturer.reconcile() }
                await self.capturer.repairInboundListeners()
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

        await termination.value
        logger.info("draining", metadata: ["deadline": "\(options.drainDeadline)"])
        // Capture stops changing, the listeners close (a successor's, open beside them, take every new
        // connection, and those queued here move to it), then the node goes to the successor while this
        // agent finishes what it carries.
        cniServer.stop()
        changeTask.cancel()
        retryTask.cancel()
        await capturer.stopChanges()
        let hboneClosed = await stopAccepting()
        lock.unlock()
        activeGauge.set(to: 0.0)
        await drainConnections(hboneClosed)
        stopTasks()
        await shutDown(endpoints)
        // No pod to keep failing closed: leave nothing attached to the host. Checked with no capture in
        // flight, and only when no successor took the node (it shares the pins).
        let detached = await detachIfNothingCaptured()
        if detached {
            logger.info("ambit-node stopped; no pod was captured, so the eBPF programs are detached and unpinned")
        } else {
            logger.info("ambit-node stopped; capture rules stay in place so enrolled pods fail closed until restart")
        }
    }

    /// Serves as a standby, following the active agent's records, until it lets go of the node (true: this
    /// agent now holds it) or this one is told to stop (false).
    private func standBy(until termination: Task<Void, Never>) async -> Bool {
        let follow = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if !Task.isCancelled { await self.capturer.followRecords() }
            }
        }
        let locked = Task { [lock, logger] in
            do {
                try await lock.lockInBackground()
                return true
            } catch {
                logger.error("standby cannot take the node's lock", metadata: ["error": "\(error)"])
                await termination.value
                return false
            }
        }
        let stopped = Task {
            await termination.value
            return false
        }
        let tookOver = await Self.first([locked, stopped])
        follow.cancel()
        guard tookOver else { return false }
        // From here on this agent owns capture: it restores what it did not serve yet (recorded at the
        // last moment), drops the records of vanished pods and prunes their eBPF capture, then reconciles.
        await capturer.takeOver()
        activeGauge.set(to: 1.0)
        logger.info("took over the node from the previous agent", metadata: ["lock": "\(lock.path)"])
        capturer.publishEnrollment(inputs.store.snapshot)
        await capturer.restoreCapturedPods()
        return true
    }

    /// No new connection from here on: every pod's listeners close and its HBONE connections get GOAWAY.
    /// Returns what completes when every pod's HBONE connections have closed.
    private func stopAccepting() async -> [EventLoopFuture<Void>] {
        var closed: [EventLoopFuture<Void>] = []
        for pod in inputs.registry.all { closed.append(await pod.stopAccepting(group: group)) }
        return closed
    }

    /// Waits, up to the drain deadline, until the pods' HBONE connections (`hboneClosed`) have closed and every
    /// proxied connection has ended, then retires the client's pooled connections. A server connection counts
    /// until it is closed: a CONNECT it accepted before its GOAWAY may not be a proxied connection yet. The
    /// client is shut down last, so a connection accepted just before the listeners closed still gets its
    /// tunnel. Capture rules are left in place on purpose.
    private func drainConnections(_ hboneClosed: [EventLoopFuture<Void>]) async {
        let deadline = ContinuousClock.now + options.drainDeadline
        let serversClosed = Task {
            for future in hboneClosed { try? await future.get() }
            return true
        }
        let deadlinePassed = Task {
            try? await Task.sleep(until: deadline)
            return false
        }
        let allClosed = await Self.first([serversClosed, deadlinePassed])
        // A socket the kernel handed over just before its listener closed may still be on its way to
        // the proxy (registration and set-up are queued on the event loops): let every loop run what
        // it has queued before counting what is in flight.
        try? await RelaySockets.runQueuedWork(of: group, on: group.next()).get()
        while allClosed, ContinuousClock.now < deadline, inputs.connections.inFlight > 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        deadlinePassed.cancel()
        // What is still open at the deadline is reset, both ways (the relay passes a reset on), and so is what is
        // recorded from now on: closing it with the event loops would end it with a FIN, as if it were complete.
        let reset = inputs.connections.resetAll(
            reason: "reset: the agent's drain deadline passed",
            flag: .connectFailure
        )
        if reset > 0 || inputs.connections.inFlight > 0 {
            logger.warning(
                "drain deadline passed; resetting the connections still open",
                metadata: [
                    "connections": "\(max(reset, inputs.connections.inFlight))", "deadline": "\(options.drainDeadline)",
                ]
            )
            // Each reset passes to the relay's other side in a few event-loop steps, and a socket still being set
            // up is reset once recorded: give them a moment before the loops stop.
            let resetBy = ContinuousClock.now + .seconds(1)
            while inputs.connections.inFlight > 0, ContinuousClock.now < resetBy {
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        let clientClosed = Task {
            await self.inputs.client.shutdown()
            return true
        }
        let shortly = Task {
            try? await Task.sleep(until: max(deadline, ContinuousClock.now + .milliseconds(500)))
            return false
        }
        _ = await Self.first([clientClosed, shortly])
        shortly.cancel()
    }

    /// The value of whichever of `tasks` finishes first (the others go on).
    static func first<T: Sendable>(_ tasks: [Task<T, Never>]) async -> T {
        let (values, continuation) = AsyncStream.makeStream(of: T.self)
        for task in tasks { Task { continuation.yield(await task.value) } }
        var iterator = values.makeAsyncIterator()
        // Never nil: the stream is not finished.
        return await iterator.next()!
    }

    private func shutDown(_ endpoints: OperationalEndpoints) async {
        inputs.store.finish()
        await endpoints.close()
        await inputs.certificates.close()
        inputs.executor.shutdown()
        try? await group.shutdownGracefully()
    }

    /// With eBPF and no pod captured, detaches the programs from the host, unless a successor holds the node.
    private func detachIfNothingCaptured() async -> Bool {
        guard case .ebpf(let capture) = inputs.backend,
            let relock = try? AgentLock(stateDirectory: options.stateDirectory), (try? relock.tryLock()) == true
        else { return false }
        defer { relock.unlock() }
        return await capturer.queue.serialized { () -> Bool in
            guard inputs.registry.all.isEmpty, capture.capturesNoPod else { return false }
            capture.detachFromHost()
            return true
        }
    }

    /// A new configuration: publish enrollment, capture or release pods (the active agent), and re-check live
    /// connections with the decision that admitted them.
    func configChanged(_ snapshot: ConfigSnapshot) async {
        if capturer.isActive {
            capturer.publishEnrollment(snapshot)
            await capturer.reconcile()
        }
        capturer.inbound.recheck(snapshot)
    }
}
