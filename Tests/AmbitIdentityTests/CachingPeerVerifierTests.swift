import AmbitIdentity
import AmbitModel
import AmbitTestSupport
import Foundation
import SwiftASN1
import Testing
import X509

/// A chain accepted once is accepted again from memory, but only the same bytes, only inside its
/// validity, and never past the caller's expected identities; rejections are verified every time.
@Suite struct CachingPeerVerifierTests {
    let now = TestPKI.referenceTime

    /// The DER bytes of the chain as a peer presents it (the root left out).
    static func presented(_ certificate: WorkloadCertificate) throws -> [[UInt8]] {
        try certificate.chain.dropLast().map { certificate in
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
    }

    @Test func theSameChainIsVerifiedOnceThenAcceptedFromMemory() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        let chain = try Self.presented(try pki.issue(.test("demo", "client"), now: now))
        #expect(await verifier.verify(chain: chain, at: now + 60) == .accepted(.test("demo", "client"), cached: false))
        #expect(await verifier.verify(chain: chain, at: now + 61) == .accepted(.test("demo", "client"), cached: true))
        #expect(await verifier.verify(chain: chain, at: now + 62) == .accepted(.test("demo", "client"), cached: true))
        #expect(verifier.verifiedCount == 1)
        #expect(verifier.cachedCount == 2)
        #expect(verifier.count == 1)
    }

    @Test func onlyARememberedChainIsAnsweredWithoutWaiting() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        let chain = try Self.presented(try pki.issue(.test("demo", "server"), now: now))
        #expect(verifier.verifyFromMemory(chain: chain, at: now + 60) == nil)
        #expect(verifier.verifyFromMemory(chain: [], at: now + 60) == nil)
        #expect(verifier.verifiedCount == 0)
        _ = await verifier.verify(chain: chain, at: now + 60)
        #expect(
            verifier.verifyFromMemory(chain: chain, at: now + 61) == .accepted(.test("demo", "server"), cached: true)
        )
        #expect(
            verifier.verifyFromMemory(chain: chain, expected: [.test("demo", "other")], at: now + 61)
                == .rejected(
                    "peer identity spiffe://cluster.local/ns/demo/sa/server is not one of the expected identities (spiffe://cluster.local/ns/demo/sa/other)"
                )
        )
        #expect(verifier.verifyFromMemory(chain: chain, at: now + 25 * 3600) == nil)
        #expect(verifier.verifiedCount == 1)
        #expect(verifier.cachedCount == 2)
    }

    @Test func aRememberedChainIsStillCheckedAgainstTheExpectedIdentities() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        let chain = try Self.presented(try pki.issue(.test("demo", "server"), now: now))
        #expect(
            await verifier.verify(chain: chain, expected: [.test("demo", "server")], at: now + 60)
                == .accepted(.test("demo", "server"), cached: false)
        )
        #expect(
            await verifier.verify(chain: chain, expected: [.test("demo", "other")], at: now + 61)
                == .rejected(
                    "peer identity spiffe://cluster.local/ns/demo/sa/server is not one of the expected identities (spiffe://cluster.local/ns/demo/sa/other)"
                )
        )
        #expect(verifier.verifiedCount == 1)
        #expect(verifier.cachedCount == 1)
    }

    @Test func aRememberedChainIsTrustedFromItsVerificationToTheEndOfItsValidity() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        // The leaf is valid from 120 s before `now` to a day after it.
        let chain = try Self.presented(try pki.issue(.test("demo", "client"), now: now))
        let client = SpiffeID.test("demo", "client")
        #expect(await verifier.verify(chain: chain, at: now + 60) == .accepted(client, cached: false))
        #expect(await verifier.verify(chain: chain, at: now + 24 * 3600) == .accepted(client, cached: true))
        // Earlier than the verification that made the entry: verified again.
        #expect(await verifier.verify(chain: chain, at: now + 59) == .accepted(client, cached: false))
        guard case .rejected(let expired) = await verifier.verify(chain: chain, at: now + 24 * 3600 + 1) else {
            Issue.record("an expired chain was accepted")
            return
        }
        #expect(expired.contains("expired"))
        #expect(verifier.count == 0)
        guard case .rejected = await verifier.verify(chain: chain, at: now - 3600) else {
            Issue.record("a chain not yet valid was accepted")
            return
        }
        #expect(verifier.verifiedCount == 4)
        #expect(verifier.cachedCount == 1)
    }

    @Test func onlyAChainSentAsItValidatedIsRemembered() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        let client = SpiffeID.test("demo", "client")
        let chain = try Self.presented(try pki.issue(client, now: now))
        let other = try Self.presented(try pki.issue(.test("demo", "other"), now: now))
        var serializer = DER.Serializer()
        try serializer.serialize(pki.authority.root)
        let root = serializer.serializedBytes
        // Padded with a certificate the path does not use: accepted, never remembered.
        for _ in 0..<2 {
            #expect(await verifier.verify(chain: chain + other, at: now + 60) == .accepted(client, cached: false))
        }
        #expect(verifier.count == 0)
        // The root sent along is part of the path.
        #expect(await verifier.verify(chain: chain + [root], at: now + 60) == .accepted(client, cached: false))
        #expect(await verifier.verify(chain: chain + [root], at: now + 61) == .accepted(client, cached: true))
        #expect(verifier.count == 1)
    }

    @Test func rejectionsAreVerifiedEveryTime() async throws {
        let pki = try TestPKI()
        let other = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local")
        let stranger = try Self.presented(try other.issue(.test("demo", "client"), now: now))
        for _ in 0..<2 {
            #expect(
                await verifier.verify(chain: stranger, at: now + 60)
                    == .rejected("peer certificate does not chain to a trusted mesh root")
            )
        }
        #expect(verifier.verifiedCount == 2)
        #expect(verifier.count == 0)
        guard case .rejected(let garbage) = await verifier.verify(chain: [[0x30, 0x03, 0x02, 0x01]], at: now) else {
            Issue.record("garbage was accepted")
            return
        }
        #expect(garbage.hasPrefix("peer certificate cannot be parsed: "))
        #expect(await verifier.verify(chain: [], at: now) == .rejected("peer presented no certificate"))
    }

    @Test func onlyTheSameBytesAreRememberedAndTheMemoryIsBounded() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local", capacity: 2)
        let client = SpiffeID.test("demo", "client")
        // Three certificates for the same identity: three chains, each verified in full.
        let chains = try (0..<3).map { _ in try Self.presented(try pki.issue(client, now: now)) }
        for chain in chains {
            #expect(await verifier.verify(chain: chain, at: now + 60) == .accepted(client, cached: false))
        }
        #expect(verifier.verifiedCount == 3)
        #expect(verifier.count == 1)  // full with nothing expired: emptied, then the third
        #expect(await verifier.verify(chain: chains[2], at: now + 61) == .accepted(client, cached: true))
        // One byte changed in the signature: not the remembered chain, and no longer valid.
        var tampered = chains[2]
        tampered[0][tampered[0].count - 1] ^= 0x01
        guard case .rejected = await verifier.verify(chain: tampered, at: now + 60) else {
            Issue.record("a tampered chain was accepted")
            return
        }
        #expect(verifier.verifiedCount == 4)
    }

    @Test func aFullMemoryDropsExpiredChainsFirst() async throws {
        let pki = try TestPKI()
        let verifier = CachingPeerVerifier(roots: [pki.authority.root], trustDomain: "cluster.local", capacity: 2)
        let client = SpiffeID.test("demo", "client")
        let brief = try Self.presented(try pki.issue(client, lifetime: .seconds(60), now: now))
        let lasting = try Self.presented(try pki.issue(client, now: now))
        let third = try Self.presented(try pki.issue(client, now: now))
        #expect(await verifier.verify(chain: brief, at: now + 10) == .accepted(client, cached: false))
        #expect(await verifier.verify(chain: lasting, at: now + 10) == .accepted(client, cached: false))
        #expect(verifier.count == 2)
        // `brief` expired at now + 60: it makes room, `lasting` stays.
        #expect(await verifier.verify(chain: third, at: now + 120) == .accepted(client, cached: false))
        #expect(verifier.count == 2)
        #expect(await verifier.verify(chain: lasting, at: now + 121) == .accepted(client, cached: true))
    }
}
