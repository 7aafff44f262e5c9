/*
 * api_records: one record at a time — GET, POST, PATCH, PUT, DELETE on
 * /v1/{collection}[/{id}].
 *
 * Reads run on the loop thread in a short snapshot. Writes are store ops: the
 * caller's record scope is checked by a guard inside the write transaction
 * (so it cannot race with a reassignment), the write is audited in the same
 * transaction, and the answer goes out after the commit.
 */
#include "api/api_render.h"

#include "base/json.h"
#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_scope_guard(store_wtxn_t *w, store_op_t *op, const json_t *before, const json_t *after)
{
    api_guard_ctx_t *g = op->udata;
    if (!g || g->scope == SCOPE_ALL) return 0;
    const store_coll_t *c = store_schema_coll(store_wtxn_schema(w), op->coll);
    auth_who_t who = {g->user, g->team[0] ? g->team : NULL};
    if (c && before && !auth_scope_covers(g->scope, c, before, &who))
        return err_set(KITH_ENOTFOUND, "%s: no such record", op->coll);
    if (c && after && !auth_scope_covers(g->scope, c, after, &who))
        return err_set(KITH_EPERM,
                       "the record would be outside your scope (its owner or team is not yours)");
    return 0;
}

void api_guard_ctx_init(http_req_t *r, int scope, api_guard_ctx_t *g)
{
    api_req_t *q = api_req(r);
    memset(g, 0, sizeof *g);
    g->scope = scope;
    snprintf(g->user, sizeof g->user, "%s", q->who.user);
    snprintf(g->team, sizeof g->team, "%s", q->who.team);
}

static void op_prepare(http_req_t *r, store_op_t *op)
{
    api_guard_ctx_t *g = xmalloc(sizeof *g);
    api_guard_ctx_init(r, api_req(r)->scope, g);
    op->udata = g;
    op->guard = api_scope_guard;
    json_t *who = api_audit_who(r);
    /* the answer echoes the record: in clear for roles that may unmask */
    if (api_unmask(r)) json_object_set_new(who, "reveal", json_true());
    store_op_set_audit(op, who);
    json_decref(who);
}

static void op_release(store_op_t *op)
{
    free(op->udata);
    store_op_free(op);
}

/* "N", W/"N" or * in If-Match; 0 = none or any. -1: malformed. */
static long long parse_if_match(http_req_t *r)
{
    size_t n;
    const char *v = http_req_header(r, "if-match", &n);
    if (!v) return 0;
    if (n == 1 && v[0] == '*') return 0;
    if (n > 2 && v[0] == 'W' && v[1] == '/') v += 2, n -= 2;
    if (n < 3 || v[0] != '"' || v[n - 1] != '"') return -1;
    char tmp[32];
    if (n - 2 >= sizeof tmp) return -1;
    memcpy(tmp, v + 1, n - 2);
    tmp[n - 2] = '\0';
    char *end;
    long long x = strtoll(tmp, &end, 10);
    return *end || x <= 0 ? -1 : x;
}

static int parse_id(http_req_t *r, const char *s, kith_id_t *id)
{
    if (id_decode(s, strlen(s), id) != 0) {
        http_respond_problem(r, 404, "not-found", "no such record", NULL);
        return -1;
    }
    return 0;
}

/* Answers with the record an op wrote, as the caller may see it. */
static void respond_written(http_req_t *r, store_op_t *op, int status)
{
    /* the schemas the write ran against: no read transaction needed */
    const store_coll_t *c = op->schema ? store_schema_coll(op->schema, op->coll) : NULL;
    if (!c) {
        http_respond_problem(r, 404, "not-found", "the collection was removed", NULL);
        return;
    }
    store_record_t rec = {.id = op->rid,
                          .coll = c,
                          .version = op->version,
                          .created_us = op->created_us,
                          .updated_us = op->updated_us,
                          .json = op->json,
                          .json_len = op->json_len};
    api_view_t v = api_view(r, SCOPE_ALL, NULL);
    buf_t b = BUF_INIT;
    int rc = api_render_record(&v, c, &rec, NULL, &b, NULL);
    if (rc < 0) {
        buf_free(&b);
        api_fail(r, rc);
        return;
    }
    char ids[ID_TEXT_LEN + 1], hdr[256];
    id_encode(&op->rid, ids);
    if (status == 201)
        snprintf(hdr, sizeof hdr, "ETag: \"%llu\"\r\nLocation: /v1/%s/%s\r\n%s",
                 (unsigned long long)op->version, op->coll, ids,
                 op->idem_replayed ? "Idempotent-Replayed: true\r\n" : "");
    else
        snprintf(hdr, sizeof hdr, "ETag: \"%llu\"\r\n", (unsigned long long)op->version);
    http_respond(r, status, "application/json", b.p, b.len, hdr);
    buf_free(&b);
}

/* ---- create ---- */

static void created(store_op_t *op, void *ctx)
{
    http_req_t *r = ctx;
    if (op->status)
        api_fail_op(r, op);
    else /* an upsert that updated: 200 */
        respond_written(r, op, op->kind == STORE_OP_UPSERT && op->upserted != 1 ? 200 : 201);
    op_release(op);
}

/* Scoped callers' records default to being theirs: owner (and team). */
static void default_owner(http_req_t *r, const store_coll_t *c, json_t *body)
{
    api_req_t *q = api_req(r);
    if (q->scope == SCOPE_ALL) return;
    if (store_coll_field(c, "owner") && !json_object_get(body, "owner"))
        json_object_set_new(body, "owner", json_string(q->who.user));
    if (q->who.team[0] && store_coll_field(c, "team") && !json_object_get(body, "team"))
        json_object_set_new(body, "team", json_string(q->who.team));
}

void api_h_records_create(http_req_t *r)
{
    json_t *body = api_body_json(r);
    if (!body) return;
    if (!json_is_object(body)) {
        json_decref(body);
        http_respond_problem(r, 400, "invalid", "a record is a JSON object", NULL);
        return;
    }
    /* ?upsert=true: if the create conflicts with a record (a unique value, or
     * a rule's duplicate check), that record is updated; ?upsert=FIELD: the
     * record whose unique FIELD has the body's value is */
    char upsert[STORE_NAME_MAX] = "";
    http_req_query(r, "upsert", upsert, sizeof upsert);
    if (strcmp(upsert, "false") == 0) upsert[0] = '\0';
    /* The writer refuses an unknown collection itself; a read transaction
     * is needed only to fill in a scoped caller's owner and team, and to
     * check an upsert against the schema. */
    if (r->params[0][0] == '_' || api_req(r)->scope != SCOPE_ALL || upsert[0]) {
        store_rtxn_t *rt = api_read(r);
        if (!rt) {
            json_decref(body);
            return;
        }
        const store_coll_t *c = api_coll(r, rt, r->params[0]);
        if (c) default_owner(r, c, body);
        int refused = !c || (upsert[0] && api_upsert_refused(r, c, upsert));
        store_read_end(rt);
        if (refused) {
            json_decref(body);
            return;
        }
    }
    store_op_t *op = !upsert[0] ? store_op_create(r->params[0], body)
                         : store_op_upsert(r->params[0], strcmp(upsert, "true") == 0 ? "" : upsert,
                                           body);
    json_decref(body);
    size_t n;
    const char *ik = http_req_header(r, "idempotency-key", &n);
    if (ik) {
        if (n == 0 || n > 200) {
            store_op_free(op);
            http_respond_problem(r, 400, "invalid", "Idempotency-Key is 1 to 200 characters", NULL);
            return;
        }
        /* scoped to the key, so two clients cannot collide */
        char key[256];
        snprintf(key, sizeof key, "%s:%.*s", api_req(r)->who.key_id, (int)n, ik);
        store_op_set_idem(op, key);
    }
    op_prepare(r, op);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), created, r);
}

/* ---- get ---- */

typedef struct reveal {
    http_req_t *r;
    buf_t body;
    char etag[64];
} reveal_t;

static void reveal_audited(store_op_t *op, void *ctx)
{
    reveal_t *rv = ctx;
    http_req_t *r = rv->r;
    if (op->status) {
        /* no audit entry, no sensitive data */
        atomic_fetch_add(&api_req(r)->srv->audit_failures, 1);
        http_respond_problem(r, 503, "unavailable", "the read could not be audited", NULL);
    } else {
        atomic_fetch_add(&api_req(r)->srv->audit_writes, 1);
        http_respond(r, 200, "application/json", rv->body.p, rv->body.len,
                     rv->etag[0] ? rv->etag : NULL);
    }
    buf_free(&rv->body);
    free(rv);
    store_op_free(op);
}

/* Answers body; if it reveals sensitive data, only after the audit entry
 * naming the ids is committed. */
void api_respond_revealing(http_req_t *r, const char *coll, json_t *ids, json_t *fields,
                           buf_t *body, const char *etag)
{
    if (!ids) {
        http_respond(r, 200, "application/json", body->p, body->len, etag);
        buf_free(body);
        return;
    }
    reveal_t *rv = xcalloc(1, sizeof *rv);
    rv->r = r;
    rv->body = *body;
    buf_init(body);
    if (etag) snprintf(rv->etag, sizeof rv->etag, "%s", etag);
    json_t *e = api_audit_who(r);
    json_object_set_new(e, "action", json_string("read"));
    json_object_set_new(e, "collection", json_string(coll));
    json_object_set(e, "ids", ids);
    json_object_set_new(e, "fields", fields ? json_incref(fields) : json_array());
    store_op_t *op = store_op_audit(e);
    json_decref(e);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), reveal_audited, rv);
}

/* The id a record stands for (its SF_REDIRECT field: merged into that one),
 * in to; "" if none. */
static void redirect_target(const store_coll_t *c, const store_record_t *rec,
                            char to[ID_TEXT_LEN + 1])
{
    for (size_t i = 0; i < c->nfields; i++) {
        if (!(c->fields[i].flags & SF_REDIRECT)) continue;
        json_t *j = json_parse(rec->json, rec->json_len);
        const char *s = j ? json_string_value(json_object_get(j, c->fields[i].name)) : NULL;
        char self[ID_TEXT_LEN + 1];
        id_encode(&rec->id, self);
        if (s && strlen(s) == ID_TEXT_LEN && memcmp(s, self, ID_TEXT_LEN) != 0)
            memcpy(to, s, ID_TEXT_LEN + 1); /* never to itself: a loop */
        if (j) json_decref(j);
        return;
    }
}

/* 308 to the record a merged one stands for (clients follow it; the body
 * says the same for those that do not). */
static void respond_redirect(http_req_t *r, const store_coll_t *c, const char *to)
{
    char loc[256], hdr[300];
    snprintf(loc, sizeof loc, "/v1/%s/%s", c->name, to);
    snprintf(hdr, sizeof hdr, "Location: %s\r\n", loc);
    json_t *body = json_pack("{s:s,s:s,s:s}", "detail", "this record was merged into another",
                             "id", to, "location", loc);
    size_t n;
    char *s = json_to_str(body, &n);
    json_decref(body);
    http_respond(r, 308, "application/json", s, n, hdr);
    free(s);
}

void api_h_records_get(http_req_t *r)
{
    api_req_t *q = api_req(r);
    kith_id_t id;
    if (parse_id(r, r->params[1], &id)) return;
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    const store_coll_t *c = api_coll(r, rt, r->params[0]);
    if (!c) {
        store_read_end(rt);
        return;
    }
    char list[1024];
    api_fields_t sel;
    http_req_query(r, "fields", list, sizeof list);
    if (api_fields_parse(r, c, list, &sel)) {
        store_read_end(rt);
        return;
    }
    store_record_t rec;
    int rc = store_get(rt, c->name, &id, &rec);
    if (rc) {
        store_read_end(rt);
        if (rc == KITH_ENOTFOUND)
            http_respond_problem(r, 404, "not-found", "no such record", NULL);
        else
            api_fail(r, rc);
        return;
    }
    api_view_t v = api_view(r, q->scope, &sel);
    buf_t b = BUF_INIT;
    json_t *revealed = json_array();
    rc = api_render_record(&v, c, &rec, NULL, &b, revealed);
    uint64_t version = rec.version;
    char to[ID_TEXT_LEN + 1] = "";
    if (rc == 0) redirect_target(c, &rec, to);
    store_read_end(rt);
    if (to[0]) {
        buf_free(&b);
        json_decref(revealed);
        respond_redirect(r, c, to);
        return;
    }
    if (rc) {
        buf_free(&b);
        json_decref(revealed);
        if (rc == 1)
            http_respond_problem(r, 404, "not-found", "no such record", NULL);
        else
            api_fail(r, rc);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "ETag: \"%llu\"\r\n", (unsigned long long)version);
    size_t n;
    const char *inm = http_req_header(r, "if-none-match", &n);
    char want[32];
    int wl = snprintf(want, sizeof want, "\"%llu\"", (unsigned long long)version);
    if (inm && ((size_t)wl == n && memcmp(inm, want, n) == 0)) {
        buf_free(&b);
        json_decref(revealed);
        http_respond(r, 304, NULL, NULL, 0, etag);
        return;
    }
    json_t *ids = NULL;
    if (json_array_size(revealed)) {
        char s[ID_TEXT_LEN + 1];
        id_encode(&id, s);
        ids = json_pack("[s]", s);
    }
    api_respond_revealing(r, c->name, ids, revealed, &b, etag);
    if (ids) json_decref(ids);
    json_decref(revealed);
}

/* ---- update, replace, delete ---- */

static void modified(store_op_t *op, void *ctx)
{
    http_req_t *r = ctx;
    if (op->status == KITH_ECONFLICT && op->if_version) {
        http_respond_problem(r, 412, "precondition-failed",
                             op->diag ? op->diag->msg : "the record has changed", NULL);
    } else if (op->status) {
        api_fail_op(r, op);
    } else if (op->kind == STORE_OP_DELETE) {
        http_respond(r, 204, NULL, NULL, 0, NULL);
    } else {
        respond_written(r, op, 200);
    }
    op_release(op);
}

static void modify(http_req_t *r, int kind)
{
    kith_id_t id;
    if (parse_id(r, r->params[1], &id)) return;
    long long ifv = parse_if_match(r);
    if (ifv < 0) {
        http_respond_problem(r, 400, "invalid", "If-Match: expected an ETag such as \"3\"", NULL);
        return;
    }
    json_t *body = NULL;
    if (kind != STORE_OP_DELETE) {
        if (!(body = api_body_json(r))) return;
        if (!json_is_object(body)) {
            json_decref(body);
            http_respond_problem(r, 400, "invalid", "the body is a JSON object", NULL);
            return;
        }
    }
    store_rtxn_t *rt = api_read(r);
    if (!rt) {
        if (body) json_decref(body);
        return;
    }
    const store_coll_t *c = api_coll(r, rt, r->params[0]);
    if (c && kind == STORE_OP_REPLACE) default_owner(r, c, body);
    store_read_end(rt);
    if (!c) {
        if (body) json_decref(body);
        return;
    }
    store_op_t *op = kind == STORE_OP_UPDATE ? store_op_update(c->name, &id, body, (uint64_t)ifv)
                     : kind == STORE_OP_REPLACE
                         ? store_op_replace(c->name, &id, body, (uint64_t)ifv)
                         : store_op_delete(c->name, &id, (uint64_t)ifv);
    if (body) json_decref(body);
    op_prepare(r, op);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), modified, r);
}

void api_h_records_update(http_req_t *r)
{
    modify(r, STORE_OP_UPDATE);
}

void api_h_records_replace(http_req_t *r)
{
    modify(r, STORE_OP_REPLACE);
}

void api_h_records_delete(http_req_t *r)
{
    modify(r, STORE_OP_DELETE);
}
