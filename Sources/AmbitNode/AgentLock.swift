import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `<state-dir>/agent.lock`: held (`flock`, exclusive) by a running agent from before it loads any
/// capture until it exits, with its pid inside. One agent per state directory at a time: a second one
/// waits for the first to exit; `ambit-node uninstall` refuses while it is held. The kernel drops the
/// lock when the process dies, however it dies.
final class AgentLock: Sendable {
    static func path(stateDirectory: String) -> String { "\(stateDirectory)/agent.lock" }

    private let descriptor: Int32

    /// Takes the lock; when another process holds it, calls `waiting` with its pid and waits.
    init(stateDirectory: String, waiting: (String) -> Void = { _ in }) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let path = Self.path(stateDirectory: stateDirectory)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgentLockError(path: path, reason: String(cString: strerror(errno))) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw AgentLockError(path: path, reason: reason)
            }
            waiting(Self.holder(fd))
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else {
                    let reason = String(cString: strerror(errno))
                    close(fd)
                    throw AgentLockError(path: path, reason: reason)
                }
            }
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.utf8.count, 0)
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// The pid of the agent holding the lock of `stateDirectory`, or `nil` when none does.
    static func holder(stateDirectory: String) throws(AgentLockError) -> String? {
        let path = Self.path(stateDirectory: stateDirectory)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw AgentLockError(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 { return nil }
        guard errno == EWOULDBLOCK else { throw AgentLockError(path: path, reason: String(cString: strerror(errno))) }
        return holder(fd)
    }

    private static func holder(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, buffer.count, 0)
        let text = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct AgentLockError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot lock \(path): \(reason)" }
}
