import CAmbitShim

#if canImport(Glibc)
    import Glibc
#endif

/// An open handle on a network namespace (a file descriptor on `/proc/<pid>/ns/net`,
/// `/run/netns/<name>`, …). Holding it keeps the namespace alive; it is closed on deinit.
///
/// Two handles refer to the same namespace exactly when their `inode`s are equal.
public final class NetworkNamespace: Sendable, CustomStringConvertible {
    /// Where the handle was opened from, for messages.
    public let path: String
    /// The open descriptor (close-on-exec). Valid for the lifetime of this object.
    public let fd: Int32
    /// The namespace's inode number (`fstat().st_ino`): its identity, as `ls -iL` or `ip netns identify` show.
    public let inode: UInt64

    /// Takes ownership of `fd`, which must refer to a network namespace.
    public init(adopting fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        var status = stat()
        self.inode = fstat(fd, &status) == 0 ? UInt64(status.st_ino) : 0
    }

    deinit {
        Glibc.close(fd)
    }

    /// Opens the namespace at `path`, e.g. `/var/run/netns/pod` or `/proc/1234/ns/net`.
    public static func open(path: String) throws(CaptureError) -> NetworkNamespace {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CaptureError.lastSystemError("open network namespace", path) }
        return NetworkNamespace(adopting: fd, path: path)
    }

    /// The network namespace of the calling thread (not of the process: `setns` is per thread).
    public static func current() throws(CaptureError) -> NetworkNamespace {
        try open(path: "/proc/thread-self/ns/net")
    }

    /// The namespace of a process, from `/proc/<pid>/ns/net`.
    public static func of(pid: Int32) throws(CaptureError) -> NetworkNamespace {
        try open(path: "/proc/\(pid)/ns/net")
    }

    /// Whether both handles name the same namespace.
    public func isSame(as other: NetworkNamespace) -> Bool {
        inode != 0 && inode == other.inode
    }

    public var description: String { "netns \(path) (inode \(inode))" }

    /// Moves the calling thread into this namespace.
    func enter() throws(CaptureError) {
        guard ambit_setns_net(fd) == 0 else { throw CaptureError.lastSystemError("setns", description) }
    }
}
