public import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A process the lab started, identified by pid *and* kernel start time so a recycled pid is never signalled.
public struct ProcessHandle: Codable, Sendable, Equatable {
    public var pid: Int32
    /// `/proc/<pid>/stat` field 22 (clock ticks since boot).
    public var startTime: UInt64
    public var command: [String]
    public var log: String

    /// glibc's `POSIX_SPAWN_SETSID` (not imported into Swift): the child starts a new session, so it outlives the
    /// command that started it and is not hit by the terminal's signals.
    private static let spawnSetSID: Int16 = 0x80

    /// Starts `command` detached (new session, stdin from /dev/null, stdout and stderr appended to `log`).
    static func spawnDetached(_ command: [String], log: String) throws -> ProcessHandle {
        let pid = try spawn(command, standardStreams: .detached(log: log))
        // A just-spawned child always has a stat entry (a zombie at worst).
        let started = Self.readStat(pid)?.startTime ?? 0
        return ProcessHandle(pid: pid, startTime: started, command: command, log: log)
    }

    /// Runs `command` in the foreground with this process's stdin, stdout and stderr and returns its exit status
    /// (128 + signal when killed). Only the child itself is waited for: a daemon it leaves behind (say
    /// `iperf3 -D`) holds none of our descriptors and does not keep us waiting.
    static func runForeground(_ command: [String]) throws -> Int32 {
        try wait(for: spawn(command, standardStreams: .inherited))
    }

    /// Waits for a child and returns its exit status (128 + signal when killed).
    static func wait(for pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw LabError("waitpid: \(String(cString: strerror(errno)))") }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Where a child's standard input, output and error go.
    enum StandardStreams {
        /// This process's own.
        case inherited
        /// A new session, stdin from /dev/null, stdout and stderr appended to `log`.
        case detached(log: String)
        /// Each from or to a file (output files are truncated).
        case files(input: String, output: String, error: String)
    }

    /// posix_spawn with a clean signal state and no inherited descriptors beyond 0-2, with `environment`
    /// (this process's when `nil`).
    static func spawn(
        _ command: [String],
        standardStreams: StandardStreams,
        environment: [String: String]? = nil
    ) throws -> pid_t {
        guard let executable = command.first else { throw LabError("empty command") }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A clean signal state: whoever started us may block or ignore signals (test runners and thread pools
        // do), and a daemon that inherits a blocked SIGTERM could only be stopped with SIGKILL.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        let signalFlags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        switch standardStreams {
        case .inherited:
            posix_spawnattr_setflags(&attributes, signalFlags)
        case .detached(let log):
            posix_spawnattr_setflags(&attributes, spawnSetSID | signalFlags)
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        case .files(let input, let output, let error):
            // A process group of its own (as Foundation's `Process` made): a Ctrl-C meant for ambitctl
            // does not also hit the command half-way (ambitctl finishes or cleans up what it started).
            posix_spawnattr_setpgroup(&attributes, 0)
            posix_spawnattr_setflags(&attributes, signalFlags | Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, error, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }
        // Close every other inherited descriptor: a long-lived child holding, say, the pipe or socket pair its
        // caller waits on would keep that caller from ever seeing EOF or exit. glibc ignores close actions for
        // descriptors that are no longer open (such as the one used to list the directory).
        for fd in Self.openDescriptors() where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map {
            $0.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { envp?.forEach { free($0) } }
        var pid: pid_t = 0
        let status =
            if let envp {
                posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            } else {
                posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
            }
        guard status == 0 else {
            throw LabError("cannot start \(executable): \(String(cString: strerror(status)))")
        }
        return pid
    }

    private static func openDescriptors() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
    }

    /// Parses `/proc/<pid>/stat`: the state letter and start time. `nil` when the process is gone.
    static func readStat(_ pid: Int32) -> (state: Character, startTime: UInt64)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)" come fields 3...; the command name may itself contain spaces or parentheses.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (state, start)
    }

    /// Running, and still the process we started (not a zombie, not a recycled pid).
    public var isAlive: Bool {
        reap()
        guard let stat = Self.readStat(pid) else { return false }
        return stat.state != "Z" && stat.state != "X" && stat.startTime == startTime
    }

    /// Collects the exit status if this process is our own child, so it does not linger as a zombie.
    private func reap() {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// SIGTERM to the process group (the process leads its own session), then SIGKILL after `grace` seconds.
    /// Returns a short description of what happened.
    @discardableResult
    public func terminate(grace: TimeInterval = 5) -> String {
        guard isAlive else { return "pid \(pid) already gone" }
        signal(SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while Date() < deadline {
            if !isAlive { return "stopped pid \(pid)" }
            usleep(50_000)
        }
        signal(SIGKILL)
        for _ in 0..<40 where isAlive { usleep(50_000) }
        return isAlive ? "pid \(pid) survived SIGKILL" : "killed pid \(pid) (did not stop within \(Int(grace)) s)"
    }

    private func signal(_ signal: Int32) {
        if getpgid(pid) == pid { _ = kill(-pid, signal) }
        _ = kill(pid, signal)
    }

    /// The last `lines` lines of the process's log, for error messages.
    public func logTail(lines: Int = 20) -> String {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return "(no log at \(log))" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}
