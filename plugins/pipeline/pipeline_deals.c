/*
 * pipeline_deals: the pipeline plugin's hooks. Before-hooks run inside the
 * write (anything they write, schedule or emit commits with it or not at
 * all); the stall handler is an after-hook on the timer's domain event.
 */
#include "pipeline_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PRIORITY 20 /* after identity's normalisation (10), before rules (100) */

/* A refusal naming one field: HTTP 422 with the field in "errors". */
static int invalid(const char *coll, const char *field, const char *fmt, ...)
    KITH_PLUGIN_PRINTF(3, 4);
static int invalid(const char *coll, const char *field, const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    K->fail(KITH_PLUGIN_EVALIDATION, "%s: %s", coll, msg);
    K->fail_field(field, "%s", msg);
    return KITH_PLUGIN_EVALIDATION;
}

/* The same as a conflict with stored data (HTTP 409). */
static int conflict(const char *field, const char *fmt, ...) KITH_PLUGIN_PRINTF(2, 3);
static int conflict(const char *field, const char *fmt, ...)
{
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    K->fail(KITH_PLUGIN_ECONFLICT, "%s", msg);
    K->fail_field(field, "%s", msg);
    return KITH_PLUGIN_ECONFLICT;
}

static void set(kith_event_t *ev, const char *field, kith_json_t *v)
{
    K->object_set(ev->record, field, v);
    ev->amended = 1;
}

static void del(kith_event_t *ev, const char *field)
{
    if (!K->object_get(ev->record, field)) return;
    K->object_del(ev->record, field);
    ev->amended = 1;
}

typedef struct hit {
    const char *skip; /* a record id that does not count, or NULL */
    char id[KITH_ID_LEN + 1];
    kith_json_t *fields; /* new, when keep is set */
    int keep;
} hit_t;

static int hit_row(void *ud, const kith_record_t *rec)
{
    hit_t *h = ud;
    if (h->skip && strcmp(rec->id, h->skip) == 0) return 0;
    memcpy(h->id, rec->id, sizeof h->id);
    if (h->keep) h->fields = K->json_deep_copy(rec->fields);
    return 1;
}

/* The first record of coll matching filter (steals it), other than h->skip:
 * 1 (in h), 0 (none), or a negative code. */
static int find_one(kith_txn_t *tx, const char *coll, kith_json_t *filter, hit_t *h)
{
    kith_query_t q = {.size = sizeof q, .collection = coll, .filter = filter, .limit = 3};
    h->id[0] = '\0';
    int rc = K->entity_query(tx, &q, hit_row, h, NULL);
    if (filter) K->json_decref(filter);
    if (rc < 0) return rc;
    return h->id[0] != '\0';
}

static kith_json_t *eq2(const char *f1, const char *v1, const char *f2, const char *v2)
{
    kith_json_t *o = K->json_object();
    K->object_set(o, f1, K->json_string(v1));
    if (f2) K->object_set(o, f2, K->json_string(v2));
    return o;
}

/* Timer ids are [a-z0-9_.-]: the deal's id in lower case. */
static void stall_timer_id(const char *deal, char out[48])
{
    size_t n = (size_t)snprintf(out, 48, "stall-%s", deal);
    for (size_t i = 0; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z') out[i] = (char)(out[i] - 'A' + 'a');
}

static int cancel_stall(kith_txn_t *tx, const char *deal)
{
    char tid[48];
    stall_timer_id(deal, tid);
    int rc = K->cancel(tx, tid);
    return rc == KITH_PLUGIN_ENOTFOUND ? 0 : rc;
}

static void copy_field(kith_json_t *to, const kith_json_t *from, const char *field)
{
    const kith_json_t *v = K->object_get(from, field);
    if (v) K->object_set(to, field, K->json_deep_copy(v));
}

/* ---- deals ---- */

/* The stage names of p, for messages. */
static void stage_list(const pl_pipeline_t *p, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < K->array_size(p->stages) && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                              pl_stage_name(K->array_get(p->stages, i)));
}

/* A product named as in the catalog (products): matched on pl_product_key;
 * a name the catalog lacks is refused unless the catalog is empty. */
static int match_product(kith_txn_t *tx, kith_event_t *ev)
{
    const char *name = pl_str(ev->record, "product");
    if (!name || !pl_changed(ev, "product")) return 0;
    char key[PL_NAME_MAX + 1];
    if (!pl_product_key(name, key, sizeof key))
        return invalid("deals", "product", "a product name needs letters or digits");
    hit_t h = {.keep = 1};
    int rc = find_one(tx, "products", eq2("key", key, NULL, NULL), &h);
    if (rc < 0) return rc;
    if (rc == 1) {
        const char *canon = pl_str(h.fields, "name");
        if (canon && strcmp(canon, name) != 0) set(ev, "product", K->json_string(canon));
        K->json_decref(h.fields);
        return 0;
    }
    hit_t any = {0};
    rc = find_one(tx, "products", NULL, &any);
    if (rc < 0) return rc;
    if (rc == 1)
        return invalid("deals", "product",
                       "'%.100s' is not in the product catalog (GET /v1/products)", name);
    return 0; /* no catalog: any product goes */
}

static int stall_schedule(kith_txn_t *tx, kith_event_t *ev, const kith_json_t *stage,
                          const char *since)
{
    const kith_json_t *lh = K->object_get(stage, "limit_hours");
    if (!kp_is_number(K, lh) || K->number_value(lh) <= 0)
        return ev->op == KITH_OP_CREATE ? 0 : cancel_stall(tx, ev->id);
    double ms = K->number_value(lh) * 3600000.0;
    int64_t delay = ms < 1000 ? 1000 : (int64_t)ms;
    kith_json_t *pl = K->json_object();
    K->object_set(pl, "deal", K->json_string(ev->id));
    K->object_set(pl, "stage", K->json_string(pl_stage_name(stage)));
    K->object_set(pl, "since", K->json_string(since));
    K->object_set(pl, "limit_hours", K->json_real(K->number_value(lh)));
    char tid[48];
    stall_timer_id(ev->id, tid);
    int rc = K->after(tx, tid, delay, PL_STALL_EVENT, pl);
    K->json_decref(pl);
    return rc;
}

static int emit_outcome(kith_txn_t *tx, kith_event_t *ev, const char *outcome)
{
    kith_json_t *p = K->json_object();
    K->object_set(p, "deal", K->json_string(ev->id));
    static const char *const fields[] = {"name",       "owner",      "team",   "contact_id",
                                         "company_id", "amount",     "stage",  "pipeline",
                                         "product",    "close_date", "lead_id"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        copy_field(p, ev->record, fields[i]);
    char name[32];
    snprintf(name, sizeof name, "deal.%s", outcome);
    int rc = K->emit(tx, name, p);
    K->json_decref(p);
    return rc;
}

/* stage_history with one more entry, at most pl_history_max kept (new). */
static kith_json_t *history_add(const kith_json_t *old, const char *stage, const char *at)
{
    kith_json_t *h = K->json_array();
    size_t n = old && K->json_type(old) == KITH_JSON_ARRAY ? K->array_size(old) : 0;
    size_t from = n + 1 > pl_history_max ? n + 1 - pl_history_max : 0;
    for (size_t i = from; i < n; i++)
        K->array_append(h, K->json_deep_copy(K->array_get(old, i)));
    kith_json_t *e = K->json_object();
    K->object_set(e, "stage", K->json_string(stage));
    K->object_set(e, "at", K->json_string(at));
    K->array_append(h, e);
    return h;
}

static int deal_write(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    int create = ev->op == KITH_OP_CREATE;
    kith_json_t *rec = ev->record;
    char buf[400];

    if (!create && !pl_changed(ev, "stage") && !pl_changed(ev, "pipeline")) {
        static const char *const owned[] = {"stage_history", "stage_changed_at"};
        for (size_t i = 0; i < 2; i++)
            if (pl_changed(ev, owned[i]))
                return invalid("deals", owned[i],
                               "set by the pipeline plugin when the stage changes");
    }

    /* the pipeline, and a stage of it */
    const char *pname = pl_str(rec, "pipeline");
    pl_pipeline_t pl;
    int rc = pl_pipeline_find(tx, pname, &pl);
    if (rc == KITH_PLUGIN_ENOTFOUND)
        return invalid("deals", "pipeline", "no pipeline is called '%.100s' (GET /v1/pipelines)",
                       pname);
    if (rc) return rc;
    if (!pname) set(ev, "pipeline", K->json_string(pl.name));
    const char *stage = pl_str(rec, "stage");
    size_t si = 0;
    const kith_json_t *st = stage ? pl_stage_find(&pl, stage, &si) : NULL;
    if (!st && (stage || !create)) {
        stage_list(&pl, buf, sizeof buf);
        rc = stage ? invalid("deals", "stage", "'%.100s' is not a stage of pipeline '%.100s' (%s)",
                             stage, pl.name, buf)
                   : invalid("deals", "stage", "a deal needs a stage of pipeline '%.100s' (%s)",
                             pl.name, buf);
        pl_pipeline_close(&pl);
        return rc;
    }
    if (!st) st = K->array_get(pl.stages, 0);
    const char *canon = pl_stage_name(st), *outcome = pl_stage_outcome(st);
    if (!stage || strcmp(stage, canon) != 0) set(ev, "stage", K->json_string(canon));
    const char *prev_stage = create ? NULL : pl_str(ev->previous, "stage"),
               *prev_pipe = create ? NULL : pl_str(ev->previous, "pipeline");
    int moved = create || !prev_stage || !kp_ieq(prev_stage, canon) || !prev_pipe ||
                strcmp(prev_pipe, pl.name) != 0;

    /* probability follows the stage unless this write sets it */
    if (moved && !pl_changed(ev, "probability")) {
        const kith_json_t *sp = K->object_get(st, "probability");
        if (kp_is_number(K, sp))
            set(ev, "probability", K->json_integer((int64_t)(K->number_value(sp) + 0.5)));
        else if (outcome)
            set(ev, "probability", K->json_integer(strcmp(outcome, "won") == 0 ? 100 : 0));
    }
    const kith_json_t *prob = K->object_get(rec, "probability");
    if (prob && (K->integer_value(prob) < 0 || K->integer_value(prob) > 100)) {
        pl_pipeline_close(&pl);
        return invalid("deals", "probability", "a percentage from 0 to 100");
    }

    /* closed follows the stage's outcome */
    const char *closed = pl_str(rec, "closed");
    if (outcome && (!closed || strcmp(closed, outcome) != 0))
        set(ev, "closed", K->json_string(outcome));
    else if (!outcome)
        del(ev, "closed");

    char now[KP_ISO_MAX] = ""; /* set only when the stage moves: the only use */
    if (moved) {               /* one clock reading: the stamp and the close date agree */
        int64_t t = K->now_ms();
        kp_iso_from_ms(t, now);
        set(ev, "stage_changed_at", K->json_string(now));
        set(ev, "stage_history",
            history_add(create ? NULL : K->object_get(ev->previous, "stage_history"), canon, now));
        if (outcome && !K->object_get(rec, "close_date")) {
            char today[KP_DATE_MAX];
            set(ev, "close_date", K->json_string(kp_date_from_ms(t, today)));
        }
    }

    rc = match_product(tx, ev);
    if (rc == 0 && moved) {
        if (outcome) {
            rc = create ? 0 : cancel_stall(tx, ev->id);
            if (rc == 0) rc = emit_outcome(tx, ev, outcome);
        } else {
            rc = stall_schedule(tx, ev, st, now);
        }
    }
    pl_pipeline_close(&pl);
    return rc;
}

static int deal_delete(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    return cancel_stall(tx, ev->id);
}

/* The stall timer fired: if the deal is still in the stage it entered then,
 * deal.stalled and a task for its owner. A timer that is stale (the deal
 * moved, closed or is gone) does nothing. */
static int stall_due(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    const char *id = pl_str(ev->payload, "deal"), *stage = pl_str(ev->payload, "stage"),
               *since = pl_str(ev->payload, "since");
    if (!id || !stage || !since) return 0;
    kith_record_t d = {.size = sizeof d};
    int rc = K->entity_get(tx, "deals", id, &d);
    if (rc == KITH_PLUGIN_ENOTFOUND) return 0;
    if (rc) return rc;
    const char *now_stage = pl_str(d.fields, "stage"), *at = pl_str(d.fields, "stage_changed_at");
    if (!now_stage || !kp_ieq(now_stage, stage) || !at || strcmp(at, since) != 0 ||
        K->object_get(d.fields, "closed")) {
        K->json_decref(d.fields);
        return 0;
    }
    double hours = K->number_value(K->object_get(ev->payload, "limit_hours"));
    const char *name = pl_str(d.fields, "name");
    char subject[400], now[KP_ISO_MAX];
    snprintf(subject, sizeof subject, "Stalled deal: %.150s has been in %.100s for more than %g h",
             name ? name : id, stage, hours);
    kp_iso_from_ms(K->now_ms(), now);
    kith_json_t *t = K->json_object();
    K->object_set(t, "kind", K->json_string("task"));
    K->object_set(t, "subject", K->json_string(subject));
    K->object_set(t, "deal_id", K->json_string(id));
    K->object_set(t, "due_at", K->json_string(now));
    K->object_set(t, "done", K->json_bool(0));
    kith_json_t *tags = K->json_array();
    K->array_append(tags, K->json_string("stalled"));
    K->object_set(t, "tags", tags);
    copy_field(t, d.fields, "owner");
    copy_field(t, d.fields, "team");
    copy_field(t, d.fields, "contact_id");
    copy_field(t, d.fields, "company_id");
    kith_record_t task = {.size = sizeof task};
    rc = K->entity_create(tx, "activities", t, &task);
    if (rc == KITH_PLUGIN_EVALIDATION) {
        /* a contact or company deleted since: the task without them */
        K->object_del(t, "contact_id");
        K->object_del(t, "company_id");
        rc = K->entity_create(tx, "activities", t, &task);
    }
    K->json_decref(t);
    if (rc == 0) {
        kith_json_t *p = K->json_object();
        K->object_set(p, "deal", K->json_string(id));
        K->object_set(p, "task", K->json_string(task.id));
        K->object_set(p, "since", K->json_string(since));
        K->object_set(p, "limit_hours", K->json_real(hours));
        static const char *const fields[] = {"name",     "owner",      "team",  "stage",
                                             "pipeline", "contact_id", "amount"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            copy_field(p, d.fields, fields[i]);
        rc = K->emit(tx, "deal.stalled", p);
        K->json_decref(p);
        K->json_decref(task.fields);
    }
    K->json_decref(d.fields);
    return rc;
}

/* ---- activities ---- */

/* done_at follows done. */
static int activity_write(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud, (void)tx;
    if (!pl_changed(ev, "done")) return 0;
    if (K->json_type(K->object_get(ev->record, "done")) == KITH_JSON_TRUE) {
        if (!pl_changed(ev, "done_at")) {
            char now[KP_ISO_MAX];
            set(ev, "done_at", K->json_string(kp_iso_from_ms(K->now_ms(), now)));
        }
    } else {
        del(ev, "done_at");
    }
    return 0;
}

/* ---- pipelines ---- */

static int deals_in(kith_txn_t *tx, const char *pipeline, const char *stage)
{
    hit_t h = {0};
    return find_one(tx, "deals", eq2("pipeline", pipeline, stage ? "stage" : NULL, stage), &h);
}

static int pipeline_write(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    char why[300];
    const char *bad = pl_stages_check(K->object_get(ev->record, "stages"), why, sizeof why);
    if (bad) return invalid("pipelines", "stages", "%s", bad);
    const char *name = pl_str(ev->record, "name");
    if (!name || !name[strspn(name, " \t")])
        return invalid("pipelines", "name", "a pipeline needs a name");
    int rc = 0;
    if (ev->op == KITH_OP_UPDATE) {
        const char *old = pl_str(ev->previous, "name");
        if (old && strcmp(old, name) != 0 && (rc = deals_in(tx, old, NULL)) != 0)
            return rc < 0 ? rc
                          : conflict("name", "deals are in pipeline '%.100s': it cannot be renamed",
                                     old);
        /* a stage that goes away must be empty */
        const kith_json_t *was = K->object_get(ev->previous, "stages");
        pl_pipeline_t now = {.stages = K->object_get(ev->record, "stages")};
        for (size_t i = 0; old && i < K->array_size(was); i++) {
            const char *s = pl_stage_name(K->array_get(was, i));
            if (!s || pl_stage_find(&now, s, NULL)) continue;
            if ((rc = deals_in(tx, old, s)) != 0)
                return rc < 0 ? rc
                              : conflict("stages",
                                         "deals are in stage '%.100s': move them before removing "
                                         "it",
                                         s);
        }
    }
    /* one default pipeline: this one takes it from the others */
    if (K->json_type(K->object_get(ev->record, "default")) == KITH_JSON_TRUE &&
        pl_changed(ev, "default")) {
        kith_json_t *f = K->json_object();
        K->object_set(f, "default", K->json_bool(1));
        hit_t h = {.skip = ev->id};
        for (int n = 0; n < 1000 && (rc = find_one(tx, "pipelines", K->json_incref(f), &h)) == 1;
             n++) {
            kith_json_t *patch = K->json_object();
            K->object_set(patch, "default", K->json_null());
            rc = K->entity_update(tx, "pipelines", h.id, patch, 0, NULL);
            K->json_decref(patch);
            if (rc) break;
        }
        K->json_decref(f);
        if (rc < 0) return rc;
    }
    return 0;
}

static int pipeline_delete(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    const char *name = pl_str(ev->previous, "name");
    int rc = name ? deals_in(tx, name, NULL) : 0;
    if (rc < 0) return rc;
    if (rc) return conflict("name", "deals are in pipeline '%.100s': move them first", name);
    return 0;
}

/* ---- products ---- */

static int product_write(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    const char *name = pl_str(ev->record, "name");
    char key[PL_NAME_MAX + 1];
    if (!name || !pl_product_key(name, key, sizeof key))
        return invalid("products", "name", "a product name of letters or digits, at most %d",
                       PL_NAME_MAX);
    const char *old = pl_str(ev->record, "key");
    if (!old || strcmp(old, key) != 0) set(ev, "key", K->json_string(key));
    hit_t h = {.skip = ev->id};
    int rc = find_one(tx, "products", eq2("key", key, NULL, NULL), &h);
    if (rc < 0) return rc;
    if (rc == 1) {
        K->fail(KITH_PLUGIN_EEXIST, "products: a product with this name exists (names are "
                                    "compared without case, spaces or punctuation)");
        K->fail_field("name", "matches an existing product");
        K->fail_existing(h.id);
        return KITH_PLUGIN_EEXIST;
    }
    return 0;
}

/* ---- registration ---- */

int pl_deals_register(kith_plugin_t *p)
{
    static const struct {
        const char *event, *name;
        kith_event_fn fn;
    } hooks[] = {
        {"deals.before_create", "deals_create", deal_write},
        {"deals.before_update", "deals_update", deal_write},
        {"deals.before_delete", "deals_delete", deal_delete},
        {"activities.before_create", "activities_create", activity_write},
        {"activities.before_update", "activities_update", activity_write},
        {"pipelines.before_create", "pipelines_create", pipeline_write},
        {"pipelines.before_update", "pipelines_update", pipeline_write},
        {"pipelines.before_delete", "pipelines_delete", pipeline_delete},
        {"products.before_create", "products_create", product_write},
        {"products.before_update", "products_update", product_write},
        {PL_STALL_EVENT, "stall_due", stall_due},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        kith_hook_t h = {.size = sizeof h,
                         .event = hooks[i].event,
                         .name = hooks[i].name,
                         .priority = PRIORITY,
                         .fn = hooks[i].fn};
        int rc = K->on(p, &h);
        if (rc) return rc;
    }
    return 0;
}
