/*
 * store_query: plans and runs queries over one collection.
 *
 * Access paths, best first: ids (id eq/in: direct reads), eq (one key of a
 * value index: ids in order), in (several keys merged by id), range (a span
 * of a value or prefix index in key order), scan (the collection by id). The
 * whole filter is always re-checked on each record, so an index only has to
 * give a superset in the right order (keys longer than 400 bytes are cut).
 *
 * Pagination is keyset: the opaque cursor holds the access path, the last
 * examined (key, id) and a fingerprint of the query. A page resumes strictly
 * after that position, so records inserted or deleted meanwhile never cause a
 * duplicate or a skip of a record that existed throughout.
 */
#include "store/store_int.h"

#include "base/codec.h"
#include "base/json.h"
#include "base/mem.h"

#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_LIMIT_DEFAULT 50
#define QUERY_LIMIT_MAX     10000
#define CURSOR_VERSION      1
#define CURSOR_MAX          600

enum plan_kind { PLAN_SCAN = 1, PLAN_IDS, PLAN_EQ, PLAN_IN, PLAN_RANGE };
static const char *const plan_names[] = {"?", "scan", "ids", "eq", "in", "range"};

typedef struct plan {
    int kind;
    int desc;
    const store_field_t *field; /* index owner (eq, in, range) */
    int prefix;                 /* range over the prefix index */
    uint32_t index_id;
    const fnode_t *term; /* eq/in/ids: the term giving the keys */
    /* range bounds: full index keys; hi_prefix: every key starting with hi */
    buf_t lo, hi;
    int lo_incl, hi_incl, hi_prefix;
    int multi;            /* range over an array field: dedupe records */
    const fnode_t *exact; /* a term the path proves for every candidate: not re-checked */
} plan_t;

typedef struct qrun {
    store_rtxn_t *rt;
    const store_coll_t *c;
    const store_filter_t *filter;
    const plan_t *plan;
    store_row_fn fn;
    void *ctx;
    size_t limit, n, examined, examine_max;
    int full, more;
    int parse; /* candidates' fields are needed (residual filter or dedupe) */
    buf_t last_key;
    kith_id_t last_id;
    int have_last;
    keyset_t ks; /* range dedupe scratch */
} qrun_t;

static int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

/* ---- planning ---- */

static void collect_terms(const fnode_t *n, const fnode_t **out, size_t *k, size_t cap)
{
    if (n->kind == FN_AND) {
        for (size_t i = 0; i < n->nkids; i++)
            collect_terms(n->kids[i], out, k, cap);
    } else if (*k < cap && (n->kind == FN_CMP || n->kind == FN_IN || n->kind == FN_PREFIX)) {
        out[(*k)++] = n;
    }
}

static void bound_key(buf_t *b, uint32_t index_id, const char *v, size_t vl)
{
    buf_reset(b);
    buf_add_u32be(b, index_id);
    buf_addc(b, IKEY_TAG_VALUE);
    buf_add(b, v, vl > IKEY_VALUE_MAX ? IKEY_VALUE_MAX : vl);
}

/* Narrows p's range with the range terms on field f (value index). */
static void range_from_terms(plan_t *p, const fnode_t **terms, size_t nt)
{
    for (size_t i = 0; i < nt; i++) {
        const fnode_t *t = terms[i];
        if (t->field != p->field || t->kind != FN_CMP) continue;
        const char *v = t->vals.p;
        size_t vl = t->vlen[0];
        int cut = vl > IKEY_VALUE_MAX; /* truncated operand: widen to stay a superset */
        buf_t k = BUF_INIT;
        bound_key(&k, p->index_id, v, vl);
        int lo = t->cmp == CMP_GT || t->cmp == CMP_GTE || t->cmp == CMP_EQ;
        int hi = t->cmp == CMP_LT || t->cmp == CMP_LTE || t->cmp == CMP_EQ;
        if (lo) {
            int incl = t->cmp != CMP_GT || cut;
            int c = kcmp(k.p, k.len, p->lo.p, p->lo.len);
            if (c > 0 || (c == 0 && !incl)) {
                buf_reset(&p->lo);
                buf_add(&p->lo, k.p, k.len);
                p->lo_incl = incl;
            }
        }
        if (hi) {
            int incl = t->cmp != CMP_LT || cut;
            /* hi is initially "every key of the index" (a prefix bound). */
            int c = p->hi_prefix ? -1 : kcmp(k.p, k.len, p->hi.p, p->hi.len);
            if (c < 0 || (c == 0 && !incl)) {
                buf_reset(&p->hi);
                buf_add(&p->hi, k.p, k.len);
                p->hi_incl = incl;
                p->hi_prefix = cut;
            }
        }
        buf_free(&k);
    }
}

static void plan_range_init(plan_t *p, const store_field_t *f, int prefix)
{
    p->kind = PLAN_RANGE;
    p->field = f;
    p->prefix = prefix;
    p->index_id = prefix ? f->prefix_id : f->index_id;
    p->multi = f->type == ST_ARRAY;
    buf_reset(&p->lo);
    buf_add_u32be(&p->lo, p->index_id); /* includes NULL entries */
    p->lo_incl = 1;
    buf_reset(&p->hi);
    buf_add_u32be(&p->hi, p->index_id);
    p->hi_incl = 1;
    p->hi_prefix = 1;
}

static void plan_prefix(plan_t *p, const fnode_t *t, int use_prefix_index)
{
    plan_range_init(p, t->field, use_prefix_index);
    bound_key(&p->lo, p->index_id, t->vals.p, t->vlen[0]);
    p->lo_incl = 1;
    bound_key(&p->hi, p->index_id, t->vals.p, t->vlen[0]);
    p->hi_prefix = 1;
}

static int value_index_ready(const store_field_t *f)
{
    return f && !f->pseudo && f->index_id && f->index_state == IDX_READY;
}

static int parse_sort(const store_coll_t *c, const char *sort, const store_field_t **sf, int *desc)
{
    *sf = NULL;
    *desc = 0;
    if (!sort || !*sort) return 0;
    if (*sort == '-' || *sort == '+') *desc = *sort++ == '-';
    const store_field_t *f = store_coll_field_or_pseudo(c, sort);
    if (!f) return err_set(KITH_EINVAL, "sort: no field '%s' in %s", sort, c->name);
    if (f->pseudo == SP_ID || f->pseudo == SP_CREATED_AT) return 0; /* id order */
    if (f->pseudo || !value_index_ready(f))
        return err_set(KITH_EINVAL,
                       "sort: '%s' is not indexed (sort by id, created_at or an "
                       "indexed field)",
                       sort);
    if (f->type == ST_ARRAY) return err_set(KITH_EINVAL, "sort: '%s' is an array", sort);
    *sf = f;
    return 0;
}

/* The term an ids, eq or in path proves exactly: every candidate satisfies it
 * (index keys hold whole values unless cut at IKEY_VALUE_MAX; e-mail keys and
 * operands are folded alike; an array has one entry per distinct element). */
static const fnode_t *plan_exact_term(const plan_t *p)
{
    if (p->kind != PLAN_IDS && p->kind != PLAN_EQ && p->kind != PLAN_IN) return NULL;
    const fnode_t *t = p->term;
    for (size_t i = 0; i < t->nvals; i++)
        if (t->vlen[i] >= IKEY_VALUE_MAX) return NULL; /* a cut key may be a longer value */
    return t;
}

static int plan_make(const store_coll_t *c, const store_filter_t *flt, const char *sort, plan_t *p)
{
    const store_field_t *sf;
    int desc;
    int rc = parse_sort(c, sort, &sf, &desc);
    if (rc) return rc;
    p->desc = desc;
    const fnode_t *terms[64];
    size_t nt = 0;
    collect_terms(flt->root, terms, &nt, ARRAY_LEN(terms));
    if (sf) {
        plan_range_init(p, sf, 0);
        range_from_terms(p, terms, nt);
        return 0;
    }
    /* Id order (asc or desc): pick the best path that yields ids in order; with
     * no sort requested, a range path is allowed too (results in key order). */
    int best = 0;
    int sorted = sort && *sort; /* by id: a range path would give key order */
    p->kind = PLAN_SCAN;
    for (size_t i = 0; i < nt; i++) {
        const fnode_t *t = terms[i];
        const store_field_t *f = t->field;
        int score = 0, kind = 0, pfx = 0;
        if (f->pseudo == SP_ID && t->kind == FN_CMP && t->cmp == CMP_EQ) {
            score = 300;
            kind = PLAN_IDS;
        } else if (f->pseudo == SP_ID && t->kind == FN_IN) {
            score = 250;
            kind = PLAN_IDS;
        } else if (value_index_ready(f) && t->kind == FN_CMP && t->cmp == CMP_EQ) {
            score = (f->flags & SF_UNIQUE) ? 200 : 100;
            kind = PLAN_EQ;
        } else if (value_index_ready(f) && t->kind == FN_IN && t->nvals <= 64) {
            score = 80;
            kind = PLAN_IN;
        } else if (!sorted && t->kind == FN_PREFIX && f->prefix_id &&
                   f->prefix_state == IDX_READY) {
            score = 60;
            kind = PLAN_RANGE;
            pfx = 1;
        } else if (!sorted && t->kind == FN_PREFIX && value_index_ready(f) &&
                   (f->type == ST_EMAIL || (f->type == ST_ARRAY && f->item_type == ST_EMAIL))) {
            score = 60; /* e-mail keys are folded already */
            kind = PLAN_RANGE;
        } else if (!sorted && value_index_ready(f) && t->kind == FN_CMP && t->cmp != CMP_NE) {
            score = 40;
            kind = PLAN_RANGE;
        }
        if (score <= best) continue;
        best = score;
        p->kind = kind;
        p->term = t;
        p->field = f->pseudo ? NULL : f;
        p->index_id = f->pseudo ? 0 : f->index_id;
        p->multi = f->type == ST_ARRAY;
        if (kind == PLAN_RANGE) {
            if (t->kind == FN_PREFIX) {
                plan_prefix(p, t, pfx);
            } else {
                plan_range_init(p, f, 0);
                /* exclude NULL entries: a comparison never matches a missing field */
                bound_key(&p->lo, p->index_id, "", 0);
                /* Each term on an array may hold through a different element
                 * (["z","a"] is both > "b" and < "f"): only the chosen term may
                 * narrow the span, or the index would miss such records. */
                if (f->type == ST_ARRAY)
                    range_from_terms(p, &t, 1);
                else
                    range_from_terms(p, terms, nt);
            }
        }
    }
    p->exact = plan_exact_term(p);
    return 0;
}

/* ---- cursors ---- */

static void query_fingerprint(const store_query_t *q, uint8_t out[8])
{
    uint8_t h[32];
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts_ret(&c, 0);
    mbedtls_sha256_update_ret(&c, (const uint8_t *)q->coll, strlen(q->coll) + 1);
    if (q->filter) {
        char *s = json_dumps(q->filter, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (s) {
            mbedtls_sha256_update_ret(&c, (const uint8_t *)s, strlen(s));
            free(s);
        }
    }
    mbedtls_sha256_update_ret(&c, (const uint8_t *)"\0", 1);
    if (q->sort) mbedtls_sha256_update_ret(&c, (const uint8_t *)q->sort, strlen(q->sort));
    mbedtls_sha256_finish_ret(&c, h);
    mbedtls_sha256_free(&c);
    memcpy(out, h, 8);
}

static char *cursor_encode(const store_query_t *q, const plan_t *p, const qrun_t *r)
{
    buf_t b = BUF_INIT;
    uint8_t fp[8];
    query_fingerprint(q, fp);
    buf_addc(&b, CURSOR_VERSION);
    buf_addc(&b, (char)p->kind);
    buf_addc(&b, (char)p->desc);
    buf_add_u32be(&b, p->index_id);
    buf_add(&b, fp, 8);
    buf_add_u16be(&b, (uint16_t)r->last_key.len);
    buf_add(&b, r->last_key.p, r->last_key.len);
    buf_add(&b, r->last_id.b, ID_LEN);
    char *out = xmalloc(b64url_len(b.len) + 1);
    b64url_encode(b.p, b.len, out);
    buf_free(&b);
    return out;
}

typedef struct resume {
    int on;
    uint8_t key[IKEY_MAX + 8];
    size_t klen;
    kith_id_t id;
} resume_t;

static int cursor_decode(const store_query_t *q, const plan_t *p, resume_t *rs)
{
    uint8_t b[CURSOR_MAX];
    size_t cl = strlen(q->cursor);
    long n = cl <= b64url_len(CURSOR_MAX) ? b64url_decode(q->cursor, cl, b, sizeof b) : -1;
    if (n < 1 + 1 + 1 + 4 + 8 + 2 + ID_LEN || b[0] != CURSOR_VERSION)
        return err_set(KITH_EINVAL, "cursor: not a cursor of this query");
    uint8_t fp[8];
    query_fingerprint(q, fp);
    if (memcmp(b + 7, fp, 8) != 0)
        return err_set(KITH_EINVAL, "cursor: it belongs to a different query (filter or sort)");
    if (b[1] != p->kind || b[2] != p->desc || load_u32be(b + 3) != p->index_id)
        return err_set(KITH_EINVAL, "cursor: the collection's indexes changed; start again");
    size_t kl = load_u16be(b + 15);
    if ((size_t)n != 17 + kl + ID_LEN || kl > sizeof rs->key)
        return err_set(KITH_EINVAL, "cursor: malformed");
    memcpy(rs->key, b + 17, kl);
    rs->klen = kl;
    memcpy(rs->id.b, b + 17 + kl, ID_LEN);
    rs->on = 1;
    return 0;
}

/* ---- running ---- */

/* For a range over an array field: true if key is the record's first key (in
 * scan order) inside the range, so each record is visited once. */
static int range_first_for_record(qrun_t *r, const json_t *fields, const void *key, size_t klen);

static int in_hi(const plan_t *p, const void *k, size_t kl)
{
    if (p->hi_prefix) {
        /* k's first len(hi) bytes <= hi: k starts with hi or sorts before it */
        size_t n = kl < p->hi.len ? kl : p->hi.len;
        return memcmp(k, p->hi.p, n) <= 0;
    }
    int c = kcmp(k, kl, p->hi.p, p->hi.len);
    return c < 0 || (c == 0 && p->hi_incl);
}

static int in_lo(const plan_t *p, const void *k, size_t kl)
{
    int c = kcmp(k, kl, p->lo.p, p->lo.len);
    return c > 0 || (c == 0 && p->lo_incl);
}

/* Visits one candidate. Returns 0 to go on, 1 to stop, or an error. */
static int visit(qrun_t *r, const void *key, size_t klen, const kith_id_t *id, const MDB_val *rv)
{
    if (r->full || (r->examine_max && r->examined >= r->examine_max)) {
        r->more = 1;
        return 1;
    }
    r->examined++;
    store_record_t rec;
    MDB_val d;
    int rc;
    if (!rv) {
        uint8_t rk[RKEY_LEN];
        store_rkey(rk, r->c->id, id);
        MDB_val k = {RKEY_LEN, rk};
        rc = mdb_get(r->rt->txn, r->rt->st->dbi[DB_RECORDS], &k, &d);
        if (rc == MDB_NOTFOUND) goto seen; /* kith check reports a dangling entry */
        if (rc) return store_mdb_err(rc, r->c->name);
        rv = &d;
    }
    rc = store_rec_decode(r->c, id, rv, &rec);
    if (rc) return rc;
    json_t *fields = NULL;
    if (r->parse) {
        fields = json_parse(rec.json, rec.json_len);
        if (!fields) return err_set(KITH_ECORRUPT, "%s: stored record is not JSON", r->c->name);
    }
    int ok = 1;
    if (r->plan->kind == PLAN_RANGE && r->plan->multi)
        ok = range_first_for_record(r, fields, key, klen);
    if (ok) ok = store_filter_match_skip(r->filter, r->plan->exact, &rec, fields);
    if (fields) json_decref(fields);
    if (ok < 0) return ok;
    if (ok) {
        rc = r->fn(r->ctx, &rec);
        if (rc) return rc;
        if (++r->n >= r->limit) r->full = 1;
    }
seen:
    buf_reset(&r->last_key);
    buf_add(&r->last_key, key, klen);
    r->last_id = *id;
    r->have_last = 1;
    return 0;
}

static int range_first_for_record(qrun_t *r, const json_t *fields, const void *key, size_t klen)
{
    const plan_t *p = r->plan;
    if (store_index_keys(p->field, p->prefix, p->index_id, fields, &r->ks)) return 1;
    for (size_t i = 0; i < r->ks.n; i++) {
        const char *k = r->ks.data.p + r->ks.off[i];
        size_t kl = r->ks.len[i];
        if (!in_lo(p, k, kl) || !in_hi(p, k, kl)) continue;
        int c = kcmp(k, kl, key, klen);
        if (p->desc ? c > 0 : c < 0) return 0; /* an earlier key of this record qualifies */
    }
    return 1;
}

static int run_scan(qrun_t *r, const resume_t *rs)
{
    const plan_t *p = r->plan;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(r->rt->txn, r->rt->st->dbi[DB_RECORDS], &cur);
    if (rc) return store_mdb_err(rc, "records");
    uint8_t start[RKEY_LEN];
    MDB_val k, d;
    uint32_t cid = r->c->id;
    if (!p->desc) {
        memset(start, 0, sizeof start);
        store_u32be(start, cid);
        if (rs->on) memcpy(start + 4, rs->id.b, ID_LEN);
        k.mv_size = RKEY_LEN;
        k.mv_data = start;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc == 0 && rs->on && memcmp(k.mv_data, start, RKEY_LEN) == 0)
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    } else {
        memset(start, 0xff, sizeof start);
        store_u32be(start, cid);
        if (rs->on) memcpy(start + 4, rs->id.b, ID_LEN);
        k.mv_size = RKEY_LEN;
        k.mv_data = start;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
        else if (rc == 0 && (rs->on || memcmp(k.mv_data, start, RKEY_LEN) != 0))
            rc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
    }
    while (rc == 0) {
        if (k.mv_size != RKEY_LEN || load_u32be(k.mv_data) != cid) break;
        kith_id_t id;
        memcpy(id.b, (uint8_t *)k.mv_data + 4, ID_LEN);
        rc = visit(r, "", 0, &id, &d);
        if (rc) break;
        rc = mdb_cursor_get(cur, &k, &d, p->desc ? MDB_PREV : MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 1 ? 0 : store_rc(rc, "records");
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

static int run_ids(qrun_t *r, const resume_t *rs)
{
    const fnode_t *t = r->plan->term;
    size_t n = t->nvals, m = 0;
    kith_id_t *ids = xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        memcpy(ids[i].b, t->vals.p + t->voff[i], ID_LEN);
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || memcmp(&ids[m - 1], &ids[i], ID_LEN) != 0) ids[m++] = ids[i];
    int rc = 0;
    for (size_t j = 0; j < m && rc == 0; j++) {
        const kith_id_t *id = &ids[r->plan->desc ? m - 1 - j : j];
        if (rs->on) {
            int c = memcmp(id->b, rs->id.b, ID_LEN);
            if (r->plan->desc ? c >= 0 : c <= 0) continue;
        }
        rc = visit(r, "", 0, id, NULL);
    }
    free(ids);
    return rc == 1 ? 0 : rc;
}

/* Positions cur on key's first id after (asc) or before (desc) the resume id. */
static int dup_start(MDB_cursor *cur, MDB_val *k, MDB_val *d, int desc, const kith_id_t *after)
{
    MDB_val key = *k;
    int rc;
    if (!after) {
        rc = mdb_cursor_get(cur, k, d, MDB_SET);
        if (rc == 0 && desc) rc = mdb_cursor_get(cur, k, d, MDB_LAST_DUP);
        return rc;
    }
    MDB_val dv = {ID_LEN, (void *)after->b};
    rc = mdb_cursor_get(cur, k, &dv, MDB_GET_BOTH_RANGE);
    if (!desc) {
        if (rc == 0 && memcmp(dv.mv_data, after->b, ID_LEN) == 0)
            rc = mdb_cursor_get(cur, k, &dv, MDB_NEXT_DUP);
        *d = dv;
        return rc;
    }
    if (rc == 0) {
        rc = mdb_cursor_get(cur, k, &dv, MDB_PREV_DUP);
    } else if (rc == MDB_NOTFOUND) {
        *k = key;
        rc = mdb_cursor_get(cur, k, &dv, MDB_SET);
        if (rc == 0) rc = mdb_cursor_get(cur, k, &dv, MDB_LAST_DUP);
    }
    *d = dv;
    return rc;
}

static int run_eq(qrun_t *r, const resume_t *rs)
{
    const plan_t *p = r->plan;
    const fnode_t *t = p->term;
    size_t nk = t->nvals;
    MDB_cursor **curs = xcalloc(nk, sizeof *curs);
    MDB_val *keys = xcalloc(nk, sizeof *keys), *cur_d = xcalloc(nk, sizeof *cur_d);
    buf_t *kb = xcalloc(nk, sizeof *kb);
    int *live = xcalloc(nk, sizeof *live);
    int rc = 0;
    for (size_t i = 0; i < nk && rc == 0; i++) {
        bound_key(&kb[i], p->index_id, t->vals.p + t->voff[i], t->vlen[i]);
        rc = mdb_cursor_open(r->rt->txn, r->rt->st->dbi[DB_INDEX], &curs[i]);
        if (rc) break;
        keys[i].mv_size = kb[i].len;
        keys[i].mv_data = kb[i].p;
        int src = dup_start(curs[i], &keys[i], &cur_d[i], p->desc, rs->on ? &rs->id : NULL);
        live[i] = src == 0;
        if (src && src != MDB_NOTFOUND) rc = src;
    }
    /* Merge the id-ordered dup lists; equal ids (arrays, repeated values) once. */
    while (rc == 0) {
        int best = -1;
        for (size_t i = 0; i < nk; i++) {
            if (!live[i]) continue;
            if (best < 0) {
                best = (int)i;
                continue;
            }
            int c = memcmp(cur_d[i].mv_data, cur_d[best].mv_data, ID_LEN);
            if (p->desc ? c > 0 : c < 0) best = (int)i;
        }
        if (best < 0) break;
        kith_id_t id;
        memcpy(id.b, cur_d[best].mv_data, ID_LEN);
        for (size_t i = 0; i < nk; i++) {
            if (!live[i] || memcmp(cur_d[i].mv_data, id.b, ID_LEN) != 0) continue;
            int arc =
                mdb_cursor_get(curs[i], &keys[i], &cur_d[i], p->desc ? MDB_PREV_DUP : MDB_NEXT_DUP);
            live[i] = arc == 0;
            if (arc && arc != MDB_NOTFOUND) rc = arc;
        }
        if (rc) break;
        rc = visit(r, "", 0, &id, NULL);
    }
    for (size_t i = 0; i < nk; i++) {
        if (curs[i]) mdb_cursor_close(curs[i]);
        buf_free(&kb[i]);
    }
    free(curs);
    free(keys);
    free(cur_d);
    free(kb);
    free(live);
    return rc == 1 ? 0 : store_rc(rc, "index");
}

static int range_start(const plan_t *p, MDB_cursor *cur, MDB_val *k, MDB_val *d, const resume_t *rs)
{
    int rc;
    if (rs->on) {
        k->mv_size = rs->klen;
        k->mv_data = (void *)rs->key;
        MDB_val key = *k;
        MDB_val dv = {ID_LEN, (void *)rs->id.b};
        rc = mdb_cursor_get(cur, k, &dv, MDB_GET_BOTH_RANGE);
        if (!p->desc) {
            if (rc == 0 && memcmp(dv.mv_data, rs->id.b, ID_LEN) == 0)
                rc = mdb_cursor_get(cur, k, &dv, MDB_NEXT);
            if (rc == MDB_NOTFOUND) {
                *k = key;
                rc = mdb_cursor_get(cur, k, &dv, MDB_SET_RANGE);
                if (rc == 0 && kcmp(k->mv_data, k->mv_size, key.mv_data, key.mv_size) == 0)
                    rc = mdb_cursor_get(cur, k, &dv, MDB_NEXT_NODUP);
            }
        } else {
            if (rc == 0) {
                rc = mdb_cursor_get(cur, k, &dv, MDB_PREV);
            } else if (rc == MDB_NOTFOUND) {
                *k = key;
                rc = mdb_cursor_get(cur, k, &dv, MDB_SET_RANGE);
                if (rc == 0 && kcmp(k->mv_data, k->mv_size, key.mv_data, key.mv_size) == 0)
                    rc = mdb_cursor_get(cur, k, &dv, MDB_LAST_DUP);
                else if (rc == 0)
                    rc = mdb_cursor_get(cur, k, &dv, MDB_PREV);
                else if (rc == MDB_NOTFOUND)
                    rc = mdb_cursor_get(cur, k, &dv, MDB_LAST);
            }
        }
        *d = dv;
        return rc;
    }
    if (!p->desc) {
        k->mv_size = p->lo.len;
        k->mv_data = p->lo.p;
        rc = mdb_cursor_get(cur, k, d, MDB_SET_RANGE);
        while (rc == 0 && !p->lo_incl && kcmp(k->mv_data, k->mv_size, p->lo.p, p->lo.len) == 0)
            rc = mdb_cursor_get(cur, k, d, MDB_NEXT_NODUP);
        return rc;
    }
    /* Descending: start at the last key within hi. */
    uint8_t succ[IKEY_MAX + 8];
    size_t sl = p->hi.len;
    memcpy(succ, p->hi.p, sl);
    if (p->hi_prefix) {
        /* the first key after every key starting with hi */
        while (sl > 0 && succ[sl - 1] == 0xff)
            sl--;
        if (sl > 0) succ[sl - 1]++;
    }
    k->mv_size = sl;
    k->mv_data = succ;
    rc = sl ? mdb_cursor_get(cur, k, d, MDB_SET_RANGE) : MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) return mdb_cursor_get(cur, k, d, MDB_LAST);
    if (rc) return rc;
    if (!p->hi_prefix && p->hi_incl && kcmp(k->mv_data, k->mv_size, p->hi.p, p->hi.len) == 0)
        return mdb_cursor_get(cur, k, d, MDB_LAST_DUP);
    return mdb_cursor_get(cur, k, d, MDB_PREV);
}

static int run_range(qrun_t *r, const resume_t *rs)
{
    const plan_t *p = r->plan;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(r->rt->txn, r->rt->st->dbi[DB_INDEX], &cur);
    if (rc) return store_mdb_err(rc, "index");
    MDB_val k, d;
    rc = range_start(p, cur, &k, &d, rs);
    while (rc == 0) {
        if (p->desc ? !in_lo(p, k.mv_data, k.mv_size) : !in_hi(p, k.mv_data, k.mv_size)) break;
        if (in_lo(p, k.mv_data, k.mv_size) && in_hi(p, k.mv_data, k.mv_size) &&
            d.mv_size == ID_LEN) {
            kith_id_t id;
            memcpy(id.b, d.mv_data, ID_LEN);
            rc = visit(r, k.mv_data, k.mv_size, &id, NULL);
            if (rc) break;
        }
        rc = mdb_cursor_get(cur, &k, &d, p->desc ? MDB_PREV : MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 1 ? 0 : store_rc(rc, "index");
}

static void plan_free(plan_t *p)
{
    buf_free(&p->lo);
    buf_free(&p->hi);
}

static int query_prepare(store_rtxn_t *rt, const store_query_t *q, const store_coll_t **c,
                         store_filter_t **f, plan_t *p)
{
    if (!q->coll) return err_set(KITH_EINVAL, "query: no collection");
    *c = store_schema_coll(rt->schema, q->coll);
    if (!*c) return err_set(KITH_ENOTFOUND, "no collection '%s'", q->coll);
    int rc = store_filter_compile(*c, q->filter, f);
    if (rc) return rc;
    rc = plan_make(*c, *f, q->sort, p);
    if (rc) {
        store_filter_free(*f);
        *f = NULL;
    }
    return rc;
}

int store_query_all(store_rtxn_t *rt, const store_query_t *q, store_row_fn fn, void *ctx)
{
    store_query_t page = *q;
    if (!page.limit) page.limit = 1000;
    char *cursor = NULL;
    int rc;
    do {
        page.cursor = cursor;
        char *next = NULL;
        rc = store_query(rt, &page, fn, ctx, &next);
        free(cursor);
        cursor = next;
    } while (rc == 0 && cursor);
    free(cursor);
    return rc;
}

int store_query(store_rtxn_t *rt, const store_query_t *q, store_row_fn fn, void *ctx,
                char **next_cursor)
{
    *next_cursor = NULL;
    if (q->limit > QUERY_LIMIT_MAX)
        return err_set(KITH_ELIMIT, "limit: at most %d", QUERY_LIMIT_MAX);
    const store_coll_t *c = NULL;
    store_filter_t *f = NULL;
    plan_t p = {0};
    int rc = query_prepare(rt, q, &c, &f, &p);
    if (rc) {
        plan_free(&p);
        return rc;
    }
    resume_t rs = {0};
    if (q->cursor && *q->cursor) rc = cursor_decode(q, &p, &rs);
    qrun_t r = {.rt = rt, .c = c, .filter = f, .plan = &p, .fn = fn, .ctx = ctx};
    r.limit = q->limit ? q->limit : QUERY_LIMIT_DEFAULT;
    r.examine_max = q->examine_max;
    r.parse = store_filter_needs_fields_skip(f, p.exact) || (p.kind == PLAN_RANGE && p.multi);
    keyset_init(&r.ks);
    if (rc == 0) {
        switch (p.kind) {
        case PLAN_IDS:
            rc = run_ids(&r, &rs);
            break;
        case PLAN_EQ:
        case PLAN_IN:
            rc = run_eq(&r, &rs);
            break;
        case PLAN_RANGE:
            rc = run_range(&r, &rs);
            break;
        default:
            rc = run_scan(&r, &rs);
            break;
        }
    }
    if (rc == 0 && r.more && r.have_last) *next_cursor = cursor_encode(q, &p, &r);
    keyset_free(&r.ks);
    buf_free(&r.last_key);
    store_filter_free(f);
    plan_free(&p);
    return rc;
}

int store_query_plan(store_rtxn_t *rt, const store_query_t *q, buf_t *out)
{
    const store_coll_t *c = NULL;
    store_filter_t *f = NULL;
    plan_t p = {0};
    int rc = query_prepare(rt, q, &c, &f, &p);
    if (rc == 0) {
        buf_adds(out, plan_names[p.kind]);
        if (p.field) buf_addf(out, " %s%s", p.prefix ? "prefix:" : "", p.field->name);
        if (p.desc) buf_adds(out, " desc");
        store_filter_free(f);
    }
    plan_free(&p);
    return rc;
}
