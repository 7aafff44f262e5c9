/*
 * store_log: the change log and durable consumer cursors.
 *
 * Every create, update and delete appends one entry in the same transaction
 * as the change, so the log is exactly the committed history. Key: seq (u64
 * BE, dense from 1). Value:
 *   u8 format(1) u8 op u16 nchanged u32 collection id   u8[16] record id
 *   u64 version  i64 time µs   [format 2: u8 depth, u8 len + origin,
 *   u8 len + event]   nchanged x (u8 len, name)   u32 len + JSON
 * where the JSON holds the previous values of the changed fields (updates),
 * the whole deleted record (deletes) or an event's payload, so consumers can
 * see what changed and a change can be undone. Origin names the handler that
 * wrote the change (empty for a client) and depth its cascade depth: the bus
 * uses both so a handler never sees its own writes and cascades end.
 * Format 1 entries (no origin, depth or event) are still read.
 */
#include "store/store_int.h"

#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <string.h>

#define LOG_FORMAT 2

static void add_short(buf_t *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 255) n = 255;
    buf_addc(b, (char)n);
    buf_add(b, s, n);
}

static int log_put(store_wtxn_t *w, buf_t *b)
{
    uint64_t seq = w->seq + 1;
    uint8_t key[8];
    store_u64be(key, seq);
    MDB_val k = {8, key}, d = {b->len, b->p};
    int rc = mdb_put(w->txn, w->st->dbi[DB_LOG], &k, &d, MDB_APPEND);
    buf_free(b);
    if (rc) return store_mdb_err(rc, "change log");
    w->seq = seq;
    return 0;
}

static void log_header(store_wtxn_t *w, buf_t *b, int op, uint32_t coll_id, const kith_id_t *id,
                       uint64_t version, size_t nchanged, const char *event)
{
    uint8_t h[40];
    h[0] = LOG_FORMAT;
    h[1] = (uint8_t)op;
    store_u16be(h + 2, (uint16_t)nchanged);
    store_u32be(h + 4, coll_id);
    memcpy(h + 8, id->b, ID_LEN);
    store_u64be(h + 24, version);
    store_u64be(h + 32, (uint64_t)w->now_us);
    buf_add(b, h, 40);
    buf_addc(b, (char)(w->depth > 255 ? 255 : w->depth));
    add_short(b, w->origin);
    add_short(b, event);
}

int store_wtxn_emit(store_wtxn_t *w, const char *event, const char *payload, size_t len)
{
    size_t n = event ? strlen(event) : 0;
    if (n == 0 || n > 200) return err_set(KITH_EINVAL, "an event name is 1 to 200 bytes");
    if (len > STORE_RECORD_MAX) return err_set(KITH_ELIMIT, "an event's payload is too large");
    buf_t b = BUF_INIT;
    kith_id_t none;
    memset(&none, 0, sizeof none);
    log_header(w, &b, STORE_CHANGE_EVENT, 0, &none, 0, 0, event);
    buf_add_u32be(&b, payload ? (uint32_t)len : 0);
    if (payload) buf_add(&b, payload, len);
    return log_put(w, &b);
}

int store_log_append(store_wtxn_t *w, int op, const store_coll_t *c, const kith_id_t *id,
                     uint64_t version, const char *const *changed, size_t nchanged,
                     const json_t *before)
{
    buf_t b = BUF_INIT;
    buf_reserve(&b, 256);
    log_header(w, &b, op, c->id, id, version, nchanged, NULL);
    for (size_t i = 0; i < nchanged; i++) {
        size_t n = strlen(changed[i]);
        buf_addc(&b, (char)n);
        buf_add(&b, changed[i], n);
    }
    size_t lenpos = b.len;
    buf_add_u32be(&b, 0);
    if (before) {
        json_write_value(&b, before);
        store_u32be(b.p + lenpos, (uint32_t)(b.len - lenpos - 4));
    }
    return log_put(w, &b);
}

/* A u8-length string at p[*o] into out (NUL-terminated), or NULL if empty. */
static int get_short(const uint8_t *p, size_t n, size_t *o, char out[256], const char **res)
{
    if (*o >= n) return err_set(KITH_ECORRUPT, "change log entry is truncated");
    size_t l = p[(*o)++];
    if (*o + l > n) return err_set(KITH_ECORRUPT, "change log entry is truncated");
    memcpy(out, p + *o, l);
    out[l] = '\0';
    *o += l;
    *res = l ? out : NULL;
    return 0;
}

static int log_decode(const store_schema_t *s, const MDB_val *k, const MDB_val *v,
                      store_change_t *ch, char names[][STORE_NAME_MAX])
{
    static _Thread_local char origin[256], event[256];
    const uint8_t *p = v->mv_data;
    size_t n = v->mv_size;
    if (k->mv_size != 8 || n < 44 || p[0] < 1 || p[0] > LOG_FORMAT)
        return err_set(KITH_ECORRUPT, "change log entry is malformed");
    ch->seq = load_u64be(k->mv_data);
    ch->op = p[1];
    ch->nchanged = load_u16be(p + 2);
    uint32_t coll_id = load_u32be(p + 4);
    const store_coll_t *c = store_schema_coll_by_id(s, coll_id);
    ch->coll = c ? c->name : "?";
    memcpy(ch->id.b, p + 8, ID_LEN);
    ch->version = load_u64be(p + 24);
    ch->time_us = (int64_t)load_u64be(p + 32);
    if (ch->nchanged > STORE_FIELDS_MAX)
        return err_set(KITH_ECORRUPT, "change log entry: too many fields");
    size_t o = 40;
    ch->depth = 0;
    ch->origin = ch->event = NULL;
    if (p[0] >= 2) {
        if (o >= n) return err_set(KITH_ECORRUPT, "change log entry is truncated");
        ch->depth = p[o++];
        int rc = get_short(p, n, &o, origin, &ch->origin);
        if (rc == 0) rc = get_short(p, n, &o, event, &ch->event);
        if (rc) return rc;
    }
    if (ch->op == STORE_CHANGE_EVENT) ch->coll = "_event";
    for (size_t i = 0; i < ch->nchanged; i++) {
        if (o >= n) return err_set(KITH_ECORRUPT, "change log entry is truncated");
        size_t l = p[o++];
        if (o + l > n || l >= STORE_NAME_MAX)
            return err_set(KITH_ECORRUPT, "change log entry is truncated");
        memcpy(names[i], p + o, l);
        names[i][l] = '\0';
        ch->changed[i] = names[i];
        o += l;
    }
    if (o + 4 > n) return err_set(KITH_ECORRUPT, "change log entry is truncated");
    uint32_t bl = load_u32be(p + o);
    o += 4;
    if (o + bl != n) return err_set(KITH_ECORRUPT, "change log entry has a bad length");
    ch->before = bl ? (const char *)p + o : NULL;
    ch->before_len = bl;
    return 0;
}

int store_changes(store_rtxn_t *rt, uint64_t after, size_t limit, store_change_fn fn, void *ctx)
{
    if (after == UINT64_MAX) return 0; /* after + 1 would wrap to the start */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(rt->txn, rt->st->dbi[DB_LOG], &cur);
    if (rc) return store_mdb_err(rc, "change log");
    uint8_t key[8];
    store_u64be(key, after + 1);
    MDB_val k = {8, key}, d;
    size_t n = 0;
    static _Thread_local char names[STORE_FIELDS_MAX][STORE_NAME_MAX];
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0 && (!limit || n < limit);
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT), n++) {
        store_change_t ch;
        rc = log_decode(rt->schema, &k, &d, &ch, names);
        if (rc == 0) rc = fn(ctx, &ch);
        if (rc) break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || rc == 0) return 0;
    return store_rc(rc, "change log");
}

uint64_t store_changes_last(store_rtxn_t *rt)
{
    MDB_cursor *cur;
    uint64_t last = 0;
    if (mdb_cursor_open(rt->txn, rt->st->dbi[DB_LOG], &cur)) return 0;
    MDB_val k, d;
    if (mdb_cursor_get(cur, &k, &d, MDB_LAST) == 0 && k.mv_size == 8) last = load_u64be(k.mv_data);
    mdb_cursor_close(cur);
    return last;
}

void store_change_render(buf_t *b, const store_change_t *ch)
{
    static const char *const ops[] = {"?", "create", "update", "delete", "event"};
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(&ch->id, ids);
    buf_addf(b, "{\"seq\":%llu,\"time\":\"", (unsigned long long)ch->seq);
    buf_add(b, ts, time_fmt_rfc3339(ch->time_us, ts, sizeof ts, 6));
    buf_addf(b, "\",\"op\":\"%s\",\"collection\":", ops[ch->op <= 4 ? ch->op : 0]);
    json_write_cstr(b, ch->coll);
    buf_addf(b, ",\"id\":\"%s\",\"version\":%llu,\"changed\":[", ids,
             (unsigned long long)ch->version);
    for (size_t i = 0; i < ch->nchanged; i++) {
        if (i) buf_addc(b, ',');
        json_write_cstr(b, ch->changed[i]);
    }
    buf_add(b, "]}", 2);
}

static int cursor_key(const char *consumer, MDB_val *k)
{
    size_t n = strlen(consumer);
    if (n == 0 || n > 200) return err_set(KITH_EINVAL, "a consumer name is 1 to 200 bytes");
    k->mv_size = n;
    k->mv_data = (void *)consumer;
    return 0;
}

int store_cursor_get(store_rtxn_t *rt, const char *consumer, uint64_t *seq)
{
    MDB_val k, d;
    int rc = cursor_key(consumer, &k);
    if (rc) return rc;
    rc = mdb_get(rt->txn, rt->st->dbi[DB_CURSORS], &k, &d);
    if (rc == MDB_NOTFOUND) {
        *seq = 0;
        return 0;
    }
    if (rc) return store_mdb_err(rc, "cursors");
    if (d.mv_size != 8) return err_set(KITH_ECORRUPT, "cursor %s: bad size", consumer);
    *seq = load_u64be(d.mv_data);
    return 0;
}

int store_log_cursor_put(store_wtxn_t *w, const char *consumer, uint64_t seq)
{
    MDB_val k;
    int rc = cursor_key(consumer, &k);
    if (rc) return rc;
    if (seq > w->seq)
        return err_set(KITH_EINVAL, "cursor %s: seq %llu is beyond the log's end (%llu)", consumer,
                       (unsigned long long)seq, (unsigned long long)w->seq);
    uint8_t v[8];
    store_u64be(v, seq);
    MDB_val d = {8, v};
    return store_mdb_err(mdb_put(w->txn, w->st->dbi[DB_CURSORS], &k, &d, 0), "cursors");
}
