/*
 * store_idem: idempotency keys. A successful op with a key stores its result
 * for 24 hours; an op with the same key in that time gets that result back and
 * writes nothing, or KITH_ECONFLICT if its request differs (fingerprint).
 *
 * idem database: "k" + key -> u8 format, fingerprint[32], i64 expiry µs,
 * record id[16], u64 version, i64 created, i64 updated, u64 seq, JSON;
 * "t" + expiry (u64 BE) + key -> "" so expired keys are purged in time order.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"

#include <mbedtls/sha256.h>
#include <string.h>

#define IDEM_TTL_US  (24LL * 3600 * 1000000)
#define IDEM_KEY_MAX 255
#define IDEM_FORMAT  1
#define IDEM_HDR     (1 + 32 + 8 + 16 + 8 + 8 + 8 + 8)

void store_op_fingerprint(const store_op_t *op, uint8_t fp[32])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    uint8_t hdr[1 + 8 + ID_LEN];
    hdr[0] = (uint8_t)op->kind;
    store_u64be(hdr + 1, op->if_version);
    memcpy(hdr + 9, op->id.b, ID_LEN);
    mbedtls_sha256_update_ret(&c, hdr, sizeof hdr);
    mbedtls_sha256_update_ret(&c, (const uint8_t *)op->coll, strlen(op->coll) + 1);
    /* Inputs only some kinds have; hashed only when set, so the fingerprints
     * of record ops stay what they were. */
    if (op->field[0]) {
        mbedtls_sha256_update_ret(&c, (const uint8_t *)"f", 1);
        mbedtls_sha256_update_ret(&c, (const uint8_t *)op->field, strlen(op->field) + 1);
    }
    if (op->consumer) {
        uint8_t seq[8];
        store_u64be(seq, op->cursor_seq);
        mbedtls_sha256_update_ret(&c, (const uint8_t *)"c", 1);
        mbedtls_sha256_update_ret(&c, (const uint8_t *)op->consumer, strlen(op->consumer) + 1);
        mbedtls_sha256_update_ret(&c, seq, sizeof seq);
    }
    if (op->data) {
        /* jansson keeps insertion order; sort keys so {"a":1,"b":2} and
         * {"b":2,"a":1} are the same request. */
        char *s = json_dumps(op->data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (s) {
            mbedtls_sha256_update_ret(&c, (const uint8_t *)s, strlen(s));
            free(s);
        }
    }
    mbedtls_sha256_finish_ret(&c, fp);
    mbedtls_sha256_free(&c);
}

static int idem_key(const char *key, buf_t *k, char tag)
{
    size_t n = strlen(key);
    if (n == 0 || n > IDEM_KEY_MAX)
        return err_set(KITH_EINVAL, "an idempotency key is 1 to %d bytes", IDEM_KEY_MAX);
    buf_addc(k, tag);
    buf_add(k, key, n);
    return 0;
}

int store_idem_lookup(store_wtxn_t *w, store_op_t *op, const uint8_t fp[32], int *found)
{
    *found = 0;
    buf_t kb = BUF_INIT;
    int rc = idem_key(op->idem_key, &kb, 'k');
    if (rc) return rc;
    MDB_val k = {kb.len, kb.p}, d;
    rc = mdb_get(w->txn, w->st->dbi[DB_IDEM], &k, &d);
    buf_free(&kb);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return store_mdb_err(rc, "idempotency keys");
    const uint8_t *p = d.mv_data;
    if (d.mv_size < IDEM_HDR || p[0] != IDEM_FORMAT)
        return err_set(KITH_ECORRUPT, "idempotency key %s: bad entry", op->idem_key);
    int64_t expires = (int64_t)load_u64be(p + 33);
    if (expires <= w->now_us) return 0; /* expired: the op runs afresh */
    if (memcmp(p + 1, fp, 32) != 0)
        return err_set(KITH_ECONFLICT,
                       "idempotency key '%s' was already used for a different request",
                       op->idem_key);
    memcpy(op->rid.b, p + 41, ID_LEN);
    op->version = load_u64be(p + 57);
    op->created_us = (int64_t)load_u64be(p + 65);
    op->updated_us = (int64_t)load_u64be(p + 73);
    op->seq = load_u64be(p + 81);
    op->json_len = d.mv_size - IDEM_HDR;
    op->json = xstrndup((const char *)p + IDEM_HDR, op->json_len);
    op->idem_replayed = 1;
    *found = 1;
    return 0;
}

int store_idem_save(store_wtxn_t *w, const store_op_t *op, const uint8_t fp[32])
{
    buf_t kb = BUF_INIT, tb = BUF_INIT, v = BUF_INIT;
    int64_t expires = w->now_us + IDEM_TTL_US;
    int rc = idem_key(op->idem_key, &kb, 'k');
    if (rc) return rc;
    buf_addc(&tb, 't');
    buf_add_u64be(&tb, (uint64_t)expires);
    buf_adds(&tb, op->idem_key);
    buf_addc(&v, IDEM_FORMAT);
    buf_add(&v, fp, 32);
    buf_add_u64be(&v, (uint64_t)expires);
    buf_add(&v, op->rid.b, ID_LEN);
    buf_add_u64be(&v, op->version);
    buf_add_u64be(&v, (uint64_t)op->created_us);
    buf_add_u64be(&v, (uint64_t)op->updated_us);
    buf_add_u64be(&v, op->seq);
    if (op->json) buf_add(&v, op->json, op->json_len);
    MDB_val k = {kb.len, kb.p}, d = {v.len, v.p};
    rc = mdb_put(w->txn, w->st->dbi[DB_IDEM], &k, &d, 0);
    if (rc == 0) {
        MDB_val tk = {tb.len, tb.p}, td = {0, ""};
        rc = mdb_put(w->txn, w->st->dbi[DB_IDEM], &tk, &td, 0);
    }
    buf_free(&kb);
    buf_free(&tb);
    buf_free(&v);
    return store_mdb_err(rc, "idempotency keys");
}

int store_idem_purge(store_t *st, MDB_txn *txn, int64_t now_us, size_t max)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_IDEM], &cur);
    if (rc) return store_mdb_err(rc, "idempotency keys");
    size_t n = 0;
    buf_t kb = BUF_INIT;
    while (n < max) {
        MDB_val k = {1, "t"}, d;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc || k.mv_size < 9 || ((char *)k.mv_data)[0] != 't') break;
        int64_t exp = (int64_t)load_u64be((char *)k.mv_data + 1);
        if (exp > now_us) break;
        buf_reset(&kb);
        buf_addc(&kb, 'k');
        buf_add(&kb, (char *)k.mv_data + 9, k.mv_size - 9);
        rc = mdb_cursor_del(cur, 0);
        if (rc) break;
        MDB_val kk = {kb.len, kb.p}, kd;
        /* Only if the entry is the one that expired (not a newer reuse). */
        if (mdb_get(txn, st->dbi[DB_IDEM], &kk, &kd) == 0 && kd.mv_size >= IDEM_HDR &&
            (int64_t)load_u64be((uint8_t *)kd.mv_data + 33) == exp)
            mdb_del(txn, st->dbi[DB_IDEM], &kk, NULL);
        n++;
    }
    buf_free(&kb);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) rc = 0;
    return store_rc(rc, "idempotency keys");
}
