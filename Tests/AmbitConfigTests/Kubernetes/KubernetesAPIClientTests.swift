import AmbitTestSupport
import Foundation
import NIOCore
import Testing

@testable import AmbitConfig

/// The API client against the fake server, which (like any HTTP/1.1 server may) answers as soon as it has
/// read a request and then closes the connection.
@Suite struct KubernetesAPIClientTests {
    /// A client that wrote its request in parts could find the channel already closed by the server's answer
    /// when its task was slow to come back for the last part, and report `I/O on closed channel` for a request
    /// that had been answered. A busy cooperative pool (the full suite, a loaded agent) is what makes the task
    /// slow, so this test keeps the pool busy with tasks that spin between yields.
    @Test func anAnswerFollowedByCloseIsNeverReportedAsAFailure() async throws {
        let world = try await KubernetesWorld()
        let client = try KubernetesAPIClient(config: world.source.cluster, group: world.group, userAgent: "test")
        let spinners = (0..<4).map { _ in
            Task.detached {
                while !Task.isCancelled {
                    let until = ContinuousClock.now + .milliseconds(20)
                    while ContinuousClock.now < until {}
                    await Task.yield()
                }
            }
        }
        let failures = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var failures: [String] = []
                    for _ in 0..<60 {
                        do {
                            let body = try await client.get(
                                KubernetesWorld.pods,
                                query: [],
                                limit: 1 << 20,
                                idleTimeout: .seconds(60)
                            )
                            if !String(buffer: body).contains("\"PodList\"") { failures.append("not a PodList") }
                        } catch {
                            failures.append("\(error)")
                        }
                    }
                    return failures
                }
            }
            return await group.reduce([], +)
        }
        for spinner in spinners { spinner.cancel() }
        for spinner in spinners { await spinner.value }
        #expect(failures.isEmpty, "\(failures.count) of 480 requests failed: \(Set(failures))")
        await world.close()
    }
}
