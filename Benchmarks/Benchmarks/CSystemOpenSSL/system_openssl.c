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

// One BIO for both directions, as swift-nio-ssl's: reads come straight from the buffer the socket
// read (`input`, set for the duration of one feed), writes go to a growable buffer taken on flush.
// OpenSSL's memory BIO would zero-fill and copy every write and move unread bytes on each write.
struct system_tls {
    SSL *ssl;
    const uint8_t *input;
    size_t input_count;
    uint8_t *output;
    size_t output_count;
    size_t output_capacity;
    size_t output_taken;
};

static int bio_write(BIO *bio, const char *bytes, size_t count, size_t *written) {
    system_tls *tls = BIO_get_data(bio);
    if (tls->output_count + count > tls->output_capacity) {
        size_t capacity = tls->output_capacity == 0 ? 64 * 1024 : tls->output_capacity;
        while (capacity < tls->output_count + count) capacity *= 2;
        uint8_t *grown = realloc(tls->output, capacity);
        if (grown == NULL) return 0;
        tls->output = grown;
        tls->output_capacity = capacity;
    }
    memcpy(tls->output + tls->output_count, bytes, count);
    tls->output_count += count;
    *written = count;
    return 1;
}

static int bio_read(BIO *bio, char *bytes, size_t count, size_t *read) {
    system_tls *tls = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (tls->input_count == 0) {
        BIO_set_retry_read(bio);
        return 0;
    }
    size_t chunk = count < tls->input_count ? count : tls->input_count;
    memcpy(bytes, tls->input, chunk);
    tls->input += chunk;
    tls->input_count -= chunk;
    *read = chunk;
    return 1;
}

static long bio_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)bio;
    (void)number;
    (void)pointer;
    switch (command) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int bio_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *bio_method(void) {
    static BIO_METHOD *method;
    if (method == NULL) {
        BIO_METHOD *made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "system_tls");
        BIO_meth_set_write_ex(made, bio_write);
        BIO_meth_set_read_ex(made, bio_read);
        BIO_meth_set_ctrl(made, bio_ctrl);
        BIO_meth_set_create(made, bio_create);
        method = made; // benchmark threads race here at most once, each making an equal method
    }
    return method;
}

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
    // As Ambit's HBONE server: no session tickets (in TLS 1.3 OpenSSL's SSL_OP_NO_TICKET only makes them
    // stateful), no session cache; the chain is sent as given (leaf only), not rebuilt per handshake.
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    if (ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1) {
        fail(error, error_size, "ciphersuites");
        goto failed;
    }
    BIO *chain = BIO_new_mem_buf(chain_pem, -1);
    X509 *certificate = PEM_read_bio_X509(chain, NULL, NULL, NULL);
    int ok = certificate != NULL && SSL_CTX_use_certificate(ctx, certificate) == 1;
    X509_free(certificate);
    X509 *extra;
    if (!ok) {
        BIO_free(chain);
        fail(error, error_size, "certificate chain");
        goto failed;
    }
    while (ok && (extra = PEM_read_bio_X509(chain, NULL, NULL, NULL)) != NULL) {
        ok = SSL_CTX_add0_chain_cert(ctx, extra) == 1;
        if (!ok) X509_free(extra);
    }
    BIO_free(chain);
    if (!ok) {
        fail(error, error_size, "certificate chain");
        goto failed;
    }
    ERR_clear_error(); // the end of the PEM stream
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
    if (context == NULL) goto failed;
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
    if (tls == NULL) return NULL;
    tls->ssl = SSL_new(context->ctx);
    BIO *bio = BIO_new(bio_method());
    if (tls->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        SSL_free(tls->ssl);
        free(tls);
        return NULL;
    }
    BIO_set_data(bio, tls);
    SSL_set_bio(tls->ssl, bio, bio); // SSL_free frees it
    if (SSL_is_server(tls->ssl)) {
        SSL_set_accept_state(tls->ssl);
    } else {
        SSL_set_connect_state(tls->ssl);
    }
    return tls;
}

void system_tls_free(system_tls *tls) {
    if (tls == NULL) return;
    SSL_free(tls->ssl);
    free(tls->output);
    free(tls);
}

void system_tls_feed(system_tls *tls, const uint8_t *bytes, size_t count) {
    tls->input = bytes;
    tls->input_count = count;
}

size_t system_tls_pending_input(system_tls *tls) { return tls->input_count; }

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

size_t system_tls_pending(system_tls *tls) { return tls->output_count - tls->output_taken; }

size_t system_tls_take(system_tls *tls, uint8_t *buffer, size_t capacity) {
    size_t pending = tls->output_count - tls->output_taken;
    size_t count = capacity < pending ? capacity : pending;
    memcpy(buffer, tls->output + tls->output_taken, count);
    tls->output_taken += count;
    if (tls->output_taken == tls->output_count) tls->output_taken = tls->output_count = 0;
    return count;
}

const char *system_tls_cipher(system_tls *tls) { return SSL_get_cipher_name(tls->ssl); }

const char *system_tls_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
