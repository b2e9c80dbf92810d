import AmbitIdentity
import AmbitTestSupport
import Dispatch
import Foundation
import SwiftASN1

// `HBONEBench tls-primitives` also measures the other certificate work of every new HBONE
// connection: the verification of the peer's chain in Swift (parse, signature, validity, SPIFFE
// policy), in full and when the same chain was accepted before (CachingPeerVerifier).

/// Microseconds per verification of one chain, over about `seconds`.
private func microseconds(seconds: Double, _ verify: () async -> Void) async -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    var count = 0
    var elapsed = 0.0
    repeat {
        for _ in 0..<16 { await verify() }
        count += 16
        elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    } while elapsed < seconds
    return elapsed * 1e6 / Double(count)
}

func peerVerification(seconds: Double) async throws {
    let now = Date()
    let pki = try TestPKI(now: now - 3600)
    let certificate = try pki.issue(.test("bench", "client"), now: now - 60)
    var serializer = DER.Serializer()
    try serializer.serialize(certificate.leaf)
    let chain = [serializer.serializedBytes]
    let roots = [pki.authority.root]
    let full = await microseconds(seconds: seconds) {
        let verifier = CachingPeerVerifier(roots: roots, trustDomain: "cluster.local")
        guard case .accepted = await verifier.verify(chain: chain, at: now) else { fatalError("chain rejected") }
    }
    let remembered = CachingPeerVerifier(roots: roots, trustDomain: "cluster.local")
    _ = await remembered.verify(chain: chain, at: now)
    let cached = await microseconds(seconds: seconds) {
        guard case .accepted(_, cached: true) = await remembered.verify(chain: chain, at: now) else {
            fatalError("chain not remembered")
        }
    }
    print("## Peer chain verification (swift-certificates), \(seconds) s each, one thread\n")
    print("| operation | time |")
    print("|---|---:|")
    print(String(format: "| leaf + root, verified in full | %.1f µs |", full))
    print(String(format: "| the same chain, accepted before | %.1f µs |", cached))
    print("")
}
