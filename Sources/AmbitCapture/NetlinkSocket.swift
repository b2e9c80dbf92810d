import CLibNFTNL

/// A netlink socket in the calling thread's network namespace, with request/acknowledgement
/// bookkeeping: every request carries `NLM_F_ACK`, and `transact` waits for each one's answer.
final class NetlinkSocket {
    private let socket: OpaquePointer
    private let bus: String
    private var nextSequence: UInt32

    /// Opens a socket on `protocol` (`NETLINK_NETFILTER`, `NETLINK_ROUTE`) with extended ACKs enabled.
    init(protocol netlinkProtocol: Int32, name: String) throws(CaptureError) {
        bus = name
        guard let socket = mnl_socket_open2(netlinkProtocol, SystemCalls.socketCloseOnExec) else {
            throw CaptureError.lastSystemError("open netlink socket", name)
        }
        self.socket = socket
        guard mnl_socket_bind(socket, 0, 0) == 0 else {
            let error = CaptureError.lastSystemError("bind netlink socket", name)
            mnl_socket_close(socket)
            throw error
        }
        var one: Int32 = 1
        // Extended ACKs give the kernel's reason as text; older kernels lack them, which is harmless.
        _ = mnl_socket_setsockopt(socket, 11, &one, socklen_t(MemoryLayout<Int32>.size))  // NETLINK_EXT_ACK
        // No request may hang the agent: a kernel answer normally arrives within microseconds.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(mnl_socket_get_fd(socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        nextSequence = SystemCalls.now
    }

    deinit {
        mnl_socket_close(socket)
    }

    /// Reserves a sequence number for a request about to be encoded.
    func sequence() -> UInt32 {
        nextSequence &+= 1
        return nextSequence
    }

    /// Sends `bytes` (one message or a whole batch) and waits until every sequence number in
    /// `expected` was acknowledged. The first error, if any, is thrown, named by its label.
    ///
    /// - Returns: the data messages received (answers to GET requests).
    @discardableResult
    func transact(
        _ bytes: [UInt8],
        expected: [UInt32: String],
        tolerating tolerated: Set<Int32> = []
    ) throws(CaptureError) -> [Netlink.Reply] {
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == bytes.count else {
            throw CaptureError.lastSystemError("send netlink request", "\(bus) (\(bytes.count) bytes)")
        }
        var pending = Set(expected.keys)
        var failure: CaptureError?
        var data: [Netlink.Reply] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !pending.isEmpty {
            let count = buffer.withUnsafeMutableBytes { mnl_socket_recvfrom(socket, $0.baseAddress, $0.count) }
            if count < 0 {
                if SystemCalls.errno == SystemCalls.interrupted { continue }
                // After an error the kernel may not answer the rest of an aborted batch.
                if let failure { throw failure }
                let names = pending.compactMap { expected[$0] }.sorted().joined(separator: ", ")
                throw CaptureError.lastSystemError("receive netlink acknowledgement", names)
            }
            for reply in Netlink.parse(Array(buffer.prefix(count))) {
                switch reply {
                case .ack(let sequence), .done(let sequence):
                    pending.remove(sequence)
                case .error(let sequence, let code, let message):
                    pending.remove(sequence)
                    if failure == nil && !tolerated.contains(code) {
                        let label = expected[sequence] ?? "request \(sequence)"
                        failure = .netlink(operation: label, errno: code, message: message)
                    }
                case .data:
                    data.append(reply)
                }
            }
        }
        if let failure { throw failure }
        return data
    }

    /// Sends one request and returns its errno (0 for success) instead of throwing it.
    func status(of message: [UInt8], sequence: UInt32, label: String) throws(CaptureError) -> Int32 {
        do {
            try transact(message, expected: [sequence: label])
            return 0
        } catch {
            if case .netlink(_, let code, _) = error { return code }
            throw error
        }
    }
}
