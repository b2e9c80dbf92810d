public import AmbitModel
import Crypto
public import FoundationEssentials
import Synchronization
public import X509

/// ``SpiffePeerVerifier`` with a memory of the chains it accepted, for one set of mesh roots and
/// one trust domain.
///
/// A node agent sees the same few peer chains over and over: every connection from a peer agent
/// presents the certificate of the same workload until it rotates. Verifying a chain (parsing
/// each certificate, checking signatures, validity and the SPIFFE policy) costs far more than the
/// rest of the handshake's certificate work, so a chain whose exact DER bytes were accepted before
/// is accepted again without it, as long as the time is inside the span in which every
/// certificate of its validated chain is valid. What stays per connection:
/// - the TLS handshake itself, which proves the peer holds the leaf's private key (BoringSSL
///   checks the handshake signature against the presented leaf whatever this answers);
/// - the check of the identities the caller expects (a client dialling a destination).
///
/// Only a chain presented exactly as it validated is remembered: every certificate sent is part of
/// the validated path (the leaf, the intermediates it used, at most the root). A chain padded with
/// other certificates is verified in full every time and adds nothing, so the number of entries
/// anyone can create is bounded by the valid certificates they hold. Rejections are never
/// remembered (each is verified again and its reason reported). An entry is trusted from the time
/// it was made (never for an earlier time) to the end of its validity. The memory is bounded
/// (`capacity` chains of 32-byte digests); when full, expired chains go first, then everything
/// (which costs only speed).
public final class CachingPeerVerifier: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Accepted; `cached` when the chain was accepted before and not verified again.
        case accepted(SpiffeID, cached: Bool)
        case rejected(String)
    }

    /// A presented chain, leaf first: the SHA-256 of its certificates' DER bytes, each preceded by
    /// its length (the bytes themselves are not kept).
    private struct Key: Hashable {
        let digest: SHA256Digest

        init(_ certificates: [[UInt8]]) {
            var hash = SHA256()
            for certificate in certificates {
                withUnsafeBytes(of: UInt64(certificate.count).bigEndian) { hash.update(bufferPointer: $0) }
                hash.update(data: certificate)
            }
            digest = hash.finalize()
        }
    }

    private struct Entry {
        let identity: SpiffeID
        let validFrom: Date
        let validUntil: Date
    }

    private struct Counts {
        var verified = 0
        var cached = 0
    }

    public let roots: [Certificate]
    public let trustDomain: String
    public let capacity: Int
    private let entries = Mutex<[Key: Entry]>([:])
    private let counts = Mutex(Counts())

    public init(roots: [Certificate], trustDomain: String, capacity: Int = 1024) {
        self.roots = roots
        self.trustDomain = trustDomain
        self.capacity = max(1, capacity)
    }

    /// Chains verified in full so far (accepted or not), and chains found in memory (then
    /// accepted, or rejected for not being one of the expected identities).
    public var verifiedCount: Int { counts.withLock { $0.verified } }
    public var cachedCount: Int { counts.withLock { $0.cached } }
    /// Chains remembered now.
    public var count: Int { entries.withLock { $0.count } }

    /// Checks `chain` (DER, leaf first, as presented) at `time`; with `expected`, the identity must
    /// be one of them. A chain that does not parse is rejected with the parser's reason.
    public func verify(chain: [[UInt8]], expected: Set<SpiffeID>? = nil, at time: Date = Date()) async -> Outcome {
        guard !chain.isEmpty else { return .rejected("peer presented no certificate") }
        let key = Key(chain)
        if let outcome = fromMemory(key, expected: expected, at: time) { return outcome }
        counts.withLock { $0.verified += 1 }
        let parsed: [Certificate]
        do {
            parsed = try chain.map { try Certificate(derEncoded: $0) }
        } catch {
            return .rejected("peer certificate cannot be parsed: \(error)")
        }
        let outcome = await SpiffePeerVerifier.verify(
            leaf: parsed[0],
            intermediates: Array(parsed.dropFirst()),
            roots: roots,
            trustDomain: trustDomain,
            expected: expected,
            at: time
        )
        switch outcome {
        case .verified(let identity, let validated):
            if parsed.count <= validated.count, zip(parsed, validated).allSatisfy({ $0 == $1 }) {
                remember(key, identity: identity, validated: validated, at: time)
            }
            return .accepted(identity, cached: false)
        case .rejected(let reason):
            return .rejected(reason)
        }
    }

    /// The outcome for a chain accepted before, without waiting (nil: it must be verified with
    /// ``verify(chain:expected:at:)``). What a TLS handshake tries first, so that a chain it has
    /// seen costs no task.
    public func verifyFromMemory(chain: [[UInt8]], expected: Set<SpiffeID>? = nil, at time: Date = Date())
        -> Outcome?
    {
        chain.isEmpty ? nil : fromMemory(Key(chain), expected: expected, at: time)
    }

    private func fromMemory(_ key: Key, expected: Set<SpiffeID>?, at time: Date) -> Outcome? {
        guard let identity = remembered(key, at: time) else { return nil }
        counts.withLock { $0.cached += 1 }
        if let reason = SpiffePeerPolicy.mismatch(identity, expected: expected) { return .rejected(reason) }
        return .accepted(identity, cached: true)
    }

    private func remembered(_ key: Key, at time: Date) -> SpiffeID? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.validFrom <= time, time <= entry.validUntil else {
                entries[key] = nil  // verified again, and rejected with the reason, by the caller
                return nil
            }
            return entry.identity
        }
    }

    private func remember(_ key: Key, identity: SpiffeID, validated: [Certificate], at time: Date) {
        guard let notBefore = validated.map(\.notValidBefore).max(),
            let validUntil = validated.map(\.notValidAfter).min()
        else { return }
        let validFrom = max(notBefore, time)
        entries.withLock { entries in
            if entries[key] == nil, entries.count >= capacity {
                entries = entries.filter { $0.value.validUntil >= time }
                if entries.count >= capacity { entries.removeAll() }
            }
            entries[key] = Entry(identity: identity, validFrom: validFrom, validUntil: validUntil)
        }
    }
}
