#if canImport(Glibc)
    import Glibc
#endif

/// `/proc/sys/<key>` of the calling thread's network namespace (net sysctls follow the thread's namespace).
enum Sysctl {
    static func write(_ key: String, _ value: String) throws(CaptureError) {
        let path = "/proc/sys/\(key)"
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CaptureError.lastSystemError("open sysctl", path) }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw CaptureError.lastSystemError("write sysctl", path)
        }
    }
}
