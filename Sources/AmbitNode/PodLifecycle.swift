import AmbitCapture
import AmbitHBONE
import AmbitIdentity
import AmbitModel
import AmbitRelay
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Serializes capture and release (CNI requests, configuration changes and the restore at
/// start-up all change the same pods), without holding a thread.
final class PodLifecycle: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func serialized<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let runNow = state.withLock { state in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if runNow { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The on-disk records of captured pods (one JSON file per pod, written atomically).
struct PodRecordStore: Sendable {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// The records in `directory` without creating it (none when it does not exist).
    init(existing directory: String) {
        self.directory = directory
    }

    private func path(_ uid: String) -> String {
        let safe = uid.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        return "\(directory)/\(String(safe)).json"
    }

    func save(_ record: PodRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(record).write(to: URL(fileURLWithPath: path(record.uid)), options: .atomic)
    }

    func delete(_ uid: String) {
        try? FileManager.default.removeItem(atPath: path(uid))
    }

    func loadAll() -> (records: [PodRecord], errors: [String]) {
        var records: [PodRecord] = []
        var errors: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasSuffix(".json") {
            let file = "\(directory)/\(name)"
            do {
                records.append(
                    try JSONDecoder().decode(PodRecord.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
                )
            } catch {
                errors.append("\(file): \(error)")
            }
        }
        return (records, errors)
    }
}

extension NodeAgent {
    // MARK: Capture and release

    /// Installs the capture rules in the pod's namespace and opens its three listeners there.
    /// Idempotent: a pod already captured is left as it is.
    func capture(_ record: PodRecord, netns: NetworkNamespace) async throws {
        if registry.pod(uid: record.uid) != nil { return }
        guard let hboneAddress = record.addresses.first(where: \.isIPv4) ?? record.addresses.first else {
            throw NodeAgentError.capture(pod: record.displayName, reason: "the pod has no IP address")
        }
        let loopback: IPAddress = hboneAddress.isIPv4 ? .v4(0x7F00_0001) : IPAddress("::1")!
        let any: IPAddress = hboneAddress.isIPv4 ? .v4(0) : IPAddress("::")!
        let mark = MeshMarks.agentSocket
        let descriptors: [Int32]
        do {
            let backend = self.backend
            descriptors = try await executor.run(in: netns) {
                try backend.prepare()
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
                    try backend.activate(netns: netns, addresses: record.addresses, inboundListener: opened[1])
                } catch {
                    for fd in opened { close(fd) }
                    throw error
                }
                return opened
            }
        } catch {
            throw NodeAgentError.capture(pod: record.displayName, reason: "\(error)")
        }

        let uid = record.uid
        let server = HBONEServer(
            configuration: options.hboneConfiguration,
            trustDomain: trustDomain,
            roots: roots,
            certificate: { [self] in try self.serverCertificate(forPod: uid) },
            inbound: PodInbound(agent: self, podUID: uid),
            logger: logger
        )
        let pod = CapturedPod(record: record, netns: netns, server: server)
        // Registered before the listeners serve, so the first connection finds its pod.
        registry.insert(pod)
        do {
            let outbound = try await relayListener(descriptors[0]) { channel in self.handleOutbound(channel, from: pod)
            }
            pod.listeners.withLock { $0.append(outbound) }
            let plaintext = try await relayListener(descriptors[1]) { channel in
                self.handlePlaintextInbound(channel, to: pod)
            }
            pod.listeners.withLock { $0.append(plaintext) }
            let hbone = try await server.listen(boundSocket: descriptors[2], group: group).get()
            pod.listeners.withLock { $0.append(hbone) }
        } catch {
            registry.remove(uid: uid)
            for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
            for fd in descriptors[pod.listeners.withLock({ $0.count })...] { close(fd) }
            throw NodeAgentError.capture(pod: record.displayName, reason: "listener: \(error)")
        }
        do {
            try records.save(record)
        } catch {
            logger.error("cannot persist pod record", metadata: ["pod": "\(record.displayName)", "error": "\(error)"])
        }
        if let workload = store.snapshot.workload(for: record.key) {
            await warmCertificate(workload.identity)
        }
        logger.info(
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

    /// Removes the pod's capture completely: listeners, live connections, rules, record.
    func release(uid: String, reason: String) async {
        guard let pod = registry.remove(uid: uid) else {
            records.delete(uid)
            return
        }
        for listener in pod.listeners.withLock({ $0 }) { try? await listener.close() }
        for connection in pod.connections.all { connection.closeDenied() }
        _ = try? await pod.server.shutdown(on: group.next()).get()
        do {
            let backend = self.backend
            try await executor.run(in: pod.netns) { try backend.remove() }
        } catch {
            logger.warning(
                "cannot remove capture rules",
                metadata: ["pod": "\(pod.record.displayName)", "error": "\(error)"]
            )
        }
        records.delete(uid)
        logger.info("pod released", metadata: ["pod": "\(pod.record.displayName)", "reason": "\(reason)"])
    }

    // MARK: Certificates

    func serverCertificate(forPod uid: String) throws -> WorkloadCertificate {
        guard let pod = registry.pod(uid: uid), let workload = store.snapshot.workload(for: pod.record.key) else {
            throw NodeAgentError.unknownSourcePod(uid)
        }
        if let certificate = certificateCache.current(workload.identity) { return certificate }
        Task { await warmCertificate(workload.identity) }
        throw NodeAgentError.capture(pod: pod.record.displayName, reason: "no certificate yet for \(workload.identity)")
    }

    func warmCertificate(_ identity: SpiffeID) async {
        do {
            certificateCache.store(try await certificates.certificate(for: identity))
        } catch {
            logger.warning("certificate request failed", metadata: ["identity": "\(identity)", "error": "\(error)"])
        }
    }

    // MARK: Restore, reconcile

    /// Restores the capture of every pod recorded on disk (after a restart). A record whose
    /// namespace file is gone belongs to a deleted pod and is dropped.
    func restoreCapturedPods() async {
        let (saved, errors) = records.loadAll()
        for error in errors { logger.warning("unreadable pod record", metadata: ["error": "\(error)"]) }
        await lifecycle.serialized {
            // Pruning eBPF capture is only safe when every pod still alive was re-enrolled: a pod whose
            // record is unreadable or whose restore failed keeps its old capture (fail closed).
            var safeToPrune = errors.isEmpty
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
                    logger.warning(
                        "cannot restore capture; dropping the record",
                        metadata: ["pod": "\(record.displayName)", "error": "\(error)"]
                    )
                    records.delete(record.uid)
                }
            }
            if case .ebpf(let capture) = backend, safeToPrune {
                let pruned = capture.pruneUnknownPods()
                if !pruned.isEmpty {
                    logger.info("eBPF capture of vanished pods removed", metadata: ["netns_cookies": "\(pruned)"])
                }
            }
        }
        readiness.withLock { $0.restored = true }
    }

    /// Brings capture in line with the configuration: enroll running pods of newly enrolled
    /// namespaces, release pods that left the mesh.
    func reconcile() async {
        await lifecycle.serialized {
            let snapshot = store.snapshot
            for pod in registry.all {
                let (wanted, reason) = shouldCapture(pod.record, in: snapshot)
                if !wanted { await release(uid: pod.record.uid, reason: reason) }
            }
            var missing: [String] = []
            for workload in snapshot.workloads(onNode: options.nodeName) where workload.enrollment.isEnrolled {
                let addresses = workload.pod.podIPs
                guard let first = addresses.first else { continue }
                if registry.pod(at: first) != nil {
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
                    logger.error(
                        "cannot capture pod",
                        metadata: ["pod": "\(workload.namespace)/\(workload.name)", "error": "\(error)"]
                    )
                    missing.append("\(workload.namespace)/\(workload.name): \(error)")
                }
            }
            readiness.withLock { $0.missing = missing }
        }
    }

    /// Finds the network namespace (under the runtime's netns directory) that has `address`
    /// on one of its interfaces, as the container runtime created it.
    func findNamespace(owning address: IPAddress) async throws -> (NetworkNamespace, String)? {
        let directory = options.netnsDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasPrefix(options.netnsPrefix) {
            let path = "\(directory)/\(name)"
            guard let netns = try? NetworkNamespace.open(path: path) else { continue }
            let addresses = (try? await executor.run(in: netns) { InterfaceAddresses.current() }) ?? []
            if addresses.contains(address) { return (netns, path) }
        }
        return nil
    }
}
