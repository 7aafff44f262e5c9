/*
 * plugin_api: the function table a plugin gets (kith_api_t), and the bus
 * handler that runs its hooks.
 *
 * A kith_json_t is a jansson value: the helpers are thin, but they keep
 * jansson out of the SDK's header, so plugins need no JSON library of their
 * own and the core may change its JSON library without breaking them.
 *
 * Entity calls run in the callback's transaction. In a hook the plugin acts
 * as the system (like a Lua handler); in a route it acts as the caller: the
 * caller's role decides what it may read (scope), sees (masking: a sensitive
 * field read in clear is audited) and writes (scope, audited).
 */
#include "plugin/plugin_int.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/json.h"
#include "base/id.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define J(v)      ((json_t *)(v))
#define K(v)      ((kith_json_t *)(v))
#define QUERY_MAX 1000

/* ---- errors, log, config, time ---- */

static int p_fail(int code, const char *fmt, ...)
{
    char msg[ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    if (code >= 0) code = KITH_EHANDLER;
    return err_set(code, "%s", msg);
}

static void p_fail_field(const char *field, const char *fmt, ...)
{
    char msg[ERR_FIELD_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    err_field_add(field ? field : "", "%s", msg);
}

static void p_fail_existing(const char *id)
{
    err_existing(id); /* the writer looks it up, and forgets one it cannot see */
}

static const char *p_errexisting(void)
{
    return err_last()->code == KITH_EEXIST ? err_last()->existing : "";
}

static const char *api_errmsg(void)
{
    return err_last()->msg;
}

static void api_log(kith_plugin_t *p, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    enum log_level l = level <= KITH_LOG_DEBUG  ? LOG_DEBUG
                       : level == KITH_LOG_INFO ? LOG_INFO
                       : level == KITH_LOG_WARN ? LOG_WARN
                                                : LOG_ERROR;
    log_msg(l, "plugin", "plugin %s: %s", p ? p->name : "?", msg);
}

static const kith_json_t *api_config(kith_plugin_t *p)
{
    return K(p->config);
}

static int64_t api_now_ms(void)
{
    return time_now_us() / 1000;
}

static void api_counter_add(kith_counter_t *c, uint64_t n)
{
    if (c) atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

/* ---- records ---- */

static int parse_id(const char *s, kith_id_t *id)
{
    if (!s || id_decode(s, strlen(s), id))
        return err_set(KITH_ENOTFOUND, "no such record: '%.40s' is not a record id", s ? s : "");
    return 0;
}

static int need_write(kith_txn_t *tx, const char *what)
{
    if (!tx) return err_set(KITH_EINVAL, "%s: no transaction", what);
    if (!tx->w)
        return err_set(KITH_EPERM,
                       "%s: a read route cannot write (register it with "
                       "KITH_ROUTE_WRITE)",
                       what);
    return 0;
}

static const store_schema_t *tx_schema(kith_txn_t *tx)
{
    return tx->w ? store_wtxn_schema(tx->w) : store_read_schema(tx->rt);
}

/* Routes: the caller's scope for action on coll. KITH_EPERM if none. */
static int route_scope(kith_txn_t *tx, const char *coll, int action, int *scope)
{
    *scope = SCOPE_ALL;
    if (!tx->role) return 0;
    *scope = auth_role_scope(tx->role, coll, action);
    if (*scope == SCOPE_NONE)
        return err_set(KITH_EPERM, "role %s may not %s %s", tx->role->name,
                       auth_action_name(action), coll);
    return 0;
}

/* Routes: masks fields for a caller who may not see them in clear, or
 * notes what an unmasking caller saw (audited before the answer). */
static void route_view(kith_txn_t *tx, const store_coll_t *c, const char *id, json_t *fields)
{
    if (!tx->role || !c) return;
    if (!tx->unmask) {
        auth_mask_fields(c, fields);
        return;
    }
    json_t *seen = NULL;
    for (size_t i = 0; i < c->nfields; i++)
        if ((c->fields[i].flags & SF_SENSITIVE) && json_object_get(fields, c->fields[i].name)) {
            if (!seen) seen = json_array();
            json_array_append_new(seen, json_string(c->fields[i].name));
        }
    if (!seen) return;
    if (!tx->revealed) tx->revealed = json_object();
    json_t *e = json_object_get(tx->revealed, c->name);
    if (!e) {
        e = json_pack("{s:[],s:[]}", "ids", "fields");
        json_object_set_new(tx->revealed, c->name, e);
    }
    json_array_append_new(json_object_get(e, "ids"), json_string(id));
    json_t *fl = json_object_get(e, "fields");
    size_t i;
    json_t *f;
    json_array_foreach(seen, i, f)
    {
        int have = 0;
        size_t k;
        json_t *g;
        json_array_foreach(fl, k, g) have |= json_equal(f, g);
        if (!have) json_array_append(fl, f);
    }
    json_decref(seen);
}

static int record_out(kith_record_t *out, const kith_id_t *id, uint64_t version, int64_t created_us,
                      int64_t updated_us, json_t *fields)
{
    if (!out) {
        if (fields) json_decref(fields);
        return 0;
    }
    if (out->size < offsetof(kith_record_t, fields) + sizeof out->fields) {
        if (fields) json_decref(fields);
        return err_set(KITH_EINVAL, "kith_record_t: size %u is too small (set .size)", out->size);
    }
    id_encode(id, out->id);
    out->id[KITH_ID_LEN] = '\0';
    out->version = version;
    out->created_ms = created_us / 1000;
    out->updated_ms = updated_us / 1000;
    out->fields = K(fields);
    return 0;
}

/* entity_get, and entity_get_clear (clear: no masking, nothing noted as
 * revealed: the values are for writes, never for the answer). */
static int entity_get(kith_txn_t *tx, const char *coll, const char *ids, kith_record_t *out,
                      int clear)
{
    if (!tx || !coll) return err_set(KITH_EINVAL, "entity_get: no transaction or collection");
    kith_id_t id;
    if (parse_id(ids, &id)) return KITH_ENOTFOUND;
    int scope;
    if (route_scope(tx, coll, ACT_READ, &scope)) return KITH_EPERM;
    store_record_t rec;
    int rc = tx->w ? store_wtxn_get(tx->w, coll, &id, &rec) : store_get(tx->rt, coll, &id, &rec);
    if (rc) return rc;
    json_t *f = store_record_fields(&rec);
    if (!f) return err_set(KITH_ECORRUPT, "entity_get: record %s is unreadable", ids);
    if (scope != SCOPE_ALL && !auth_scope_covers(scope, rec.coll, f, &tx->who)) {
        json_decref(f);
        return err_set(KITH_ENOTFOUND, "no such record");
    }
    if (!clear) route_view(tx, rec.coll, ids, f);
    return record_out(out, &rec.id, rec.version, rec.created_us, rec.updated_us, f);
}

static int api_entity_get(kith_txn_t *tx, const char *coll, const char *ids, kith_record_t *out)
{
    return entity_get(tx, coll, ids, out, 0);
}

static int api_entity_get_clear(kith_txn_t *tx, const char *coll, const char *ids,
                                kith_record_t *out)
{
    return entity_get(tx, coll, ids, out, 1);
}

typedef struct qrow {
    kith_txn_t *tx;
    kith_row_fn fn;
    void *ud;
    int stopped;
} qrow_t;

static int query_row(void *ctx, const store_record_t *rec)
{
    qrow_t *q = ctx;
    json_t *f = store_record_fields(rec);
    if (!f) return 0;
    kith_record_t r = {.size = sizeof r};
    char ids[ID_TEXT_LEN + 1];
    id_encode(&rec->id, ids);
    route_view(q->tx, rec->coll, ids, f);
    record_out(&r, &rec->id, rec->version, rec->created_us, rec->updated_us, f);
    int stop = q->fn(q->ud, &r);
    json_decref(f);
    if (stop) {
        q->stopped = stop;
        return KITH_EBUSY; /* stops the walk; not reported as an error */
    }
    return 0;
}

static int api_entity_query(kith_txn_t *tx, const kith_query_t *kq, kith_row_fn fn, void *ud,
                            char **next_cursor)
{
    if (next_cursor) *next_cursor = NULL;
    kith_query_t qd;
    if (plugin_struct_in(&qd, sizeof qd, kq,
                         offsetof(kith_query_t, collection) + sizeof qd.collection, "entity_query"))
        return KITH_EINVAL;
    kq = &qd;
    if (!tx || !fn || !kq->collection)
        return err_set(KITH_EINVAL, "entity_query: a transaction, a collection and a function");
    int scope;
    if (route_scope(tx, kq->collection, ACT_READ, &scope)) return KITH_EPERM;
    if (tx->role && !tx->unmask) {
        /* no filtering or sorting by what the caller sees masked; a filter
         * that does not compile is the query's to report */
        const store_coll_t *c = store_schema_coll(tx_schema(tx), kq->collection);
        if (c && auth_masked_use(c, J(kq->filter), kq->sort) == KITH_EPERM) return KITH_EPERM;
    }
    json_t *filter = kq->filter ? json_incref(J(kq->filter)) : NULL;
    if (scope != SCOPE_ALL) {
        const store_coll_t *c = store_schema_coll(tx_schema(tx), kq->collection);
        json_t *sf = c ? auth_scope_filter(scope, c, &tx->who) : NULL;
        if (sf) {
            json_t *both = filter ? json_pack("{s:[o,o]}", "and", filter, sf) : sf;
            filter = both;
        }
    }
    store_query_t q = {.coll = kq->collection,
                       .filter = filter,
                       .sort = kq->sort,
                       .limit = kq->limit == 0          ? 50
                                : kq->limit > QUERY_MAX ? QUERY_MAX
                                                        : kq->limit,
                       .cursor = kq->cursor};
    qrow_t c = {tx, fn, ud, 0};
    char *next = NULL;
    int rc = tx->w ? store_wtxn_query(tx->w, &q, query_row, &c, &next)
                   : store_query(tx->rt, &q, query_row, &c, &next);
    if (filter) json_decref(filter);
    if (c.stopped) {
        free(next);
        err_clear();
        return c.stopped;
    }
    if (rc) {
        free(next);
        return rc;
    }
    if (next_cursor)
        *next_cursor = next;
    else
        free(next);
    return 0;
}

/* Runs op in tx: as the caller in a route (scope guard, audit), else as the system. */
static int write_op(kith_txn_t *tx, store_op_t *op, int action, kith_record_t *out)
{
    api_guard_ctx_t g;
    if (tx->role) {
        int scope;
        if (route_scope(tx, op->coll, action, &scope)) {
            store_op_free(op);
            return KITH_EPERM;
        }
        memset(&g, 0, sizeof g);
        g.scope = scope;
        snprintf(g.user, sizeof g.user, "%s", tx->who.user ? tx->who.user : "");
        snprintf(g.team, sizeof g.team, "%s", tx->who.team ? tx->who.team : "");
        op->udata = &g;
        op->guard = api_scope_guard;
    }
    if (tx->audit_who) store_op_set_audit(op, tx->audit_who); /* takes its own reference */
    store_wtxn_write(tx->w, op);
    int rc = op->status;
    if (rc && op->diag) err_restore(op->diag); /* the veto's or validation's message */
    if (rc == 0 && out && op->json) {
        json_t *f = json_parse(op->json, op->json_len);
        if (f && tx->role) {
            char ids[ID_TEXT_LEN + 1];
            id_encode(&op->rid, ids);
            route_view(tx, store_schema_coll(tx_schema(tx), op->coll), ids, f);
        }
        record_out(out, &op->rid, op->version, op->created_us, op->updated_us, f);
    }
    store_op_free(op);
    return rc;
}

static int api_entity_create(kith_txn_t *tx, const char *coll, const kith_json_t *fields,
                             kith_record_t *out)
{
    if (need_write(tx, "entity_create")) return err_last()->code;
    if (!coll || !json_is_object(J(fields)))
        return err_set(KITH_EINVAL, "entity_create: a collection and an object of fields");
    json_t *copy = json_deep_copy(J(fields)); /* the writer may amend what it gets */
    store_op_t *op = store_op_create(coll, copy);
    json_decref(copy);
    return write_op(tx, op, ACT_CREATE, out);
}

static int api_entity_update(kith_txn_t *tx, const char *coll, const char *ids,
                             const kith_json_t *patch, uint64_t if_version, kith_record_t *out)
{
    if (need_write(tx, "entity_update")) return err_last()->code;
    kith_id_t id;
    if (parse_id(ids, &id)) return KITH_ENOTFOUND;
    if (!coll || !json_is_object(J(patch)))
        return err_set(KITH_EINVAL, "entity_update: a collection and an object patch");
    json_t *copy = json_deep_copy(J(patch));
    store_op_t *op = store_op_update(coll, &id, copy, if_version);
    json_decref(copy);
    return write_op(tx, op, ACT_UPDATE, out);
}

static int api_entity_delete(kith_txn_t *tx, const char *coll, const char *ids, uint64_t if_version)
{
    if (need_write(tx, "entity_delete")) return err_last()->code;
    kith_id_t id;
    if (parse_id(ids, &id)) return KITH_ENOTFOUND;
    if (!coll) return err_set(KITH_EINVAL, "entity_delete: no collection");
    return write_op(tx, store_op_delete(coll, &id, if_version), ACT_DELETE, NULL);
}

/* ---- bus and scheduler ---- */

static int api_emit(kith_txn_t *tx, const char *event, const kith_json_t *payload)
{
    if (need_write(tx, "emit")) return err_last()->code;
    if (!event || !bus_event_is_domain(event))
        return err_set(KITH_EINVAL, "emit: '%s' is not a domain event name", event ? event : "");
    char *text = payload ? json_dumps(J(payload), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc = store_wtxn_emit(tx->w, event, text, text ? strlen(text) : 0);
    free(text);
    return rc;
}

static int timer_put(kith_txn_t *tx, const char *what, const char *id, int64_t due_us,
                     const char *every, const char *event, const kith_json_t *payload)
{
    if (need_write(tx, what)) return err_last()->code;
    if (!ident_ok(id, 64, ".-"))
        return err_set(KITH_EINVAL, "%s: id '%s' is not 1-64 of a-z 0-9 _ . -", what, id ? id : "");
    if (!event || !bus_event_is_domain(event))
        return err_set(KITH_EINVAL, "%s: '%s' is not a domain event name", what,
                       event ? event : "");
    char full[SCHED_ID_MAX];
    snprintf(full, sizeof full, "%s/%s", tx->pl->owner, id);
    char *text = payload ? json_dumps(J(payload), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    sched_timer_t t = {.id = full,
                       .owner = tx->pl->owner,
                       .event = event,
                       .payload = text,
                       .payload_len = text ? strlen(text) : 0,
                       .every = every};
    int rc = sched_put(tx->w, &t, due_us);
    free(text);
    return rc;
}

static int api_after(kith_txn_t *tx, const char *id, int64_t delay_ms, const char *event,
                     const kith_json_t *payload)
{
    if (delay_ms < 1000) return err_set(KITH_EINVAL, "after: the delay is at least 1000 ms");
    return timer_put(tx, "after", id, time_now_us() + delay_ms * 1000, NULL, event, payload);
}

static int api_at(kith_txn_t *tx, const char *id, int64_t at_ms, const char *event,
                  const kith_json_t *payload)
{
    if (at_ms <= 0) return err_set(KITH_EINVAL, "at: the time is Unix milliseconds");
    return timer_put(tx, "at", id, at_ms * 1000, NULL, event, payload);
}

static int api_every(kith_txn_t *tx, const char *id, const char *spec, const char *event,
                     const kith_json_t *payload)
{
    sched_every_t e;
    if (!spec || sched_parse_every(spec, &e)) return err_wrap("every");
    return timer_put(tx, "every", id, sched_next(&e, time_now_us()), spec, event, payload);
}

static int api_cancel(kith_txn_t *tx, const char *id)
{
    if (need_write(tx, "cancel")) return err_last()->code;
    char full[SCHED_ID_MAX];
    snprintf(full, sizeof full, "%s/%s", tx->pl->owner, id ? id : "");
    return sched_cancel(tx->w, full);
}

static const char *api_txn_workspace(const kith_txn_t *tx)
{
    return tx ? tx->workspace : NULL;
}

/* ---- the hook adapter ---- */

int plugin_code(int rc)
{
    switch (rc) {
    case KITH_OK:
    case KITH_EINVAL:
    case KITH_ENOTFOUND:
    case KITH_EEXIST:
    case KITH_ECONFLICT:
    case KITH_EVALIDATION:
    case KITH_ELIMIT:
    case KITH_EPERM:
    case KITH_EVETO:
    case KITH_EHANDLER:
        return rc;
    default:
        return KITH_EHANDLER;
    }
}

int plugin_hook_call(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    plugin_bound_t *b = ctx;
    plugin_hook_t *h = b->h;
    kith_txn_t tx = {.w = w, .pl = h->pl, .workspace = b->ws};
    char ids[ID_TEXT_LEN + 1] = "";
    int domain = ev->op == STORE_CHANGE_EVENT;
    if (!domain) id_encode(&ev->id, ids);
    json_t *payload = NULL;
    if (domain && ev->payload)
        payload = json_loadb(ev->payload, ev->payload_len, JSON_DECODE_ANY, NULL);
    kith_event_t kev = {
        .size = sizeof kev,
        .name = ev->name,
        .op = ev->op,
        .before = ev->before_phase,
        .collection = domain ? NULL : ev->coll,
        .id = domain ? NULL : ids,
        .previous = K(ev->before),
        .record = ev->before_phase ? K(ev->record) : NULL,
        .changed = ev->changed,
        .nchanged = ev->nchanged,
        .payload = K(payload),
        .seq = ev->seq,
        .time_ms = ev->time_us / 1000,
        .depth = ev->depth,
        .workspace = b->ws,
        .test = h->pl->set->testing,
    };
    err_clear();
    int rc = plugin_code(h->fn(h->ud, &tx, &kev));
    if (payload) json_decref(payload);
    if (rc == 0) {
        if (kev.amended && ev->amended && ev->record) {
            if (!json_is_object(ev->record))
                return err_set(KITH_EHANDLER, "plugin %s: the amended record is not an object",
                               h->pl->name);
            *ev->amended = 1;
        }
        return 0;
    }
    if (ev->before_phase && bus_refusal(rc)) {
        /* the plugin's message, fields and existing record, as it set them */
        if (err_last()->code != rc || !err_last()->msg[0]) {
            err_diag_t d;
            err_save(&d);
            d.code = rc;
            if (!d.msg[0]) snprintf(d.msg, sizeof d.msg, "refused by a rule");
            err_restore(&d);
        }
        return rc;
    }
    char msg[ERR_MSG_MAX]; /* err_set writes where err_last points */
    snprintf(msg, sizeof msg, "%s", err_last()->msg);
    return err_set(KITH_EHANDLER, "plugin %s (%s): %s", h->pl->name, h->name,
                   msg[0] ? msg : "failed");
}

/* ---- JSON ---- */

static kith_json_t *j_parse(const char *text, size_t len)
{
    if (!text) {
        err_set(KITH_EINVAL, "json_parse: no text");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) err_set(KITH_EINVAL, "json_parse: line %d column %d: %s", je.line, je.column, je.text);
    return K(v);
}

static char *j_dump(const kith_json_t *v, size_t *len)
{
    char *s = v ? json_dumps(J(v), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (len) *len = s ? strlen(s) : 0;
    return s;
}

static void j_free(void *p)
{
    free(p);
}

static kith_json_t *j_incref(kith_json_t *v)
{
    return K(json_incref(J(v)));
}

static void j_decref(kith_json_t *v)
{
    if (v) json_decref(J(v));
}

static int j_type(const kith_json_t *v)
{
    switch (v ? json_typeof(J(v)) : JSON_NULL) {
    case JSON_OBJECT:
        return KITH_JSON_OBJECT;
    case JSON_ARRAY:
        return KITH_JSON_ARRAY;
    case JSON_STRING:
        return KITH_JSON_STRING;
    case JSON_INTEGER:
        return KITH_JSON_INTEGER;
    case JSON_REAL:
        return KITH_JSON_REAL;
    case JSON_TRUE:
        return KITH_JSON_TRUE;
    case JSON_FALSE:
        return KITH_JSON_FALSE;
    default:
        return KITH_JSON_NULL;
    }
}

static int j_equal(const kith_json_t *a, const kith_json_t *b)
{
    return json_equal(J(a), J(b));
}

static kith_json_t *j_copy(const kith_json_t *v)
{
    return K(json_deep_copy(J(v)));
}

static kith_json_t *j_object(void)
{
    return K(json_object());
}

static kith_json_t *j_array(void)
{
    return K(json_array());
}

static kith_json_t *j_string(const char *s)
{
    return s ? K(json_string(s)) : NULL;
}

static kith_json_t *j_integer(int64_t v)
{
    return K(json_integer(v));
}

static kith_json_t *j_real(double v)
{
    return K(json_real(v));
}

static kith_json_t *j_bool(int v)
{
    return K(json_boolean(v));
}

static kith_json_t *j_null(void)
{
    return K(json_null());
}

static kith_json_t *o_get(const kith_json_t *o, const char *key)
{
    return key ? K(json_object_get(J(o), key)) : NULL;
}

static int o_set(kith_json_t *o, const char *key, kith_json_t *v)
{
    if (!json_is_object(J(o)) || !key || !v) {
        if (v) json_decref(J(v));
        return err_set(KITH_EINVAL, "object_set: an object, a key and a value");
    }
    return json_object_set_new(J(o), key, J(v)) ? err_set(KITH_EINVAL, "object_set: bad key") : 0;
}

static int o_del(kith_json_t *o, const char *key)
{
    return key && json_object_del(J(o), key) == 0 ? 0 : KITH_ENOTFOUND;
}

static size_t o_size(const kith_json_t *o)
{
    return json_object_size(J(o));
}

static void *o_iter(kith_json_t *o)
{
    return json_object_iter(J(o));
}

static void *o_next(kith_json_t *o, void *it)
{
    return json_object_iter_next(J(o), it);
}

static const char *it_key(void *it)
{
    return json_object_iter_key(it);
}

static kith_json_t *it_value(void *it)
{
    return K(json_object_iter_value(it));
}

static size_t a_size(const kith_json_t *a)
{
    return json_array_size(J(a));
}

static kith_json_t *a_get(const kith_json_t *a, size_t i)
{
    return K(json_array_get(J(a), i));
}

static int a_append(kith_json_t *a, kith_json_t *v)
{
    if (!json_is_array(J(a)) || !v) {
        if (v) json_decref(J(v));
        return err_set(KITH_EINVAL, "array_append: an array and a value");
    }
    return json_array_append_new(J(a), J(v)) ? KITH_EINVAL : 0;
}

static const char *s_value(const kith_json_t *v)
{
    return json_string_value(J(v));
}

static int64_t i_value(const kith_json_t *v)
{
    return json_integer_value(J(v));
}

static double n_value(const kith_json_t *v)
{
    return json_number_value(J(v));
}

/* Defined in plugin_ext.c (they answer HTTP requests). */
int plugin_respond(kith_response_t *res, int status, const kith_json_t *body);
int plugin_respond_problem(kith_response_t *res, int status, const char *type, const char *detail);

const kith_api_t plugin_api_table = {
    .size = sizeof(kith_api_t),
    .api_level = KITH_API_LEVEL,
    .on = plugin_reg_on,
    .route = plugin_reg_route,
    .collection = plugin_reg_collection,
    .every_declare = plugin_reg_every,
    .counter = plugin_reg_counter,
    .counter_add = api_counter_add,
    .log = api_log,
    .config = api_config,
    .fail = p_fail,
    .errmsg = api_errmsg,
    .now_ms = api_now_ms,
    .entity_get = api_entity_get,
    .entity_query = api_entity_query,
    .entity_create = api_entity_create,
    .entity_update = api_entity_update,
    .entity_delete = api_entity_delete,
    .emit = api_emit,
    .after = api_after,
    .at = api_at,
    .every = api_every,
    .cancel = api_cancel,
    .txn_workspace = api_txn_workspace,
    .respond = plugin_respond,
    .respond_problem = plugin_respond_problem,
    .json_parse = j_parse,
    .json_dump = j_dump,
    .free = j_free,
    .json_incref = j_incref,
    .json_decref = j_decref,
    .json_type = j_type,
    .json_equal = j_equal,
    .json_deep_copy = j_copy,
    .json_object = j_object,
    .json_array = j_array,
    .json_string = j_string,
    .json_integer = j_integer,
    .json_real = j_real,
    .json_bool = j_bool,
    .json_null = j_null,
    .object_get = o_get,
    .object_set = o_set,
    .object_del = o_del,
    .object_size = o_size,
    .object_iter = o_iter,
    .object_next = o_next,
    .iter_key = it_key,
    .iter_value = it_value,
    .array_size = a_size,
    .array_get = a_get,
    .array_append = a_append,
    .string_value = s_value,
    .integer_value = i_value,
    .number_value = n_value,
    .fail_field = p_fail_field,
    .fail_existing = p_fail_existing,
    .errexisting = p_errexisting,
    .entity_get_clear = api_entity_get_clear,
};
