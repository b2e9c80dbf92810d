#if canImport(Glibc)
    import Glibc
#endif

/// `net.ipv4.tcp_migrate_req` (Linux 5.14+, per network namespace, IPv4 and IPv6): when a listener of a
/// `SO_REUSEPORT` group closes, the connections in its accept queue move to another listener of the group
/// instead of being reset. With it, an agent that hands a pod's listeners to its successor (both listening on
/// the same ports) closes its own without refusing a single connection.
public enum ListenerMigration {
    static let key = "net/ipv4/tcp_migrate_req"

    /// Turns migration on in the calling thread's network namespace; false when the kernel lacks it or the
    /// write fails (connections queued at hand-over are then reset, as without a successor).
    @discardableResult
    public static func enableInCurrentNamespace() -> Bool {
        guard access("/proc/sys/\(key)", F_OK) == 0 else { return false }
        return (try? Sysctl.write(key, "1")) != nil
    }
}
