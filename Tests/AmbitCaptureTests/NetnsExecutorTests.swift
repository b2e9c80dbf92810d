import AmbitCapture
import AmbitModel
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.enabled(if: isRoot, "needs root: setns and named network namespaces"))
struct NetnsExecutorTests {
    @Test func jobsRunInTheTargetNamespaceAndThreadsReturnHome() async throws {
        let executor = NetnsExecutor(threadCount: 2)
        defer { executor.shutdown() }
        let pod = try TestNamespace("exec")
        let home = try NetworkNamespace.current()

        let inside = try await executor.run(in: pod.namespace) { try NetworkNamespace.current().inode }
        #expect(inside == pod.namespace.inode)
        #expect(inside != home.inode)
        // Every worker is back home: a job in the host namespace sees the host namespace.
        for _ in 0..<8 {
            #expect(try await executor.run(in: home) { try NetworkNamespace.current().inode } == home.inode)
        }
    }

    @Test func runBlockingSwitchesTheCallingThreadAndBack() throws {
        let executor = NetnsExecutor(threadCount: 1)
        defer { executor.shutdown() }
        let pod = try TestNamespace("block")
        let before = try NetworkNamespace.current().inode
        let inside = try executor.runBlocking(in: pod.namespace) { try NetworkNamespace.current().inode }
        #expect(inside == pod.namespace.inode)
        #expect(try NetworkNamespace.current().inode == before)
    }

    @Test func failingToEnterIsReportedAndTheWorkerKeepsServing() async throws {
        let executor = NetnsExecutor(threadCount: 1)
        defer { executor.shutdown() }
        // A descriptor that is not a namespace: setns fails with EINVAL.
        let notNamespace = NetworkNamespace(adopting: open("/dev/null", O_RDONLY | O_CLOEXEC), path: "/dev/null")
        let error = await #expect(throws: CaptureError.self) {
            try await executor.run(in: notNamespace) { 1 }
        }
        #expect(error?.errno == EINVAL)
        #expect("\(error.map { "\($0)" } ?? "")".contains("setns failed for netns /dev/null"))

        let home = try NetworkNamespace.current()
        #expect(try await executor.run(in: home) { 42 } == 42)
    }

    @Test func errorsOfTheBodyReachTheCaller() async throws {
        let executor = NetnsExecutor(threadCount: 1)
        defer { executor.shutdown() }
        let home = try NetworkNamespace.current()
        await #expect(throws: CaptureError.invalidArgument("boom")) {
            try await executor.run(in: home) { throw CaptureError.invalidArgument("boom") }
        }
    }

    /// The inbound dial's form: the calling thread (an event loop) makes the socket inside the pod and is
    /// back home before it connects; a connect to the pod's own address is established within `connect`,
    /// one nobody answers is left in progress for ``CaptureSockets/finishConnect(_:_:deadline:timeout:)``.
    @Test func aSocketMadeOnTheCallingThreadBelongsToThePod() throws {
        let executor = NetnsExecutor(threadCount: 1)
        defer { executor.shutdown() }
        let pod = try TestNamespace("dial")
        try pod.ip("addr", "add", "10.78.0.1/24", "dev", "lo")
        // 10.78.1.0/24 leads into a veth whose peer is down: a SYN there is never answered.
        try pod.ip("link", "add", "nowhere", "type", "veth", "peer", "name", "nowhere-peer")
        try pod.ip("link", "set", "nowhere", "up")
        try pod.ip("route", "add", "10.78.1.0/24", "dev", "nowhere")
        let home = try NetworkNamespace.current().inode
        let listener = try executor.runBlocking(in: pod.namespace) {
            try CaptureSockets.listener(
                address: IPEndpoint(.v4(0x0A4E_0001), 0),
                mark: nil,
                reusePort: false,
                transparent: false
            )
        }
        defer { close(listener) }
        let application = try CaptureSockets.localAddress(fd: listener)

        let local = try executor.runOnCallingThread(in: pod.namespace) { try CaptureSockets.socket(for: .v4(0)) }
        defer { close(local) }
        #expect(try NetworkNamespace.current().inode == home)
        let podCookie = try executor.runBlocking(in: pod.namespace) {
            let probe = try CaptureSockets.socket(for: .v4(0))
            defer { close(probe) }
            return try CaptureSockets.netnsCookie(fd: probe)
        }
        #expect(try CaptureSockets.netnsCookie(fd: local) == podCookie)
        #expect(try CaptureSockets.startConnect(local, to: application, from: nil, mark: 0x539, transparent: false))
        #expect(try CaptureSockets.peerAddress(fd: local) == application)
        #expect(try CaptureSockets.mark(fd: local) == 0x539)

        let unanswered = try executor.runOnCallingThread(in: pod.namespace) { try CaptureSockets.socket(for: .v4(0)) }
        defer { close(unanswered) }
        let nowhere = IPEndpoint(.v4(0x0A4E_0101), 80)
        #expect(try !CaptureSockets.startConnect(unanswered, to: nowhere, from: nil, mark: nil, transparent: false))
        let timeout = Duration.milliseconds(200)
        #expect(throws: CaptureError.connectTimeout(endpoint: nowhere, timeout: timeout)) {
            try CaptureSockets.finishConnect(
                unanswered,
                nowhere,
                deadline: ContinuousClock.now.advanced(by: timeout),
                timeout: timeout
            )
        }
    }

    /// The dialers' form: a worker completes an event loop's promise, with no task in between.
    @Test func jobsCompleteEventLoopPromises() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let executor = NetnsExecutor(threadCount: 1)
        let pod = try TestNamespace("promise")
        let loop = group.next()
        let inside = loop.makePromise(of: UInt64.self)
        executor.run(in: pod.namespace, completing: inside) { try NetworkNamespace.current().inode }
        #expect(try await inside.futureResult.get() == pod.namespace.inode)
        let failing = loop.makePromise(of: Int.self)
        executor.run(in: pod.namespace, completing: failing) { throw CaptureError.invalidArgument("boom") }
        await #expect(throws: CaptureError.invalidArgument("boom")) { try await failing.futureResult.get() }
        executor.shutdown()
        let late = loop.makePromise(of: Int.self)
        executor.run(in: pod.namespace, completing: late) { 1 }
        await #expect(throws: CaptureError.executorShutDown) { try await late.futureResult.get() }
        try await group.shutdownGracefully()
    }

    @Test func jobsAfterShutdownFail() async throws {
        let executor = NetnsExecutor(threadCount: 1)
        executor.shutdown()
        let home = try NetworkNamespace.current()
        await #expect(throws: CaptureError.executorShutDown) {
            try await executor.run(in: home) { 1 }
        }
    }
}

@Suite struct NetworkNamespaceTests {
    @Test func sameNamespaceHasSameInode() throws {
        let first = try NetworkNamespace.current()
        let second = try NetworkNamespace.open(path: "/proc/self/ns/net")
        #expect(first.inode != 0)
        #expect(first.isSame(as: second))
    }

    @Test func missingPathIsAClearError() {
        let error = #expect(throws: CaptureError.self) { try NetworkNamespace.open(path: "/run/netns/ambit-absent") }
        #expect(error?.errno == ENOENT)
        #expect(
            error?.description
                == "open network namespace failed for /run/netns/ambit-absent: No such file or directory (errno 2)"
        )
    }
}
