public import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The process's limit on open descriptors (`RLIMIT_NOFILE`). A proxy holds one or two per connection it
/// carries (10,000 connections through an agent: about 10,000 on each side), far above the soft limit
/// many hosts start processes with (1,024), while the hard limit is usually much higher. Daemons raise
/// the soft limit to the hard one at start-up, as a process may without any privilege.
public enum OpenFileLimit {
    public struct Limits: Equatable, Sendable {
        public var soft: UInt64
        public var hard: UInt64

        public init(soft: UInt64, hard: UInt64) {
            self.soft = soft
            self.hard = hard
        }
    }

    /// The limits now in force.
    public static var current: Limits {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return Limits(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Raises the soft limit to the hard limit; logs the limit in force, and a warning when it cannot.
    @discardableResult
    public static func raiseToHardLimit(logger: Logger) -> Limits {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            let wanted = limit.rlim_max
            limit.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
                logger.warning(
                    "cannot raise the open files limit",
                    metadata: ["wanted": "\(wanted)", "error": "\(String(cString: strerror(errno)))"]
                )
            }
        }
        let now = current
        logger.info("open files limit", metadata: ["soft": "\(now.soft)", "hard": "\(now.hard)"])
        return now
    }
}
