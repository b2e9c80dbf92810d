public import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// A failure of a kernel-facing operation: which operation, on which object, and the kernel's reason.
///
/// Nothing in this module crashes on a kernel error; every failing system call becomes one of these.
public enum CaptureError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A system call failed: `operation` names the call and what it was for, `object` what it acted on
    /// (a path, an address, a namespace).
    case system(operation: String, object: String, errno: Int32)
    /// An outbound `connect` was rejected; `isRefused` tells a closed port apart from other failures.
    case connect(endpoint: IPEndpoint, errno: Int32)
    /// An outbound `connect` got no answer within the timeout.
    case connectTimeout(endpoint: IPEndpoint, timeout: Duration)
    /// The kernel rejected a netlink request; `message` is its extended-ACK text when it gave one.
    case netlink(operation: String, errno: Int32, message: String?)
    /// The kernel answered with something this module does not understand.
    case unexpectedReply(operation: String, detail: String)
    /// A value that cannot be used, e.g. an unsupported socket address family.
    case invalidArgument(String)
    /// The `NetnsExecutor` was shut down before the job could run.
    case executorShutDown
    /// The kernel or host lacks what a capture backend needs (`feature`), with what was found and what to do.
    case unsupported(feature: String, detail: String)

    /// The errno of the failure, when the kernel gave one.
    public var errno: Int32? {
        switch self {
        case .system(_, _, let code), .connect(_, let code), .netlink(_, let code, _): return code
        case .connectTimeout, .unexpectedReply, .invalidArgument, .executorShutDown, .unsupported: return nil
        }
    }

    /// The peer answered a `connect` with a reset: nothing listens there.
    public var isRefused: Bool {
        if case .connect(_, let code) = self { return code == ECONNREFUSED }
        return false
    }

    /// A `connect` timed out (no answer, or the kernel gave up with `ETIMEDOUT`).
    public var isTimeout: Bool {
        switch self {
        case .connectTimeout: return true
        case .connect(_, let code): return code == ETIMEDOUT
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .system(let operation, let object, let code):
            return "\(operation) failed for \(object): \(Self.describe(errno: code))\(Self.hint(errno: code))"
        case .connect(let endpoint, let code):
            return "connect to \(endpoint) failed: \(Self.describe(errno: code))"
        case .connectTimeout(let endpoint, let timeout):
            return "connect to \(endpoint) timed out after \(timeout)"
        case .netlink(let operation, let code, let message):
            let detail = message.map { " (kernel says: \($0))" } ?? ""
            return "netlink \(operation) failed: \(Self.describe(errno: code))\(detail)\(Self.hint(errno: code))"
        case .unexpectedReply(let operation, let detail):
            return "netlink \(operation): unexpected reply from the kernel: \(detail)"
        case .invalidArgument(let detail):
            return "invalid argument: \(detail)"
        case .executorShutDown:
            return "the network-namespace executor was shut down before the job ran"
        case .unsupported(let feature, let detail):
            return "\(feature) is not available: \(detail)"
        }
    }

    /// `strerror` text plus the number, e.g. `Connection refused (errno 111)`.
    static func describe(errno code: Int32) -> String {
        let text = strerror(code).map { String(cString: $0) } ?? "unknown error"
        return "\(text) (errno \(code))"
    }

    /// What an operator can do about the most common privilege failures.
    static func hint(errno code: Int32) -> String {
        switch code {
        case EPERM: return " — the agent needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (run as root?)"
        default: return ""
        }
    }

    /// Captures the current `errno` of a failed system call.
    static func lastSystemError(_ operation: String, _ object: String) -> CaptureError {
        .system(operation: operation, object: object, errno: Glibc.errno)
    }
}
