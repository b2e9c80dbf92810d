import AmbitModel
import Crypto
public import FoundationEssentials
import Synchronization

/// Remembers, for a while, the callers another authenticator confirmed: ambit-ca's TokenReview costs a request
/// to the API server, and a node agent sends the same token with every certificate request, one per identity
/// on its node (a restarted agent asks for all of them at once).
///
/// - A confirmed token is trusted again for `lifetime`, never past its own `exp` claim; tokens are kept only as
///   their SHA-256.
/// - Concurrent requests with the same token share one review.
/// - A refusal (the token is bad, or the API server cannot be reached) is never remembered: the next request
///   asks again.
/// - At most `capacity` tokens are remembered; when full, the expired ones go, and if that is not enough, the
///   half that expires first (never a review in progress).
///
/// The price: a token revoked on the API server (its pod deleted) is still accepted for up to `lifetime`.
public final class CachingCallerAuthenticator: CallerAuthenticator {
    public let inner: any CallerAuthenticator
    public let lifetime: Duration
    public let capacity: Int
    private let now: @Sendable () -> Date
    private let onReview: @Sendable (_ cached: Bool) -> Void

    private typealias Review = Task<Result<CACaller, CARefusal>, Never>
    private enum Entry {
        case reviewing(Review)
        case confirmed(CACaller, until: Date)
    }
    private let entries = Mutex<[SHA256Digest: Entry]>([:])

    /// `onReview`: called per request, `cached` when it started no review (answered from the cache, or waiting
    /// for a review another request started), for the metric.
    public init(
        _ inner: any CallerAuthenticator,
        lifetime: Duration = .seconds(60),
        capacity: Int = 4096,
        now: @escaping @Sendable () -> Date = { Date() },
        onReview: @escaping @Sendable (_ cached: Bool) -> Void = { _ in }
    ) {
        self.inner = inner
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
        self.onReview = onReview
    }

    /// Tokens remembered now, confirmed or being reviewed.
    public var count: Int { entries.withLock { $0.count } }

    public func authenticate(token: String) async throws(CARefusal) -> CACaller {
        let key = SHA256.hash(data: Array(token.utf8))
        let time = now()
        enum Lookup {
            case confirmed(CACaller)
            case review(Review, started: Bool)
        }
        let lookup: Lookup = entries.withLock { entries in
            switch entries[key] {
            case .confirmed(let caller, let until) where time < until:
                return .confirmed(caller)
            case .reviewing(let review):
                return .review(review, started: false)
            case .confirmed, nil:
                if entries.count >= capacity { Self.makeRoom(in: &entries, at: time, capacity: capacity) }
                let review = Review { [inner] () async -> Result<CACaller, CARefusal> in
                    do throws(CARefusal) {
                        return .success(try await inner.authenticate(token: token))
                    } catch {
                        return .failure(error)
                    }
                }
                entries[key] = .reviewing(review)
                return .review(review, started: true)
            }
        }
        let review: Review
        switch lookup {
        case .confirmed(let caller):
            onReview(true)
            return caller
        case .review(let shared, let started):
            onReview(!started)
            review = shared
        }
        let result = await review.value
        let confirmedAt = now()
        let until = min(
            confirmedAt.addingTimeInterval(
                Double(lifetime.components.seconds) + Double(lifetime.components.attoseconds) / 1e18
            ),
            Self.expiry(of: token) ?? .distantFuture
        )
        entries.withLock { entries in
            guard case .reviewing(let current) = entries[key], current == review else { return }
            switch result {
            case .success(let caller) where confirmedAt < until: entries[key] = .confirmed(caller, until: until)
            default: entries[key] = nil
            }
        }
        return try result.get()
    }

    /// Removes the expired entries, and if that is not enough, the half of the confirmed ones that expire
    /// first. Reviews in progress stay: their requests are waiting for them.
    private static func makeRoom(in entries: inout [SHA256Digest: Entry], at time: Date, capacity: Int) {
        entries = entries.filter { _, entry in
            if case .confirmed(_, let until) = entry { return time < until }
            return true
        }
        guard entries.count >= capacity else { return }
        let confirmed = entries.compactMap { key, entry -> (SHA256Digest, Date)? in
            if case .confirmed(_, let until) = entry { return (key, until) }
            return nil
        }
        for (key, _) in confirmed.sorted(by: { $0.1 < $1.1 }).prefix(max(1, confirmed.count / 2)) {
            entries[key] = nil
        }
    }

    /// The `exp` claim of a JWT, read without verifying it (the API server just did), or nil.
    static func expiry(of token: String) -> Date? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let claims = ServiceAccountToken.data(base64URL: parts[1]),
            let exp = (try? JSONValue.parse(claims, lastDuplicateWins: true))?["exp"]?.doubleValue
        else { return nil }
        return Date(timeIntervalSince1970: exp)
    }
}
