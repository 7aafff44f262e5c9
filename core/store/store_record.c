/*
 * store_record: the stored form of a record and reads by id.
 *
 *   0  u8  format (1)       1 u8 flags (0)     2 u16 reserved
 *   4  u32 CRC-32C over the key (collection id + record id), bytes 8..31 and
 *          the JSON payload — so a record copied under another key fails too
 *   8  u64 version           16 i64 created µs     24 i64 updated µs   (big-endian)
 *   32 compact JSON object of the fields
 */
#include "store/store_int.h"

#include "base/crc32c.h"
#include "base/json.h"
#include "base/timeutil.h"

#include <string.h>

static uint32_t rec_crc(uint32_t coll_id, const kith_id_t *id, const uint8_t *hdr_tail,
                        const char *json, size_t json_len)
{
    uint8_t key[RKEY_LEN];
    store_rkey(key, coll_id, id);
    uint32_t c = crc32c(0, key, RKEY_LEN);
    c = crc32c(c, hdr_tail, REC_HDR_LEN - 8);
    return crc32c(c, json, json_len);
}

void store_rec_encode(buf_t *out, uint32_t coll_id, const kith_id_t *id, uint64_t version,
                      int64_t created_us, int64_t updated_us, const char *json, size_t json_len)
{
    buf_reset(out);
    buf_reserve(out, REC_HDR_LEN + json_len);
    uint8_t *h = (uint8_t *)out->p;
    memset(h, 0, REC_HDR_LEN);
    h[0] = REC_FORMAT;
    store_u64be(h + 8, version);
    store_u64be(h + 16, (uint64_t)created_us);
    store_u64be(h + 24, (uint64_t)updated_us);
    store_u32be(h + 4, rec_crc(coll_id, id, h + 8, json, json_len));
    memcpy(h + REC_HDR_LEN, json, json_len);
    out->len = REC_HDR_LEN + json_len;
    out->p[out->len] = '\0';
}

static int rec_bad(const store_coll_t *c, const kith_id_t *id, const char *why)
{
    char ids[ID_TEXT_LEN + 1];
    id_encode(id, ids);
    return err_set(KITH_ECORRUPT, "record %s/%s: %s", c->name, ids, why);
}

int store_rec_decode(const store_coll_t *c, const kith_id_t *id, const MDB_val *v,
                     store_record_t *rec)
{
    const uint8_t *h = v->mv_data;
    if (v->mv_size < REC_HDR_LEN + 2) return rec_bad(c, id, "truncated");
    if (h[0] != REC_FORMAT) return rec_bad(c, id, "unknown record format");
    const char *json = (const char *)h + REC_HDR_LEN;
    size_t json_len = v->mv_size - REC_HDR_LEN;
    if (load_u32be(h + 4) != rec_crc(c->id, id, h + 8, json, json_len))
        return rec_bad(c, id, "checksum mismatch");
    rec->id = *id;
    rec->coll = c;
    rec->version = load_u64be(h + 8);
    rec->created_us = (int64_t)load_u64be(h + 16);
    rec->updated_us = (int64_t)load_u64be(h + 24);
    rec->json = json;
    rec->json_len = json_len;
    return 0;
}

int store_rec_get(store_t *st, MDB_txn *txn, const store_coll_t *c, const kith_id_t *id,
                  store_record_t *rec)
{
    uint8_t key[RKEY_LEN];
    store_rkey(key, c->id, id);
    MDB_val k = {RKEY_LEN, key}, d;
    int rc = mdb_get(txn, st->dbi[DB_RECORDS], &k, &d);
    if (rc == MDB_NOTFOUND) {
        char ids[ID_TEXT_LEN + 1];
        id_encode(id, ids);
        return err_set(KITH_ENOTFOUND, "%s/%s: no such record", c->name, ids);
    }
    if (rc) return store_mdb_err(rc, c->name);
    return store_rec_decode(c, id, &d, rec);
}

int store_get(store_rtxn_t *rt, const char *coll, const kith_id_t *id, store_record_t *rec)
{
    const store_coll_t *c = store_schema_coll(rt->schema, coll);
    if (!c) return err_set(KITH_ENOTFOUND, "no collection '%s'", coll);
    return store_rec_get(rt->st, rt->txn, c, id, rec);
}

int store_wtxn_get(store_wtxn_t *w, const char *coll, const kith_id_t *id, store_record_t *rec)
{
    const store_coll_t *c = store_schema_coll(w->schema, coll);
    if (!c) return err_set(KITH_ENOTFOUND, "no collection '%s'", coll);
    return store_rec_get(w->st, w->txn, c, id, rec);
}

const store_schema_t *store_wtxn_schema(const store_wtxn_t *w)
{
    return w->schema;
}

int64_t store_wtxn_now(const store_wtxn_t *w)
{
    return w->now_us;
}

void store_record_render(buf_t *b, const store_record_t *rec)
{
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(&rec->id, ids);
    buf_reserve(b, rec->json_len + 128);
    buf_add(b, "{\"id\":\"", 7);
    buf_add(b, ids, ID_TEXT_LEN);
    buf_addf(b, "\",\"version\":%llu,\"created_at\":\"", (unsigned long long)rec->version);
    buf_add(b, ts, time_fmt_rfc3339(rec->created_us, ts, sizeof ts, 6));
    buf_add(b, "\",\"updated_at\":\"", 16);
    buf_add(b, ts, time_fmt_rfc3339(rec->updated_us, ts, sizeof ts, 6));
    buf_addc(b, '"');
    /* Splice the stored object's members after ours: skip its '{'. */
    if (rec->json_len > 2) buf_addc(b, ',');
    buf_add(b, rec->json + 1, rec->json_len - 1);
}

json_t *store_record_fields(const store_record_t *rec)
{
    return json_parse(rec->json, rec->json_len);
}

int store_count(store_rtxn_t *rt, const char *coll, uint64_t *count)
{
    const store_coll_t *c = store_schema_coll(rt->schema, coll);
    if (!c) return err_set(KITH_ENOTFOUND, "no collection '%s'", coll);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(rt->txn, rt->st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, coll);
    uint8_t start[4];
    store_u32be(start, c->id);
    MDB_val k = {4, start}, d;
    uint64_t n = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != c->id) break;
        n++;
    }
    mdb_cursor_close(cur);
    *count = n;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc, coll);
}
