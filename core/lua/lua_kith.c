/*
 * lua_kith: the `kith` API and the per-workspace host that runs admin
 * scripts as bus handlers.
 *
 * kith.entity.get/query/create/update/delete work inside handlers (they run
 * in the write transaction) and anywhere in a test state (kith test: reads
 * in a snapshot, each write its own committed op, lua_test.c); kith.on
 * registers handlers at a script's top level only; kith.emit appends a
 * domain event. Expected failures return nil, {code=, message=}; misuse
 * raises an error with the script and line.
 */
#include "lua/lua_int.h"
#include "lua/lua_test.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/id.h"
#include "base/timeutil.h"
#include "sched/sched.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRIPTS_MAX  256
#define QUERY_MAX    1000
#define TIMER_ID_MAX 100 /* a script's own timer id */
#define DECLS_MAX    256 /* kith.every at top level, per script */

typedef struct decl {
    char id[SCHED_ID_MAX + 1];
    char event[BUS_NAME_MAX];
    char every[128];
    char *payload;
    size_t payload_len;
} decl_t;

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
    decl_t decls[DECLS_MAX]; /* the loading script's recurring timers */
    size_t ndecls;
    atomic_uint_fast64_t calls, errors, timeouts, oom;
    int tramp; /* registry ref of the handler trampoline in s */
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

/* Where kith.entity and kith.emit work: inside a handler (*w is its
 * transaction) or anywhere in a test state (*w is NULL). */
static lsb_t *need_rw(lua_State *L, const char *fn, store_wtxn_t **w)
{
    lsb_t *s = lsb_of(L);
    *w = s->host ? s->host->w : NULL;
    if (!*w && !s->test)
        luaL_error(L, "%s works only inside a handler, not at a script's top level", fn);
    return s;
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

/* Pushes the record as a table, {id, version, created_at, updated_at,
 * ...fields}: its stored JSON read straight into Lua (kith.entity.get spent
 * most of its time building jansson values first), through jansson only if
 * the fast reader refuses the text. */
static void push_record(lua_State *L, const kith_id_t *id, uint64_t version, int64_t created,
                        int64_t updated, const char *json, size_t len)
{
    if (lj_push_text(L, json, len) != 0) {
        json_t *f = json_parse(json, len);
        lj_push(L, f);
        if (f) json_decref(f);
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(id, ids);
    lua_pushlstring(L, ids, ID_TEXT_LEN);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)version);
    lua_setfield(L, -2, "version");
    lua_pushlstring(L, ts, time_fmt_rfc3339(created, ts, sizeof ts, 6));
    lua_setfield(L, -2, "created_at");
    lua_pushlstring(L, ts, time_fmt_rfc3339(updated, ts, sizeof ts, 6));
    lua_setfield(L, -2, "updated_at");
}

/* At test level reads run in a snapshot, ended before anything is pushed:
 * a Lua error (memory) must not leave it open. */
static int snapshot_end(store_rtxn_t *rt, int rc)
{
    err_diag_t d;
    err_save(&d);
    store_read_end(rt);
    err_restore(&d);
    return rc;
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

/* A query's rows, copied out of the snapshot (which ends before anything is
 * pushed: a Lua error must not leave it open), then read straight into
 * tables (push_record). */
typedef struct qrow {
    kith_id_t id;
    uint64_t version;
    int64_t created, updated;
    char *json;
    size_t len;
} qrow_t;

typedef struct qrows {
    qrow_t *v;
    size_t n, cap;
    char *next; /* the next page's cursor, or NULL */
} qrows_t;

static int query_row(void *ctx, const store_record_t *rec)
{
    qrows_t *q = ctx;
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->v = xrealloc(q->v, q->cap * sizeof *q->v);
    }
    q->v[q->n++] = (qrow_t){rec->id,
                            rec->version,
                            rec->created_us,
                            rec->updated_us,
                            xstrndup(rec->json, rec->json_len),
                            rec->json_len};
    return 0;
}

/* The rows as a list of tables, and the cursor (or nil). */
static int push_rows(lua_State *L)
{
    const qrows_t *q = lua_touserdata(L, 1);
    lua_createtable(L, (int)q->n, 0);
    for (size_t i = 0; i < q->n; i++) {
        const qrow_t *r = &q->v[i];
        push_record(L, &r->id, r->version, r->created, r->updated, r->json, r->len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (q->next)
        lua_pushstring(L, q->next);
    else
        lua_pushnil(L);
    return 2;
}

static void qrows_free(qrows_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->v[i].json);
    free(q->v);
    free(q->next);
}

/* Pushes the rows as a list of tables and the cursor, in a protected call;
 * frees them, and re-raises an error (a budget running out) only after:
 * nothing leaks. */
static void push_rows_protected(lua_State *L, qrows_t *rows)
{
    lua_pushcfunction(L, push_rows);
    lua_pushlightuserdata(L, rows);
    int st = lua_pcall(L, 1, 2, 0);
    qrows_free(rows);
    if (st != LUA_OK) lua_error(L);
}

static int l_get(lua_State *L)
{
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.entity.get", &w);
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    store_record_t rec;
    if (w) {
        /* the stored text stays valid in the handler's transaction: read it
         * straight into a table (5x faster than through jansson values) */
        if (store_wtxn_get(w, coll, &id, &rec)) return fail_last(L);
        push_record(L, &rec.id, rec.version, rec.created_us, rec.updated_us, rec.json,
                    rec.json_len);
        return 1;
    }
    store_rtxn_t *rt;
    if (store_read_begin(s->test->st, &rt)) return fail_last(L);
    qrows_t rows = {0};
    int rc = store_get(rt, coll, &id, &rec);
    if (rc == 0) query_row(&rows, &rec);
    if (snapshot_end(rt, rc)) {
        qrows_free(&rows);
        return fail_last(L);
    }
    push_rows_protected(L, &rows);
    lua_pop(L, 1); /* no cursor */
    lua_rawgeti(L, -1, 1);
    return 1;
}

static int l_query(lua_State *L)
{
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.entity.query", &w);
    const char *coll = check_coll(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    store_query_t q = {.coll = coll, .limit = 50};
    if (lua_istable(L, 3)) {
        lua_getfield(L, 3, "limit");
        lua_Integer lim = luaL_optinteger(L, -1, 50);
        q.limit = lim < 1 ? 1 : lim > QUERY_MAX ? QUERY_MAX : (size_t)lim;
        lua_getfield(L, 3, "sort");
        q.sort = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 3, "cursor");
        q.cursor = luaL_optstring(L, -1, NULL);
    }
    /* the filter last: nothing may raise while its C copy is held */
    json_t *filter = lua_isnoneornil(L, 2) ? NULL : check_json_table(L, 2, "kith.entity.query");
    q.filter = filter;
    qrows_t rows = {0};
    int rc;
    if (w) {
        rc = store_wtxn_query(w, &q, query_row, &rows, &rows.next);
    } else {
        store_rtxn_t *rt;
        rc = store_read_begin(s->test->st, &rt);
        if (rc == 0) rc = snapshot_end(rt, store_query(rt, &q, query_row, &rows, &rows.next));
    }
    if (filter) json_decref(filter);
    if (rc) {
        qrows_free(&rows);
        return fail_last(L);
    }
    push_rows_protected(L, &rows);
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

/* In the handler's transaction, or at test level as its own committed op. */
static void write_op(lsb_t *s, store_wtxn_t *w, store_op_t *op)
{
    if (w)
        store_wtxn_write(w, op);
    else
        lt_write(s, op);
}

static int l_create(lua_State *L)
{
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.entity.create", &w);
    const char *coll = check_coll(L, 1);
    json_t *f = check_json_table(L, 2, "kith.entity.create");
    store_op_t *op = store_op_create(coll, f);
    json_decref(f);
    write_op(s, w, op);
    return write_result(L, op, 1);
}

static int l_update(lua_State *L)
{
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.entity.update", &w);
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    uint64_t if_version = opt_version(L, 4);
    json_t *patch = check_json_table(L, 3, "kith.entity.update");
    store_op_t *op = store_op_update(coll, &id, patch, if_version);
    json_decref(patch);
    write_op(s, w, op);
    return write_result(L, op, 1);
}

static int l_delete(lua_State *L)
{
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.entity.delete", &w);
    const char *coll = check_coll(L, 1);
    kith_id_t id;
    if (check_id(L, 2, &id)) return fail(L, KITH_ENOTFOUND, "no such record");
    store_op_t *op = store_op_delete(coll, &id, opt_version(L, 3));
    write_op(s, w, op);
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
    store_wtxn_t *w;
    lsb_t *s = need_rw(L, "kith.emit", &w);
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
    int rc = w ? store_wtxn_emit(w, name, text, len) : lt_emit(s, name, text, len);
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
    if (s->test) { /* kith test: in the report, where the admin looks */
        lt_log(s, level, msg, n);
        return 0;
    }
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

/* ---- timers ------------------------------------------------------------------ */

static void timer_id_check(lua_State *L, const char *fn, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > TIMER_ID_MAX ||
        strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_.:-") != n)
        luaL_error(L, "%s: a timer id is 1 to %d characters of letters, digits and _.:-", fn,
                   TIMER_ID_MAX);
}

/* "script:<name>/<id>": a script names, replaces and cancels only its own. */
static void timer_id_format(char out[SCHED_ID_MAX + 1], const char *script, const char *id)
{
    snprintf(out, SCHED_ID_MAX + 1, "script:%s/%s", script ? script : "?", id);
}

static void timer_full_id(lua_State *L, const char *fn, const char *script, const char *id,
                          char out[SCHED_ID_MAX + 1])
{
    timer_id_check(L, fn, id);
    timer_id_format(out, script, id);
}

/* Arguments shared by after, at and every: (when, event, payload?, opts?). */
typedef struct targs {
    const char *event;
    char *payload; /* JSON text or NULL (free) */
    size_t payload_len;
    const char *id; /* opts.id (in idbuf), or NULL */
    char idbuf[TIMER_ID_MAX + 1];
} targs_t;

/* opts.id, checked and copied: the string may live only on the stack (a
 * number converted, or what an __index made), so a pointer to it would
 * dangle once popped. NULL if opts has none. */
static const char *opts_id(lua_State *L, int idx, const char *fn, char buf[TIMER_ID_MAX + 1])
{
    if (!lua_istable(L, idx)) return NULL;
    lua_getfield(L, idx, "id");
    const char *id = NULL;
    if (!lua_isnil(L, -1)) {
        id = luaL_checkstring(L, -1);
        timer_id_check(L, fn, id);
        memcpy(buf, id, strlen(id) + 1);
        id = buf;
    }
    lua_pop(L, 1);
    return id;
}

static void timer_args(lua_State *L, const char *fn, targs_t *a)
{
    a->event = luaL_checkstring(L, 2);
    if (!bus_event_is_domain(a->event))
        luaL_error(L, "%s: '%s' is not a domain event name (like followup.due)", fn, a->event);
    a->payload = NULL;
    a->payload_len = 0;
    if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
    a->id = opts_id(L, 4, fn, a->idbuf);
    /* the payload last: nothing may raise while its C copy is held */
    if (!lua_isnoneornil(L, 3)) {
        const char *why = "";
        json_t *j = lj_to_json(L, 3, &why);
        if (!j) luaL_error(L, "%s: payload: %s", fn, why);
        a->payload = json_to_str(j, &a->payload_len);
        json_decref(j);
    }
}

/* Puts a one-off or recurring timer from inside a handler; returns its id. */
static int timer_put(lua_State *L, targs_t *a, int64_t due, const char *every)
{
    lua_host_t *h = host_of(L);
    lsb_t *s = lsb_of(L);
    char idbuf[ID_TEXT_LEN + 1], full[SCHED_ID_MAX + 1], owner[BUS_NAME_MAX];
    const char *id = a->id;
    if (!id) {
        kith_id_t k;
        id_new(&k, time_now_us() / 1000);
        id_encode(&k, idbuf);
        id = idbuf;
    }
    /* no Lua call until the payload is freed: an error would leak it */
    timer_id_format(full, s->script, id);
    snprintf(owner, sizeof owner, "script:%s", s->script ? s->script : "?");
    sched_timer_t t = {.id = full,
                       .owner = owner,
                       .event = a->event,
                       .payload = a->payload,
                       .payload_len = a->payload_len,
                       .every = every};
    int rc = sched_put(h->w, &t, due);
    free(a->payload);
    if (rc) return fail_last(L);
    lua_pushstring(L, id);
    return 1;
}

static int l_after(lua_State *L)
{
    need_w(L, "kith.after");
    int64_t us;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, 1);
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.6f", (double)v);
        if (sched_parse_duration(tmp, &us)) return luaL_error(L, "kith.after: %s", err_last()->msg);
    } else if (sched_parse_duration(luaL_checkstring(L, 1), &us)) {
        return luaL_error(L, "kith.after: %s", err_last()->msg);
    }
    targs_t a;
    timer_args(L, "kith.after", &a);
    return timer_put(L, &a, time_now_us() + us, NULL);
}

static int l_at(lua_State *L)
{
    need_w(L, "kith.at");
    int64_t due;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Number ms = lua_tonumber(L, 1);       /* like kith.time.now() */
        if (!(ms >= 0 && ms < 253402300800000.0)) /* NaN, negative, past year 9999 */
            return luaL_error(L, "kith.at: %f is not a time in milliseconds since 1970",
                              (double)ms);
        due = (int64_t)(ms * 1000);
    } else {
        size_t n;
        const char *t = luaL_checklstring(L, 1, &n);
        if (time_parse_rfc3339(t, n, &due))
            return luaL_error(L,
                              "kith.at: '%s' is not a time (milliseconds since 1970, or "
                              "RFC 3339 like 2026-12-01T09:00:00Z)",
                              t);
    }
    targs_t a;
    timer_args(L, "kith.at", &a);
    return timer_put(L, &a, due, NULL);
}

static int l_every(lua_State *L)
{
    lsb_t *s = lsb_of(L);
    lua_host_t *h = s->host;
    char spec[128];
    if (lua_type(L, 1) == LUA_TNUMBER) {
        snprintf(spec, sizeof spec, "%.6f", (double)lua_tonumber(L, 1));
    } else {
        size_t n;
        const char *x = luaL_checklstring(L, 1, &n);
        if (n >= sizeof spec)
            return luaL_error(L, "kith.every: a schedule is under 128 characters");
        memcpy(spec, x, n + 1);
    }
    sched_every_t e;
    if (sched_parse_every(spec, &e)) return luaL_error(L, "kith.every: %s", err_last()->msg);
    if (!s->checking && h && h->w) {
        targs_t a;
        timer_args(L, "kith.every", &a);
        return timer_put(L, &a, sched_next(&e, time_now_us()), spec);
    }
    if (!s->checking && (!h || !h->loading))
        return luaL_error(L, "kith.every works at a script's top level or inside a handler");
    /* Declared at the top level: kept across reloads with its due time,
     * removed when the script stops declaring it. Id: opts.id or the event.
     * The checks run in lua_check too, so PUT refuses what would not load. */
    const char *event = luaL_checkstring(L, 2); /* a stack slot: stays alive */
    char idbuf[TIMER_ID_MAX + 1];
    const char *id = opts_id(L, 4, "kith.every", idbuf);
    if (!id) id = event;
    timer_id_check(L, "kith.every", id);
    lua_getfield(L, LUA_REGISTRYINDEX, "kith.declared");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, "kith.declared");
    }
    lua_pushfstring(L, "%s/%s", s->script ? s->script : "?", id);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return luaL_error(L, "kith.every: timer '%s' is declared twice (give each an id)", id);
    lua_pop(L, 1);
    lua_pushfstring(L, "%s/%s", s->script ? s->script : "?", id);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    /* and how many this script declared, in both modes */
    lua_pushfstring(L, "#%s", s->script ? s->script : "?");
    lua_pushvalue(L, -1);
    lua_Integer count = lua_rawget(L, -3) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    if (count >= DECLS_MAX)
        return luaL_error(L, "kith.every: at most %d recurring timers per script", DECLS_MAX);
    lua_pushinteger(L, count + 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    targs_t a;
    timer_args(L, "kith.every", &a); /* after this, nothing may raise: a.payload is ours */
    if (s->checking) {
        free(a.payload);
        lua_pushstring(L, id);
        return 1;
    }
    decl_t *d = &h->decls[h->ndecls];
    timer_id_format(d->id, h->loading, id);
    snprintf(d->event, sizeof d->event, "%s", a.event);
    snprintf(d->every, sizeof d->every, "%s", spec);
    d->payload = a.payload;
    d->payload_len = a.payload_len;
    h->ndecls++;
    lua_pushstring(L, id);
    return 1;
}

static int l_cancel(lua_State *L)
{
    lsb_t *s = lsb_of(L);
    const char *id = luaL_checkstring(L, 1);
    store_wtxn_t *w = need_w(L, "kith.cancel");
    char full[SCHED_ID_MAX + 1];
    timer_full_id(L, "kith.cancel", s->script ? s->script : "?", id, full);
    int rc = sched_cancel(w, full);
    if (rc && rc != KITH_ENOTFOUND) return fail_last(L);
    lua_pushboolean(L, rc == 0);
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
    static const luaL_Reg timers[] = {
        {"after", l_after}, {"at", l_at}, {"every", l_every}, {"cancel", l_cancel}, {NULL, NULL}};
    luaL_setfuncs(L, timers, 0);
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

/* Handlers are called through this function, which builds the event table
 * with a table constructor (constant keys, one allocation) and tail-calls
 * the handler: setting ten fields from C cost about as much as ten rules. */
static const char tramp_src[] =
    "return function(fn, name, op, phase, depth, id, coll, changed, record, before, seq, "
    "payload)\n"
    "  return fn({name = name, op = op, phase = phase, depth = depth, id = id, "
    "collection = coll, changed = changed, record = record, before = before, seq = seq, "
    "payload = payload})\n"
    "end\n";
#define TRAMP_ARGS 12

/* Pushes the trampoline, the handler and the event's fields as its
 * arguments. A before-hook's record is the stack slot below them (pushed
 * first, nil if none), so the handler's changes can be read back. */
static void push_call(lua_State *L, lua_host_t *h, lhandler_t *lh, store_wtxn_t *w,
                      const bus_event_t *ev)
{
    if (ev->before_phase && ev->record)
        lj_push(L, ev->record);
    else
        lua_pushnil(L);
    int rec = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->tramp);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh->ref);
    lua_pushstring(L, ev->name);
    lua_pushstring(L, op_names[ev->op >= 0 && ev->op <= 4 ? ev->op : 0]);
    lua_pushstring(L, ev->before_phase ? "before" : "after");
    lua_pushinteger(L, ev->depth);
    if (ev->op == STORE_CHANGE_EVENT) {
        for (int i = 0; i < 6; i++) /* id, collection, changed, record, before, seq */
            lua_pushnil(L);
        if (ev->seq) {
            lua_pushinteger(L, (lua_Integer)ev->seq);
            lua_replace(L, -2);
        }
        json_t *p = ev->payload ? json_parse(ev->payload, ev->payload_len) : NULL;
        if (p) {
            lj_push(L, p);
            json_decref(p);
        } else {
            lua_pushnil(L);
        }
        return;
    }
    char ids[ID_TEXT_LEN + 1];
    id_encode(&ev->id, ids);
    lua_pushlstring(L, ids, ID_TEXT_LEN);
    lua_pushstring(L, ev->coll);
    push_strings(L, ev->changed, ev->nchanged);
    if (ev->before_phase) {
        lua_pushvalue(L, rec);
    } else {
        store_record_t r;
        if (ev->op != STORE_CHANGE_DELETE && store_wtxn_get(w, ev->coll, &ev->id, &r) == 0)
            push_record(L, &r.id, r.version, r.created_us, r.updated_us, r.json, r.json_len);
        else
            lua_pushnil(L);
    }
    if (ev->before)
        lj_push(L, ev->before);
    else
        lua_pushnil(L);
    if (ev->seq)
        lua_pushinteger(L, (lua_Integer)ev->seq);
    else
        lua_pushnil(L);
    lua_pushnil(L); /* payload */
}

/* A before-hook's `return false, why`: why is a message (a veto, 422) or a
 * table {code = "vetoed"|"exists"|"conflict"|"validation"|"forbidden",
 * message =, field =, existing = id}, the refusals plugins have too. Sets
 * the diagnostic; returns its code. */
static int refusal(lua_State *L, const char *script)
{
    static const struct {
        const char *name;
        int code;
    } codes[] = {{"vetoed", KITH_EVETO},
                 {"exists", KITH_EEXIST},
                 {"conflict", KITH_ECONFLICT},
                 {"validation", KITH_EVALIDATION},
                 {"forbidden", KITH_EPERM}};
    if (!lua_istable(L, -1)) {
        const char *msg = lua_tostring(L, -1);
        return err_set(KITH_EVETO, "%s", msg ? msg : "refused by a rule");
    }
    char name[32] = "vetoed", msg[ERR_MSG_MAX] = "refused by a rule",
         field[ERR_FIELD_NAME_MAX] = "", existing[ID_TEXT_LEN + 1] = "";
    static const char *const keys[] = {"code", "message", "field", "existing"};
    char *outs[] = {name, msg, field, existing};
    size_t caps[] = {sizeof name, sizeof msg, sizeof field, sizeof existing};
    for (int i = 0; i < 4; i++) {
        lua_getfield(L, -1, keys[i]);
        size_t n;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        if (s) snprintf(outs[i], caps[i], "%.*s", (int)n, s);
        lua_pop(L, 1);
    }
    int code = 0;
    for (size_t i = 0; i < ARRAY_LEN(codes); i++)
        if (strcmp(name, codes[i].name) == 0) code = codes[i].code;
    if (!code)
        return err_set(KITH_EHANDLER,
                       "script %s: a refusal's code is vetoed, exists, conflict, validation or "
                       "forbidden, not '%s'",
                       script, name);
    err_set(code, "%s", msg);
    if (field[0]) err_field_add(field, "%s", msg);
    if (code == KITH_EEXIST) err_existing(existing); /* the writer checks it (store_op_run) */
    return code;
}

static int handler_call(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    lhandler_t *lh = ctx;
    lua_host_t *h = lh->h;
    lsb_t *s = lh->s;
    lua_State *L = s->L;
    int top = lua_gettop(L);
    atomic_fetch_add(&h->calls, 1);
    luaL_checkstack(L, TRAMP_ARGS + 8, "calling a handler");
    push_call(L, h, lh, w, ev);
    int rec = top + 1;
    store_wtxn_t *w0 = h->w;
    const char *script0 = s->script;
    h->w = w;
    s->script = lh->script;
    int rc = lsb_call(s, TRAMP_ARGS, 2);
    h->w = w0;
    s->script = script0;
    if (rc) {
        lua_settop(L, top);
        if (s->call_timed_out) atomic_fetch_add(&h->timeouts, 1);
        if (s->call_oom) atomic_fetch_add(&h->oom, 1);
        atomic_fetch_add(&h->errors, 1);
        err_diag_t d;
        err_save(&d);
        return err_set(KITH_EHANDLER, "script %s: %s", lh->script, d.msg);
    }
    if (ev->before_phase && lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
        rc = refusal(L, lh->script);
        lua_settop(L, top);
        return rc;
    }
    rc = 0;
    if (ev->before_phase && ev->record) {
        /* only the fields that differ are converted back (kith.json.null or
         * nil: no value); a full conversion and comparison cost as much as
         * the rules themselves */
        const char *why = "";
        int changed = 0;
        if (lj_merge_object(L, rec, ev->record, &changed, &why))
            rc = err_set(KITH_EHANDLER, "script %s: the amended record is not valid: %s",
                         lh->script, why);
        else if (changed)
            *ev->amended = 1;
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

static void decls_clear(lua_host_t *h)
{
    for (size_t i = 0; i < h->ndecls; i++)
        free(h->decls[i].payload);
    h->ndecls = 0;
}

static int declared_keep(void *ctx, const char *id)
{
    lua_host_t *h = ctx;
    for (size_t i = 0; i < h->ndecls; i++)
        if (strcmp(h->decls[i].id, id) == 0) return 1;
    return 0;
}

/* After a script's top level ran: its declared recurring timers are put
 * (one declared the same way keeps its due time), and those it no longer
 * declares are removed. */
static int decls_apply(lua_host_t *h, store_wtxn_t *w, const char *script)
{
    char owner[BUS_NAME_MAX], prefix[BUS_NAME_MAX + 8];
    snprintf(owner, sizeof owner, "script:%s", script);
    snprintf(prefix, sizeof prefix, "script:%s/", script);
    int64_t now = time_now_us();
    for (size_t i = 0; i < h->ndecls; i++) {
        decl_t *d = &h->decls[i];
        sched_timer_t t = {.id = d->id,
                           .owner = owner,
                           .event = d->event,
                           .payload = d->payload,
                           .payload_len = d->payload_len,
                           .every = d->every,
                           .declared = 1};
        if (sched_same(w, &t)) continue;
        sched_every_t e;
        if (sched_parse_every(d->every, &e)) return err_last()->code;
        int rc = sched_put(w, &t, sched_next(&e, now));
        if (rc) return rc;
    }
    int rc = sched_cancel_prefix(w, prefix, 1, declared_keep, h);
    return rc < 0 ? rc : 0;
}

typedef struct loaded {
    const lua_script_t *v;
    size_t n;
} loaded_t;

/* A timer of a script that is no longer there goes with it. */
static int script_present(void *ctx, const char *id)
{
    loaded_t *l = ctx;
    const char *name = id + strlen("script:"), *slash = strchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : strlen(name);
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->v[i].name) == n && memcmp(l->v[i].name, name, n) == 0) return 1;
    return 0;
}

int lua_host_load(lua_host_t *h, store_wtxn_t *w, const lua_script_t *scripts, size_t n)
{
    unload(h);
    if (w) {
        loaded_t l = {scripts, n};
        int rc = sched_cancel_prefix(w, "script:", 0, script_present, &l);
        if (rc < 0) return rc;
    }
    if (n == 0) return 0;
    lsb_t *s = lsb_new(&h->lim);
    if (!s) return err_set(KITH_ENOMEM, "cannot create a Lua state");
    s->host = h;
    h->s = s;
    if (luaL_loadbufferx(s->L, tramp_src, sizeof tramp_src - 1, "=kith", "t") != LUA_OK ||
        lua_pcall(s->L, 0, 1, 0) != LUA_OK)
        return err_set(KITH_EINTERNAL, "the handler trampoline: %s", lua_tostring(s->L, -1));
    h->tramp = luaL_ref(s->L, LUA_REGISTRYINDEX);
    int failed = 0;
    for (size_t i = 0; i < n && i < SCRIPTS_MAX; i++) {
        char owner[BUS_NAME_MAX];
        snprintf(owner, sizeof owner, "script:%s", scripts[i].name);
        h->owners[h->nowners++] = xstrdup(owner);
        h->loading = scripts[i].name;
        h->nth = 0;
        decls_clear(h);
        int rc = lsb_run_script(s, scripts[i].name, scripts[i].source, scripts[i].len);
        h->loading = NULL;
        if (rc == 0 && w && (rc = decls_apply(h, w, scripts[i].name)) != 0 &&
            store_wtxn_retrying(w)) {
            decls_clear(h);
            return rc; /* the writer runs the load again */
        }
        decls_clear(h);
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

/* ---- the workspace's scripts, as stored (`_scripts`) ------------------------- */

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

int lua_host_load_stored(lua_host_t *h, store_wtxn_t *w)
{
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
        rc = lua_host_load(h, w, ls, n);
        free(ls);
    }
    for (size_t i = 0; i < set.n; i++)
        free(set.v[i].source);
    free(set.v);
    return rc;
}

void lua_host_stats(lua_host_t *h, lua_host_stats_t *out)
{
    out->calls = atomic_load(&h->calls);
    out->errors = atomic_load(&h->errors);
    out->timeouts = atomic_load(&h->timeouts);
    out->oom = atomic_load(&h->oom);
}
