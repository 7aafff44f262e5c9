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
 *
 * GET /v1/scripts/shipped lists the Lua that ships with Kith (scripts/:
 * rules, and the modules require() serves); POST /v1/scripts/{name}/enable
 * stores a shipped rule as the next version of this workspace's script of
 * that name, marked origin "shipped" with the shipped sha256.
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
#define SHIPPED_PATH "shipped" /* GET /v1/scripts/shipped: never a script's name */

/* ---- loading (writer thread) -------------------------------------------------- */

/* The workspace's current scripts, from `_scripts` (lua_host_load_stored). */
static int load_op(store_wtxn_t *w, store_op_t *op)
{
    return lua_host_load_stored(op->udata, w);
}

/* The scheduler fires due timers at the start of every delivery. */
static int sched_tick(void *ctx, store_wtxn_t *w, int64_t now_us, int64_t *wake_us)
{
    (void)ctx;
    return sched_fire(w, now_us, wake_us);
}

int api_ws_runtime_open(const char *workspace, store_t *st, const api_ext_t *ext, bus_t **bus,
                        lua_host_t **lua, err_diag_t *ext_err)
{
    memset(ext_err, 0, sizeof *ext_err);
    *bus = bus_new(st, workspace);
    /* the extension first: its handlers and collections are there before scripts load */
    if (ext && ext->ws_open && ext->ws_open(ext->ctx, workspace, st, *bus)) err_save(ext_err);
    *lua = lua_host_new(*bus, workspace, NULL);
    bus_set_tick(*bus, sched_tick, NULL);
    bus_attach(*bus);
    store_op_t *op = store_op_custom(load_op, *lua);
    op->system = 1;
    int rc = store_exec(st, op);
    store_op_free(op);
    /* timers that came due while the store was closed fire now, and what was
     * not delivered yet is */
    store_hooks_kick(st);
    return rc;
}

void api_ws_runtime_close(bus_t *bus, lua_host_t *lua)
{
    lua_host_free(lua);
    bus_free(bus);
}

/* A collection made before a plugin was configured may be shadowed by its
 * routes (PUT /v1/schema refuses such a name for new ones): say so. */
static void warn_shadowed(api_server_t *s, api_ws_t *w)
{
    store_rtxn_t *rt;
    if (!s->ext.nroutes || store_read_begin(w->st, &rt)) return;
    const store_schema_t *sc = store_read_schema(rt);
    for (size_t i = 0; i < sc->ncolls; i++) {
        const char *name = sc->colls[i]->name;
        const http_route_t *claim =
            name[0] == '_' ? NULL : api_route_claim(s->ext.routes, s->ext.nroutes, name);
        if (claim)
            log_warn("api",
                     "workspace %s: the plugin route %s %s (%s) answers in place of the "
                     "records of collection '%s'; rename the collection or the route",
                     w->name, http_method_name(claim->method), claim->pattern, claim->name,
                     name);
    }
    store_read_end(rt);
}

int api_ws_extend(api_server_t *s, api_ws_t *w)
{
    err_diag_t ext_err;
    int rc = api_ws_runtime_open(w->name, w->st, &s->ext, &w->bus, &w->lua, &ext_err);
    if (ext_err.code) log_error("api", "workspace %s: plugins: %s", w->name, ext_err.msg);
    warn_shadowed(s, w);
    return rc;
}

void api_ws_extend_free(api_ws_t *w)
{
    /* the store is closed: no handler runs any more */
    api_ws_runtime_close(w->bus, w->lua);
    w->lua = NULL;
    w->bus = NULL;
}

/* ---- routes ---------------------------------------------------------------------- */

void api_h_plugins(http_req_t *r)
{
    api_server_t *s = api_req(r)->srv;
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"plugins\":");
    if (s->ext.list)
        s->ext.list(s->ext.ctx, &b);
    else
        buf_add(&b, "[]", 2);
    buf_addc(&b, '}');
    http_respond(r, 200, "application/json", b.p, b.len, NULL);
    buf_free(&b);
}

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
    /* the job names its owner ("script:<name>", "plugin:<name>"); ids are
     * "<owner>/<own id>" */
    const char *owner = json_string_value(json_object_get(j, "owner"));
    if (!owner) owner = "";
    size_t ol = strlen(owner);
    const char *own = ol && strncmp(id, owner, ol) == 0 && id[ol] == '/' ? id + ol + 1 : id;
    const char *script = strncmp(owner, "script:", 7) == 0 ? owner + 7 : "";
    if (b->p[b->len - 1] != '[') buf_addc(b, ',');
    buf_adds(b, "{\"id\":");
    json_write_cstr(b, own);
    buf_adds(b, ",\"owner\":");
    json_write_cstr(b, owner);
    buf_adds(b, ",\"script\":");
    json_write_cstr(b, script);
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
        json_t *origin = json_object_get(f, "origin"), *sha = json_object_get(f, "shipped_sha256");
        if (json_is_string(origin)) json_object_set(e, "origin", origin);
        if (json_is_string(sha)) json_object_set(e, "shipped_sha256", sha);
        json_array_append_new(json_object_get(s, "versions"), e);
        if (ver > json_integer_value(json_object_get(s, "version"))) {
            json_object_set_new(s, "version", json_integer(ver));
            json_object_set_new(s, "deleted",
                                json_boolean(json_is_true(json_object_get(f, "deleted"))));
            json_t *src = json_object_get(f, "source");
            json_object_set_new(s, "source",
                                json_is_string(src) ? json_incref(src) : json_string(""));
            /* where the current version came from: enabled from scripts/ */
            json_object_del(s, "origin");
            json_object_del(s, "shipped_sha256");
            if (json_is_string(origin)) json_object_set(s, "origin", origin);
            if (json_is_string(sha)) json_object_set(s, "shipped_sha256", sha);
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
        json_t *origin = json_object_get(s, "origin");
        if (origin) json_object_set(e, "origin", origin);
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
    char shipped[65]; /* the shipped source's sha256 when enabled from scripts/ */
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
        if (d->shipped[0]) {
            json_object_set_new(o, "origin", json_string("shipped"));
            json_object_set_new(o, "shipped_sha256", json_string(d->shipped));
        }
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
    store_op_t *load = store_op_custom(load_op, d->ws->lua);
    load->system = 1;
    store_submit(d->ws->st, load, api_inbox(d->r), reloaded, d);
}

/* Stores version (newest + 1) of the script: source, or a tombstone;
 * shipped is the sha256 of the shipped copy it came from, or NULL. */
static void store_version(http_req_t *r, const char *name, const char *src, size_t len,
                          const char *shipped)
{
    versions_t v = {.out = json_object(), .only = name};
    if (versions_read(r, &v)) {
        json_decref(v.out);
        return;
    }
    json_t *cur = json_object_get(v.out, name);
    int64_t last = cur ? json_integer_value(json_object_get(cur, "version")) : 0;
    int was_deleted = cur && json_is_true(json_object_get(cur, "deleted"));
    const char *cur_sha = cur ? json_string_value(json_object_get(cur, "shipped_sha256")) : NULL;
    json_t *cur_src = cur ? json_object_get(cur, "source") : NULL;
    if (shipped && cur_sha && !was_deleted && strcmp(cur_sha, shipped) == 0 &&
        json_string_length(cur_src) == len && memcmp(json_string_value(cur_src), src, len) == 0) {
        /* enabling what is live already: nothing to store (POST repeats safely) */
        json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "name", name, "version", (json_int_t)last,
                              "origin", "shipped", "shipped_sha256", shipped);
        http_respond_json(r, 200, o, NULL);
        json_decref(o);
        json_decref(v.out);
        return;
    }
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
    if (shipped) snprintf(d->shipped, sizeof d->shipped, "%s", shipped);
    char key[96];
    snprintf(key, sizeof key, "%s@%lld", name, (long long)d->version);
    json_t *rec =
        json_pack("{s:s,s:I,s:s,s:s%,s:b}", "name", name, "rev", (json_int_t)d->version, "key", key,
                  "source", src ? src : "", src ? len : 0, "deleted", src == NULL);
    const char *user = api_req(r)->who.user[0] ? api_req(r)->who.user : api_req(r)->who.key_id;
    json_object_set_new(rec, "by", json_string(user));
    if (shipped) {
        json_object_set_new(rec, "origin", json_string("shipped"));
        json_object_set_new(rec, "shipped_sha256", json_string(shipped));
    }
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
    if (strcmp(name, SHIPPED_PATH) == 0) {
        http_respond_problem(r, 400, "invalid",
                             "'shipped' is not a script name: GET /v1/scripts/shipped lists the "
                             "scripts that ship with Kith",
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
    store_version(r, name, r->body.p ? r->body.p : "", r->body.len, NULL);
}

void api_h_scripts_delete(http_req_t *r)
{
    if (!lua_script_name_ok(r->params[0])) {
        http_respond_problem(r, 404, "not-found", "no such script", NULL);
        return;
    }
    store_version(r, r->params[0], NULL, 0, NULL);
}

/* ---- Kith's shipped scripts -------------------------------------------------------- */

static json_t *shipped_json(const lua_shipped_t *e)
{
    return json_pack("{s:s,s:s,s:s,s:I}", "name", e->name, "description", e->description, "sha256",
                     e->sha256, "bytes", (json_int_t)e->len);
}

/* The shipped rules, each with whether this workspace has it live (enabled,
 * its version, and modified: its source is not the shipped one — edited,
 * or enabled from another release), and the modules require() serves. */
void api_h_scripts_shipped(http_req_t *r)
{
    versions_t v = {.out = json_object()};
    if (versions_read(r, &v)) {
        json_decref(v.out);
        return;
    }
    lua_shipped_t *rules = NULL, *mods = NULL;
    int nr = lua_shipped_list(0, &rules), nm = lua_shipped_list(1, &mods);
    json_t *a = json_array(), *m = json_array();
    for (int i = 0; i < nr; i++) {
        if (strcmp(rules[i].name, SHIPPED_PATH) == 0) continue;
        json_t *o = shipped_json(&rules[i]);
        json_t *s = json_object_get(v.out, rules[i].name);
        int live = s && !json_is_true(json_object_get(s, "deleted"));
        json_object_set_new(o, "enabled", json_boolean(live));
        if (live) {
            json_t *src = json_object_get(s, "source");
            lua_shipped_t cur;
            lua_shipped_describe(rules[i].name, json_string_value(src), json_string_length(src),
                                 &cur);
            json_object_set(o, "version", json_object_get(s, "version"));
            json_object_set_new(o, "modified", json_boolean(strcmp(cur.sha256, rules[i].sha256)));
        }
        json_array_append_new(a, o);
    }
    for (int i = 0; i < nm; i++)
        json_array_append_new(m, shipped_json(&mods[i]));
    free(rules);
    free(mods);
    json_decref(v.out);
    json_t *o = json_pack("{s:o,s:o}", "scripts", a, "modules", m);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}

/* POST /v1/scripts/{name}/enable (no body): the shipped scripts/<name>.lua
 * becomes the next version of this workspace's script <name>, checked and
 * deployed as PUT does, with origin "shipped" and its sha256 recorded. It is
 * then an ordinary script: edit it with PUT, remove it with DELETE; enabling
 * again restores the shipped source. */
void api_h_scripts_enable(http_req_t *r)
{
    const char *name = r->params[0];
    char rel[LUA_SCRIPT_NAME_MAX + 8];
    size_t len = 0;
    char *src = NULL;
    int rc = KITH_ENOTFOUND; /* a name no script can have is not shipped either */
    if (lua_script_name_ok(name) && strcmp(name, SHIPPED_PATH) != 0) {
        snprintf(rel, sizeof rel, "%.*s.lua", LUA_SCRIPT_NAME_MAX, name);
        src = lua_shipped_read(rel, &len);
        if (!src) rc = err_last()->code;
    }
    if (!src) {
        if (rc != KITH_ENOTFOUND) {
            log_error("api", "shipped script %s: %s", name, err_last()->msg);
            api_fail(r, rc == KITH_ELIMIT ? KITH_EINTERNAL : rc);
            return;
        }
        http_respond_problem(r, 404, "not-found",
                             "no such shipped script (GET /v1/scripts/shipped lists them)", NULL);
        return;
    }
    json_t *extra = json_pack("{s:s,s:s}", "script", name, "origin", "shipped");
    if (!utf8_text(src, len)) {
        http_respond_problem(r, 422, "invalid-script", "a script is UTF-8 text", extra);
    } else if (lua_check(name, src, len, NULL)) {
        http_respond_problem(r, 422, "invalid-script", err_last()->msg, extra);
    } else {
        lua_shipped_t info;
        lua_shipped_describe(name, src, len, &info);
        store_version(r, name, src, len, info.sha256);
    }
    json_decref(extra);
    free(src);
}
