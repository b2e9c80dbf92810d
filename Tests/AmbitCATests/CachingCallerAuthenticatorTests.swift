import AmbitCA
import Foundation
import Synchronization
import Testing

/// ambit-ca remembers the tokens TokenReview confirmed: a node agent sends the same token with each of its
/// pods' certificate requests, and the API server is asked once, not once per request.
@Suite(.timeLimit(.minutes(1))) struct CachingCallerAuthenticatorTests {
    static let caller = CACaller(namespace: "ambit-system", serviceAccount: "ambit-node", nodeName: "node1")

    /// The authenticator behind the cache: counts its reviews, refuses the tokens in `refused`, and holds each
    /// review until `release()` when `gated`.
    final class Reviews: CallerAuthenticator {
        private struct State {
            var count = 0
            var refused: Set<String> = []
            var released = false
            var waiting: [CheckedContinuation<Void, Never>] = []
        }
        private let state = Mutex(State())
        let gated: Bool

        init(gated: Bool = false) { self.gated = gated }

        var count: Int { state.withLock { $0.count } }
        func refuse(_ tokens: Set<String>) { state.withLock { $0.refused = tokens } }
        func release() {
            let waiting = state.withLock { state in
                state.released = true
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume() }
        }

        func authenticate(token: String) async throws(CARefusal) -> CACaller {
            let refused = state.withLock { state in
                state.count += 1
                return state.refused.contains(token)
            }
            if gated {
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state in
                        if !state.released { state.waiting.append(continuation) }
                        return state.released
                    }
                    if now { continuation.resume() }
                }
            }
            if refused { throw CARefusal(.unauthenticated, "invalid bearer token") }
            return CachingCallerAuthenticatorTests.caller
        }
    }

    /// A clock the test moves.
    final class Clock: Sendable {
        private let time = Mutex(Date(timeIntervalSince1970: 2_000_000_000))
        var now: Date { time.withLock { $0 } }
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    /// A JWT whose claims say `exp` (the signature is not looked at: the API server verified the token).
    static func jwt(exp: Date) -> String {
        func part(_ json: String) -> String {
            Data(json.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        return part(#"{"alg":"RS256"}"#) + "." + part(#"{"exp":\#(Int(exp.timeIntervalSince1970))}"#) + ".c2ln"
    }

    @Test func aConfirmedTokenIsAskedAboutOncePerLifetime() async throws {
        let reviews = Reviews()
        let clock = Clock()
        let cached = Mutex(0)
        let authenticator = CachingCallerAuthenticator(
            reviews,
            lifetime: .seconds(60),
            now: { clock.now },
            onReview: { if $0 { cached.withLock { $0 += 1 } } }
        )
        for _ in 0..<5 { #expect(try await authenticator.authenticate(token: "node1-token") == Self.caller) }
        #expect(reviews.count == 1)
        #expect(cached.withLock { $0 } == 4)
        clock.advance(59)
        _ = try await authenticator.authenticate(token: "node1-token")
        #expect(reviews.count == 1)
        clock.advance(2)
        _ = try await authenticator.authenticate(token: "node1-token")
        #expect(reviews.count == 2, "asked again once the lifetime passed")
        _ = try await authenticator.authenticate(token: "another-token")
        #expect(reviews.count == 3, "another token is another review")
    }

    @Test func aTokenIsNeverTrustedPastItsExpiry() async throws {
        let reviews = Reviews()
        let clock = Clock()
        let authenticator = CachingCallerAuthenticator(reviews, lifetime: .seconds(60), now: { clock.now })
        let token = Self.jwt(exp: clock.now.addingTimeInterval(10))
        _ = try await authenticator.authenticate(token: token)
        clock.advance(9)
        _ = try await authenticator.authenticate(token: token)
        #expect(reviews.count == 1)
        clock.advance(2)
        _ = try await authenticator.authenticate(token: token)
        #expect(reviews.count == 2, "past its exp the token goes back to the API server")
    }

    @Test func refusalsAreNotRemembered() async throws {
        let reviews = Reviews()
        reviews.refuse(["node1-token"])
        let authenticator = CachingCallerAuthenticator(reviews)
        for _ in 0..<2 {
            let error = await #expect(throws: CARefusal.self) {
                try await authenticator.authenticate(token: "node1-token")
            }
            #expect(error?.code == .unauthenticated)
        }
        #expect(reviews.count == 2)
        reviews.refuse([])
        #expect(try await authenticator.authenticate(token: "node1-token") == Self.caller)
        #expect(reviews.count == 3)
        #expect(authenticator.count == 1)
    }

    /// A restarted node agent asks for all its pods' certificates at once: one review answers them all.
    @Test func concurrentRequestsShareOneReview() async throws {
        let reviews = Reviews(gated: true)
        let asked = Mutex(0)
        let authenticator = CachingCallerAuthenticator(reviews, onReview: { _ in asked.withLock { $0 += 1 } })
        try await withThrowingTaskGroup(of: CACaller.self) { group in
            for _ in 0..<20 { group.addTask { try await authenticator.authenticate(token: "node1-token") } }
            while asked.withLock({ $0 }) < 20 { await Task.yield() }
            reviews.release()
            for try await caller in group { #expect(caller == Self.caller) }
        }
        #expect(reviews.count == 1)
    }

    @Test func atCapacityExpiredTokensGoFirst() async throws {
        let reviews = Reviews()
        let clock = Clock()
        let authenticator = CachingCallerAuthenticator(reviews, lifetime: .seconds(60), capacity: 2, now: { clock.now })
        _ = try await authenticator.authenticate(token: "a")
        clock.advance(61)
        _ = try await authenticator.authenticate(token: "b")
        clock.advance(1)
        _ = try await authenticator.authenticate(token: "c")  // full: a, expired, goes
        #expect(authenticator.count == 2)
        _ = try await authenticator.authenticate(token: "b")
        _ = try await authenticator.authenticate(token: "c")
        #expect(reviews.count == 3, "b and c are still remembered")
        _ = try await authenticator.authenticate(token: "d")  // full of live ones: b, which expires first, goes
        #expect(authenticator.count == 2)
        _ = try await authenticator.authenticate(token: "c")
        #expect(reviews.count == 4, "c is still remembered")
        _ = try await authenticator.authenticate(token: "b")
        #expect(reviews.count == 5, "b was not")
    }
}
