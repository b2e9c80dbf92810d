import AmbitTestSupport
import Foundation
import NIOCore
import Testing

@testable import AmbitConfig

/// The API client against the fake server, which (like any HTTP/1.1 server may) answers as soon as it has
/// read a request and then closes the connection.
@Suite(.timeLimit(.minutes(2))) struct KubernetesAPIClientTests {
    /// A client that wrote its request in parts could find the channel already closed by the server's answer
    /// when its task was slow to come back for the last part, and report `I/O on closed channel` for a request
    /// that had been answered. A busy cooperative pool (the full suite, a loaded agent) is what makes the task
    /// slow, so this test keeps the pool busy with four tasks that spin between yields while it sends GETs (a
    /// list page) and POSTs with a body (a TokenReview).
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
        let review = #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"t"}}"#
        let failures = await withTaskGroup(of: [String].self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var failures: [String] = []
                    for _ in 0..<60 {
                        do {
                            let body: ByteBuffer
                            if worker.isMultiple(of: 2) {
                                body = try await client.get(
                                    KubernetesWorld.pods,
                                    query: [],
                                    limit: 1 << 20,
                                    idleTimeout: .seconds(60)
                                )
                            } else {
                                body = try await client.postJSON("/apis/authentication.k8s.io/v1/tokenreviews", review)
                            }
                            let text = String(buffer: body)
                            if !text.contains("\"PodList\"") && !text.contains("\"TokenReview\"") {
                                failures.append("unexpected answer: \(text.prefix(200))")
                            }
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
        await world.close()
        #expect(failures.isEmpty, "\(failures.count) of 480 requests failed: \(Set(failures))")
    }

    /// A server that answers nothing within the idle timeout: the error says so, not what the close made of it.
    @Test func aSilentServerIsReportedAsSilent() async throws {
        let world = try await KubernetesWorld()
        let client = try KubernetesAPIClient(config: world.source.cluster, group: world.group, userAgent: "test")
        // A watch of a quiet collection: the answer's head, then nothing.
        let error = await #expect(throws: KubernetesAPIError.self) {
            try await client.streamLines(
                KubernetesWorld.pods,
                query: [("watch", "1")],
                idleTimeout: .milliseconds(300),
                maximumLine: 1 << 20
            ) { _ in }
        }
        await world.close()
        #expect(error?.description.contains("sent nothing for 300 ms") == true, "\(String(describing: error))")
    }
}
