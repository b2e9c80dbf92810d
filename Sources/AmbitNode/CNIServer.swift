import AmbitCNI
import AmbitCapture
import AmbitModel
import Dispatch
import FoundationEssentials
import Glibc
import Logging
import Synchronization

/// The agent's end of the CNI plugin's socket (SOCK_SEQPACKET, mode 0600): one request and one
/// reply per connection; an `add` carries the pod's netns descriptor. Runs on its own thread
/// (blocking accept), handing each request to the agent's async code.
final class CNIServer: Sendable {
    private let socket: SeqpacketSocket
    private let capturer: PodCapturer
    private let stopped = Atomic<Bool>(false)

    init(path: String, capturer: PodCapturer) throws {
        let directory = FilePaths.parent(of: path)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = try SeqpacketSocket.listen(path: path)
        self.capturer = capturer
    }

    func start() {
        precondition(
            DetachedThread.start(name: "ambit-cni-srv") { [self] in acceptLoop() },
            "cannot start the CNI server"
        )
    }

    /// Stops answering. The socket's path goes at once: a successor (which binds the same path once it holds
    /// the node) must never lose its socket to this agent's late clean-up.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        unlink(socket.path)
        // Unblocks accept().
        shutdown(socket.fd, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let connection: SeqpacketSocket
            do {
                connection = try socket.accept()
            } catch {
                if stopped.load(ordering: .relaxed) { break }
                capturer.inputs.logger.warning("CNI socket accept failed", metadata: ["error": "\(error)"])
                usleep(100_000)
                continue
            }
            serve(connection)
        }
        socket.close()
    }

    private func serve(_ connection: SeqpacketSocket) {
        defer { connection.close() }
        let reply: CNIAgentReply
        var passedFD: Int32?
        do {
            try connection.setTimeout(receive: .seconds(5), send: .seconds(5))
            let (bytes, fd) = try connection.receive()
            passedFD = fd
            let request = try JSONDecoder().decode(CNIAgentRequest.self, from: Data(bytes))
            let done = DispatchSemaphore(value: 0)
            let result = Mutex<CNIAgentReply?>(nil)
            let capturer = self.capturer
            let fdToHand = fd
            passedFD = nil  // ownership moves to the handler
            Task {
                let answer = await capturer.handleCNI(request, netnsFD: fdToHand)
                result.withLock { $0 = answer }
                done.signal()
            }
            done.wait()
            reply = result.withLock { $0 } ?? CNIAgentReply(captured: false, error: "no answer")
        } catch {
            reply = CNIAgentReply(captured: false, error: "malformed request: \(error)")
        }
        if let passedFD { close(passedFD) }
        do {
            try connection.send(Array(try JSONEncoder().encode(reply)))
        } catch {
            capturer.inputs.logger.warning("cannot answer the CNI plugin", metadata: ["error": "\(error)"])
        }
    }
}

extension PodCapturer {
    /// A request from the CNI plugin. For `add`, returns only once rules and listeners are live.
    func handleCNI(_ request: CNIAgentRequest, netnsFD: Int32?) async -> CNIAgentReply {
        let record = PodRecord(
            uid: request.podUID,
            namespace: request.podNamespace,
            name: request.podName,
            ips: request.podIPs,
            netnsPath: request.netnsPath,
            containerID: request.containerID
        )
        inputs.logger.info(
            "CNI \(request.operation.rawValue)",
            metadata: ["pod": "\(record.displayName)", "uid": "\(record.uid)", "ips": "\(record.ips)"]
        )
        switch request.operation {
        case .add:
            guard let netnsFD else {
                return CNIAgentReply(captured: false, error: "add without a network namespace descriptor")
            }
            let netns = NetworkNamespace(adopting: netnsFD, path: request.netnsPath)
            // The runtime creates the Pod object before it calls CNI, but our watch may not have seen it
            // yet: read the source once more so an opted-out pod (a waypoint, say) is never captured.
            if inputs.store.snapshot.pods[record.key] == nil { await source.catchUp(awaiting: record.key) }
            let (wanted, reason) = shouldCapture(record, in: inputs.store.snapshot)
            guard wanted else { return CNIAgentReply(captured: false, notEnrolledReason: reason) }
            do {
                try await queue.serialized { try await self.capture(record, netns: netns) }
                return CNIAgentReply(captured: true)
            } catch {
                inputs.logger.error("CNI add failed", metadata: ["pod": "\(record.displayName)", "error": "\(error)"])
                return CNIAgentReply(captured: false, error: "\(error)")
            }
        case .delete:
            if let netnsFD { close(netnsFD) }
            await queue.serialized { await self.release(uid: record.uid, reason: "CNI DEL") }
            return CNIAgentReply(captured: false)
        case .check:
            if let netnsFD { close(netnsFD) }
            if inputs.registry.pod(uid: record.uid) != nil { return CNIAgentReply(captured: true) }
            let (wanted, reason) = shouldCapture(record, in: inputs.store.snapshot)
            if !wanted { return CNIAgentReply(captured: false, notEnrolledReason: reason) }
            return CNIAgentReply(captured: false, error: "pod \(record.displayName) should be captured but is not")
        }
    }
}
