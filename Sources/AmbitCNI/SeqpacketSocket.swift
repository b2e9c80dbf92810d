import CAmbitShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A Unix-domain `SOCK_SEQPACKET` socket: message boundaries preserved, and file descriptors
/// (a pod's network namespace) passed alongside a message with `SCM_RIGHTS`.
///
/// Calls block. `close()` may be called from another thread to end a blocked `accept` or `receive`:
/// it shuts the socket down before closing it.
public final class SeqpacketSocket: Sendable {
    /// `-1` once closed. Atomic so `close()` is safe against concurrent callers.
    private let descriptor: Atomic<Int32>
    /// The path, for messages.
    public let path: String

    /// Takes ownership of a connected or listening `AF_UNIX` `SOCK_SEQPACKET` descriptor.
    public init(adopting fd: Int32, path: String) {
        descriptor = Atomic(fd)
        self.path = path
    }

    deinit {
        close()
    }

    /// The descriptor, or `-1` after `close()`.
    public var fd: Int32 { descriptor.load(ordering: .acquiring) }

    /// Listens on `path`, replacing a stale socket file, readable and writable by the owner only.
    public static func listen(path: String, backlog: Int32 = 16) throws(CNISocketError) -> SeqpacketSocket {
        let fd = try makeSocket(path)
        do throws(CNISocketError) {
            if unlink(path) != 0 && errno != ENOENT { throw CNISocketError.last("unlink stale socket", path) }
            try withAddress(path) { address, length throws(CNISocketError) in
                guard Glibc.bind(fd, address, length) == 0 else { throw CNISocketError.last("bind", path) }
            }
            guard chmod(path, 0o600) == 0 else { throw CNISocketError.last("chmod 0600", path) }
            guard Glibc.listen(fd, backlog) == 0 else { throw CNISocketError.last("listen", path) }
            return SeqpacketSocket(adopting: fd, path: path)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Connects to a listening socket at `path`.
    public static func connect(path: String) throws(CNISocketError) -> SeqpacketSocket {
        let fd = try makeSocket(path)
        do throws(CNISocketError) {
            try withAddress(path) { address, length throws(CNISocketError) in
                var result: Int32
                repeat { result = Glibc.connect(fd, address, length) } while result != 0 && errno == EINTR
                guard result == 0 else { throw CNISocketError.last("connect", path) }
            }
            return SeqpacketSocket(adopting: fd, path: path)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Waits for the next connection.
    public func accept() throws(CNISocketError) -> SeqpacketSocket {
        let client = ambit_accept_cloexec(fd)
        guard client >= 0 else { throw CNISocketError.last("accept", path) }
        return SeqpacketSocket(adopting: client, path: path)
    }

    /// Sends one message, with `fd` attached when given. The descriptor stays open here: the
    /// receiver gets its own copy.
    public func send(_ bytes: [UInt8], fd attached: Int32? = nil) throws(CNISocketError) {
        let sent = bytes.withUnsafeBytes { ambit_send_fd(fd, $0.baseAddress, $0.count, attached ?? -1) }
        guard sent >= 0 else { throw CNISocketError.last("sendmsg", path) }
        guard sent == bytes.count else {
            throw CNISocketError("sendmsg", path, detail: "sent \(sent) of \(bytes.count) bytes")
        }
    }

    /// Receives one message and the descriptor sent with it (the caller owns it). Zero bytes and
    /// no descriptor mean the peer closed the connection. A message longer than `maxSize` is an error.
    public func receive(maxSize: Int = 65536) throws(CNISocketError) -> (bytes: [UInt8], fd: Int32?) {
        var received: Int32 = -1
        var buffer = [UInt8](repeating: 0, count: max(1, maxSize))
        let count = buffer.withUnsafeMutableBytes { ambit_recv_fd(fd, $0.baseAddress, $0.count, &received) }
        guard count >= 0 else { throw CNISocketError.last("recvmsg", path) }
        return (Array(buffer.prefix(count)), received >= 0 ? received : nil)
    }

    /// Sets `SO_RCVTIMEO` / `SO_SNDTIMEO`; `nil` means wait forever. A timed-out call throws `EAGAIN`.
    public func setTimeout(receive: Duration?, send: Duration?) throws(CNISocketError) {
        for (option, label, duration) in [(SO_RCVTIMEO, "SO_RCVTIMEO", receive), (SO_SNDTIMEO, "SO_SNDTIMEO", send)] {
            var value = timeval()
            if let duration {
                let (seconds, attoseconds) = duration.components
                value.tv_sec = Int(seconds)
                value.tv_usec = Int(attoseconds / 1_000_000_000_000)
                // A zero timeval would mean "forever": round tiny timeouts up.
                if value.tv_sec == 0 && value.tv_usec == 0 { value.tv_usec = 1 }
            }
            guard setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw CNISocketError.last("setsockopt(\(label))", path)
            }
        }
    }

    /// The process id and user id of the connected peer, as of `connect` (`SO_PEERCRED`).
    public func peerCredentials() throws(CNISocketError) -> (pid: Int32, uid: UInt32) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard ambit_peer_credentials(fd, &pid, &uid, &gid) == 0 else {
            throw CNISocketError.last("getsockopt(SO_PEERCRED)", path)
        }
        return (pid, uid)
    }

    /// Shuts the socket down (waking blocked callers) and closes it. Safe to call more than once.
    public func close() {
        let old = descriptor.exchange(-1, ordering: .acquiringAndReleasing)
        guard old >= 0 else { return }
        shutdown(old, Int32(SHUT_RDWR))
        Glibc.close(old)
    }

    private static func makeSocket(_ path: String) throws(CNISocketError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CNISocketError.last("socket(AF_UNIX, SOCK_SEQPACKET)", path) }
        return fd
    }

    private static func withAddress(
        _ path: String,
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(CNISocketError) -> Void
    ) throws(CNISocketError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw CNISocketError("socket address", path, detail: "the path must be 1..\(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        try withUnsafePointer(to: &address) { pointer throws(CNISocketError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer throws(CNISocketError) in
                try body(pointer, length)
            }
        }
    }
}
