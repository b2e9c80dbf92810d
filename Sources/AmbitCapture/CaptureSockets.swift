public import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// Creates and inspects the agent's capture sockets.
///
/// Every function acts in the calling thread's current network namespace: run them through a
/// `NetnsExecutor` to open sockets inside a pod. The descriptors returned are close-on-exec and
/// non-blocking, ready for NIO's `ServerBootstrap.withBoundSocket` / `ClientBootstrap.withConnectedSocket`.
/// Ownership of a returned descriptor passes to the caller.
public enum CaptureSockets {
    /// A listening TCP socket on `address`.
    ///
    /// - Parameters:
    ///   - mark: `SO_MARK` for every packet of the socket and its accepted connections (the agent uses
    ///     `MeshMarks.agentSocket` so its own traffic is never captured).
    ///   - reusePort: `SO_REUSEPORT`, so a new agent can listen before the old one stops.
    ///   - transparent: `IP_TRANSPARENT` / `IPV6_TRANSPARENT`, to accept connections to non-local addresses.
    public static func listener(
        address: IPEndpoint,
        mark: UInt32?,
        reusePort: Bool,
        transparent: Bool,
        backlog: Int32 = 1024
    ) throws(CaptureError) -> Int32 {
        let fd = try socket(for: address.address)
        do throws(CaptureError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
            if let mark { try setOption(fd, SOL_SOCKET, SocketOption.mark, Int32(bitPattern: mark), "SO_MARK") }
            if transparent { try setTransparent(fd, address.address) }
            if !address.address.isIPv4 {
                try setOption(fd, Int32(IPPROTO_IPV6), SocketOption.ipv6Only, 1, "IPV6_V6ONLY")
            }
            try bind(fd, address)
            guard Glibc.listen(fd, backlog) == 0 else { throw CaptureError.lastSystemError("listen", "\(address)") }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// A TCP connection to `destination`, established before returning.
    ///
    /// - Parameters:
    ///   - source: local address to bind (port chosen by the kernel). With `transparent` it may be
    ///     another host's address: the agent dials an application "as" the original client.
    ///   - mark: `SO_MARK` of the socket.
    ///   - transparent: `IP_TRANSPARENT` + `IP_FREEBIND` (IPv6: `IPV6_TRANSPARENT` + `IPV6_FREEBIND`).
    ///   - timeout: the whole connect, from SYN to established.
    /// - Throws: `CaptureError.connect` (see `isRefused`) or `CaptureError.connectTimeout`.
    public static func connect(
        to destination: IPEndpoint,
        from source: IPAddress?,
        mark: UInt32?,
        transparent: Bool,
        timeout: Duration
    ) throws(CaptureError) -> Int32 {
        let fd = try socket(for: destination.address)
        do throws(CaptureError) {
            let deadline = ContinuousClock.now.advanced(by: timeout)
            if try !startConnect(fd, to: destination, from: source, mark: mark, transparent: transparent) {
                try finishConnect(fd, destination, deadline: deadline, timeout: timeout)
            }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// A non-blocking TCP socket for `address`'s family, in the calling thread's network namespace (the
    /// namespace a socket belongs to for life; every later call on it acts there, from any thread).
    public static func socket(for address: IPAddress) throws(CaptureError) -> Int32 {
        let family = address.isIPv4 ? AF_INET : AF_INET6
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = Glibc.socket(family, type, 0)
        guard fd >= 0 else { throw CaptureError.lastSystemError("socket", address.isIPv4 ? "AF_INET" : "AF_INET6") }
        return fd
    }

    /// Sets the options of ``connect(to:from:mark:transparent:timeout:)`` on `fd` (from ``socket(for:)``),
    /// binds and starts a non-blocking connect. Returns whether the connection is already established: a
    /// connection to an address of the socket's own namespace (an application in its pod) completes within
    /// the `connect` call; otherwise ``finishConnect(_:_:deadline:timeout:)`` waits for it. The caller keeps
    /// ownership of `fd`, also when this throws.
    public static func startConnect(
        _ fd: Int32,
        to destination: IPEndpoint,
        from source: IPAddress?,
        mark: UInt32?,
        transparent: Bool
    ) throws(CaptureError) -> Bool {
        if let source, source.isIPv4 != destination.address.isIPv4 {
            throw CaptureError.invalidArgument("source \(source) and destination \(destination) differ in family")
        }
        if let mark { try setOption(fd, SOL_SOCKET, SocketOption.mark, Int32(bitPattern: mark), "SO_MARK") }
        if transparent {
            try setTransparent(fd, destination.address)
            if destination.address.isIPv4 {
                try setOption(fd, Int32(IPPROTO_IP), SocketOption.ipFreebind, 1, "IP_FREEBIND")
            } else {
                try setOption(fd, Int32(IPPROTO_IPV6), SocketOption.ipv6Freebind, 1, "IPV6_FREEBIND")
            }
        }
        if let source { try bind(fd, IPEndpoint(source, 0)) }
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1, "TCP_NODELAY")
        let result = Sockaddr.withSockaddr(destination) { Glibc.connect(fd, $0, $1) }
        if result == 0 { return true }
        guard errno == EINPROGRESS || errno == EINTR else {
            throw CaptureError.connect(endpoint: destination, errno: errno)
        }
        // The kernel answers a local SYN while `connect` still holds the socket and finishes the handshake
        // when it lets go: by now the socket is writable (or has its error) unless the peer is elsewhere.
        return try connectOutcome(fd, destination, waitMilliseconds: 0)
    }

    /// Waits until the connect ``startConnect(_:to:from:mark:transparent:)`` began is established
    /// (`poll` for writability, then `SO_ERROR`), or `deadline` passed.
    public static func finishConnect(
        _ fd: Int32,
        _ destination: IPEndpoint,
        deadline: ContinuousClock.Instant,
        timeout: Duration
    ) throws(CaptureError) {
        while true {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                // One last look: the handshake may have completed while this waited for a thread.
                if try connectOutcome(fd, destination, waitMilliseconds: 0) { return }
                throw CaptureError.connectTimeout(endpoint: destination, timeout: timeout)
            }
            let (seconds, attoseconds) = remaining.components
            let milliseconds = Int32(
                clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            )
            if try connectOutcome(fd, destination, waitMilliseconds: milliseconds) { return }
        }
    }

    /// The destination a connection had before the nftables `redirect` rewrote it.
    ///
    /// For a connection that was not redirected this is simply its local address (the kernel answers
    /// from conntrack either way); without a conntrack entry it fails with `ENOENT`.
    public static func originalDestination(fd: Int32) throws(CaptureError) -> IPEndpoint {
        let local = try localAddress(fd: fd)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let level = OriginalDestination.level(isIPv4: local.address.isIPv4)
        let result = withUnsafeMutablePointer(to: &storage) {
            getsockopt(fd, level, OriginalDestination.optionName, $0, &length)
        }
        guard result == 0 else { throw CaptureError.lastSystemError("getsockopt(SO_ORIGINAL_DST)", "\(local)") }
        return try OriginalDestination.decode(storage, socket: "socket \(fd)")
    }

    /// `getsockname` as an endpoint.
    public static func localAddress(fd: Int32) throws(CaptureError) -> IPEndpoint {
        try Sockaddr.query("getsockname", fd: fd) { getsockname($0, $1, $2) }
    }

    /// `getpeername` as an endpoint.
    public static func peerAddress(fd: Int32) throws(CaptureError) -> IPEndpoint {
        try Sockaddr.query("getpeername", fd: fd) { getpeername($0, $1, $2) }
    }

    /// `SO_NETNS_COOKIE`: a 64-bit id of the socket's network namespace, never reused while the
    /// system runs (the eBPF backend keys pods by it).
    public static func netnsCookie(fd: Int32) throws(CaptureError) -> UInt64 {
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(fd, SOL_SOCKET, SocketOption.netnsCookie, &cookie, &length) == 0 else {
            throw CaptureError.lastSystemError("getsockopt(SO_NETNS_COOKIE)", "socket \(fd)")
        }
        return cookie
    }

    /// `SO_MARK` of a socket.
    public static func mark(fd: Int32) throws(CaptureError) -> UInt32 {
        var mark: UInt32 = 0
        var length = socklen_t(MemoryLayout<UInt32>.size)
        guard getsockopt(fd, SOL_SOCKET, SocketOption.mark, &mark, &length) == 0 else {
            throw CaptureError.lastSystemError("getsockopt(SO_MARK)", "socket \(fd)")
        }
        return mark
    }

    // MARK: - Helpers

    static func setOption(
        _ fd: Int32,
        _ level: Int32,
        _ name: Int32,
        _ value: Int32,
        _ label: String
    ) throws(CaptureError) {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw CaptureError.lastSystemError("setsockopt(\(label))", "socket \(fd)")
        }
    }

    private static func setTransparent(_ fd: Int32, _ address: IPAddress) throws(CaptureError) {
        if address.isIPv4 {
            try setOption(fd, Int32(IPPROTO_IP), SocketOption.ipTransparent, 1, "IP_TRANSPARENT")
        } else {
            try setOption(fd, Int32(IPPROTO_IPV6), SocketOption.ipv6Transparent, 1, "IPV6_TRANSPARENT")
        }
    }

    private static func bind(_ fd: Int32, _ endpoint: IPEndpoint) throws(CaptureError) {
        let result = Sockaddr.withSockaddr(endpoint) { Glibc.bind(fd, $0, $1) }
        guard result == 0 else { throw CaptureError.lastSystemError("bind", "\(endpoint)") }
    }

    /// Whether a connect in progress ended: `poll` for writability up to `waitMilliseconds`, then `SO_ERROR`.
    /// `false` while it is still in progress; throws the connect's error.
    private static func connectOutcome(
        _ fd: Int32,
        _ destination: IPEndpoint,
        waitMilliseconds: Int32
    ) throws(CaptureError) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&descriptor, 1, waitMilliseconds)
        if ready < 0 {
            if errno == EINTR { return false }
            throw CaptureError.lastSystemError("poll(connect)", "\(destination)")
        }
        if ready == 0 { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else {
            throw CaptureError.lastSystemError("getsockopt(SO_ERROR)", "\(destination)")
        }
        guard error == 0 else { throw CaptureError.connect(endpoint: destination, errno: error) }
        return true
    }
}

/// Linux socket options the C library headers imported into Swift do not all expose.
enum SocketOption {
    static let mark: Int32 = 36  // SO_MARK
    static let netnsCookie: Int32 = 71  // SO_NETNS_COOKIE
    static let ipTransparent: Int32 = 19  // IP_TRANSPARENT
    static let ipFreebind: Int32 = 15  // IP_FREEBIND
    static let ipv6Transparent: Int32 = 75  // IPV6_TRANSPARENT
    static let ipv6Freebind: Int32 = 78  // IPV6_FREEBIND
    static let ipv6Only: Int32 = 26  // IPV6_V6ONLY
}
