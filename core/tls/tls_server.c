#include "tls/tls_server.h"

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rand.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct tls_ctx {
    atomic_int refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_ticket_context tickets;
};

/* TLS 1.2, ECDHE, AEAD: nothing else is offered. */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static const mbedtls_ecp_group_id curves[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

static int entropy_from_kernel(void *ctx, unsigned char *out, size_t n)
{
    (void)ctx;
    rand_bytes(out, n);
    return 0;
}

static int tls_fail(int r, const char *what, const char *path)
{
    char e[128];
    mbedtls_strerror(r, e, sizeof e);
    return err_set(KITH_EINVAL, "%s%s%s: %s", what, path ? " " : "", path ? path : "", e);
}

int tls_ctx_new(const char *cert_path, const char *key_path, tls_ctx_t **out)
{
    tls_ctx_t *t = xcalloc(1, sizeof *t);
    atomic_init(&t->refs, 1);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_ssl_ticket_init(&t->tickets);
    int rc = 0, r;
    if ((r = mbedtls_x509_crt_parse_file(&t->cert, cert_path)) != 0)
        rc = tls_fail(r, "certificate", cert_path);
    else if ((r = mbedtls_pk_parse_keyfile(&t->key, key_path, NULL)) != 0)
        rc = tls_fail(r, "private key", key_path);
    else if ((r = mbedtls_pk_check_pair(&t->cert.pk, &t->key)) != 0)
        rc = err_set(KITH_EINVAL, "private key %s does not belong to certificate %s", key_path,
                     cert_path);
    else if ((r = mbedtls_ctr_drbg_seed(&t->drbg, entropy_from_kernel, NULL,
                                        (const unsigned char *)"kith-tls", 8)) != 0)
        rc = tls_fail(r, "random generator", NULL);
    else if ((r = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
                                              MBEDTLS_SSL_TRANSPORT_STREAM,
                                              MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        rc = tls_fail(r, "TLS configuration", NULL);
    else if ((r = mbedtls_ssl_ticket_setup(&t->tickets, mbedtls_ctr_drbg_random, &t->drbg,
                                           MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0)
        rc = tls_fail(r, "session tickets", NULL);
    else if ((r = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0)
        rc = tls_fail(r, "certificate", cert_path);
    if (rc) {
        tls_ctx_unref(t);
        return rc;
    }
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    /* mbedtls 2.28 defaults to accepting TLS 1.0: raise the floor. */
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&t->conf, suites);
    mbedtls_ssl_conf_curves(&t->conf, curves);
    mbedtls_ssl_conf_renegotiation(&t->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_legacy_renegotiation(&t->conf, MBEDTLS_SSL_LEGACY_NO_RENEGOTIATION);
    mbedtls_ssl_conf_session_tickets_cb(&t->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &t->tickets);
    *out = t;
    return 0;
}

void tls_ctx_ref(tls_ctx_t *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void tls_ctx_unref(tls_ctx_t *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    mbedtls_ssl_ticket_free(&t->tickets);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_pk_free(&t->key);
    mbedtls_x509_crt_free(&t->cert);
    free(t);
}

void tls_ctx_describe(const tls_ctx_t *t, char *out, size_t cap)
{
    char subj[256] = "";
    mbedtls_x509_dn_gets(subj, sizeof subj, &t->cert.subject);
    const mbedtls_x509_time *v = &t->cert.valid_to;
    snprintf(out, cap, "%s, %s, valid until %04d-%02d-%02d", subj, mbedtls_pk_get_name(&t->cert.pk),
             v->year, v->mon, v->day);
}

/* ---- the transport ---- */

typedef struct tls_conn {
    mbedtls_ssl_context ssl;
    tls_ctx_t *ctx;
    const char *in; /* ciphertext being fed (the read buffer) */
    size_t in_len;
    buf_t pending; /* ciphertext left over between reads */
    int handshake_done;
} tls_conn_t;

static int bio_send(void *p, const unsigned char *buf, size_t len)
{
    net_conn_t *c = p;
    net_conn_queue_wire(c, (const char *)buf, len);
    return (int)len;
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
    net_conn_t *c = p;
    tls_conn_t *t = c->tr_state;
    if (t->in_len == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(buf, t->in, n);
    t->in += n;
    t->in_len -= n;
    return (int)n;
}

static int tls_open(net_conn_t *c)
{
    tls_ctx_t *ctx = c->loop->tr_ctx;
    tls_conn_t *t = xcalloc(1, sizeof *t);
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &ctx->conf) != 0) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return err_set(KITH_ENOMEM, "TLS setup failed");
    }
    tls_ctx_ref(ctx);
    t->ctx = ctx;
    mbedtls_ssl_set_bio(&t->ssl, c, bio_send, bio_recv, NULL);
    c->tr_state = t;
    return 0;
}

static int tls_on_wire(net_conn_t *c, const char *data, size_t n)
{
    tls_conn_t *t = c->tr_state;
    /* Feed leftovers first, then the new bytes, without copying them. */
    if (t->pending.len) {
        buf_add(&t->pending, data, n);
        t->in = t->pending.p;
        t->in_len = t->pending.len;
    } else {
        t->in = data;
        t->in_len = n;
    }
    int rc = 0;
    if (!t->handshake_done) {
        int r = mbedtls_ssl_handshake(&t->ssl);
        if (r == 0) {
            t->handshake_done = 1;
        } else if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            char e[128];
            mbedtls_strerror(r, e, sizeof e);
            log_debug("tls", "handshake with %s failed: %s", c->peer, e);
            rc = KITH_EINVAL;
        }
    }
    char plain[16384];
    while (rc == 0 && t->handshake_done) {
        int r = mbedtls_ssl_read(&t->ssl, (unsigned char *)plain, sizeof plain);
        if (r > 0) {
            rc = net_conn_deliver(c, plain, (size_t)r);
            continue;
        }
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) break;
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            rc = KITH_ESHUTDOWN;
        } else {
            log_debug("tls", "read from %s failed: -0x%04x", c->peer, (unsigned)-r);
            rc = KITH_EINVAL;
        }
    }
    /* Keep what mbedtls has not consumed for the next read. */
    if (t->in_len) {
        if (t->in >= t->pending.p && t->in < t->pending.p + t->pending.len) {
            memmove(t->pending.p, t->in, t->in_len);
            t->pending.len = t->in_len;
        } else {
            buf_reset(&t->pending);
            buf_add(&t->pending, t->in, t->in_len);
        }
    } else if (t->pending.cap > 65536) {
        buf_free(&t->pending);
    } else {
        buf_reset(&t->pending);
    }
    t->in = NULL;
    t->in_len = 0;
    return rc;
}

static int tls_send(net_conn_t *c, const char *data, size_t n)
{
    tls_conn_t *t = c->tr_state;
    while (n > 0) {
        int r = mbedtls_ssl_write(&t->ssl, (const unsigned char *)data, n);
        if (r < 0) return err_set(KITH_EIO, "TLS write failed: -0x%04x", (unsigned)-r);
        data += r;
        n -= (size_t)r;
    }
    return 0;
}

static void tls_shutdown(net_conn_t *c)
{
    tls_conn_t *t = c->tr_state;
    if (t && t->handshake_done) mbedtls_ssl_close_notify(&t->ssl);
}

static void tls_free(net_conn_t *c)
{
    tls_conn_t *t = c->tr_state;
    if (!t) return;
    mbedtls_ssl_free(&t->ssl);
    tls_ctx_unref(t->ctx);
    buf_free(&t->pending);
    free(t);
    c->tr_state = NULL;
}

const net_transport_t tls_transport = {
    .name = "tls",
    .open = tls_open,
    .on_wire = tls_on_wire,
    .send = tls_send,
    .shutdown = tls_shutdown,
    .free = tls_free,
};
