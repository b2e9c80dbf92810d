import CNIOBoringSSL
import Dispatch
import Foundation

// `HBONEBench tls-primitives`: the cryptography under every HBONE byte and handshake, measured in
// the BoringSSL that swift-nio-ssl vendors (the data path's TLS), with the operations and sizes
// `openssl speed` uses for OpenSSL, so the two libraries compare on this machine:
//
//   openssl speed -seconds 3 -bytes 16384 -evp aes-128-gcm
//   openssl speed -seconds 3 -bytes 16384 -evp chacha20-poly1305
//   openssl speed -seconds 3 ecdhp256
//   openssl speed -seconds 3 ecdsap256

/// Runs `operation` (which does `batch` operations) for about `seconds`; operations per second.
private func rate(seconds: Double, batch: Int, _ operation: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    var count = 0
    var elapsed = 0.0
    repeat {
        operation()
        count += batch
        elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    } while elapsed < seconds
    return Double(count) / elapsed
}

/// Seals 16 KiB records (one TLS record's worth) with a fresh nonce each: bytes per second.
private func sealRate(_ aead: OpaquePointer, keyLength: Int, seconds: Double) -> Double {
    let key = [UInt8](repeating: 7, count: keyLength)
    guard let context = EVP_AEAD_CTX_new(aead, key, keyLength, 16) else {
        fatalError("EVP_AEAD_CTX_new failed")
    }
    defer { EVP_AEAD_CTX_free(context) }
    let size = 16384
    let input = [UInt8](repeating: 0x61, count: size)
    var output = [UInt8](repeating: 0, count: size + 16)
    var nonce = [UInt8](repeating: 0, count: 12)
    var counter: UInt64 = 0
    let records = rate(seconds: seconds, batch: 64) {
        for _ in 0..<64 {
            counter &+= 1
            withUnsafeBytes(of: counter) { nonce.replaceSubrange(4..<12, with: $0) }
            var written = 0
            let sealed = EVP_AEAD_CTX_seal(
                context,
                &output,
                &written,
                output.count,
                nonce,
                nonce.count,
                input,
                input.count,
                nil,
                0
            )
            precondition(sealed == 1 && written == size + 16, "EVP_AEAD_CTX_seal failed")
        }
    }
    return records * Double(size)
}

private func p256Key() -> OpaquePointer {
    guard let key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1),
        EC_KEY_generate_key(key) == 1
    else { fatalError("EC_KEY_generate_key failed") }
    return key
}

func boringSSLPrimitives(seconds: Double) {
    print("## BoringSSL (swift-nio-ssl's) primitives, \(seconds) s each, one thread\n")
    print("| operation | rate |")
    print("|---|---:|")
    let aes = sealRate(EVP_aead_aes_128_gcm(), keyLength: 16, seconds: seconds)
    print(String(format: "| AES-128-GCM seal, 16 KiB | %.0f MB/s |", aes / 1e6))
    let chacha = sealRate(EVP_aead_chacha20_poly1305(), keyLength: 32, seconds: seconds)
    print(String(format: "| ChaCha20-Poly1305 seal, 16 KiB | %.0f MB/s |", chacha / 1e6))

    let mine = p256Key()
    let peer = p256Key()
    defer {
        EC_KEY_free(mine)
        EC_KEY_free(peer)
    }
    var secret = [UInt8](repeating: 0, count: 32)
    let ecdh = rate(seconds: seconds, batch: 16) {
        for _ in 0..<16 {
            let length = ECDH_compute_key(
                &secret,
                secret.count,
                EC_KEY_get0_public_key(peer),
                mine,
                nil
            )
            precondition(length == 32, "ECDH_compute_key failed")
        }
    }
    print(String(format: "| ECDH P-256 (shared secret from a public key) | %.0f op/s |", ecdh))

    let digest = [UInt8](repeating: 0x5A, count: 32)
    var signature = [UInt8](repeating: 0, count: Int(ECDSA_size(mine)))
    var signatureLength: UInt32 = 0
    let sign = rate(seconds: seconds, batch: 16) {
        for _ in 0..<16 {
            precondition(
                ECDSA_sign(0, digest, digest.count, &signature, &signatureLength, mine) == 1,
                "ECDSA_sign failed"
            )
        }
    }
    let verify = rate(seconds: seconds, batch: 16) {
        for _ in 0..<16 {
            precondition(
                ECDSA_verify(0, digest, digest.count, signature, Int(signatureLength), mine) == 1,
                "ECDSA_verify failed"
            )
        }
    }
    print(String(format: "| ECDSA P-256 sign / verify | %.0f / %.0f op/s |", sign, verify))
    print("")
}
