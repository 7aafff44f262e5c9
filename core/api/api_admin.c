/*
 * api_admin: the workspace's own resources — schema, change log, audit log,
 * roles, keys — and /healthz, /metrics, /v1/me.
 */
#include "api/api_int.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small things ---- */

void api_h_health(http_req_t *r)
{
    int draining = r->conn && r->conn->loop->draining;
    const char *b = draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}";
    http_respond(r, draining ? 503 : 200, "application/json", b, strlen(b), NULL);
}

void api_h_me(http_req_t *r)
{
    api_req_t *q = api_req(r);
    json_t *role = auth_role_to_json(q->role);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:o}", "key_id", q->who.key_id, "workspace",
                          q->who.workspace, "role", q->who.role, "user", q->who.user, "team",
                          q->who.team[0] ? q->who.team : NULL, "rights", role);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}

static long long query_num(http_req_t *r, const char *name, long long dflt, long long lo,
                           long long hi, int *bad)
{
    char v[32];
    if (!http_req_query(r, name, v, sizeof v)) return dflt;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        char d[96];
        snprintf(d, sizeof d, "%s: a number from %lld to %lld", name, lo, hi);
        http_respond_problem(r, 400, "invalid", d, NULL);
        *bad = 1;
    }
    return x;
}

/* ---- schema ---- */

void api_h_schema_get(http_req_t *r)
{
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    const store_schema_t *s = store_read_schema(rt);
    json_t *a = json_array();
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i]->name[0] != '_') json_array_append_new(a, store_coll_to_json(s->colls[i]));
    store_read_end(rt);
    json_t *o = json_pack("{s:o}", "collections", a);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}

static void schema_done(store_op_t *op, void *ctx)
{
    http_req_t *r = ctx;
    if (op->status) {
        api_fail_op(r, op);
    } else {
        int created = op->version == 1 && !op->nochange;
        http_respond(r, created ? 201 : 200, "application/json", op->json, op->json_len, NULL);
    }
    store_op_free(op);
}

static void schema_submit(http_req_t *r, store_op_t *op)
{
    json_t *who = api_audit_who(r);
    store_op_set_audit(op, who);
    json_decref(who);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), schema_done, r);
}

void api_h_schema_put(http_req_t *r)
{
    json_t *def = api_body_json(r);
    if (!def) return;
    json_t *n = json_is_object(def) ? json_object_get(def, "name") : NULL;
    if (!json_is_object(def) ||
        (n && (!json_is_string(n) || strcmp(json_string_value(n), r->params[0]) != 0))) {
        json_decref(def);
        http_respond_problem(r, 400, "invalid",
                             "the body is a collection definition whose name matches the path",
                             NULL);
        return;
    }
    json_object_set_new(def, "name", json_string(r->params[0]));
    api_req_t *q = api_req(r);
    const http_route_t *claim =
        api_route_claim(q->srv->ext.routes, q->srv->ext.nroutes, r->params[0]);
    if (claim) {
        /* a new collection only: one that exists keeps its schema editable */
        store_rtxn_t *rt = api_read(r);
        if (!rt) {
            json_decref(def);
            return;
        }
        int exists = store_schema_coll(store_read_schema(rt), r->params[0]) != NULL;
        store_read_end(rt);
        if (!exists) {
            json_decref(def);
            char d[400];
            snprintf(d, sizeof d,
                     "the name '%s' is taken by the route %s %s (%s) of a plugin, which would "
                     "answer in place of this collection's records",
                     r->params[0], http_method_name(claim->method), claim->pattern, claim->name);
            http_respond_problem(r, 409, "conflict", d, NULL);
            return;
        }
    }
    store_op_t *op = store_op_schema(def);
    json_decref(def);
    schema_submit(r, op);
}

void api_h_schema_field(http_req_t *r)
{
    json_t *def = api_body_json(r);
    if (!def) return;
    if (!json_is_object(def)) {
        json_decref(def);
        http_respond_problem(r, 400, "invalid", "the body is a field definition", NULL);
        return;
    }
    if (r->params[0][0] == '_') {
        json_decref(def);
        http_respond_problem(r, 404, "not-found", "no such collection", NULL);
        return;
    }
    store_op_t *op = store_op_field(r->params[0], r->params[1], def);
    json_decref(def);
    schema_submit(r, op);
}

/* ---- change log ---- */

typedef struct changes_ctx {
    http_req_t *r;
    buf_t out;
    size_t n;
    uint64_t last;
} changes_ctx_t;

/* A role sees a collection's changes only if it may read all of it. */
int api_change_visible(http_req_t *r, const char *coll)
{
    return coll[0] != '_' && auth_role_scope(api_req(r)->role, coll, ACT_READ) == SCOPE_ALL;
}

static int change_row(void *ctx, const store_change_t *ch)
{
    changes_ctx_t *c = ctx;
    c->last = ch->seq;
    if (!api_change_visible(c->r, ch->coll)) return 0;
    if (c->n++) buf_addc(&c->out, ',');
    store_change_render(&c->out, ch);
    return 0;
}

void api_h_changes(http_req_t *r)
{
    int bad = 0;
    long long after = query_num(r, "after", 0, 0, INT64_MAX, &bad);
    if (bad) return;
    long long limit = query_num(r, "limit", 100, 1, 1000, &bad);
    if (bad) return;
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    changes_ctx_t c = {.r = r, .last = (uint64_t)after};
    buf_adds(&c.out, "{\"changes\":[");
    int rc = store_changes(rt, (uint64_t)after, (size_t)limit, change_row, &c);
    uint64_t end = store_changes_last(rt);
    store_read_end(rt);
    if (rc) {
        buf_free(&c.out);
        api_fail(r, rc);
        return;
    }
    buf_addf(&c.out, "],\"next_after\":%llu,\"last_seq\":%llu}", (unsigned long long)c.last,
             (unsigned long long)end);
    http_respond(r, 200, "application/json", c.out.p, c.out.len, NULL);
    buf_free(&c.out);
}

/* ---- audit ---- */

static int audit_row(void *ctx, uint64_t seq, const char *json, size_t len)
{
    changes_ctx_t *c = ctx;
    c->last = seq;
    if (c->n++) buf_addc(&c->out, ',');
    buf_add(&c->out, json, len);
    return 0;
}

void api_h_audit(http_req_t *r)
{
    int bad = 0;
    long long after = query_num(r, "after", 0, 0, INT64_MAX, &bad);
    if (bad) return;
    long long limit = query_num(r, "limit", 100, 1, 1000, &bad);
    if (bad) return;
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    changes_ctx_t c = {.r = r, .last = (uint64_t)after};
    buf_adds(&c.out, "{\"entries\":[");
    int rc = store_audit_list(rt, (uint64_t)after, (size_t)limit, audit_row, &c);
    store_read_end(rt);
    if (rc) {
        buf_free(&c.out);
        api_fail(r, rc);
        return;
    }
    buf_addf(&c.out, "],\"next_after\":%llu}", (unsigned long long)c.last);
    http_respond(r, 200, "application/json", c.out.p, c.out.len, NULL);
    buf_free(&c.out);
}

/* ---- roles ---- */

typedef struct role_find {
    kith_id_t id;
    uint64_t version;
    json_t *def;
    int found;
    json_t *all;
} role_find_t;

static int role_row(void *ctx, const store_record_t *rec)
{
    role_find_t *f = ctx;
    json_t *j = store_record_fields(rec);
    if (!j) return KITH_ECORRUPT;
    if (f->all) {
        json_t *def = json_object_get(j, "def");
        if (def) json_array_append(f->all, def);
    } else {
        f->found = 1;
        f->id = rec->id;
        f->version = rec->version;
        f->def = json_incref(json_object_get(j, "def"));
    }
    json_decref(j);
    return 0;
}

static int role_lookup(http_req_t *r, const char *name, role_find_t *f)
{
    return api_read_named(r, "_roles", name, role_row, f);
}

void api_h_roles_list(http_req_t *r)
{
    json_t *a = json_array();
    for (const char *const *b = auth_roles_builtin(); *b; b++)
        json_array_append_new(a, auth_role_to_json(auth_role_get_builtin(*b)));
    role_find_t f = {.all = json_array()};
    if (role_lookup(r, NULL, &f) == 0) {
        for (size_t i = 0; i < json_array_size(f.all); i++) {
            auth_role_t role;
            if (auth_role_parse(json_array_get(f.all, i), &role) == 0)
                json_array_append_new(a, auth_role_to_json(&role));
        }
        json_t *o = json_pack("{s:o}", "roles", a);
        http_respond_json(r, 200, o, NULL);
        json_decref(o);
    } else {
        json_decref(a);
    }
    json_decref(f.all);
}

void api_h_roles_get(http_req_t *r)
{
    const auth_role_t *b = auth_role_get_builtin(r->params[0]);
    json_t *o = NULL;
    if (b) {
        o = auth_role_to_json(b);
    } else {
        role_find_t f = {0};
        if (role_lookup(r, r->params[0], &f)) return;
        auth_role_t role;
        if (f.found && auth_role_parse(f.def, &role) == 0) o = auth_role_to_json(&role);
        if (f.def) json_decref(f.def);
    }
    if (!o) {
        http_respond_problem(r, 404, "not-found", "no such role", NULL);
        return;
    }
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}

static void roles_changed(http_req_t *r)
{
    atomic_fetch_add(&api_req(r)->srv->gen, 1); /* every cached key re-resolves its role */
}

static void role_written(store_op_t *op, void *ctx)
{
    http_req_t *r = ctx;
    if (op->status == KITH_EEXIST || op->status == KITH_ECONFLICT) {
        http_respond_problem(r, 409, "conflict", "the role changed meanwhile; try again", NULL);
    } else if (op->status) {
        api_fail_op(r, op);
    } else if (op->kind == STORE_OP_DELETE) {
        roles_changed(r);
        http_respond(r, 204, NULL, NULL, 0, NULL);
    } else {
        roles_changed(r);
        json_t *f = json_parse(op->json, op->json_len);
        auth_role_t role;
        json_t *o = f && auth_role_parse(json_object_get(f, "def"), &role) == 0
                        ? auth_role_to_json(&role)
                        : json_object();
        http_respond_json(r, op->kind == STORE_OP_CREATE ? 201 : 200, o, NULL);
        json_decref(o);
        if (f) json_decref(f);
    }
    store_op_free(op);
}

void api_h_roles_put(http_req_t *r)
{
    const char *name = r->params[0];
    if (auth_role_get_builtin(name)) {
        http_respond_problem(r, 409, "conflict", "built-in roles cannot be changed", NULL);
        return;
    }
    json_t *def = api_body_json(r);
    if (!def) return;
    if (json_is_object(def) && !json_object_get(def, "name"))
        json_object_set_new(def, "name", json_string(name));
    auth_role_t role;
    json_t *n = json_is_object(def) ? json_object_get(def, "name") : NULL;
    if (!n || !json_is_string(n) || strcmp(json_string_value(n), name) != 0) {
        json_decref(def);
        http_respond_problem(r, 400, "invalid", "the role's name must match the path", NULL);
        return;
    }
    json_object_del(def, "builtin");
    if (auth_role_parse(def, &role) != 0) {
        json_decref(def);
        api_fail(r, err_last()->code);
        return;
    }
    json_t *canon = auth_role_to_json(&role);
    json_object_del(canon, "builtin");
    json_decref(def);
    role_find_t f = {0};
    if (role_lookup(r, name, &f)) {
        json_decref(canon);
        return;
    }
    if (f.def) json_decref(f.def);
    json_t *rec = json_pack("{s:s,s:o}", "name", name, "def", canon);
    store_op_t *op = f.found ? store_op_replace("_roles", &f.id, rec, f.version)
                             : store_op_create("_roles", rec);
    json_decref(rec);
    op->system = 1;
    json_t *who = api_audit_who(r);
    store_op_set_audit(op, who);
    json_decref(who);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), role_written, r);
}

void api_h_roles_delete(http_req_t *r)
{
    const char *name = r->params[0];
    if (auth_role_get_builtin(name)) {
        http_respond_problem(r, 409, "conflict", "built-in roles cannot be deleted", NULL);
        return;
    }
    role_find_t f = {0};
    if (role_lookup(r, name, &f)) return;
    if (f.def) json_decref(f.def);
    if (!f.found) {
        http_respond_problem(r, 404, "not-found", "no such role", NULL);
        return;
    }
    store_op_t *op = store_op_delete("_roles", &f.id, f.version);
    op->system = 1;
    json_t *who = api_audit_who(r);
    store_op_set_audit(op, who);
    json_decref(who);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), role_written, r);
}

/* ---- keys ---- */

/* Key changes live in the system store, but they are the workspace's business:
 * each is audited in the workspace's chain before the answer goes out. */
typedef struct key_audit {
    http_req_t *r;
    int status;
    char *body;
    char hdr[160];
} key_audit_t;

static void key_audited(store_op_t *op, void *ctx)
{
    key_audit_t *ka = ctx;
    if (op->status) {
        /* the key change happened; say so, and that its audit entry failed */
        log_error("api", "request %s: key change done but not audited: %s", ka->r->id,
                  op->diag ? op->diag->msg : "?");
    }
    if (ka->body)
        http_respond(ka->r, ka->status, "application/json", ka->body, strlen(ka->body),
                     ka->hdr[0] ? ka->hdr : NULL);
    else
        http_respond(ka->r, ka->status, NULL, NULL, 0, NULL);
    free(ka->body);
    free(ka);
    store_op_free(op);
}

static void key_audit(http_req_t *r, const char *action, const char *key_id, json_t *fields,
                      int status, char *body, const char *hdr)
{
    key_audit_t *ka = xcalloc(1, sizeof *ka);
    ka->r = r;
    ka->status = status;
    ka->body = body;
    if (hdr) snprintf(ka->hdr, sizeof ka->hdr, "%s", hdr);
    json_t *e = api_audit_who(r);
    json_object_set_new(e, "action", json_string(action));
    json_object_set_new(e, "collection", json_string("_keys"));
    json_object_set_new(e, "ids", json_pack("[s]", key_id));
    json_object_set_new(e, "fields", fields);
    store_op_t *op = store_op_audit(e);
    json_decref(e);
    store_submit(api_req(r)->ws->st, op, api_inbox(r), key_audited, ka);
}

typedef struct keys_ctx {
    const char *workspace;
    json_t *list;
} keys_ctx_t;

static int key_row(void *ctx, const store_record_t *rec)
{
    keys_ctx_t *k = ctx;
    json_t *j = store_record_fields(rec);
    if (!j) return KITH_ECORRUPT;
    json_object_del(j, "hash"); /* never shown, even hashed */
    json_object_del(j, "workspace");
    char ids[ID_TEXT_LEN + 1];
    id_encode(&rec->id, ids);
    json_object_set_new(j, "id", json_string(ids));
    json_array_append_new(k->list, j);
    return 0;
}

void api_h_keys_list(http_req_t *r)
{
    api_req_t *q = api_req(r);
    store_rtxn_t *rt;
    int rc = store_read_begin(auth_dir_system(q->srv->dir), &rt);
    if (rc) {
        api_fail(r, rc);
        return;
    }
    json_t *filter = json_pack("{s:s}", "workspace", q->who.workspace);
    keys_ctx_t k = {q->who.workspace, json_array()};
    store_query_t sq = {.coll = "_keys", .filter = filter};
    rc = store_query_all(rt, &sq, key_row, &k);
    json_decref(filter);
    store_read_end(rt);
    if (rc) {
        json_decref(k.list);
        api_fail(r, rc);
        return;
    }
    json_t *o = json_pack("{s:o}", "keys", k.list);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}

void api_h_keys_create(http_req_t *r)
{
    api_req_t *q = api_req(r);
    json_t *body = api_body_json(r);
    if (!body) return;
    const char *k;
    json_t *v;
    char d[160] = "";
    if (!json_is_object(body)) snprintf(d, sizeof d, "the body is a JSON object");
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "role") && strcmp(k, "label") && strcmp(k, "user") && strcmp(k, "team"))
            snprintf(d, sizeof d, "unknown key '%s' (role, label, user, team)", k);
        else if (!json_is_string(v))
            snprintf(d, sizeof d, "%s: a string", k);
    }
    const char *role = json_string_value(json_object_get(body, "role"));
    if (!d[0] && !role) snprintf(d, sizeof d, "role: required");
    if (!d[0] && !auth_role_known(q->ws->st, role))
        snprintf(d, sizeof d, "no role '%.60s' in this workspace", role);
    if (d[0]) {
        json_decref(body);
        http_respond_problem(r, d[0] == 'n' ? 422 : 400, d[0] == 'n' ? "validation" : "invalid", d,
                             NULL);
        return;
    }
    auth_key_spec_t spec = {.workspace = q->who.workspace,
                            .role = role,
                            .label = json_string_value(json_object_get(body, "label")),
                            .user = json_string_value(json_object_get(body, "user")),
                            .team = json_string_value(json_object_get(body, "team"))};
    char token[AUTH_TOKEN_LEN + 1], key_id[ID_TEXT_LEN + 1];
    /* A short synchronous commit on the system store (key management is rare). */
    int rc = auth_key_create(q->srv->dir, &spec, token, key_id);
    if (rc) {
        json_decref(body);
        api_fail(r, rc);
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?}", "id", key_id, "token", token, "role",
                          role, "label", spec.label, "user", spec.user, "team", spec.team);
    memset(token, 0, sizeof token);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Location: /v1/keys/%s\r\nCache-Control: no-store\r\n", key_id);
    json_t *fields = json_array();
    const char *k2;
    json_t *v2;
    json_object_foreach(body, k2, v2) json_array_append_new(fields, json_string(k2));
    json_decref(body);
    char *text = json_to_str(o, NULL);
    json_decref(o);
    key_audit(r, "key.create", key_id, fields, 201, text, hdr);
}

void api_h_keys_delete(http_req_t *r)
{
    api_req_t *q = api_req(r);
    int rc = auth_key_revoke(q->srv->dir, q->who.workspace, r->params[0]);
    if (rc) {
        if (rc == KITH_EINVAL) rc = KITH_ENOTFOUND;
        api_fail(r, rc);
        return;
    }
    atomic_fetch_add(&q->srv->gen, 1); /* revoked keys fail at once, on every loop */
    key_audit(r, "key.revoke", r->params[0], json_array(), 204, NULL, NULL);
}
