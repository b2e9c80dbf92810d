import AmbitModel

#if canImport(Glibc)
    import Glibc
#endif

/// Writes log lines to a descriptor from a thread of its own, a batch at a time, so an event loop that
/// logs (a waypoint writes a line per request, a node agent one per connection) only copies the line
/// into memory: no `write(2)` per line, and a slow or stuck reader of the log never stalls it.
///
/// - A line waits at most ``flushInterval`` (lines logged meanwhile join the same write); a line at
///   warning or above, or a batch past ``batchBytes`` (or half the ``capacity``), is written at once.
/// - At most ``capacity`` bytes wait. Beyond that a line is dropped whole and counted
///   (``droppedLines``), and a warning line that says how many were dropped is written where they were.
/// - ``flush(timeout:)`` waits until every line logged before it is written; ``LogSink/standardError``
///   flushes at `exit(3)`. A crash loses the lines of the last ``flushInterval`` at most.
/// - ``stop(timeout:)`` writes what is pending and ends the thread; later lines are not written. The
///   writer writes to a duplicate of the descriptor, closed when its thread ends.
///
/// `@unchecked Sendable`: every stored property but the descriptor and settings is read and written
/// with `mutex` held, and only the writer thread writes to the descriptor; the mutex and conditions are
/// allocated once and freed in deinit, which runs only once the writer thread has let go of the writer.
final class BackgroundLogWriter: @unchecked Sendable {
    let descriptor: Int32
    private let ownsDescriptor: Bool
    let flushInterval: Duration
    let batchBytes: Int
    let capacity: Int

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when there is work for the writer thread: a first line, an urgent line, a flush.
    private let work: UnsafeMutablePointer<pthread_cond_t>
    /// Broadcast when a batch has been written.
    private let written: UnsafeMutablePointer<pthread_cond_t>

    private var pending: [UInt8] = []
    private var urgent = false
    private var flushers = 0
    private var writing = false
    private var dropped = 0
    private var droppedTotal = 0
    private var batches = 0
    private var stopping = false
    private var stopped = false
    /// Pending bytes that end the wait for more lines: a batch this large is written at once.
    private let writeAt: Int
    /// The scope of the warning about dropped lines.
    private let label: String

    init(
        descriptor: Int32,
        flushInterval: Duration = .milliseconds(50),
        batchBytes: Int = 64 << 10,
        capacity: Int = 1 << 20,
        label: String = "ambit.log"
    ) {
        // A descriptor of its own, closed when the thread ends: whoever owns `descriptor` may close it (and
        // the number be reused) while the last batch is still being written.
        let own = dup(descriptor)
        (self.descriptor, ownsDescriptor) = own >= 0 ? (own, true) : (descriptor, false)
        self.flushInterval = flushInterval
        self.batchBytes = batchBytes
        self.capacity = capacity
        self.label = label
        writeAt = max(1, min(batchBytes, capacity / 2))
        mutex = .allocate(capacity: 1)
        work = .allocate(capacity: 1)
        written = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(work, &attributes)
        pthread_cond_init(written, &attributes)
        pthread_condattr_destroy(&attributes)
        start()
    }

    deinit {
        pthread_cond_destroy(written)
        pthread_cond_destroy(work)
        pthread_mutex_destroy(mutex)
        written.deallocate()
        work.deallocate()
        mutex.deallocate()
    }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Lines dropped so far because ``capacity`` bytes were already waiting.
    var droppedLines: Int { locked { droppedTotal } }

    /// `write(2)` batches so far (tests: many lines, few writes).
    var batchesWritten: Int { locked { batches } }

    /// Queues one whole line; never blocks on the descriptor.
    func append(_ line: [UInt8], urgent lineIsUrgent: Bool) {
        let wake: Bool = locked {
            if stopping { return false }  // after close: the sink writes nothing more
            guard pending.count + line.count <= capacity else {
                dropped += 1
                droppedTotal += 1
                return dropped == 1  // the first drop ends the wait for more lines
            }
            let wasEmpty = pending.isEmpty
            if wasEmpty && pending.capacity == 0 { pending.reserveCapacity(16 << 10) }
            pending.append(contentsOf: line)
            let crossed = pending.count >= writeAt && pending.count - line.count < writeAt
            if lineIsUrgent { urgent = true }
            return wasEmpty || lineIsUrgent || crossed
        }
        if wake { pthread_cond_signal(work) }
    }

    /// Waits until every line queued before the call is written, or `timeout` passes. True when written.
    @discardableResult
    func flush(timeout: Duration = .seconds(1)) -> Bool {
        var deadline = Self.deadline(after: timeout)
        return locked {
            flushers += 1
            defer { flushers -= 1 }
            pthread_cond_signal(work)
            // Lines queued later may be written in the same batches: waiting for those too is harmless.
            let target = batches + (writing ? 1 : 0) + (pending.isEmpty && dropped == 0 ? 0 : 1)
            while batches < target && !stopped {
                if pthread_cond_timedwait(written, mutex, &deadline) == ETIMEDOUT { return batches >= target }
            }
            return batches >= target
        }
    }

    /// Writes what is pending, then ends the writer thread (tests: before the descriptor is closed).
    /// Lines logged later are dropped. Waits at most `timeout`; true when the thread has ended.
    @discardableResult
    func stop(timeout: Duration = .seconds(5)) -> Bool {
        var deadline = Self.deadline(after: timeout)
        return locked {
            stopping = true
            pthread_cond_signal(work)
            while !stopped {
                if pthread_cond_timedwait(written, mutex, &deadline) == ETIMEDOUT { return stopped }
            }
            return true
        }
    }

    private func start() {
        // No thread: nothing would ever write. Fail loudly at start-up rather than lose every line.
        precondition(DetachedThread.start(name: "ambit-log") { self.run() }, "cannot start the log writer thread")
    }

    private func run() {
        var batch: [UInt8] = []
        pthread_mutex_lock(mutex)
        while true {
            while pending.isEmpty && dropped == 0 && !stopping { pthread_cond_wait(work, mutex) }
            if pending.isEmpty && dropped == 0 {  // stopping, and everything is written
                if ownsDescriptor { close(descriptor) }
                stopped = true
                pthread_cond_broadcast(written)
                pthread_mutex_unlock(mutex)
                return
            }
            // Let more lines join this write, unless one is urgent, the batch is large, lines are being
            // dropped, or someone flushes or stops.
            var deadline = Self.deadline(after: flushInterval)
            while !urgent && flushers == 0 && !stopping && dropped == 0 && pending.count < writeAt {
                if pthread_cond_timedwait(work, mutex, &deadline) == ETIMEDOUT { break }
            }
            swap(&batch, &pending)
            let droppedBefore = dropped
            (dropped, urgent, writing) = (0, false, true)
            pthread_mutex_unlock(mutex)

            Self.writeWhole(batch, to: descriptor, waitBeforeDropping: -1, waitWithinLine: -1)
            // The lines were dropped after those of this batch (it had filled up) and before the next.
            if droppedBefore > 0 { writeDropWarning(droppedBefore) }
            // A burst's buffer is not kept at its largest: most of the time a batch is a few KiB.
            if batch.capacity > 256 << 10 { batch = [] } else { batch.removeAll(keepingCapacity: true) }

            pthread_mutex_lock(mutex)
            writing = false
            batches += 1
            pthread_cond_broadcast(written)
        }
    }

    private func writeDropWarning(_ count: Int) {
        var line = JSONLogHandler.head(
            level: .warning,
            label: label,
            message: "log lines dropped: the log's reader did not keep up"
        )
        line.append(contentsOf: #","count":"#.utf8)
        line.append(contentsOf: String(count).utf8)
        line.append(contentsOf: "}\n".utf8)
        Self.writeWhole(line, to: descriptor, waitBeforeDropping: -1, waitWithinLine: -1)
    }

    private static func deadline(after duration: Duration) -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let (seconds, attoseconds) = duration.components
        var nanoseconds = now.tv_nsec + Int(attoseconds / 1_000_000_000)
        var wholeSeconds = now.tv_sec + Int(seconds)
        if nanoseconds >= 1_000_000_000 {
            nanoseconds -= 1_000_000_000
            wholeSeconds += 1
        }
        return timespec(tv_sec: wholeSeconds, tv_nsec: nanoseconds)
    }

    /// Writes `bytes` with `write(2)`, retried until all of it is out. A descriptor someone made
    /// non-blocking is waited on as a blocking one would be: up to `waitBeforeDropping` ms before the
    /// first byte and `waitWithinLine` ms between later parts (-1: without limit), after which the rest
    /// is dropped. An error other than EINTR or EAGAIN drops the rest: there is nothing to report it to.
    static func writeWhole(_ bytes: [UInt8], to fd: Int32, waitBeforeDropping: Int32, waitWithinLine: Int32) {
        bytes.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(fd, base + offset, bytes.count - offset)
                if written >= 0 {
                    offset += written
                    continue
                }
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let polled = poll(&ready, 1, offset == 0 ? waitBeforeDropping : waitWithinLine)
                    if polled > 0 || (polled < 0 && errno == EINTR) { continue }
                    return
                default:
                    return
                }
            }
        }
    }
}
