import AmbitCapture
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
