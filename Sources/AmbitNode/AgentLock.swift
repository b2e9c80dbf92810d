import AmbitModel
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `<state-dir>/agent.lock`: an exclusive `flock` with the holder's pid inside, held by the node's *active* agent,
/// the one that changes capture (captures and releases pods, answers the CNI plugin, prunes and detaches eBPF
/// pins). A second agent on the same state directory (an upgrade: the DaemonSet's surge pod) finds it held, serves
/// the captured pods as a standby and takes the lock when the active agent hands it over (``unlock()``, once it has
/// stopped changing capture) or dies: the kernel drops the lock however the holder ends. `ambit-node uninstall`
/// refuses while it is held.
final class AgentLock: Sendable {
    static func path(stateDirectory: String) -> String { "\(stateDirectory)/agent.lock" }

    let path: String
    /// The lock file's descriptor; -1 once unlocked for good.
    private let descriptor: Mutex<Int32>

    /// Opens (creates) the lock file without locking it.
    init(stateDirectory: String) throws(AgentLockError) {
        path = Self.path(stateDirectory: stateDirectory)
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        } catch {
            throw AgentLockError(path: path, reason: "\(error)")
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgentLockError(path: path, reason: String(cString: strerror(errno))) }
        descriptor = Mutex(fd)
    }

    /// Takes the lock, waiting for the holder to let go (blocks the calling thread).
    static func acquire(stateDirectory: String) throws(AgentLockError) -> AgentLock {
        let lock = try AgentLock(stateDirectory: stateDirectory)
        if try !lock.tryLock() { try lock.lock() }
        return lock
    }

    deinit { descriptor.withLock { if $0 >= 0 { close($0) } } }

    /// Takes the lock if nobody holds it; true when taken.
    func tryLock() throws(AgentLockError) -> Bool {
        let fd = descriptor.withLock { $0 }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            recordHolder(fd)
            return true
        }
        guard errno == EWOULDBLOCK else { throw AgentLockError(path: path, reason: String(cString: strerror(errno))) }
        return false
    }

    /// Takes the lock, blocking the calling thread until the holder lets go.
    func lock() throws(AgentLockError) {
        let fd = descriptor.withLock { $0 }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw AgentLockError(path: path, reason: String(cString: strerror(errno))) }
        }
        recordHolder(fd)
    }

    /// Takes the lock on a thread of its own, for async callers.
    func lockInBackground() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let started = DetachedThread.start(name: "ambit-lock-wait") { [self] in
                do {
                    try lock()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            if !started {
                continuation.resume(
                    throwing: AgentLockError(path: path, reason: "cannot start a thread to wait for it")
                )
            }
        }
    }

    /// Lets go of the lock for good (a waiting successor takes it at once).
    func unlock() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            close(fd)
            fd = -1
        }
    }

    /// The pid written by whoever holds the lock now.
    var holder: String { descriptor.withLock { Self.holder($0) } }

    private func recordHolder(_ fd: Int32) {
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.utf8.count, 0)
    }

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
        guard fd >= 0 else { return "" }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &buffer, buffer.count, 0)
        let text = String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
        return text.trimmingWhitespace()
    }
}

struct AgentLockError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot lock \(path): \(reason)" }
}
