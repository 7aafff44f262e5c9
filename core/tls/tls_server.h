/*
 * tls/tls_server: TLS for the network listener, on mbedtls 2.28.
 *
 * Policy: TLS 1.2 only (mbedtls 2.28 would accept 1.0 and 1.1), ECDHE key
 * exchange with AEAD suites only (AES-GCM, ChaCha20-Poly1305; no CBC, no
 * static RSA), no renegotiation, curves X25519 / P-256 / P-384, session
 * tickets with a key that rotates daily (a resumed handshake costs ~0.1 ms of
 * CPU, a full one ~2.2 ms).
 *
 * A tls_ctx holds one certificate and key; connections keep a reference to
 * the context they started with, so SIGHUP can install a new one without
 * dropping anyone.
 */
#ifndef KITH_TLS_SERVER_H
#define KITH_TLS_SERVER_H

#include "net/net.h"

typedef struct tls_ctx tls_ctx_t;

/* Loads cert_path and key_path (PEM); fails with a message naming the file if
 * either is unreadable or they do not belong together. The caller holds one
 * reference. */
int tls_ctx_new(const char *cert_path, const char *key_path, tls_ctx_t **out);
void tls_ctx_ref(tls_ctx_t *t);
void tls_ctx_unref(tls_ctx_t *t);
/* "CN=..., valid until ..." for logs. */
void tls_ctx_describe(const tls_ctx_t *t, char *out, size_t cap);

/* The TLS transport: takes the context from the loop's tr_ctx at accept. */
extern const net_transport_t tls_transport;

#endif
