/*
 * lua_kith: the `kith` API and the per-workspace host that runs admin
 * scripts as bus handlers.
 *
 * kith.entity.get/query/create/update/delete work inside handlers (they run
 * in the write transaction); kith.on registers handlers at a script's top
 * level only; kith.emit appends a domain event. Expected failures return
 * nil, {code=, message=}; misuse raises an error with the script and line.
 */
#include "lua/lua_int.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define SCRIPTS_MAX 256
#define QUERY_MAX   1000

struct lua_host {
    bus_t *bus;
    char *ws;
    lua_limits_t lim;
    lsb_t *s;            /* the loaded scripts' state, or NULL */
    store_wtxn_t *w;     /* the transaction of the handler running now */
    const char *loading; /* the script whose top level runs now */
    int nth;             /* handlers registered by it so far */
    char *owners[SCRIPTS_MAX];
    size_t nowners;
    atomic_uint_fast64_t calls, errors, timeouts, oom;
};

typedef struct lhandler {
    lua_host_t *h;
    lsb_t *s;
    int ref;
    char script[LUA_SCRIPT_NAME_MAX + 1];
} lhandler_t;

static lua_host_t *host_of(lua_State *L)
{
    return lsb_of(L)->host;
}

static store_wtxn_t *need_w(lua_State *L, const char *fn)
{
    lua_host_t *h = host_of(L);
    if (!h || !h->w)
        luaL_error(L, "%s works only inside a handler, not at a script's top level", fn);
    return h->w;
}

static int fail(lua_State *L, int code, const char *msg)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, err_name(code));
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    return 2;
}

static int fail_last(lua_State *L)
{
    return fail(L, err_last()->code, err_last()->msg);
}

static const char *check_coll(lua_State *L, int idx)
{
    const char *c = luaL_checkstring(L, idx);
    if (c[0] == '_') luaL_argerror(L, idx, "system collections are not open to scripts");
    return c;
}

static int check_id(lua_State *L, int idx, kith_id_t *id)
{
    const char *s = luaL_checkstring(L, idx);
    return id_decode(s, strlen(s), id);
}

/* Pushes {id, version, created_at, updated_at, ...fields} as a table. */
static void push_record(lua_State *L, const kith_id_t *id, uint64_t version, int64_t created,
                        int64_t updated, const char *json, size_t len)
{
    json_t *f = json_parse(json, len);
    if (!f) f = json_object();
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(id, ids);
    json_object_set_new(f, "id", json_string(ids));
    json_object_set_new(f, "version", json_integer((json_int_t)version));
    time_fmt_rfc3339(created, ts, sizeof ts, 6);
    json_object_set_new(f, "created_at", json_string(ts));
    time_fmt_rfc3339(updated, ts, sizeof ts, 6);
    json_object_set_new(f, "updated_at", json_string(ts));
    lj_push(L, f);
    json_decref(f);
}

static json_t *check_json_table(lua_State *L, int idx, const char *what)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    const char *why = "";
    json_t *j = lj_to_json(L, idx, &why);
    if (!j) luaL_error(L, "%s: %s", what, why);
    return j;
}

/* ---- kith.entity ------------------------------------------------------------ */

static int l_get(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.entity.get");
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    store_record_t rec;
    if (store_wtxn_get(w, coll, &id, &rec)) return fail_last(L);
    push_record(L, &rec.id, rec.version, rec.created_us, rec.updated_us, rec.json, rec.json_len);
    return 1;
}

typedef struct qctx {
    lua_State *L;
    lua_Integer n;
} qctx_t;

static int query_row(void *ctx, const store_record_t *rec)
{
    qctx_t *q = ctx;
    push_record(q->L, &rec->id, rec->version, rec->created_us, rec->updated_us, rec->json,
                rec->json_len);
    lua_rawseti(q->L, -2, ++q->n);
    return 0;
}

static int l_query(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.entity.query");
    const char *coll = check_coll(L, 1);
    json_t *filter = lua_isnoneornil(L, 2) ? NULL : check_json_table(L, 2, "kith.entity.query");
    store_query_t q = {.coll = coll, .filter = filter, .limit = 50};
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "limit");
        lua_Integer lim = luaL_optinteger(L, -1, 50);
        q.limit = lim < 1 ? 1 : lim > QUERY_MAX ? QUERY_MAX : (size_t)lim;
        lua_getfield(L, 3, "sort");
        q.sort = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 3, "cursor");
        q.cursor = luaL_optstring(L, -1, NULL);
    }
    lua_newtable(L);
    qctx_t c = {L, 0};
    char *next = NULL;
    int rc = store_wtxn_query(w, &q, query_row, &c, &next);
    if (filter) json_decref(filter);
    if (rc) return fail_last(L);
    if (next) {
        lua_pushstring(L, next);
        free(next);
    } else {
        lua_pushnil(L);
    }
    return 2;
}

static int write_result(lua_State *L, store_op_t *op, int want_record)
{
    int rc = op->status;
    if (rc) {
        store_op_free(op);
        return fail_last(L);
    }
    if (want_record)
        push_record(L, &op->rid, op->version, op->created_us, op->updated_us, op->json,
                    op->json_len);
    else
        lua_pushboolean(L, 1);
    store_op_free(op);
    return 1;
}

static uint64_t opt_version(lua_State *L, int idx)
{
    if (!lua_istable(L, idx)) return 0;
    lua_getfield(L, idx, "if_version");
    lua_Integer v = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    return v > 0 ? (uint64_t)v : 0;
}

static int l_create(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.entity.create");
    const char *coll = check_coll(L, 1);
    json_t *f = check_json_table(L, 2, "kith.entity.create");
    store_op_t *op = store_op_create(coll, f);
    json_decref(f);
    store_wtxn_write(w, op);
    return write_result(L, op, 1);
}

static int l_update(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.entity.update");
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    json_t *patch = check_json_table(L, 3, "kith.entity.update");
    store_op_t *op = store_op_update(coll, &id, patch, opt_version(L, 4));
    json_decref(patch);
    store_wtxn_write(w, op);
    return write_result(L, op, 1);
}

static int l_delete(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.entity.delete");
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    store_op_t *op = store_op_delete(coll, &id, opt_version(L, 3));
    store_wtxn_write(w, op);
    return write_result(L, op, 0);
}

/* ---- kith.on, kith.emit, kith.log, kith.time -------------------------------- */

static int handler_call(void *ctx, store_wtxn_t *w, bus_event_t *ev);

static void handler_free(void *ctx)
{
    free(ctx);
}

static int l_on(lua_State *L)
{
    lsb_t *s = lsb_of(L);
    lua_host_t *h = s->host;
    const char *event = luaL_checkstring(L, 1);
    int fi = lua_istable(L, 2) ? 3 : 2;
    luaL_checktype(L, fi, LUA_TFUNCTION);
    if (!bus_event_name_ok(event, NULL)) {
        return luaL_error(L,
                          "kith.on: '%s' is not an event (collection.created|updated|deleted|"
                          "before_create|before_update|before_delete, or a domain event like "
                          "lead.hot)",
                          event);
    }
    if (!s->checking && (!h || !h->loading))
        return luaL_error(L, "kith.on works only at a script's top level");
    const char *fields[BUS_FIELDS_MAX];
    size_t nf = 0;
    int priority = 0;
    char name[BUS_NAME_MAX];
    snprintf(name, sizeof name, "%s#%d", event, h ? h->nth + 1 : 1);
    if (fi == 3) {
        lua_getfield(L, 2, "priority");
        lua_Integer p = luaL_optinteger(L, -1, BUS_PRIORITY_DFLT);
        if (p < 1 || p > 1000000) return luaL_error(L, "kith.on: priority is 1 to 1000000");
        priority = (int)p;
        lua_pop(L, 1);
        lua_getfield(L, 2, "name");
        if (!lua_isnil(L, -1)) snprintf(name, sizeof name, "%s", luaL_checkstring(L, -1));
        lua_pop(L, 1);
        lua_getfield(L, 2, "fields");
        if (!lua_isnil(L, -1)) {
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_Integer n = luaL_len(L, -1);
            if (n > BUS_FIELDS_MAX)
                return luaL_error(L, "kith.on: at most %d fields", BUS_FIELDS_MAX);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_geti(L, -1, i);
                fields[nf++] = luaL_checkstring(L, -1);
                lua_pop(L, 1); /* the string stays alive: the table holds it */
            }
        }
    }
    if (s->checking) return 0;
    lhandler_t *lh = xcalloc(1, sizeof *lh);
    lh->h = h;
    lh->s = s;
    snprintf(lh->script, sizeof lh->script, "%s", h->loading);
    char owner[BUS_NAME_MAX];
    snprintf(owner, sizeof owner, "script:%s", h->loading);
    bus_handler_def_t def = {.event = event,
                             .owner = owner,
                             .name = name,
                             .priority = priority,
                             .fields = fields,
                             .nfields = nf,
                             .fn = handler_call,
                             .ctx = lh,
                             .ctx_free = handler_free};
    if (bus_on(h->bus, &def)) {
        free(lh);
        return luaL_error(L, "kith.on: %s", err_last()->msg);
    }
    h->nth++;
    lua_pushvalue(L, fi);
    lh->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int l_emit(lua_State *L)
{
    store_wtxn_t *w = need_w(L, "kith.emit");
    const char *name = luaL_checkstring(L, 1);
    if (!bus_event_is_domain(name))
        return luaL_error(L, "kith.emit: '%s' is not a domain event name (like lead.hot)", name);
    char *text = NULL;
    size_t len = 0;
    if (!lua_isnoneornil(L, 2)) {
        const char *why = "";
        json_t *j = lj_to_json(L, 2, &why);
        if (!j) return luaL_error(L, "kith.emit: payload: %s", why);
        text = json_to_str(j, &len);
        json_decref(j);
    }
    int rc = store_wtxn_emit(w, name, text, len);
    free(text);
    if (rc) return fail_last(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_log(lua_State *L)
{
    int level = (int)lua_tointeger(L, lua_upvalueindex(1));
    lsb_t *s = lsb_of(L);
    size_t n;
    const char *msg = luaL_tolstring(L, 1, &n);
    log_msg((enum log_level)level, "lua", "workspace %s: script %s: %.*s",
            s->host ? s->host->ws : "-", s->script ? s->script : "?", (int)(n > 2000 ? 2000 : n),
            msg);
    return 0;
}

static int l_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(time_now_us() / 1000));
    return 1;
}

void lk_push_kith(lua_State *L)
{
    lua_createtable(L, 0, 8);
    static const luaL_Reg entity[] = {{"get", l_get},       {"query", l_query},
                                      {"create", l_create}, {"update", l_update},
                                      {"delete", l_delete}, {NULL, NULL}};
    luaL_newlib(L, entity);
    lua_setfield(L, -2, "entity");
    lua_pushcfunction(L, l_on);
    lua_setfield(L, -2, "on");
    lua_pushcfunction(L, l_emit);
    lua_setfield(L, -2, "emit");
    lua_createtable(L, 0, 3);
    static const struct {
        const char *n;
        int level;
    } lv[] = {{"info", LOG_INFO}, {"warn", LOG_WARN}, {"error", LOG_ERROR}};
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, lv[i].level);
        lua_pushcclosure(L, l_log, 1);
        lua_setfield(L, -2, lv[i].n);
    }
    lua_setfield(L, -2, "log");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    lua_setfield(L, -2, "time");
    lj_open(L);
    lua_pushinteger(L, KITH_API_LEVEL);
    lua_setfield(L, -2, "api_level");
}

/* ---- handlers ---------------------------------------------------------------- */

static const char *const op_names[] = {"", "create", "update", "delete", "event"};

static void push_strings(lua_State *L, const char *const *v, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* The event table; its record (before-hooks) is also left in the registry
 * slot *rec_ref so the handler's changes can be read back. */
static void push_event(lua_State *L, store_wtxn_t *w, const bus_event_t *ev, int *rec_ref)
{
    lua_createtable(L, 0, 12);
    lua_pushstring(L, ev->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, op_names[ev->op >= 0 && ev->op <= 4 ? ev->op : 0]);
    lua_setfield(L, -2, "op");
    lua_pushstring(L, ev->before_phase ? "before" : "after");
    lua_setfield(L, -2, "phase");
    lua_pushinteger(L, ev->depth);
    lua_setfield(L, -2, "depth");
    *rec_ref = LUA_NOREF;
    if (ev->op == STORE_CHANGE_EVENT) {
        if (ev->payload) {
            json_t *p = json_parse(ev->payload, ev->payload_len);
            lj_push(L, p);
            if (p) json_decref(p);
            lua_setfield(L, -2, "payload");
        }
    } else {
        char ids[ID_TEXT_LEN + 1];
        id_encode(&ev->id, ids);
        lua_pushstring(L, ids);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, ev->coll);
        lua_setfield(L, -2, "collection");
        push_strings(L, ev->changed, ev->nchanged);
        lua_setfield(L, -2, "changed");
        if (ev->before) {
            lj_push(L, ev->before);
            lua_setfield(L, -2, "before");
        }
        if (ev->before_phase && ev->record) {
            lj_push(L, ev->record);
            lua_pushvalue(L, -1);
            *rec_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            lua_setfield(L, -2, "record");
        } else if (!ev->before_phase && ev->op != STORE_CHANGE_DELETE) {
            store_record_t rec;
            if (store_wtxn_get(w, ev->coll, &ev->id, &rec) == 0) {
                push_record(L, &rec.id, rec.version, rec.created_us, rec.updated_us, rec.json,
                            rec.json_len);
                lua_setfield(L, -2, "record");
            }
        }
    }
    if (ev->seq) {
        lua_pushinteger(L, (lua_Integer)ev->seq);
        lua_setfield(L, -2, "seq");
    }
}

static int handler_call(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    lhandler_t *lh = ctx;
    lua_host_t *h = lh->h;
    lsb_t *s = lh->s;
    lua_State *L = s->L;
    int top = lua_gettop(L);
    atomic_fetch_add(&h->calls, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->ref);
    int rec_ref;
    push_event(L, w, ev, &rec_ref);
    store_wtxn_t *w0 = h->w;
    const char *script0 = s->script;
    h->w = w;
    s->script = lh->script;
    int rc = lsb_call(s, 1, 2);
    h->w = w0;
    s->script = script0;
    if (rc) {
        if (rec_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, rec_ref);
        lua_settop(L, top);
        if (s->timed_out) atomic_fetch_add(&h->timeouts, 1);
        if (s->oom) atomic_fetch_add(&h->oom, 1);
        atomic_fetch_add(&h->errors, 1);
        err_diag_t d;
        err_save(&d);
        return err_set(KITH_EHANDLER, "script %s: %s", lh->script, d.msg);
    }
    if (ev->before_phase && lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
        const char *msg = lua_tostring(L, -1);
        err_set(KITH_EVETO, "%s", msg ? msg : "refused by a rule");
        if (rec_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, rec_ref);
        lua_settop(L, top);
        return KITH_EVETO;
    }
    rc = 0;
    if (rec_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rec_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, rec_ref);
        const char *why = "";
        json_t *after = lj_to_json(L, -1, &why);
        if (!after || !json_is_object(after)) {
            rc = err_set(KITH_EHANDLER, "script %s: the amended record is not valid: %s",
                         lh->script, after ? "not an object" : why);
        } else if (!json_equal(after, ev->record)) {
            /* kith.json.null means "no value": drop it like a missing field */
            json_object_clear(ev->record);
            const char *k;
            json_t *v;
            json_object_foreach(after, k, v)
            {
                if (!json_is_null(v)) json_object_set(ev->record, k, v);
            }
            *ev->amended = 1;
        }
        if (after) json_decref(after);
    }
    lua_settop(L, top);
    return rc;
}

/* ---- the host ---------------------------------------------------------------- */

lua_host_t *lua_host_new(bus_t *bus, const char *workspace, const lua_limits_t *lim)
{
    lua_host_t *h = xcalloc(1, sizeof *h);
    h->bus = bus;
    h->ws = xstrdup(workspace);
    if (lim) h->lim = *lim;
    return h;
}

static void unload(lua_host_t *h)
{
    for (size_t i = 0; i < h->nowners; i++) {
        bus_off_owner(h->bus, h->owners[i]);
        free(h->owners[i]);
    }
    h->nowners = 0;
    lsb_free(h->s);
    h->s = NULL;
}

void lua_host_free(lua_host_t *h)
{
    if (!h) return;
    unload(h);
    free(h->ws);
    free(h);
}

int lua_host_load(lua_host_t *h, const lua_script_t *scripts, size_t n)
{
    unload(h);
    if (n == 0) return 0;
    lsb_t *s = lsb_new(&h->lim);
    if (!s) return err_set(KITH_ENOMEM, "cannot create a Lua state");
    s->host = h;
    h->s = s;
    int failed = 0;
    for (size_t i = 0; i < n && i < SCRIPTS_MAX; i++) {
        char owner[BUS_NAME_MAX];
        snprintf(owner, sizeof owner, "script:%s", scripts[i].name);
        h->owners[h->nowners++] = xstrdup(owner);
        h->loading = scripts[i].name;
        h->nth = 0;
        int rc = lsb_run_script(s, scripts[i].name, scripts[i].source, scripts[i].len);
        h->loading = NULL;
        if (rc) {
            failed++;
            log_error("lua", "workspace %s: script %s not loaded: %s", h->ws, scripts[i].name,
                      err_last()->msg);
            bus_off_owner(h->bus, owner); /* what it registered before failing */
        }
    }
    log_info("lua", "workspace %s: %zu script(s) loaded, %d refused", h->ws, n - (size_t)failed,
             failed);
    return 0;
}

void lua_host_stats(lua_host_t *h, lua_host_stats_t *out)
{
    out->calls = atomic_load(&h->calls);
    out->errors = atomic_load(&h->errors);
    out->timeouts = atomic_load(&h->timeouts);
    out->oom = atomic_load(&h->oom);
}
