#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call on the plugin's unix socket to the agent: which call, on which path, and why.
public struct CNISocketError: Error, Sendable, Hashable, CustomStringConvertible {
    public let operation: String
    public let path: String
    /// The kernel's errno, when the failure came from a system call.
    public let errno: Int32?
    public let detail: String?

    init(_ operation: String, _ path: String, errno: Int32? = nil, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    /// The current `errno` of a failed system call.
    static func last(_ operation: String, _ path: String) -> CNISocketError {
        CNISocketError(operation, path, errno: Glibc.errno)
    }

    public var description: String {
        var text = "\(operation) failed for \(path)"
        if let errno {
            let reason = strerror(errno).map { String(cString: $0) } ?? "unknown error"
            text += ": \(reason) (errno \(errno))"
        }
        if let detail { text += ": \(detail)" }
        return text
    }
}
