/*
 * api_server: what every handler relies on — the open workspaces, resolving
 * API keys (cached per loop), the permission gate, error answers, request
 * logs and metrics.
 */
#include "api/api_int.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"
#include "lua/lua_host.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

const int api_status_list[API_STATUS_MAX - 1] = {200, 201, 204, 206, 304, 308, 400, 401, 403,
                                                 404, 405, 408, 409, 412, 413, 414, 415, 417,
                                                 422, 428, 429, 431, 500, 503, 507, 501};
static const double lat_bounds[API_LAT_BUCKETS - 1] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};

int api_server_new(const config_t *cfg, const api_ext_t *ext, api_server_t **out)
{
    api_server_t *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (cfg->scripts_dir[0]) lua_scripts_dir_set(cfg->scripts_dir); /* before any thread */
    if (ext) s->ext = *ext;
    int rc = auth_dir_open(cfg->data_dir, AUTH_DIR_SERVE, &s->dir);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->ws_lock, NULL);
    pthread_mutex_init(&s->loops_lock, NULL);
    s->table = api_routes_merge(s->ext.routes, s->ext.nroutes, &s->nroutes);
    s->routes = xcalloc(s->nroutes, sizeof *s->routes);
    /* Every workspace opens now, not at its first request: its scripts'
     * timers and after-hooks run whether or not a client calls. */
    char **names = NULL;
    size_t n = 0;
    if (auth_workspace_list(s->dir, &names, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!api_ws_get(s, names[i]))
                log_error("api", "workspace %s: not opened: %s", names[i], err_last()->msg);
            free(names[i]);
        }
        free(names);
    }
    *out = s;
    return 0;
}

void api_server_free(api_server_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nws; i++) {
        api_ws_t *w = s->ws[i];
        store_close(w->st);
        api_ws_extend_free(w);
        for (size_t k = 0; k < w->nroles; k++)
            free(w->roles[k]);
        free(w->roles);
        pthread_mutex_destroy(&w->roles_lock);
        free(w);
    }
    auth_dir_close(s->dir);
    pthread_mutex_destroy(&s->ws_lock);
    pthread_mutex_destroy(&s->loops_lock);
    free(s->routes);
    free(s->table);
    free(s);
}

const http_route_t *api_server_routes(const api_server_t *s, size_t *n)
{
    *n = s->nroutes;
    return s->table;
}

api_ws_t *api_ws_get(api_server_t *s, const char *name)
{
    pthread_mutex_lock(&s->ws_lock);
    for (size_t i = 0; i < s->nws; i++)
        if (strcmp(s->ws[i]->name, name) == 0) {
            api_ws_t *w = s->ws[i];
            pthread_mutex_unlock(&s->ws_lock);
            return w;
        }
    api_ws_t *w = NULL;
    store_t *st = NULL;
    if (s->nws >= API_WS_MAX) {
        err_set(KITH_ELIMIT, "more than %d workspaces open", API_WS_MAX);
    } else if (!auth_workspace_exists(s->dir, name)) {
        err_set(KITH_ENOTFOUND, "workspace '%s' does not exist", name);
    } else if (auth_workspace_open(s->dir, name, &st) == 0) {
        w = xcalloc(1, sizeof *w);
        snprintf(w->name, sizeof w->name, "%s", name);
        w->st = st;
        pthread_mutex_init(&w->roles_lock, NULL);
        if (api_ws_extend(s, w))
            log_error("api", "workspace %s: scripts not loaded: %s", name, err_last()->msg);
        s->ws[s->nws++] = w;
        log_info("api", "workspace %s opened", name);
    }
    pthread_mutex_unlock(&s->ws_lock);
    return w;
}

typedef struct role_row {
    json_t *def;
} role_row_t;

static int role_row(void *ctx, const store_record_t *rec)
{
    role_row_t *rr = ctx;
    json_t *f = store_record_fields(rec);
    if (f) {
        rr->def = json_incref(json_object_get(f, "def"));
        json_decref(f);
    }
    return 0;
}

const auth_role_t *api_ws_role(api_server_t *s, api_ws_t *ws, const char *name)
{
    (void)s;
    const auth_role_t *b = auth_role_get_builtin(name);
    if (b) return b;
    /* Look up the stored role; keep what is loaded for the server's lifetime
     * (callers hold pointers), newest version last. */
    store_rtxn_t *rt;
    if (store_read_begin(ws->st, &rt)) return NULL;
    json_t *filter = json_pack("{s:s}", "name", name);
    role_row_t rr = {0};
    char *next = NULL;
    store_query_t q = {.coll = "_roles", .filter = filter, .limit = 1};
    int rc = store_query(rt, &q, role_row, &rr, &next);
    free(next);
    json_decref(filter);
    store_read_end(rt);
    if (rc || !rr.def) return NULL;
    auth_role_t *role = xmalloc(sizeof *role);
    rc = auth_role_parse(rr.def, role);
    json_decref(rr.def);
    if (rc) {
        free(role);
        return NULL;
    }
    pthread_mutex_lock(&ws->roles_lock);
    if (ws->nroles == ws->roles_cap) {
        ws->roles_cap = ws->roles_cap ? ws->roles_cap * 2 : 8;
        ws->roles = xrealloc(ws->roles, ws->roles_cap * sizeof *ws->roles);
    }
    ws->roles[ws->nroles++] = role;
    pthread_mutex_unlock(&ws->roles_lock);
    return role;
}

/* ---- keys ---- */

static uint32_t token_slot(const char *t, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)t[i]) * 16777619u;
    return h % API_KEY_CACHE;
}

/* Constant-time comparison: a cache probe must not time-leak tokens. */
static int token_eq(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static const api_key_entry_t *key_resolve(api_loop_t *lp, const char *tok, size_t n, int *status,
                                          const char **why)
{
    api_server_t *s = lp->srv;
    uint64_t now = uv_now(&lp->hl->net.loop);
    uint64_t gen = atomic_load(&s->gen);
    api_key_entry_t *e = &lp->keys[token_slot(tok, n)];
    if (n == AUTH_TOKEN_LEN && e->token[0] && token_eq(e->token, tok, n) && e->gen == gen &&
        now < e->expires_ms)
        return e;
    auth_principal_t who;
    if (auth_key_lookup(s->dir, tok, n, &who) != 0) {
        *status = 401;
        *why = "invalid or revoked API key";
        return NULL;
    }
    api_ws_t *ws = api_ws_get(s, who.workspace);
    if (!ws) {
        *status = 503;
        *why = "the key's workspace cannot be opened";
        return NULL;
    }
    const auth_role_t *role = api_ws_role(s, ws, who.role);
    if (!role) {
        *status = 403;
        *why = "the key's role no longer exists";
        return NULL;
    }
    memcpy(e->token, tok, n);
    e->token[n] = '\0';
    e->who = who;
    e->role = role;
    e->ws = ws;
    e->gen = gen;
    e->expires_ms = now + API_KEY_TTL_MS;
    return e;
}

int api_key_valid(api_loop_t *lp, const char *token, size_t n, const char *role_name)
{
    int status;
    const char *why;
    const api_key_entry_t *e = key_resolve(lp, token, n, &status, &why);
    return e && strcmp(e->role->name, role_name) == 0;
}

/* ---- hooks ---- */

static void req_free(http_req_t *r)
{
    api_req_t *q = r->api;
    if (!q) return;
    if (q->state_free && q->state) q->state_free(q->state);
    free(q);
    r->api = NULL;
}

static int hook_before(http_req_t *r)
{
    net_conn_t *nc = r->conn->nc;
    api_loop_t *lp = http_loop_of(nc->loop)->api;
    api_req_t *q = xcalloc(1, sizeof *q);
    q->lp = lp;
    q->srv = lp->srv;
    q->action = -1;
    r->api = q;
    r->api_free = req_free;
    const http_route_t *rt = r->route;
    if (rt->flags & HTTP_PUBLIC) return 0;
    size_t n;
    const char *h;
    if (rt->flags & HTTP_KEY_IN_PATH) {
        h = r->params[0];
        n = strlen(h);
    } else {
        h = http_req_header(r, "authorization", &n);
        if (!h || n < 7 || strncasecmp(h, "Bearer ", 7) != 0) {
            http_respond_problem(r, 401, "unauthorized",
                                 "send an API key: Authorization: Bearer <key>", NULL);
            return 1;
        }
        h += 7;
        n -= 7;
    }
    while (n && *h == ' ')
        h++, n--;
    while (n && h[n - 1] == ' ')
        n--;
    int status = 0;
    const char *why = NULL;
    const api_key_entry_t *e = key_resolve(lp, h, n, &status, &why);
    if (!e) {
        http_respond_problem(r, status, status == 401 ? "unauthorized" : "forbidden", why, NULL);
        return 1;
    }
    /* a form key is public (it is in a web page): only its form's URL takes
     * it, and that URL takes nothing else (not an admin's key pasted in) */
    int form_key = (e->role->caps & CAP_FORM) != 0, form_route = (rt->flags & HTTP_KEY_IN_PATH) != 0;
    if (form_key != form_route) {
        http_respond_problem(r, 403, "forbidden",
                             form_key ? "a form key works only in its form's URL"
                                      : "this URL takes a form key (a key of a role with the form "
                                        "capability)",
                             NULL);
        return 1;
    }
    q->who = e->who;
    q->role = e->role;
    q->ws = e->ws;
    snprintf(r->log_workspace, sizeof r->log_workspace, "%s", e->who.workspace);
    snprintf(r->log_key, sizeof r->log_key, "%s", e->who.key_id);
    const char *act = rt->action;
    int action = auth_action_from_name(act);
    if (action >= 0) {
        const char *coll = rt->coll ? rt->coll : r->params[0];
        q->action = action;
        q->scope = coll[0] == '_' ? SCOPE_NONE : auth_role_scope(q->role, coll, action);
        if (q->scope == SCOPE_NONE) {
            char d[400];
            snprintf(d, sizeof d, "role %s may not %s %s", q->role->name, act, coll);
            http_respond_problem(r, coll[0] == '_' ? 404 : 403,
                                 coll[0] == '_' ? "not-found" : "forbidden",
                                 coll[0] == '_' ? "no such collection" : d, NULL);
            return 1;
        }
    } else if (strcmp(act, "any") != 0) {
        unsigned cap = auth_cap_from_name(act);
        if (!cap || !(q->role->caps & cap)) {
            char d[160];
            snprintf(d, sizeof d, "role %s lacks the %s capability", q->role->name, act);
            http_respond_problem(r, 403, "forbidden", d, NULL);
            return 1;
        }
    }
    return 0;
}

static int status_index(int status)
{
    for (int i = 0; i < API_STATUS_MAX - 1; i++)
        if (api_status_list[i] == status) return i;
    return API_STATUS_MAX - 1;
}

static void log_flush(api_loop_t *lp)
{
    log_lines(lp->logbuf.p, lp->logbuf.len); /* to the log thread: no disk wait here */
    buf_reset(&lp->logbuf);
}

static void on_logflush(uv_timer_t *t)
{
    log_flush(t->data);
}

static void hook_after(http_req_t *r)
{
    const http_route_t *rt = r->route;
    api_req_t *q = r->api;
    api_loop_t *lp =
        q ? q->lp : (r->conn && r->conn->nc ? http_loop_of(r->conn->nc->loop)->api : NULL);
    uint64_t us = (time_mono_ns() - r->t0_ns) / 1000;
    api_server_t *s = lp ? lp->srv : NULL;
    if (s && rt) {
        api_route_metrics_t *m = &s->routes[rt - s->table];
        atomic_fetch_add_explicit(&m->by_status[status_index(r->status)], 1, memory_order_relaxed);
        double sec = (double)us / 1e6;
        int b = 0;
        while (b < API_LAT_BUCKETS - 1 && sec > lat_bounds[b])
            b++;
        atomic_fetch_add_explicit(&m->lat[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->lat_sum_us, us, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    }
    if (!lp || !s->cfg.log_requests || log_get_level() > LOG_INFO) return;
    char ts[40];
    time_fmt_rfc3339(time_now_us(), ts, sizeof ts, 3);
    buf_t *b = &lp->logbuf;
    buf_addf(b, "time=%s level=info comp=http req=%s ws=%s key=%s method=%s path=", ts, r->id,
             r->log_workspace[0] ? r->log_workspace : "-", r->log_key[0] ? r->log_key : "-",
             http_method_name(r->method));
    /* the path only (a query string may carry filter values), without a key */
    buf_t path = BUF_INIT;
    http_req_path_shown(r, &path);
    for (size_t i = 0; i < path.len && i < 512; i++) {
        char c = path.p[i];
        buf_addc(b, (c > 0x20 && c < 0x7f && c != '"') ? c : '?');
    }
    buf_free(&path);
    buf_addf(b, " route=%s status=%d bytes=%zu us=%llu\n", rt ? rt->name : "-", r->status,
             r->out_bytes, (unsigned long long)us);
    if (b->len > 16384) log_flush(lp);
}

http_hooks_t api_hooks(api_server_t *s)
{
    http_hooks_t h = {.before = hook_before, .after = hook_after, .ctx = s};
    return h;
}

void api_loop_attach(api_server_t *s, net_loop_t *loop)
{
    api_loop_t *lp = xcalloc(1, sizeof *lp);
    lp->srv = s;
    lp->hl = http_loop_of(loop);
    lp->hl->api = lp;
    uv_timer_init(&loop->loop, &lp->logflush);
    lp->logflush.data = lp;
    uv_timer_start(&lp->logflush, on_logflush, 200, 200);
    uv_unref((uv_handle_t *)&lp->logflush);
    api_stream_loop_init(lp);
    pthread_mutex_lock(&s->loops_lock);
    if (s->nloops < ARRAY_LEN(s->loops)) s->loops[s->nloops++] = loop;
    pthread_mutex_unlock(&s->loops_lock);
}

static void on_logflush_closed(uv_handle_t *h)
{
    api_loop_t *lp = h->data;
    buf_free(&lp->logbuf);
    free(lp);
}

void api_loop_detach(net_loop_t *loop)
{
    api_loop_t *lp = http_loop_of(loop)->api;
    if (!lp) return;
    api_stream_loop_close(lp);
    log_flush(lp);
    http_loop_of(loop)->api = NULL;
    uv_timer_stop(&lp->logflush);
    uv_close((uv_handle_t *)&lp->logflush, on_logflush_closed);
}

/* ---- helpers for handlers ---- */

int api_status(int code, const char *msg, const char **type, const char **detail)
{
    *detail = msg;
    switch (code) {
    case KITH_EINVAL:
        return *type = "invalid", 400;
    case KITH_ENOTFOUND:
        return *type = "not-found", 404;
    case KITH_EEXIST:
    case KITH_ECONFLICT:
        return *type = "conflict", 409;
    case KITH_EVALIDATION:
        return *type = "validation", 422;
    case KITH_EPERM:
        return *type = "forbidden", 403;
    case KITH_ELIMIT:
        return *type = "limit", 422;
    case KITH_EVETO:
        return *type = "vetoed", 422;
    case KITH_EHANDLER:
        /* the handler's message may quote record data the caller's role may
         * not see: it goes to the log, the caller gets the request id */
        *detail = "a rule failed while handling this write (the server log has the details, "
                  "under this request's id)";
        return *type = "handler-failed", 500;
    case KITH_ENOSPC:
        return *type = "no-space", 507;
    case KITH_EBUSY:
    case KITH_ESHUTDOWN:
    case KITH_ENOMEM:
        return *type = "unavailable", 503;
    default:
        *detail = "the server could not complete the request";
        return *type = "internal", 500;
    }
}

int api_upsert_refused(http_req_t *r, const store_coll_t *c, const char *upsert)
{
    api_req_t *q = api_req(r);
    const char *why = NULL;
    if (auth_role_scope(q->role, c->name, ACT_UPDATE) == SCOPE_NONE ||
        auth_role_scope(q->role, c->name, ACT_READ) == SCOPE_NONE) {
        why = "upsert reads and updates records: your role may not";
    } else if (!api_unmask(r)) {
        /* matching on a value the caller sees masked would tell it which
         * record has it */
        const store_field_t *f = store_coll_field(c, upsert);
        if (strcmp(upsert, "true") == 0 && auth_coll_has_sensitive(c))
            why = "upsert=true matches on any unique or duplicate-checked field, and this "
                  "collection has sensitive fields your role sees masked";
        else if (f && (f->flags & SF_SENSITIVE))
            why = "upsert: the match field is sensitive and your role sees it masked";
    }
    if (!why) return 0;
    http_respond_problem(r, 403, "forbidden", why, NULL);
    return 1;
}

int api_existing_visible(http_req_t *r, const char *coll, const err_diag_t *e)
{
    api_req_t *q = api_req(r);
    if (!e->existing[0] || e->code != KITH_EEXIST || !q || !q->role || !q->ws || !coll) return 0;
    if (auth_role_scope(q->role, coll, ACT_READ) == SCOPE_NONE) return 0;
    if (api_unmask(r) || e->nfields == 0) return 1;
    /* a duplicate found by a field the caller sees masked: naming the record
     * would tell which one has the value */
    store_rtxn_t *rt;
    if (store_read_begin(q->ws->st, &rt)) return 0;
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), coll);
    int shown = c != NULL;
    for (int i = 0; shown && i < e->nfields; i++) {
        const store_field_t *f = store_coll_field(c, e->fields[i].name);
        if (f && (f->flags & SF_SENSITIVE)) shown = 0;
    }
    store_read_end(rt);
    return shown;
}

json_t *api_problem_members(const err_diag_t *e)
{
    if (!e || (!e->nfields && !(e->existing[0] && e->code == KITH_EEXIST))) return NULL;
    json_t *o = json_object();
    if (e->nfields) {
        json_t *errs = json_array();
        for (int i = 0; i < e->nfields; i++)
            json_array_append_new(errs, json_pack("{s:s,s:s}", "field", e->fields[i].name, "detail",
                                                  e->fields[i].msg));
        json_object_set_new(o, "errors", errs);
    }
    /* set only where the caller may read that record (store_op_run), and
     * only for a duplicate */
    if (e->existing[0] && e->code == KITH_EEXIST)
        json_object_set_new(o, "existing_id", json_string(e->existing));
    return o;
}

void api_fail(http_req_t *r, int code)
{
    const err_diag_t *e = err_last();
    const char *detail = e->code == code && e->msg[0] ? e->msg : err_name(code);
    err_diag_t hidden;
    if (e->existing[0]) {
        /* record routes only, and only to callers who may read the record
         * (its scope was checked by the writer, store_op_run) */
        const http_route_t *rt = r->route;
        api_req_t *q = api_req(r);
        const char *coll = rt && q && q->action >= 0 ? (rt->coll ? rt->coll : r->params[0]) : NULL;
        if (!api_existing_visible(r, coll, e)) {
            hidden = *e;
            hidden.existing[0] = '\0';
            e = &hidden;
        }
    }
    json_t *extra = e->code == code ? api_problem_members(e) : NULL;
    const char *type, *shown;
    int status = api_status(code, detail, &type, &shown);
    if (shown != detail) log_error("api", "request %s: %s", r->id, detail);
    detail = shown;
    http_respond_problem(r, status, type, detail, extra);
    if (extra) json_decref(extra);
}

void api_fail_op(http_req_t *r, const store_op_t *op)
{
    if (op->diag)
        err_restore(op->diag);
    else
        err_set(op->status, "%s", err_name(op->status));
    api_fail(r, op->status);
}

static int ctype_is_json(const char *v, size_t n)
{
    static const char want[] = "application/json";
    size_t wl = sizeof want - 1;
    if (n < wl || strncasecmp(v, want, wl) != 0) return 0;
    for (size_t i = wl; i < n; i++)
        if (v[i] != ' ' && v[i] != '\t') return v[i] == ';';
    return 1;
}

json_t *api_body_json(http_req_t *r)
{
    size_t n;
    const char *ct = http_req_header(r, "content-type", &n);
    if (!ct || !ctype_is_json(ct, n)) {
        http_respond_problem(r, 415, "unsupported-media-type",
                             "send the body as Content-Type: application/json", NULL);
        return NULL;
    }
    if (r->body.len == 0) {
        http_respond_problem(r, 400, "invalid", "the request needs a JSON body", NULL);
        return NULL;
    }
    json_t *j = json_parse(r->body.p, r->body.len);
    if (!j) {
        http_respond_problem(r, 400, "malformed-json", err_last()->msg, NULL);
        return NULL;
    }
    return j;
}

store_rtxn_t *api_read(http_req_t *r)
{
    store_rtxn_t *rt;
    int rc = store_read_begin(api_req(r)->ws->st, &rt);
    if (rc) {
        api_fail(r, rc);
        return NULL;
    }
    return rt;
}

int api_read_named(http_req_t *r, const char *coll, const char *name, store_row_fn fn, void *ctx)
{
    store_rtxn_t *rt = api_read(r);
    if (!rt) return -1;
    json_t *filter = name ? json_pack("{s:s}", "name", name) : NULL;
    store_query_t q = {.coll = coll, .filter = filter};
    int rc = store_query_all(rt, &q, fn, ctx);
    if (filter) json_decref(filter);
    store_read_end(rt);
    if (rc) {
        api_fail(r, rc);
        return -1;
    }
    return 0;
}

const store_coll_t *api_coll(http_req_t *r, store_rtxn_t *rt, const char *name)
{
    const store_coll_t *c = name[0] == '_' ? NULL : store_schema_coll(store_read_schema(rt), name);
    if (!c) {
        char d[128];
        snprintf(d, sizeof d, "no collection '%s'", name);
        http_respond_problem(r, 404, "not-found", d, NULL);
    }
    return c;
}

json_t *api_audit_who(http_req_t *r)
{
    api_req_t *q = r->api;
    return json_pack("{s:s,s:s}", "actor", q->who.key_id, "request", r->id);
}

int api_unmask(const http_req_t *r)
{
    const api_req_t *q = r->api;
    return (q->role->caps & CAP_UNMASK) != 0;
}

loop_inbox_t *api_inbox(http_req_t *r)
{
    return &r->conn->loop->net.inbox;
}

auth_who_t api_who(const http_req_t *r)
{
    const api_req_t *q = r->api;
    auth_who_t w = {q->who.user, q->who.team[0] ? q->who.team : NULL};
    return w;
}
