import AmbitModel
import CAmbitShim
public import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Runs closures inside a given network namespace on a small pool of dedicated threads.
///
/// `setns(CLONE_NEWNET)` changes only the calling thread, and a socket belongs to the namespace it
/// was created in whatever thread later uses it. So namespace-scoped work (opening pod listeners,
/// dialing from the pod, applying nftables rules) is done here: each job switches its thread into the
/// target namespace, runs, and switches back to the thread's original namespace.
///
/// Invariant: a worker thread only picks up a job while it is in its original namespace. If switching
/// back ever fails, that thread retires (it never runs another job) and a replacement is started.
public final class NetnsExecutor: Sendable {
    private let queue: JobQueue
    /// The namespace of the thread that created the executor (the agent's own, where its event loops run).
    private let home: NetworkNamespace?

    /// Starts `threadCount` worker threads (at least one).
    public init(threadCount: Int = 2, name: String = "ambit-netns") {
        queue = JobQueue(name: name)
        home = try? NetworkNamespace.current()
        for _ in 0..<max(1, threadCount) { queue.startWorker() }
    }

    deinit {
        queue.close()
    }

    /// Runs `body` inside `ns` on a worker thread and returns its result.
    public func run<T: Sendable>(
        in ns: NetworkNamespace,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job(namespace: ns) { entered in
                switch entered {
                case .success:
                    continuation.resume(with: Result { try body() })
                case .failure(let error):
                    continuation.resume(throwing: error)
                }
            }
            if !queue.enqueue(job) { continuation.resume(throwing: CaptureError.executorShutDown) }
        }
    }

    /// Runs `body` inside `ns` on a worker thread and completes `promise` with its result: from the caller's event
    /// loop to a worker and straight back to the loop, with no task or continuation between them (a new
    /// connection's dial pays two thread hops instead of four).
    public func run<T: Sendable>(
        in ns: NetworkNamespace,
        completing promise: EventLoopPromise<T>,
        _ body: @escaping @Sendable () throws -> T
    ) {
        let job = Job(namespace: ns) { entered in
            switch entered {
            case .success: promise.completeWith(Result { try body() })
            case .failure(let error): promise.fail(error)
            }
        }
        if !queue.enqueue(job) { promise.fail(CaptureError.executorShutDown) }
    }

    /// Runs `body` inside `ns` on the calling thread: setns, body, setns back.
    ///
    /// Meant for short synchronous work from a thread the caller controls. If the thread cannot
    /// return to its namespace the process stops: continuing would run unrelated code (an event loop,
    /// a Swift concurrency thread) in the wrong namespace.
    public func runBlocking<T>(in ns: NetworkNamespace, _ body: () throws -> T) throws -> T {
        try Self.runOnCurrentThread(in: ns, body)
    }

    /// Runs `body` inside `ns` on the calling thread, which must be in the namespace the executor was
    /// created in (an event loop of the agent), and returns it there: for one socket a pod's namespace
    /// must own, two `setns` calls instead of a hop to a worker thread and back. The process stops if the
    /// thread cannot return, as in ``runBlocking(in:_:)``.
    public func runOnCallingThread<T>(in ns: NetworkNamespace, _ body: () throws -> T) throws -> T {
        try Self.run(in: ns, returningTo: home ?? NetworkNamespace.current(), body)
    }

    /// The same as `runBlocking`, without an executor.
    public static func runOnCurrentThread<T>(in ns: NetworkNamespace, _ body: () throws -> T) throws -> T {
        try run(in: ns, returningTo: NetworkNamespace.current(), body)
    }

    /// setns into `ns`, `body`, setns into `home`; the process stops if the thread cannot get back.
    private static func run<T>(
        in ns: NetworkNamespace,
        returningTo home: NetworkNamespace,
        _ body: () throws -> T
    ) throws -> T {
        try ns.enter()
        defer {
            do {
                try home.enter()
            } catch {
                fatalError("cannot return thread \(ambit_gettid()) to its network namespace: \(error)")
            }
        }
        return try body()
    }

    /// Stops the workers once the jobs already queued have run; later jobs fail with `executorShutDown`.
    public func shutdown() {
        queue.close()
    }

    /// Number of worker threads started so far, counting replacements of retired ones (for tests).
    var workersStarted: Int { queue.workersStarted }
}

/// One unit of work: enter `namespace`, then call `work` with whether entering succeeded.
struct Job: Sendable {
    let namespace: NetworkNamespace
    let work: @Sendable (Result<Void, CaptureError>) -> Void
}

/// A closable FIFO of jobs shared by the worker threads, guarded by a pthread mutex and condition.
///
/// `@unchecked Sendable`: every access to `jobs`, `closed` and `started` happens with `mutex` held,
/// and the mutex and condition are allocated once and freed only in deinit, when no thread can use them.
final class JobQueue: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [Job] = []
    private var head = 0
    private var closed = false
    private var started = 0
    let name: String

    init(name: String) {
        self.name = name
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    var workersStarted: Int { locked { started } }

    private func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Adds a job; `false` once closed.
    func enqueue(_ job: Job) -> Bool {
        locked {
            guard !closed else { return false }
            jobs.append(job)
            pthread_cond_signal(condition)
            return true
        }
    }

    func close() {
        locked {
            closed = true
            pthread_cond_broadcast(condition)
        }
    }

    /// The next job, or `nil` when closed and drained.
    func next() -> Job? {
        locked {
            while head == jobs.count && !closed { pthread_cond_wait(condition, mutex) }
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            head += 1
            if head > 64 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    /// Starts one detached worker thread. The thread holds a strong reference to the queue.
    func startWorker() {
        let isClosed = locked {
            if !closed { started += 1 }
            return closed
        }
        guard !isClosed else { return }
        if !DetachedThread.start({ self.workerLoop() }) {
            locked { started -= 1 }
        }
    }

    private func workerLoop() {
        ambit_set_thread_name(name)
        let home: NetworkNamespace
        do {
            home = try NetworkNamespace.current()
        } catch {
            // Without a handle on its own namespace the thread could never switch back: do not serve.
            return
        }
        while let job = next() {
            do {
                try job.namespace.enter()
            } catch {
                job.work(.failure(error))
                continue
            }
            job.work(.success(()))
            do {
                try home.enter()
            } catch {
                // This thread is stuck in a foreign namespace: retire it and start a clean one.
                startWorker()
                return
            }
        }
    }
}
