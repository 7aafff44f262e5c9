/*
 * store_audit: the hash-chained audit log of a workspace.
 *
 * audit database: seq (u64 BE, dense from 1) -> 64 hex chars of SHA-256, then
 * the entry's JSON body, which names the previous entry's hash in "prev" (64
 * zeros for the first). hash = SHA-256(prev || body). Changing, removing or
 * reordering an entry breaks the chain, which `kith check` verifies. An entry
 * for a write is appended in the write's own nested transaction, so it exists
 * exactly when the write does.
 *
 * A request that writes many records (an import) gives all its ops one `who`
 * (the run is found by that pointer; a bulk write makes one per line). Consecutive writes of one request, action and collection in
 * a batch share one entry: its ids in the order written and the union of the
 * fields written, appended to the batch transaction when the run ends (the
 * next op belongs to someone else, or the batch commits). Only the ops that
 * committed join. An entry per row made an import's audit log 1.7 times the
 * size of its records and its hashing a tenth of the writer's time.
 */
#include "store/store_int.h"

#include "base/codec.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <mbedtls/sha256.h>
#include <string.h>

#define HASH_HEX 64

static const char zero_hash[HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void chain_hash(const char *prev, const char *body, size_t n, char out[HASH_HEX + 1])
{
    uint8_t h[32];
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    mbedtls_sha256_update_ret(&c, (const uint8_t *)prev, HASH_HEX);
    mbedtls_sha256_update_ret(&c, (const uint8_t *)body, n);
    mbedtls_sha256_finish_ret(&c, h);
    mbedtls_sha256_free(&c);
    hex_encode(h, 32, out);
}

static const char *const op_actions[] = {
    [STORE_OP_CREATE] = "create", [STORE_OP_UPDATE] = "update", [STORE_OP_REPLACE] = "replace",
    [STORE_OP_DELETE] = "delete", [STORE_OP_SCHEMA] = "schema", [STORE_OP_FIELD] = "schema",
    [STORE_OP_CURSOR] = "cursor", [STORE_OP_CUSTOM] = "custom", [STORE_OP_AUDIT] = "read",
    [STORE_OP_UPSERT] = "upsert",
};

/* Starts an entry's body in b (after room for its hash): seq, time, actor,
 * request and action (who may override action) and collection. The caller
 * adds its members, then audit_finish() chains and writes it. The batch
 * keeps the last entry's seq and hash, so an entry costs no cursor; a
 * nested transaction that fails forgets them (audit_seq = 0: read again). */
static int audit_start(store_wtxn_t *w, buf_t *b, const json_t *who, const char *action,
                       const char *coll)
{
    if (!w->audit_seq) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(w->txn, w->st->dbi[DB_AUDIT], &cur);
        if (rc) return store_mdb_err(rc, "audit");
        MDB_val k, d;
        memcpy(w->audit_prev, zero_hash, HASH_HEX);
        rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
        if (rc == 0 && k.mv_size == 8 && d.mv_size >= HASH_HEX) {
            w->audit_seq = load_u64be(k.mv_data);
            memcpy(w->audit_prev, d.mv_data, HASH_HEX);
        }
        mdb_cursor_close(cur);
    }
    char ts[40];
    buf_reserve(b, 320);
    buf_add(b, zero_hash, HASH_HEX); /* replaced by the hash */
    buf_addf(b, "{\"seq\":%llu,\"time\":\"", (unsigned long long)w->audit_seq + 1);
    buf_add(b, ts, time_fmt_rfc3339(w->now_us, ts, sizeof ts, 6));
    buf_adds(b, "\",\"actor\":");
    json_t *x = json_object_get(who, "actor");
    json_write_cstr(b, json_is_string(x) ? json_string_value(x) : "");
    buf_adds(b, ",\"request\":");
    x = json_object_get(who, "request");
    json_write_cstr(b, json_is_string(x) ? json_string_value(x) : "");
    buf_adds(b, ",\"action\":");
    x = json_object_get(who, "action");
    json_write_cstr(b, json_is_string(x) ? json_string_value(x) : action);
    buf_adds(b, ",\"collection\":");
    json_write_cstr(b, coll ? coll : "");
    return 0;
}

static int audit_finish(store_wtxn_t *w, buf_t *b)
{
    uint64_t seq = w->audit_seq + 1;
    buf_adds(b, ",\"prev\":\"");
    buf_add(b, w->audit_prev, HASH_HEX);
    buf_adds(b, "\"}");
    char hash[HASH_HEX + 1];
    chain_hash(w->audit_prev, b->p + HASH_HEX, b->len - HASH_HEX, hash);
    memcpy(b->p, hash, HASH_HEX);
    uint8_t key[8];
    store_u64be(key, seq);
    MDB_val kk = {8, key}, dd = {b->len, b->p};
    int rc = mdb_put(w->txn, w->st->dbi[DB_AUDIT], &kk, &dd, MDB_APPEND);
    if (rc) return store_mdb_err(rc, "audit");
    w->audit_seq = seq;
    memcpy(w->audit_prev, hash, HASH_HEX);
    return 0;
}

/* The sensitive fields present in the op's resulting record, as a JSON
 * array's members, from the record's keys (no parse: the text is ours). */
typedef struct {
    const store_coll_t *c;
    buf_t *b;
    int n;
} revealed_t;

static int revealed_key(void *ctx, const char *key, size_t klen)
{
    revealed_t *r = ctx;
    char name[STORE_NAME_MAX];
    if (klen >= sizeof name) return 0;
    memcpy(name, key, klen);
    name[klen] = '\0';
    const store_field_t *f = store_coll_field(r->c, name);
    if (f && (f->flags & SF_SENSITIVE)) {
        buf_adds(r->b, r->n++ ? "," : ",\"revealed\":[");
        json_write_str(r->b, key, klen);
    }
    return 0;
}

/* The fields the op wrote, as members of a JSON array, each once in *b. */
static void add_fields(buf_t *b, const store_op_t *op)
{
    if (op->kind == STORE_OP_DELETE || !json_is_object(op->data)) return;
    const char *k;
    json_t *v;
    json_object_foreach(op->data, k, v)
    {
        /* a written field is a schema field, an identifier: no escapes, so
         * the quoted name is found exactly */
        char q[STORE_NAME_MAX + 2];
        size_t kl = strlen(k);
        if (kl < STORE_NAME_MAX) {
            q[0] = '"';
            memcpy(q + 1, k, kl);
            q[kl + 1] = '"';
            if (b->len && memmem(b->p, b->len, q, kl + 2)) continue;
        }
        if (b->len) buf_addc(b, ',');
        json_write_cstr(b, k);
    }
}

static void add_id(buf_t *b, const store_op_t *op, int sep)
{
    char s[ID_TEXT_LEN + 1];
    id_encode(&op->rid, s);
    if (sep) buf_addc(b, ',');
    json_write_str(b, s, ID_TEXT_LEN);
}

int store_audit_run_joins(const store_wtxn_t *w, const store_op_t *op)
{
    const store_op_t *f = w->arun.first;
    return !f || (op->audit == f->audit && op->kind == f->kind && strcmp(op->coll, f->coll) == 0);
}

void store_audit_run_add(store_wtxn_t *w, const store_op_t *op)
{
    if (!w->arun.first) w->arun.first = op;
    add_id(&w->arun.ids, op, w->arun.ids.len > 0);
    add_fields(&w->arun.fields, op);
}

int store_audit_run_flush(store_wtxn_t *w)
{
    const store_op_t *f = w->arun.first;
    if (!f) return 0;
    buf_t b = BUF_INIT;
    int rc = audit_start(w, &b, f->audit, op_actions[f->kind], f->coll);
    if (rc == 0) {
        buf_adds(&b, ",\"ids\":[");
        buf_add(&b, w->arun.ids.p, w->arun.ids.len);
        buf_adds(&b, "],\"fields\":[");
        buf_add(&b, w->arun.fields.p, w->arun.fields.len);
        buf_addc(&b, ']');
        rc = audit_finish(w, &b);
    }
    buf_free(&b);
    w->arun.first = NULL;
    buf_reset(&w->arun.ids);
    buf_reset(&w->arun.fields);
    return rc;
}

void store_audit_run_free(store_wtxn_t *w)
{
    w->arun.first = NULL;
    buf_free(&w->arun.ids);
    buf_free(&w->arun.fields);
}

int store_audit_op(store_wtxn_t *w, store_op_t *op)
{
    /* "reveal": the caller sees its answer's sensitive fields in clear, so even
     * an update that changed nothing is recorded (as what it showed) */
    int reveal = op->audit && json_is_true(json_object_get(op->audit, "reveal"));
    if (!op->audit || op->idem_replayed || (op->nochange && !reveal)) return 0;
    if (op == w->audit_defer_op && !reveal && op->kind != STORE_OP_AUDIT &&
        (op->kind <= STORE_OP_DELETE || op->kind == STORE_OP_UPSERT)) {
        w->audit_deferred = 1;
        return 0;
    }
    buf_t b = BUF_INIT;
    int rc;
    if (op->kind == STORE_OP_AUDIT) {
        json_t *ids = json_object_get(op->audit, "ids");
        json_t *fields = json_object_get(op->audit, "fields");
        json_t *coll = json_object_get(op->audit, "collection");
        rc = audit_start(w, &b, op->audit, "read",
                         json_is_string(coll) ? json_string_value(coll) : "");
        if (rc == 0) {
            buf_adds(&b, ",\"ids\":");
            if (json_is_array(ids))
                json_write_value(&b, ids);
            else
                buf_adds(&b, "[]");
            buf_adds(&b, ",\"fields\":");
            if (json_is_array(fields))
                json_write_value(&b, fields);
            else
                buf_adds(&b, "[]");
            rc = audit_finish(w, &b);
        }
        buf_free(&b);
        return rc;
    }
    rc = audit_start(w, &b, op->audit, op_actions[op->kind], op->coll);
    if (rc == 0) {
        buf_t part = BUF_INIT;
        buf_adds(&b, ",\"ids\":[");
        if (op->kind <= STORE_OP_DELETE || op->kind == STORE_OP_UPSERT) add_id(&b, op, 0);
        /* The fields the request wrote (a delete writes none). */
        buf_adds(&b, "],\"fields\":[");
        add_fields(&part, op);
        buf_add(&b, part.p, part.len);
        buf_free(&part);
        buf_addc(&b, ']');
        const store_coll_t *c = store_schema_coll(w->schema, op->coll);
        if (reveal && op->kind != STORE_OP_DELETE && c && op->json) {
            revealed_t r = {.c = c, .b = &b};
            json_object_keys(op->json, op->json_len, revealed_key, &r);
            if (r.n) buf_addc(&b, ']');
        }
        rc = audit_finish(w, &b);
    }
    buf_free(&b);
    return rc;
}

static int entry_run(store_wtxn_t *w, store_op_t *op)
{
    (void)w;
    (void)op;
    return 0; /* the entry itself is written by store_audit_op */
}

store_op_t *store_op_audit(json_t *entry)
{
    store_op_t *op = store_op_custom(entry_run, NULL);
    op->kind = STORE_OP_AUDIT;
    op->audit = json_incref(entry);
    return op;
}

void store_op_set_audit(store_op_t *op, json_t *who)
{
    if (op->audit) json_decref(op->audit);
    op->audit = who ? json_incref(who) : NULL;
}

int store_audit_list(store_rtxn_t *rt, uint64_t after, size_t limit, store_audit_fn fn, void *ctx)
{
    if (after == UINT64_MAX) return 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(rt->txn, rt->st->dbi[DB_AUDIT], &cur);
    if (rc) return store_mdb_err(rc, "audit");
    uint8_t key[8];
    store_u64be(key, after + 1);
    MDB_val k = {8, key}, d;
    size_t n = 0;
    buf_t b = BUF_INIT;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0 && (!limit || n < limit);
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT), n++) {
        if (k.mv_size != 8 || d.mv_size < HASH_HEX + 2) {
            rc = err_set(KITH_ECORRUPT, "audit: malformed entry");
            break;
        }
        /* body without its closing brace, then ,"hash":"..."} */
        buf_reset(&b);
        buf_add(&b, (char *)d.mv_data + HASH_HEX, d.mv_size - HASH_HEX - 1);
        buf_adds(&b, ",\"hash\":\"");
        buf_add(&b, d.mv_data, HASH_HEX);
        buf_adds(&b, "\"}");
        rc = fn(ctx, load_u64be(k.mv_data), b.p, b.len);
        if (rc) break;
    }
    mdb_cursor_close(cur);
    buf_free(&b);
    if (rc == MDB_NOTFOUND) rc = 0;
    return store_rc(rc, "audit");
}

int store_audit_verify(store_t *st, MDB_txn *txn, uint64_t *count,
                       void (*problem)(void *, const char *), void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->dbi[DB_AUDIT], &cur);
    if (rc) return store_mdb_err(rc, "audit");
    MDB_val k, d;
    char prev[HASH_HEX + 1], hash[HASH_HEX + 1], msg[256];
    memcpy(prev, zero_hash, sizeof prev);
    uint64_t expect = 1;
    *count = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        (*count)++;
        uint64_t seq = k.mv_size == 8 ? load_u64be(k.mv_data) : 0;
        if (seq != expect) {
            snprintf(msg, sizeof msg, "audit: entry %llu where %llu was expected (gap or reorder)",
                     (unsigned long long)seq, (unsigned long long)expect);
            problem(ctx, msg);
        }
        expect = seq + 1;
        if (d.mv_size < HASH_HEX + 2) {
            snprintf(msg, sizeof msg, "audit: entry %llu is truncated", (unsigned long long)seq);
            problem(ctx, msg);
            continue;
        }
        const char *body = (const char *)d.mv_data + HASH_HEX;
        size_t bl = d.mv_size - HASH_HEX;
        const char *pp = memmem(body, bl, "\"prev\":\"", 8);
        if (!pp || (size_t)(pp - body) + 8 + HASH_HEX > bl || memcmp(pp + 8, prev, HASH_HEX) != 0) {
            snprintf(msg, sizeof msg, "audit: entry %llu does not chain to the entry before it",
                     (unsigned long long)seq);
            problem(ctx, msg);
        }
        chain_hash(pp ? pp + 8 : prev, body, bl, hash);
        if (memcmp(hash, d.mv_data, HASH_HEX) != 0) {
            snprintf(msg, sizeof msg, "audit: entry %llu was altered (hash mismatch)",
                     (unsigned long long)seq);
            problem(ctx, msg);
        }
        memcpy(prev, d.mv_data, HASH_HEX);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, "audit");
}
