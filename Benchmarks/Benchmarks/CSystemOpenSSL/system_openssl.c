#include "system_openssl.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct system_tls_context {
    SSL_CTX *ctx;
};

struct system_tls {
    SSL *ssl;
    BIO *in;  // ciphertext from the peer
    BIO *out; // ciphertext for the peer
};

static const unsigned char alpn_h2[] = {2, 'h', '2'};

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *out_length, const unsigned char *in,
                     unsigned int in_length, void *arg) {
    (void)ssl;
    (void)arg;
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, out_length, alpn_h2, sizeof alpn_h2, in, in_length) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static void fail(char *error, size_t size, const char *what) {
    unsigned long code = ERR_get_error();
    char reason[256] = "";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    snprintf(error, size, "%s: %s", what, reason);
}

system_tls_context *system_tls_context_new(int server, const char *chain_pem, const char *key_pem,
                                           const char *roots_pem, const char *ciphersuites,
                                           char *error, size_t error_size) {
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        fail(error, error_size, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    // As Ambit's HBONE server: no session tickets.
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1) {
        fail(error, error_size, "ciphersuites");
        goto failed;
    }
    BIO *chain = BIO_new_mem_buf(chain_pem, -1);
    X509 *certificate = PEM_read_bio_X509(chain, NULL, NULL, NULL);
    int ok = certificate != NULL && SSL_CTX_use_certificate(ctx, certificate) == 1;
    X509_free(certificate);
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(chain, NULL, NULL, NULL)) != NULL) {
        ok = SSL_CTX_add0_chain_cert(ctx, extra) == 1;
    }
    ERR_clear_error(); // the end of the PEM stream
    BIO_free(chain);
    if (!ok) {
        fail(error, error_size, "certificate chain");
        goto failed;
    }
    BIO *key_bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL);
    BIO_free(key_bio);
    ok = key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        fail(error, error_size, "private key");
        goto failed;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *roots = BIO_new_mem_buf(roots_pem, -1);
    X509 *root;
    int count = 0;
    while ((root = PEM_read_bio_X509(roots, NULL, NULL, NULL)) != NULL) {
        X509_STORE_add_cert(store, root);
        X509_free(root);
        count++;
    }
    ERR_clear_error();
    BIO_free(roots);
    if (count == 0) {
        snprintf(error, error_size, "roots: no certificate");
        goto failed;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (server) {
        SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    } else if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof alpn_h2) != 0) {
        fail(error, error_size, "ALPN");
        goto failed;
    }
    system_tls_context *context = malloc(sizeof *context);
    context->ctx = ctx;
    return context;
failed:
    SSL_CTX_free(ctx);
    return NULL;
}

void system_tls_context_free(system_tls_context *context) {
    if (context == NULL) return;
    SSL_CTX_free(context->ctx);
    free(context);
}

system_tls *system_tls_new(system_tls_context *context) {
    system_tls *tls = calloc(1, sizeof *tls);
    tls->ssl = SSL_new(context->ctx);
    tls->in = BIO_new(BIO_s_mem());
    tls->out = BIO_new(BIO_s_mem());
    // An empty input buffer means "more to come", not end of file.
    BIO_set_mem_eof_return(tls->in, -1);
    BIO_set_mem_eof_return(tls->out, -1);
    SSL_set_bio(tls->ssl, tls->in, tls->out);
    if (SSL_is_server(tls->ssl)) {
        SSL_set_accept_state(tls->ssl);
    } else {
        SSL_set_connect_state(tls->ssl);
    }
    return tls;
}

void system_tls_free(system_tls *tls) {
    if (tls == NULL) return;
    SSL_free(tls->ssl); // frees both BIOs
    free(tls);
}

void system_tls_feed(system_tls *tls, const uint8_t *bytes, size_t count) {
    while (count > 0) {
        int chunk = count > (1u << 30) ? (1 << 30) : (int)count;
        int written = BIO_write(tls->in, bytes, chunk);
        if (written <= 0) return;
        bytes += written;
        count -= (size_t)written;
    }
}

size_t system_tls_pending_input(system_tls *tls) { return BIO_ctrl_pending(tls->in); }

int system_tls_handshake(system_tls *tls) {
    int result = SSL_do_handshake(tls->ssl);
    if (result == 1) return 1;
    int error = SSL_get_error(tls->ssl, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return -1;
}

int system_tls_read(system_tls *tls, uint8_t *buffer, size_t capacity) {
    size_t count = 0;
    int result = SSL_read_ex(tls->ssl, buffer, capacity, &count);
    if (result == 1) return (int)count;
    int error = SSL_get_error(tls->ssl, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return -1;
}

int system_tls_write(system_tls *tls, const uint8_t *bytes, size_t count) {
    while (count > 0) {
        size_t written = 0;
        if (SSL_write_ex(tls->ssl, bytes, count, &written) != 1) {
            ERR_clear_error();
            return -1;
        }
        bytes += written;
        count -= written;
    }
    return 1;
}

size_t system_tls_pending(system_tls *tls) { return BIO_ctrl_pending(tls->out); }

size_t system_tls_take(system_tls *tls, uint8_t *buffer, size_t capacity) {
    size_t count = 0;
    if (BIO_read_ex(tls->out, buffer, capacity, &count) != 1) return 0;
    return count;
}

const char *system_tls_cipher(system_tls *tls) { return SSL_get_cipher_name(tls->ssl); }

const char *system_tls_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
