#if canImport(Glibc)
    import Glibc
#endif

/// C-library values for files that import `CLibNFTNL`: its Linux UAPI headers clash with Glibc's
/// `netinet/in.h` when both are imported into the same Swift file.
enum SystemCalls {
    static var errno: Int32 { Glibc.errno }
    static let interrupted = EINTR
    static let notFound = ENOENT
    static let exists = EEXIST
    static let noSuchProcess = ESRCH
    static let socketCloseOnExec = Int32(SOCK_CLOEXEC.rawValue)

    /// Seconds since the epoch, to start netlink sequence numbers somewhere unlikely to repeat.
    static var now: UInt32 { UInt32(truncatingIfNeeded: time(nil)) }
}
