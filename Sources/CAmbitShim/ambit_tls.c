#include "ambit_shim.h"

#include <stddef.h>
#include <stdint.h>

// swift-nio-ssl's vendored BoringSSL (its symbols carry the CNIOBoringSSL_ prefix), linked into
// every executable that uses NIOSSL. swift-nio-ssl does not export the module, and exposes no
// option for session tickets, so the two calls are declared here. Weak: executables without
// NIOSSL (ambit-cni) link without them, and the function below then reports failure.
extern uint32_t CNIOBoringSSL_SSL_CTX_set_options(void *ctx, uint32_t options) __attribute__((weak));
extern uint32_t CNIOBoringSSL_SSL_CTX_get_options(const void *ctx) __attribute__((weak));

// SSL_OP_NO_TICKET of BoringSSL's ssl.h.
#define AMBIT_SSL_OP_NO_TICKET 0x00004000u

int ambit_tls_disable_session_tickets(void *ssl_ctx) {
    if (ssl_ctx == NULL || CNIOBoringSSL_SSL_CTX_set_options == NULL || CNIOBoringSSL_SSL_CTX_get_options == NULL) {
        return -1;
    }
    CNIOBoringSSL_SSL_CTX_set_options(ssl_ctx, AMBIT_SSL_OP_NO_TICKET);
    return (CNIOBoringSSL_SSL_CTX_get_options(ssl_ctx) & AMBIT_SSL_OP_NO_TICKET) ? 0 : -1;
}
