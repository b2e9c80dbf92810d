#if canImport(Glibc)
    import Glibc
#endif

/// A system thread of its own for work that blocks (a lock, `accept(2)`, a log writer, `setns(2)`
/// jobs), started without Foundation's `Thread`: Ambit's daemons link FoundationEssentials only.
public enum DetachedThread {
    private final class Start {
        let name: String?
        let body: @Sendable () -> Void

        init(name: String?, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Runs `body` on a new detached thread named `name` (at most 15 bytes are kept). Returns false,
    /// and never runs `body`, when the system refuses another thread.
    @discardableResult
    public static func start(name: String? = nil, _ body: @escaping @Sendable () -> Void) -> Bool {
        let context = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread,
            nil,
            { raw in
                guard let raw else { return nil }
                let start = Unmanaged<Start>.fromOpaque(raw).takeRetainedValue()
                if let name = start.name { DetachedThread.nameCurrentThread(name) }
                start.body()
                return nil
            },
            context
        )
        guard result == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    /// Names the calling thread as `top -H` and `perf` show it (`/proc/thread-self/comm`, as
    /// `pthread_setname_np` does; the kernel keeps the first 15 bytes).
    public static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        _ = name.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
