import AmbitIdentity
import AmbitModel
import AmbitTelemetry
import AmbitTestSupport
import Foundation
import Logging
import Prometheus
import Synchronization
import Testing
import X509

/// A signer backed by a real CA whose failures and clock the test controls.
final class ScriptedSigner: CertificateSigner {
    let authority: CertificateAuthority
    let clock: Mutex<Date>
    private let state = Mutex<(failuresLeft: Int, requests: Int, keys: [Certificate.PublicKey])>((0, 0, []))

    init(authority: CertificateAuthority, now: Date) {
        self.authority = authority
        self.clock = Mutex(now)
    }

    var now: Date {
        get { clock.withLock { $0 } }
        set { clock.withLock { $0 = newValue } }
    }

    func failNext(_ count: Int) { state.withLock { $0.failuresLeft = count } }
    var requests: Int { state.withLock { $0.requests } }
    var keys: [Certificate.PublicKey] { state.withLock { $0.keys } }

    func sign(_ request: CertificateSigningRequest, lifetime: Duration) async throws -> [Certificate] {
        let fail = state.withLock { state -> Bool in
            state.requests += 1
            state.keys.append(request.publicKey)
            guard state.failuresLeft > 0 else { return false }
            state.failuresLeft -= 1
            return true
        }
        if fail { throw IdentityError(.signingFailed, "CA unavailable") }
        return try authority.sign(request, lifetime: lifetime, now: now)
    }

    var trustAnchors: [Certificate] { [authority.root] }
}

@Suite struct CertificateManagerTests {
    let start = TestPKI.referenceTime
    let identity = SpiffeID.test("demo", "client")

    func makeManager(
        _ signer: ScriptedSigner,
        metrics: MeshMetrics? = nil,
        onIssued: @escaping @Sendable (WorkloadCertificate) -> Void = { _ in }
    ) -> CertificateManager {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return CertificateManager(
            signer: signer,
            lifetime: .seconds(3600),
            backoff: RetryBackoff(initial: .seconds(1), maximum: .seconds(8)),
            metrics: metrics.map { CertificateMetrics(registry: $0.registry) },
            logger: logger,
            now: { signer.now },
            onIssued: onIssued
        )
    }

    @Test func backoffDoublesUpToTheMaximum() {
        let backoff = RetryBackoff(initial: .seconds(1), maximum: .seconds(8))
        #expect(
            (0...6).map { backoff.delay(afterFailures: $0) } == [
                .zero, .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8),
            ]
        )
        #expect(RetryBackoff().delay(afterFailures: 1000) == .seconds(300))
    }

    @Test func issuesFromACSRAndRenewsAtHalfLife() async throws {
        let signer = ScriptedSigner(authority: try TestPKI().authority, now: start)
        let issued = Mutex<[WorkloadCertificate]>([])
        let manager = makeManager(signer, onIssued: { certificate in issued.withLock { $0.append(certificate) } })
        let first = try await manager.certificate(for: identity)
        #expect(first.identity == identity)
        #expect(first.leaf.publicKey == first.privateKey.publicKey)
        #expect(signer.requests == 1)
        // Served from memory while valid.
        _ = try await manager.certificate(for: identity)
        #expect(signer.requests == 1)

        // Nothing is due before half-life...
        signer.now = first.renewalTime - 1
        await manager.renewDue()
        #expect(signer.requests == 1)
        // ...and at half-life a new certificate with a fresh key replaces it.
        signer.now = first.renewalTime
        let next = await manager.renewDue()
        #expect(signer.requests == 2)
        let second = try #require(await manager.currentCertificate(for: identity))
        #expect(second.leaf.serialNumber != first.leaf.serialNumber)
        #expect(second.privateKey.publicKey != first.privateKey.publicKey)
        #expect(next == second.renewalTime)
        // Whoever caches certificates (the node agent's handshakes) hears of both, the renewal at once.
        #expect(issued.withLock { $0.map(\.leaf) } == [first.leaf, second.leaf])
    }

    @Test func retriesWithBackoffAndServesTheOldCertificateUntilExpiry() async throws {
        let signer = ScriptedSigner(authority: try TestPKI().authority, now: start)
        let metrics = MeshMetrics()
        let manager = makeManager(signer, metrics: metrics)
        let original = try await manager.certificate(for: identity)

        signer.failNext(100)
        signer.now = original.renewalTime
        await manager.renewDue()
        var status = try #require(await manager.status().first)
        #expect(status.consecutiveFailures == 1)
        #expect(status.nextAttempt == original.renewalTime + 1)
        #expect(status.lastError == "CA unavailable")
        #expect(await manager.currentCertificate(for: identity)?.leaf == original.leaf)

        // Retries follow the backoff: +1 s, then +2 s, +4 s, +8 s, +8 s.
        var expectedDelays: [TimeInterval] = []
        for _ in 0..<4 {
            signer.now = status.nextAttempt
            await manager.renewDue()
            let updated = try #require(await manager.status().first)
            expectedDelays.append(updated.nextAttempt.timeIntervalSince(signer.now))
            status = updated
        }
        #expect(expectedDelays == [2, 4, 8, 8])
        #expect(await manager.currentCertificate(for: identity)?.leaf == original.leaf)

        // Past expiry nothing is served: connections fail closed rather than use an expired certificate.
        signer.now = original.expiry
        #expect(await manager.currentCertificate(for: identity) == nil)
        await #expect(throws: IdentityError.self) { try await manager.certificate(for: identity) }

        // The CA comes back: the next attempt succeeds and the failure count resets.
        signer.failNext(0)
        let recovered = try await manager.certificate(for: identity)
        #expect(recovered.isValid(at: signer.now))
        #expect(await manager.status().first?.consecutiveFailures == 0)

        let text = metrics.render()
        #expect(
            text.contains(
                "ambit_certificate_renewals_total{identity=\"spiffe://cluster.local/ns/demo/sa/client\",result=\"failure\"} 6"
            )
        )
        #expect(
            text.contains(
                "ambit_certificate_renewals_total{identity=\"spiffe://cluster.local/ns/demo/sa/client\",result=\"success\"} 2"
            )
        )
        #expect(
            text.contains(
                "ambit_certificate_expiry_timestamp_seconds{identity=\"spiffe://cluster.local/ns/demo/sa/client\"} \(recovered.expiry.timeIntervalSince1970)"
            )
        )
    }

    @Test func concurrentCallersShareOneRequest() async throws {
        let signer = ScriptedSigner(authority: try TestPKI().authority, now: start)
        let manager = makeManager(signer)
        let identity = self.identity
        let leaves = try await withThrowingTaskGroup(of: Certificate.self) { group in
            for _ in 0..<20 {
                group.addTask { try await manager.certificate(for: identity).leaf }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(leaves.map(\.serialNumber)).count == 1)
        #expect(signer.requests == 1)
    }

    @Test func privateKeysNeverLeaveTheManager() async throws {
        let signer = ScriptedSigner(authority: try TestPKI().authority, now: start)
        let manager = makeManager(signer)
        let certificate = try await manager.certificate(for: identity)
        // The signer only ever saw public keys, and the one it certified is ours.
        #expect(signer.keys == [certificate.privateKey.publicKey])
    }

    @Test func forgetStopsManagingAnIdentity() async throws {
        let signer = ScriptedSigner(authority: try TestPKI().authority, now: start)
        let manager = makeManager(signer)
        _ = try await manager.certificate(for: identity)
        await manager.forget(identity)
        #expect(await manager.status().isEmpty)
        #expect(await manager.renewDue() == nil)
    }
}
