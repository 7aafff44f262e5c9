/*
 * plugin_ext: what loaded plugins add to the server (api_ext_t) — their
 * hooks, collections and declared timers in each workspace as it opens,
 * their HTTP routes, their counters in /metrics, GET /v1/plugins.
 *
 * A read route runs on the I/O thread in a read snapshot; a write route
 * (KITH_ROUTE_WRITE) runs on the workspace's writer as a custom op, so its
 * writes commit together or not at all and its answer leaves only after the
 * commit. Either way the route acts as its caller (plugin_api.c): scope,
 * masking, audit. A read route whose answer reveals sensitive fields in
 * clear answers only after that read's audit entry is committed.
 */
#include "plugin/plugin_int.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- workspaces ---- */

static int keep_declared(void *ctx, const char *id)
{
    const struct plugin_set *ps = ctx;
    for (size_t k = 0; k < ps->n; k++) {
        const struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        for (size_t i = 0; i < p->ntimers; i++)
            if (strcmp(p->timers[i].id, id) == 0) return 1;
    }
    return 0;
}

/* Runs one schema op; 0 or its code (with the diagnostic). */
static int schema_exec(store_t *st, store_op_t *op)
{
    int rc = store_exec(st, op);
    if (rc == 0 && op->status) {
        rc = op->status;
        if (op->diag) err_set(rc, "%s", op->diag->msg);
    }
    store_op_free(op);
    return rc;
}

/* Collections missing in the workspace are created, fields missing in an
 * existing one are added (each its own schema op: schema changes do not run
 * inside another op's transaction); nothing else is changed. */
/* A schema change refused for what it says (not for the store's state). */
static int definition_error(int rc)
{
    return rc == KITH_EVALIDATION || rc == KITH_EINVAL || rc == KITH_ENOTFOUND ||
           rc == KITH_EEXIST || rc == KITH_ECONFLICT || rc == KITH_ELIMIT;
}

/* Creates or extends every declared collection. One that fails (a bad
 * field, a ref to a collection that does not exist) is logged with its
 * reasons and the others still go ahead: a plugin loaded later must not
 * lose its collections to an earlier one's. Returns the first failure. */
static int declare_collections(struct plugin_set *ps, store_t *st, const char *workspace)
{
    err_diag_t first = {.code = 0};
    for (size_t k = 0; k < ps->n; k++) {
        struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        size_t i;
        json_t *def;
        json_array_foreach(p->colls, i, def)
        {
            const char *name = json_string_value(json_object_get(def, "name"));
            store_rtxn_t *rt;
            int rc = store_read_begin(st, &rt);
            if (rc) return rc;
            const store_coll_t *c = store_schema_coll(store_read_schema(rt), name);
            json_t *missing = json_array();
            size_t f;
            json_t *fd;
            json_array_foreach(json_object_get(def, "fields"), f, fd)
            {
                const char *fname = json_string_value(json_object_get(fd, "name"));
                if (c && fname && !store_coll_field(c, fname)) json_array_append(missing, fd);
            }
            store_read_end(rt);
            if (!c) rc = schema_exec(st, store_op_schema(def));
            json_array_foreach(missing, f, fd)
            {
                const char *fname = json_string_value(json_object_get(fd, "name"));
                if (rc == 0) rc = schema_exec(st, store_op_field(name, fname, fd));
            }
            json_decref(missing);
            if (rc == 0) continue;
            if (!definition_error(rc)) return rc; /* the store's trouble: stop */
            err_wrap("plugin %s: collection %s", p->name, name);
            const err_diag_t *e = err_last();
            char why[600] = "";
            for (int x = 0; x < e->nfields; x++) {
                size_t u = strlen(why);
                snprintf(why + u, sizeof why - u, "%s%s: %s", x ? "; " : " (", e->fields[x].name,
                         e->fields[x].msg);
            }
            if (e->nfields) strncat(why, ")", sizeof why - strlen(why) - 1);
            log_error("plugin", "workspace %s: %s%s", workspace, e->msg, why);
            if (!first.code) err_save(&first);
        }
    }
    return first.code ? err_restore(&first) : 0;
}

/* Declared timers are put (due time kept when unchanged) and those no loaded
 * plugin declares any more are removed. */
static int declare_op(store_wtxn_t *w, store_op_t *op)
{
    struct plugin_set *ps = op->udata;
    int64_t now = time_now_us();
    for (size_t k = 0; k < ps->n; k++) {
        struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        for (size_t t = 0; t < p->ntimers; t++) {
            plugin_timer_t *pt = &p->timers[t];
            sched_timer_t st = {.id = pt->id,
                                .owner = p->owner,
                                .event = pt->event,
                                .payload = pt->payload,
                                .payload_len = pt->payload ? strlen(pt->payload) : 0,
                                .every = pt->spec,
                                .declared = 1};
            if (sched_same(w, &st)) continue;
            sched_every_t e;
            if (sched_parse_every(pt->spec, &e)) return err_last()->code;
            int rc = sched_put(w, &st, sched_next(&e, now));
            if (rc) return rc;
        }
    }
    int rc = sched_cancel_prefix(w, "plugin:", 1, keep_declared, ps);
    return rc < 0 ? rc : 0;
}

static int timers_declared(const struct plugin_set *ps)
{
    for (size_t k = 0; k < ps->n; k++)
        if (ps->v[k]->loaded && ps->v[k]->ntimers) return 1;
    return 0;
}

static int found_one(void *ctx, const char *id, int64_t due_us, const char *job, size_t len)
{
    (void)id, (void)due_us, (void)job, (void)len;
    *(int *)ctx = 1;
    return 1; /* stop */
}

/* Whether st holds any plugin's timer. */
static int timers_stored(store_t *st)
{
    store_rtxn_t *rt;
    int any = 0;
    if (store_read_begin(st, &rt)) return 1; /* let the op find out */
    store_timers_prefix(rt, "plugin:", found_one, &any);
    store_read_end(rt);
    return any;
}

static int ext_ws_open(void *ctx, const char *workspace, store_t *st, struct bus *bus)
{
    struct plugin_set *ps = ctx;
    int bad = 0;
    for (size_t k = 0; k < ps->n; k++) {
        struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        for (size_t i = 0; i < p->nhooks; i++) {
            plugin_hook_t *h = &p->hooks[i];
            plugin_bound_t *b = xcalloc(1, sizeof *b);
            b->h = h;
            snprintf(b->ws, sizeof b->ws, "%s", workspace);
            bus_handler_def_t def = {.event = h->event,
                                     .owner = p->owner,
                                     .name = h->name,
                                     .priority = h->priority,
                                     .fields = (const char *const *)h->fields,
                                     .nfields = h->nfields,
                                     .fn = plugin_hook_call,
                                     .ctx = b,
                                     .ctx_free = free};
            if (bus_on(bus, &def)) {
                log_error("plugin", "plugin %s: hook %s on %s in workspace %s: %s", p->name,
                          h->name, h->event, workspace, err_last()->msg);
                free(b);
                bad = 1;
            }
        }
    }
    int rc = declare_collections(ps, st, workspace);
    if (rc && !definition_error(rc)) return rc;
    int colls_rc = rc;
    /* a write (and its fsync) only when there are timers to put or to remove:
     * most workspaces of most servers have neither */
    if (timers_declared(ps) || timers_stored(st)) {
        store_op_t *op = store_op_custom(declare_op, ps);
        op->system = 1;
        rc = schema_exec(st, op);
        if (rc) return err_wrap("plugins' timers");
    }
    if (colls_rc) return colls_rc;
    return bad ? err_set(KITH_EINVAL, "some hooks were not registered") : 0;
}

static void ext_metrics(void *ctx, buf_t *out)
{
    struct plugin_set *ps = ctx;
    for (size_t k = 0; k < ps->n; k++) {
        struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        for (size_t i = 0; i < p->ncounters; i++) {
            struct kith_counter *c = p->counters[i];
            buf_addf(out, "# HELP kith_plugin_%s_%s_total %s\n", p->name, c->name, c->help);
            buf_addf(out, "# TYPE kith_plugin_%s_%s_total counter\n", p->name, c->name);
            buf_addf(out, "kith_plugin_%s_%s_total %llu\n", p->name, c->name,
                     (unsigned long long)atomic_load(&c->value));
        }
    }
}

static void ext_list(void *ctx, buf_t *out)
{
    plugin_set_list(ctx, out);
}

api_ext_t plugin_api_ext(plugin_set_t *ps)
{
    return (api_ext_t){.routes = ps->routes,
                       .nroutes = ps->nroutes,
                       .ws_open = ext_ws_open,
                       .metrics = ext_metrics,
                       .list = ext_list,
                       .ctx = ps};
}

/* ---- answers ---- */

struct kith_response {
    int answered;
    int status;
    int problem;
    buf_t body;       /* JSON body */
    char type[64];    /* problem type slug */
    char detail[512]; /* problem detail */
};

int plugin_respond(kith_response_t *res, int status, const kith_json_t *body)
{
    if (!res || res->answered) return err_set(KITH_EINVAL, "respond: already answered");
    if (status < 200 || status > 599) return err_set(KITH_EINVAL, "respond: status %d", status);
    if (body) {
        char *s = json_dumps((const json_t *)body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) return err_set(KITH_EINVAL, "respond: the body is not JSON");
        buf_add(&res->body, s, strlen(s));
        free(s);
    }
    res->answered = 1;
    res->status = status;
    return 0;
}

int plugin_respond_problem(kith_response_t *res, int status, const char *type, const char *detail)
{
    if (!res || res->answered) return err_set(KITH_EINVAL, "respond_problem: already answered");
    if (status < 400 || status > 599)
        return err_set(KITH_EINVAL, "respond_problem: status %d is not an error", status);
    if (!ident_ok(type, 60, "-"))
        return err_set(KITH_EINVAL, "respond_problem: type '%s' is not a slug", type ? type : "");
    res->answered = 1;
    res->problem = 1;
    res->status = status;
    snprintf(res->type, sizeof res->type, "%s", type);
    snprintf(res->detail, sizeof res->detail, "%s", detail ? detail : http_status_text(status));
    return 0;
}

/* ---- route calls ---- */

typedef struct route_call {
    http_req_t *r;
    plugin_route_t *pr;
    kith_request_t req;
    const char *params[HTTP_PARAMS_MAX];
    char method[8];
    char *path, *query;
    json_t *json;
    /* the caller, for the writer thread */
    const auth_role_t *role;
    char user[128], team[128], key_id[64], ws[AUTH_WORKSPACE_MAX + 1];
    int unmask;
    json_t *audit_who;
    struct kith_response res;
    int rc;
    err_diag_t diag;
} route_call_t;

static void call_free(route_call_t *c)
{
    free(c->path);
    free(c->query);
    if (c->json) json_decref(c->json);
    if (c->audit_who) json_decref(c->audit_who);
    buf_free(&c->res.body);
    free(c);
}

static kith_txn_t call_txn(route_call_t *c)
{
    kith_txn_t tx = {.pl = c->pr->pl,
                     .workspace = c->ws,
                     /* no role: the system's reach (the route's own action
                      * was checked); writes are still audited as the caller */
                     .role = c->pr->flags & KITH_ROUTE_AS_SYSTEM ? NULL : c->role,
                     .who = {c->user, c->team[0] ? c->team : NULL},
                     .unmask = c->unmask,
                     .audit_who = c->audit_who};
    return tx;
}

/* The audit entry of what tx revealed (new), or NULL. */
static json_t *reveal_entry(route_call_t *c, json_t *revealed)
{
    if (!revealed || !json_object_size(revealed)) return NULL;
    json_t *e = json_deep_copy(c->audit_who);
    json_object_set_new(e, "action", json_string("read"));
    buf_t names = BUF_INIT;
    json_t *ids = json_array(), *fields = json_array();
    const char *coll;
    json_t *v;
    json_object_foreach(revealed, coll, v)
    {
        if (names.len) buf_addc(&names, ',');
        buf_add(&names, coll, strlen(coll));
        json_array_extend(ids, json_object_get(v, "ids"));
        json_array_extend(fields, json_object_get(v, "fields"));
    }
    json_object_set_new(e, "collection", json_stringn(names.p, names.len));
    json_object_set_new(e, "ids", ids);
    json_object_set_new(e, "fields", fields);
    json_object_set_new(e, "route", json_string(c->pr->name));
    buf_free(&names);
    return e;
}

static void answer(route_call_t *c)
{
    http_req_t *r = c->r;
    struct kith_response *res = &c->res;
    if (res->answered && res->problem) {
        http_respond_problem(r, res->status, res->type, res->detail, NULL);
    } else if (res->answered) {
        if (res->body.len)
            http_respond(r, res->status, "application/json", res->body.p, res->body.len, NULL);
        else
            http_respond(r, res->status, NULL, NULL, 0, NULL);
    } else if (c->rc) {
        const char *type, *detail;
        int status = api_status(c->rc, c->diag.msg, &type, &detail);
        if (detail != c->diag.msg) log_error("plugin", "route %s: %s", c->pr->name, c->diag.msg);
        http_respond_problem(r, status, type, detail, NULL);
    } else {
        log_error("plugin", "route %s returned without answering", c->pr->name);
        http_respond_problem(r, 500, "internal", "the plugin's route did not answer", NULL);
    }
    call_free(c);
}

/* Runs the plugin's function (again, when the writer re-runs a batch: what a
 * rolled-back run answered is forgotten). A failure code drops a success
 * answer (its data may not be committed or audited); an error answer with
 * code 0 still fails the run, so a write route's writes roll back. */
static int route_run(route_call_t *c, kith_txn_t *tx)
{
    c->res.answered = c->res.problem = c->res.status = 0;
    buf_reset(&c->res.body);
    c->rc = 0;
    memset(&c->diag, 0, sizeof c->diag);
    err_clear();
    int rc = plugin_code(c->pr->fn(c->pr->ud, tx, &c->req, &c->res));
    if (rc) {
        c->rc = rc;
        err_save(&c->diag);
        if (c->diag.code != rc) {
            c->diag.code = rc;
            if (!c->diag.msg[0]) snprintf(c->diag.msg, sizeof c->diag.msg, "the route failed");
        }
        if (c->res.answered && !c->res.problem) c->res.answered = 0;
    } else if (c->res.answered && c->res.status >= 400) {
        rc = KITH_EINVAL; /* rolls back; the answer stands */
    }
    return rc;
}

static int route_op(store_wtxn_t *w, store_op_t *op)
{
    route_call_t *c = op->udata;
    kith_txn_t tx = call_txn(c);
    tx.w = w;
    int rc = route_run(c, &tx);
    json_t *e = rc == 0 ? reveal_entry(c, tx.revealed) : NULL;
    if (tx.revealed) json_decref(tx.revealed);
    if (e) {
        store_op_t *a = store_op_audit(e);
        json_decref(e);
        store_wtxn_write(w, a);
        rc = a->status;
        store_op_free(a);
        if (rc) {
            c->rc = rc;
            err_save(&c->diag);
            c->res.answered = 0; /* the answer would reveal unaudited data */
        }
    }
    return rc;
}

static void route_written(store_op_t *op, void *ctx)
{
    route_call_t *c = ctx;
    if (op->status && !c->rc) {
        c->rc = op->status;
        if (op->diag)
            c->diag = *op->diag;
        else
            snprintf(c->diag.msg, sizeof c->diag.msg, "the write failed");
    }
    if (op->status && c->res.answered && c->res.status < 400)
        c->res.answered = 0; /* a success answer for writes that did not commit */
    store_op_free(op);
    answer(c);
}

static void reveal_audited(store_op_t *op, void *ctx)
{
    route_call_t *c = ctx;
    if (op->status) {
        c->res.answered = 0;
        c->rc = op->status;
        if (op->diag) c->diag = *op->diag;
    }
    store_op_free(op);
    answer(c);
}

void plugin_route_handler(http_req_t *r)
{
    api_req_t *q = api_req(r);
    route_call_t *c = xcalloc(1, sizeof *c);
    c->r = r;
    c->pr = (plugin_route_t *)r->route->udata;
    buf_init(&c->res.body);
    snprintf(c->method, sizeof c->method, "%s", http_method_name(r->method));
    c->path = xstrndup(r->url.p, r->path_len);
    c->query = r->url.len > r->path_len + 1
                   ? xstrndup(r->url.p + r->path_len + 1, r->url.len - r->path_len - 1)
                   : xstrdup("");
    for (int i = 0; i < r->nparams; i++)
        c->params[i] = r->params[i];
    if (r->body.len) {
        size_t n;
        const char *ct = http_req_header(r, "content-type", &n);
        if (ct && n >= 16 && strncasecmp(ct, "application/json", 16) == 0) {
            json_error_t je;
            c->json = json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &je);
            if (!c->json) {
                char d[300];
                snprintf(d, sizeof d, "the body is not valid JSON: line %d: %s", je.line, je.text);
                http_respond_problem(r, 400, "invalid-json", d, NULL);
                call_free(c);
                return;
            }
        }
    }
    c->role = q->role;
    snprintf(c->user, sizeof c->user, "%s", q->who.user);
    snprintf(c->team, sizeof c->team, "%s", q->who.team);
    snprintf(c->key_id, sizeof c->key_id, "%s", q->who.key_id);
    snprintf(c->ws, sizeof c->ws, "%s", q->ws->name);
    c->unmask = api_unmask(r);
    c->audit_who = api_audit_who(r);
    c->req = (kith_request_t){.size = sizeof c->req,
                              .method = c->method,
                              .path = c->path,
                              .params = c->params,
                              .nparams = (size_t)r->nparams,
                              .query = c->query,
                              .body = r->body.len ? r->body.p : NULL,
                              .body_len = r->body.len,
                              .json = (const kith_json_t *)c->json,
                              .workspace = c->ws,
                              .key_id = c->key_id,
                              .role = c->role->name,
                              .user = c->user,
                              .request_id = r->id};
    if (c->pr->flags & KITH_ROUTE_WRITE) {
        store_op_t *op = store_op_custom(route_op, c);
        store_submit(q->ws->st, op, api_inbox(r), route_written, c);
        return;
    }
    store_rtxn_t *rt = api_read(r);
    if (!rt) {
        call_free(c);
        return;
    }
    kith_txn_t tx = call_txn(c);
    tx.rt = rt;
    route_run(c, &tx);
    store_read_end(rt);
    json_t *e = c->rc == 0 ? reveal_entry(c, tx.revealed) : NULL;
    if (tx.revealed) json_decref(tx.revealed);
    if (!e) {
        answer(c);
        return;
    }
    store_op_t *op = store_op_audit(e);
    json_decref(e);
    store_submit(q->ws->st, op, api_inbox(r), reveal_audited, c);
}
