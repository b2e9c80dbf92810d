// A minimal TLS engine over the system's OpenSSL 3 (libssl), for HBONEBench's comparison of
// OpenSSL with swift-nio-ssl's BoringSSL on the HBONE path. Ciphertext is read straight from the
// caller's buffer and written to a buffer the caller takes; the Swift side (OpenSSLHandler) moves
// it to and from the socket. Not used by Ambit itself.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct system_tls_context system_tls_context;
typedef struct system_tls system_tls;

/// A TLS 1.3 context presenting `chain_pem` (leaf first) with `key_pem`, requiring and verifying
/// the peer's certificate against `roots_pem`, offering ALPN "h2". `ciphersuites` is an OpenSSL
/// TLS 1.3 suite list, or NULL for OpenSSL's default order. Returns NULL and fills `error`.
system_tls_context *system_tls_context_new(int server, const char *chain_pem, const char *key_pem,
                                           const char *roots_pem, const char *ciphersuites,
                                           char *error, size_t error_size);
void system_tls_context_free(system_tls_context *context);

/// NULL when out of memory.
system_tls *system_tls_new(system_tls_context *context);
void system_tls_free(system_tls *tls);

/// Hands ciphertext read from the socket to the engine: `bytes` must stay valid until the
/// handshake and reads that follow have consumed it all (`system_tls_pending_input` is 0, which
/// a read returning 0 guarantees).
void system_tls_feed(system_tls *tls, const uint8_t *bytes, size_t count);
/// Ciphertext handed in and not yet consumed.
size_t system_tls_pending_input(system_tls *tls);
/// Advances the handshake: 1 done, 0 needs more input, -1 failed.
int system_tls_handshake(system_tls *tls);
/// Decrypts into `buffer`: the count, 0 when more input is needed, -1 at the peer's close_notify
/// or an error.
int system_tls_read(system_tls *tls, uint8_t *buffer, size_t capacity);
/// Encrypts all of `bytes`: 1, or -1 on an error.
int system_tls_write(system_tls *tls, const uint8_t *bytes, size_t count);
/// Ciphertext waiting to be sent, and taking it.
size_t system_tls_pending(system_tls *tls);
size_t system_tls_take(system_tls *tls, uint8_t *buffer, size_t capacity);
/// The negotiated cipher suite's name.
const char *system_tls_cipher(system_tls *tls);
/// The linked library's version string.
const char *system_tls_version(void);
