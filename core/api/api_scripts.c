/*
 * api_scripts: admin scripts over HTTP, and each workspace's bus and Lua host.
 *
 * PUT /v1/scripts/{name} (the Lua source as the body, text/x-lua or
 * text/plain) checks the script in a scratch sandbox — a compile or load
 * error is 422 with the message and line — then stores it as a new version
 * of `_scripts` (audited) and reloads the workspace's scripts on its writer
 * thread. DELETE stores a tombstone version and unloads it. GET lists
 * scripts, or one script's versions and current source. GET /v1/hooks lists
 * every registered handler in run order.
 */
#include "api/api_int.h"

#include "base/codec.h"
#include "base/json.h"
#include "base/timeutil.h"
#include "base/log.h"
#include "base/mem.h"
#include "bus/bus.h"
#include "lua/lua_host.h"
#include "sched/sched.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define VERSIONS_MAX 1000

/* ---- loading (writer thread) -------------------------------------------------- */

typedef struct script_row {
    char name[LUA_SCRIPT_NAME_MAX + 1];
    int64_t version;
    int deleted;
    char *source;
    size_t len;
} script_row_t;

typedef struct script_set {
    script_row_t *v;
    size_t n, cap;
} script_set_t;

/* Keeps the newest version of each name. */
static int collect_row(void *ctx, const store_record_t *rec)
{
    script_set_t *s = ctx;
    json_t *f = store_record_fields(rec);
    if (!f) return 0;
    const char *name = json_string_value(json_object_get(f, "name"));
    json_int_t ver = json_integer_value(json_object_get(f, "rev"));
    const char *src = json_string_value(json_object_get(f, "source"));
    if (name) {
        script_row_t *row = NULL;
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->v[i].name, name) == 0) row = &s->v[i];
        if (!row) {
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 16;
                s->v = xrealloc(s->v, s->cap * sizeof *s->v);
            }
            row = &s->v[s->n++];
            memset(row, 0, sizeof *row);
            snprintf(row->name, sizeof row->name, "%s", name);
            row->version = -1;
        }
        if (ver > row->version) {
            row->version = ver;
            row->deleted = json_is_true(json_object_get(f, "deleted"));
            free(row->source);
            row->source = src ? xstrdup(src) : NULL;
            row->len = src ? json_string_length(json_object_get(f, "source")) : 0;
        }
    }
    json_decref(f);
    return 0;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const script_row_t *)a)->name, ((const script_row_t *)b)->name);
}

static int load_op(store_wtxn_t *w, store_op_t *op)
{
    api_ws_t *ws = op->udata;
    script_set_t set = {0};
    store_query_t q = {.coll = "_scripts"};
    int rc = store_wtxn_query_all(w, &q, collect_row, &set);
    if (rc == 0) {
        if (set.n) qsort(set.v, set.n, sizeof *set.v, row_cmp); /* qsort(NULL, 0) is undefined */
        lua_script_t *ls = xcalloc(set.n ? set.n : 1, sizeof *ls);
        size_t n = 0;
        for (size_t i = 0; i < set.n; i++)
            if (!set.v[i].deleted && set.v[i].source)
                ls[n++] = (lua_script_t){set.v[i].name, set.v[i].source, set.v[i].len};
        rc = lua_host_load(ws->lua, w, ls, n);
        free(ls);
    }
    for (size_t i = 0; i < set.n; i++)
        free(set.v[i].source);
    free(set.v);
    return rc;
}

static store_op_t *load_op_new(api_ws_t *w)
{
    return store_op_custom(load_op, w);
}

/* The scheduler fires due timers at the start of every delivery. */
static int sched_tick(void *ctx, store_wtxn_t *w, int64_t now_us, int64_t *wake_us)
{
    (void)ctx;
    return sched_fire(w, now_us, wake_us);
}

int api_ws_extend(api_ws_t *w)
{
    w->bus = bus_new(w->st, w->name);
    w->lua = lua_host_new(w->bus, w->name, NULL);
    bus_set_tick(w->bus, sched_tick, NULL);
    bus_attach(w->bus);
    store_op_t *op = load_op_new(w);
    op->system = 1;
    int rc = store_exec(w->st, op);
    store_op_free(op);
    /* timers that came due while the server was down fire now */
    store_hooks_kick(w->st);
    return rc;
}

void api_ws_extend_free(api_ws_t *w)
{
    /* the store is closed: no handler runs any more */
    lua_host_free(w->lua);
    bus_free(w->bus);
    w->lua = NULL;
    w->bus = NULL;
}

/* ---- routes ---------------------------------------------------------------------- */

void api_h_hooks(http_req_t *r)
{
    buf_t b = BUF_INIT;
    buf_add(&b, "{\"hooks\":", 9);
    bus_list(api_req(r)->ws->bus, &b);
    buf_addc(&b, '}');
    http_respond(r, 200, "application/json", b.p, b.len, NULL);
    buf_free(&b);
}

/* Timers in id order: a script's own id, its script, event, next due time,
 * schedule and payload. */
static int timer_row(void *ctx, const char *id, int64_t due, const char *job, size_t len)
{
    buf_t *b = ctx;
    json_t *j = json_parse(job, len);
    if (!j) return 0; /* kith check reports it */
    const char *script = "", *own = id;
    size_t sl = 0;
    if (strncmp(id, "script:", 7) == 0 && strchr(id + 7, '/')) {
        script = id + 7;
        own = strchr(script, '/') + 1;
        sl = (size_t)(own - 1 - script);
    }
    if (b->p[b->len - 1] != '[') buf_addc(b, ',');
    buf_adds(b, "{\"id\":");
    json_write_cstr(b, own);
    buf_adds(b, ",\"script\":");
    json_write_str(b, script, sl);
    buf_adds(b, ",\"event\":");
    json_write_value(b, json_object_get(j, "event"));
    char ts[40];
    buf_adds(b, ",\"due\":\"");
    buf_add(b, ts, time_fmt_rfc3339(due, ts, sizeof ts, 3));
    buf_addc(b, '"');
    json_t *x = json_object_get(j, "every");
    if (x) {
        buf_adds(b, ",\"every\":");
        json_write_value(b, x);
    }
    buf_adds(b, ",\"declared\":");
    buf_adds(b, json_is_true(json_object_get(j, "declared")) ? "true" : "false");
    if ((x = json_object_get(j, "payload"))) {
        buf_adds(b, ",\"payload\":");
        json_write_value(b, x);
    }
    buf_addc(b, '}');
    json_decref(j);
    return 0;
}

void api_h_timers(http_req_t *r)
{
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"timers\":[");
    int rc = store_timers_prefix(rt, "", timer_row, &b);
    store_read_end(rt);
    if (rc) {
        buf_free(&b);
        api_fail(r, rc);
        return;
    }
    buf_adds(&b, "]}");
    http_respond(r, 200, "application/json", b.p, b.len, NULL);
    buf_free(&b);
}

typedef struct versions {
    json_t *out; /* name -> {versions: [...], source, deleted} */
    const char *only;
} versions_t;

static int version_row(void *ctx, const store_record_t *rec)
{
    versions_t *v = ctx;
    json_t *f = store_record_fields(rec);
    if (!f) return 0;
    const char *name = json_string_value(json_object_get(f, "name"));
    if (name && (!v->only || strcmp(v->only, name) == 0)) {
        json_t *s = json_object_get(v->out, name);
        if (!s) {
            s = json_pack("{s:s,s:[],s:i}", "name", name, "versions", "version", 0);
            json_object_set_new(v->out, name, s);
        }
        json_int_t ver = json_integer_value(json_object_get(f, "rev"));
        char ts[40];
        time_fmt_rfc3339(rec->created_us, ts, sizeof ts, 3);
        json_t *e = json_pack("{s:I,s:s,s:b}", "version", (json_int_t)ver, "deployed_at", ts,
                              "deleted", json_is_true(json_object_get(f, "deleted")));
        json_t *by = json_object_get(f, "by");
        if (json_is_string(by)) json_object_set(e, "by", by);
        json_array_append_new(json_object_get(s, "versions"), e);
        if (ver > json_integer_value(json_object_get(s, "version"))) {
            json_object_set_new(s, "version", json_integer(ver));
            json_object_set_new(s, "deleted",
                                json_boolean(json_is_true(json_object_get(f, "deleted"))));
            json_t *src = json_object_get(f, "source");
            json_object_set(s, "source", json_is_string(src) ? src : json_string(""));
        }
    }
    json_decref(f);
    return 0;
}

static int versions_read(http_req_t *r, versions_t *v)
{
    return api_read_named(r, "_scripts", v->only, version_row, v);
}

void api_h_scripts_list(http_req_t *r)
{
    versions_t v = {.out = json_object()};
    if (versions_read(r, &v)) {
        json_decref(v.out);
        return;
    }
    json_t *a = json_array();
    const char *k;
    json_t *s;
    json_object_foreach(v.out, k, s)
    {
        if (json_is_true(json_object_get(s, "deleted"))) continue;
        json_t *e = json_pack("{s:O,s:O,s:I}", "name", json_object_get(s, "name"), "version",
                              json_object_get(s, "version"), "versions",
                              (json_int_t)json_array_size(json_object_get(s, "versions")));
        json_array_append_new(a, e);
    }
    json_t *o = json_pack("{s:o}", "scripts", a);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
    json_decref(v.out);
}

void api_h_scripts_get(http_req_t *r)
{
    versions_t v = {.out = json_object(), .only = r->params[0]};
    if (versions_read(r, &v)) {
        json_decref(v.out);
        return;
    }
    json_t *s = json_object_get(v.out, r->params[0]);
    if (!s)
        http_respond_problem(r, 404, "not-found", "no such script", NULL);
    else
        http_respond_json(r, 200, s, NULL);
    json_decref(v.out);
}

typedef struct deploy {
    http_req_t *r;
    api_ws_t *ws;
    char name[LUA_SCRIPT_NAME_MAX + 1];
    int64_t version;
    int deleted;
} deploy_t;

static void reloaded(store_op_t *op, void *ctx)
{
    deploy_t *d = ctx;
    http_req_t *r = d->r;
    if (op->status) {
        api_fail_op(r, op);
    } else if (d->deleted) {
        http_respond(r, 204, NULL, NULL, 0, NULL);
    } else {
        json_t *o = json_pack("{s:s,s:I}", "name", d->name, "version", (json_int_t)d->version);
        http_respond_json(r, d->version == 1 ? 201 : 200, o, NULL);
        json_decref(o);
    }
    store_op_free(op);
    free(d);
}

static void stored(store_op_t *op, void *ctx)
{
    deploy_t *d = ctx;
    if (op->status) {
        if (op->status == KITH_EEXIST)
            http_respond_problem(d->r, 409, "conflict",
                                 "another deploy of this script happened meanwhile; try again",
                                 NULL);
        else
            api_fail_op(d->r, op);
        store_op_free(op);
        free(d);
        return;
    }
    store_op_free(op);
    store_op_t *load = load_op_new(d->ws);
    load->system = 1;
    store_submit(d->ws->st, load, api_inbox(d->r), reloaded, d);
}

/* Stores version (newest + 1) of the script: source, or a tombstone. */
static void store_version(http_req_t *r, const char *name, const char *src, size_t len)
{
    versions_t v = {.out = json_object(), .only = name};
    if (versions_read(r, &v)) {
        json_decref(v.out);
        return;
    }
    json_t *cur = json_object_get(v.out, name);
    int64_t last = cur ? json_integer_value(json_object_get(cur, "version")) : 0;
    int was_deleted = cur && json_is_true(json_object_get(cur, "deleted"));
    json_decref(v.out);
    if (!src && (!cur || was_deleted)) {
        http_respond_problem(r, 404, "not-found", "no such script", NULL);
        return;
    }
    if (cur && json_array_size(json_object_get(cur, "versions")) >= VERSIONS_MAX) {
        http_respond_problem(r, 422, "limit", "a script keeps at most 1000 versions", NULL);
        return;
    }
    deploy_t *d = xcalloc(1, sizeof *d);
    d->r = r;
    d->ws = api_req(r)->ws;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->version = last + 1;
    d->deleted = src == NULL;
    char key[96];
    snprintf(key, sizeof key, "%s@%lld", name, (long long)d->version);
    json_t *rec =
        json_pack("{s:s,s:I,s:s,s:s%,s:b}", "name", name, "rev", (json_int_t)d->version, "key", key,
                  "source", src ? src : "", src ? len : 0, "deleted", src == NULL);
    const char *user = api_req(r)->who.user[0] ? api_req(r)->who.user : api_req(r)->who.key_id;
    json_object_set_new(rec, "by", json_string(user));
    store_op_t *op = store_op_create("_scripts", rec);
    json_decref(rec);
    op->system = 1;
    json_t *who = api_audit_who(r);
    store_op_set_audit(op, who);
    json_decref(who);
    store_submit(d->ws->st, op, api_inbox(r), stored, d);
}

static int utf8_text(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = p[i] ? utf8_seq_len((const uint8_t *)p + i, n - i) : 0;
        if (l == 0) return 0;
        i += l;
    }
    return 1;
}

void api_h_scripts_put(http_req_t *r)
{
    const char *name = r->params[0];
    if (!lua_script_name_ok(name)) {
        http_respond_problem(r, 400, "invalid", "a script name is 1 to 64 of a-z, 0-9, '_' and '-'",
                             NULL);
        return;
    }
    size_t n;
    const char *ct = http_req_header(r, "content-type", &n);
    if (!ct || !((n >= 10 && strncasecmp(ct, "text/x-lua", 10) == 0) ||
                 (n >= 10 && strncasecmp(ct, "text/plain", 10) == 0))) {
        http_respond_problem(r, 415, "unsupported-media-type",
                             "send the script's source as Content-Type: text/x-lua", NULL);
        return;
    }
    if (r->body.len > LUA_SCRIPT_MAX) {
        http_respond_problem(r, 413, "too-large", "a script is at most 256 KiB", NULL);
        return;
    }
    if (!utf8_text(r->body.p, r->body.len)) {
        http_respond_problem(r, 422, "invalid-script", "a script is UTF-8 text", NULL);
        return;
    }
    int rc = lua_check(name, r->body.p ? r->body.p : "", r->body.len, NULL);
    if (rc) {
        json_t *extra = json_pack("{s:s}", "script", name);
        http_respond_problem(r, 422, "invalid-script", err_last()->msg, extra);
        json_decref(extra);
        return;
    }
    store_version(r, name, r->body.p ? r->body.p : "", r->body.len);
}

void api_h_scripts_delete(http_req_t *r)
{
    if (!lua_script_name_ok(r->params[0])) {
        http_respond_problem(r, 404, "not-found", "no such script", NULL);
        return;
    }
    store_version(r, r->params[0], NULL, 0);
}
