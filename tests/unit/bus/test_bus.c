/* Tests core/bus/bus.c on a store with a writer thread: before-hooks (veto,
 * amend, field filters, writes that commit or roll back with the op, priority
 * order), after-hooks (commit order, retries that never skip, exactly-once
 * effects, cursors that survive a restart), handlers never seeing their own
 * writes, cascade stops, domain events and event-name syntax.
 *
 * Handlers run on the writer thread: they never call cmocka's asserts, they
 * record what they saw (under a mutex) and the test checks it afterwards.
 * After-hooks are asynchronous: the test polls with a deadline, never a
 * sleep-and-hope, and "nothing more will come" is established by waiting for
 * the handler's durable cursor to reach the end of the change log. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"
#include "bus/bus.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OWNER   "plugin:test"
#define WAIT_US (20LL * 1000000) /* generous: valgrind and sanitizers are slow */

static const char *contacts_def = "{\"name\":\"contacts\",\"fields\":["
                                  "{\"name\":\"name\",\"type\":\"string\",\"required\":true},"
                                  "{\"name\":\"stage\",\"type\":\"string\"},"
                                  "{\"name\":\"score\",\"type\":\"int\"},"
                                  "{\"name\":\"touched\",\"type\":\"int\"}]}";
/* what handlers write: audit-ish notes and per-delivery marks */
static const char *notes_def = "{\"name\":\"notes\",\"fields\":["
                               "{\"name\":\"what\",\"type\":\"string\",\"required\":true},"
                               "{\"name\":\"ref\",\"type\":\"string\"},"
                               "{\"name\":\"seq\",\"type\":\"int\"}]}";

#define FX_OWNED_MAX 64

/* Handler contexts belong to the fixture and are freed only after the store
 * (and so the writer thread that calls handlers) has stopped, even when a
 * test fails halfway. */
typedef struct fx {
    store_t *st;
    char *dir;
    bus_t *bus;
    void *owned[FX_OWNED_MAX];
    void (*owned_free[FX_OWNED_MAX])(void *);
    size_t nowned;
} fx_t;

static void *fx_own(fx_t *f, void *p, void (*fn)(void *))
{
    if (f->nowned == FX_OWNED_MAX) fail_msg("raise FX_OWNED_MAX");
    f->owned[f->nowned] = p;
    f->owned_free[f->nowned++] = fn;
    return p;
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, contacts_def);
    tu_schema(f->st, notes_def);
    f->bus = bus_new(f->st, "default");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    /* stops the writer: no handler runs after this */
    if (f->st) {
        tu_store_close(f->st, f->dir);
    } else {
        *strrchr(f->dir, '/') = '\0';
        tu_rmtree(f->dir);
        free(f->dir);
    }
    bus_free(f->bus);
    for (size_t i = 0; i < f->nowned; i++)
        f->owned_free[i](f->owned[i]);
    free(f);
    return 0;
}

/* ---- what handlers saw ---------------------------------------------------- */

#define REC_MAX 512

typedef struct seen {
    uint64_t seq;
    kith_id_t id;
    int op, depth, before_phase, tag;
    char name[BUS_NAME_MAX + 16];
    char coll[STORE_NAME_MAX];
    char *payload;
} seen_t;

typedef struct rec {
    pthread_mutex_t mu;
    size_t n;
    seen_t e[REC_MAX];
    char bad[256]; /* the first thing a handler found wrong, "" if none */
} rec_t;

static void rec_free(void *p)
{
    rec_t *r = p;
    for (size_t i = 0; i < r->n && i < REC_MAX; i++)
        free(r->e[i].payload);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static rec_t *rec_new(fx_t *f)
{
    rec_t *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return fx_own(f, r, rec_free);
}

/* Notes one run; returns how many runs came before it. */
static size_t rec_note(rec_t *r, const bus_event_t *ev, int tag)
{
    pthread_mutex_lock(&r->mu);
    size_t i = r->n++;
    if (i < REC_MAX) {
        seen_t *s = &r->e[i];
        s->seq = ev->seq;
        s->id = ev->id;
        s->op = ev->op;
        s->depth = ev->depth;
        s->before_phase = ev->before_phase;
        s->tag = tag;
        snprintf(s->name, sizeof s->name, "%s", ev->name ? ev->name : "");
        snprintf(s->coll, sizeof s->coll, "%s", ev->coll ? ev->coll : "");
        s->payload = ev->payload ? xstrndup(ev->payload, ev->payload_len) : NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return i;
}

__attribute__((format(printf, 2, 3))) static void rec_bad(rec_t *r, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (!r->bad[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->bad, sizeof r->bad, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&r->mu);
}

static size_t rec_n(rec_t *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void rec_check(rec_t *r)
{
    pthread_mutex_lock(&r->mu);
    int bad = r->bad[0] != '\0', over = r->n > REC_MAX;
    pthread_mutex_unlock(&r->mu);
    if (bad) fail_msg("a handler saw something wrong: %s", r->bad);
    if (over) fail_msg("more than %d handler runs", REC_MAX);
}

/* One handler's context: where it records, and what it needs to know. */
typedef struct hctx {
    rec_t *rec;
    int tag;
    kith_id_t other; /* a record the handler writes */
    store_t *st;
} hctx_t;

/* A handler context recording into shared (or a new record if NULL). */
static hctx_t *hx(fx_t *f, rec_t *shared, int tag)
{
    hctx_t *h = fx_own(f, xcalloc(1, sizeof *h), free);
    h->rec = shared ? shared : rec_new(f);
    h->tag = tag;
    return h;
}

static void on(bus_t *b, const char *event, const char *name, int priority, bus_fn fn, hctx_t *ctx,
               const char *const *fields, size_t nfields)
{
    bus_handler_def_t d = {.event = event,
                           .owner = OWNER,
                           .name = name,
                           .priority = priority,
                           .fields = fields,
                           .nfields = nfields,
                           .fn = fn,
                           .ctx = ctx};
    assert_ok(bus_on(b, &d));
}

/* ---- polling ---------------------------------------------------------------- */

#define await(cond)                                                                                \
    do {                                                                                           \
        int64_t end__ = time_now_us() + WAIT_US;                                                   \
        while (!(cond)) {                                                                          \
            if (time_now_us() > end__) fail_msg("timed out waiting for %s", #cond);                \
            usleep(1000);                                                                          \
        }                                                                                          \
    } while (0)

/* Whether the after-hook `key` has looked at every committed change (in one
 * snapshot): once true, and with no client writing, it will not run again. */
static int caught_up(store_t *st, const char *key)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    uint64_t c = 0;
    assert_ok(store_cursor_get(rt, key, &c));
    int done = c == store_changes_last(rt);
    store_read_end(rt);
    return done;
}

static bus_stats_t stats_of(bus_t *b)
{
    bus_stats_t s;
    bus_stats(b, &s);
    return s;
}

/* ---- client writes (test thread) and reads ----------------------------------- */

static int exec_op(store_t *st, store_op_t *op, kith_id_t *id, uint64_t *seq)
{
    int rc = store_exec(st, op);
    if (rc == 0 && id) *id = op->rid;
    if (rc == 0 && seq) *seq = op->seq;
    store_op_free(op);
    return rc;
}

static int create_j(store_t *st, const char *coll, const char *text, kith_id_t *id, uint64_t *seq)
{
    json_t *j = tu_json(text);
    store_op_t *op = store_op_create(coll, j);
    json_decref(j);
    return exec_op(st, op, id, seq);
}

static int update_j(store_t *st, const char *coll, const kith_id_t *id, const char *text,
                    uint64_t *seq)
{
    json_t *j = tu_json(text);
    store_op_t *op = store_op_update(coll, id, j, 0);
    json_decref(j);
    return exec_op(st, op, NULL, seq);
}

static json_t *get_fields(store_t *st, const char *coll, const kith_id_t *id, uint64_t *version)
{
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    store_record_t rec;
    json_t *j = NULL;
    if (store_get(rt, coll, id, &rec) == 0) {
        j = store_record_fields(&rec);
        if (version) *version = rec.version;
    }
    store_read_end(rt);
    return j;
}

static void assert_fields(store_t *st, const char *coll, const kith_id_t *id, const char *want)
{
    json_t *got = get_fields(st, coll, id, NULL), *w = tu_json(want);
    if (!got) fail_msg("%s: no such record (want %s)", coll, want);
    if (!json_equal(got, w)) {
        char *gs = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("%s: got %s, want %s", coll, gs, want);
    }
    json_decref(got);
    json_decref(w);
}

static int collect_fields(void *ctx, const store_record_t *rec)
{
    json_array_append_new(ctx, store_record_fields(rec));
    return 0;
}

/* Every record's fields, in id (creation) order. */
static json_t *all_fields(store_t *st, const char *coll)
{
    json_t *out = json_array();
    char *cursor = NULL;
    do {
        store_rtxn_t *rt;
        assert_ok(store_read_begin(st, &rt));
        store_query_t q = {.coll = coll, .limit = 1000, .cursor = cursor};
        char *next = NULL;
        int rc = store_query(rt, &q, collect_fields, out, &next);
        store_read_end(rt);
        if (rc) fail_msg("query %s: %s", coll, err_last()->msg);
        free(cursor);
        cursor = next;
    } while (cursor);
    return out;
}

/* One change-log entry, copied out. */
typedef struct entry {
    uint64_t seq;
    int op, depth;
    kith_id_t id;
    char coll[STORE_NAME_MAX];
    char origin[256];
    char event[256];
    char changed[512]; /* names joined by ',' */
    char *before;
} entry_t;

typedef struct entries {
    entry_t v[64];
    size_t n;
} entries_t;

static int collect_entry(void *ctx, const store_change_t *ch)
{
    entries_t *es = ctx;
    if (es->n == 64) return 0;
    entry_t *e = &es->v[es->n++];
    memset(e, 0, sizeof *e);
    e->seq = ch->seq;
    e->op = ch->op;
    e->depth = ch->depth;
    e->id = ch->id;
    snprintf(e->coll, sizeof e->coll, "%s", ch->coll);
    snprintf(e->origin, sizeof e->origin, "%s", ch->origin ? ch->origin : "");
    snprintf(e->event, sizeof e->event, "%s", ch->event ? ch->event : "");
    for (size_t i = 0; i < ch->nchanged; i++) {
        size_t l = strlen(e->changed);
        snprintf(e->changed + l, sizeof e->changed - l, "%s%s", i ? "," : "", ch->changed[i]);
    }
    if (ch->before) e->before = xstrndup(ch->before, ch->before_len);
    return 0;
}

static entries_t *log_after(store_t *st, uint64_t after)
{
    entries_t *es = xcalloc(1, sizeof *es);
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_changes(rt, after, 0, collect_entry, es));
    store_read_end(rt);
    return es;
}

static void entries_free(entries_t *es)
{
    for (size_t i = 0; i < es->n; i++)
        free(es->v[i].before);
    free(es);
}

static void id_text(const kith_id_t *id, char out[ID_TEXT_LEN + 1])
{
    id_encode(id, out);
    out[ID_TEXT_LEN] = '\0';
}

/* ---- writes from inside handlers (writer thread) ------------------------------ */

/* Creates a record in w from a new reference to its fields. */
static int w_create(store_wtxn_t *w, const char *coll, json_t *fields)
{
    store_op_t *op = store_op_create(coll, fields);
    json_decref(fields);
    int rc = store_wtxn_write(w, op);
    store_op_free(op);
    return rc;
}

static int w_update(store_wtxn_t *w, const char *coll, const kith_id_t *id, json_t *patch)
{
    store_op_t *op = store_op_update(coll, id, patch, 0);
    json_decref(patch);
    int rc = store_wtxn_write(w, op);
    store_op_free(op);
    return rc;
}

static const char *rec_name(const bus_event_t *ev)
{
    const char *s = json_string_value(json_object_get(ev->record, "name"));
    return s ? s : "";
}

/* ---- 1. a before-hook vetoes ------------------------------------------------- */

static int h_no_spam(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    if (!ev->before_phase || ev->op != STORE_CHANGE_CREATE || strcmp(ev->coll, "contacts") != 0 ||
        strcmp(ev->name, "contacts.before_create") != 0 || !ev->record || ev->before)
        rec_bad(h->rec, "unexpected before_create event %s", ev->name);
    if (strstr(rec_name(ev), "@spam")) return err_set(KITH_EVETO, "no contacts from spam, please");
    return 0;
}

static void before_create_veto(void **state)
{
    fx_t *f = *state;
    hctx_t *h = hx(f, NULL, 0);
    on(f->bus, "contacts.before_create", "no_spam", 0, h_no_spam, h, NULL, 0);
    bus_attach(f->bus);

    json_t *j = tu_json("{\"name\":\"bot@spam\"}");
    store_op_t *op = store_op_create("contacts", j);
    json_decref(j);
    assert_int_equal(store_exec(f->st, op), KITH_EVETO);
    assert_non_null(strstr(err_last()->msg, "no contacts from spam, please"));
    assert_non_null(op->diag);
    assert_non_null(strstr(op->diag->msg, "no contacts from spam, please"));
    assert_int_equal(op->seq, 0);
    store_op_free(op);
    assert_int_equal(tu_count(f->st, "contacts"), 0);
    assert_int_equal(tu_changes_last(f->st), 0);
    assert_int_equal(rec_n(h->rec), 1);
    bus_stats_t s = stats_of(f->bus);
    assert_int_equal(s.vetoes, 1);
    assert_int_equal(s.errors, 0);

    /* the same handler lets a good one through */
    kith_id_t id;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"ada@example.com\"}", &id, NULL));
    assert_int_equal(tu_count(f->st, "contacts"), 1);
    assert_int_equal(tu_changes_last(f->st), 1);
    assert_int_equal(rec_n(h->rec), 2);
    assert_int_equal(stats_of(f->bus).vetoes, 1);
    rec_check(h->rec);
}

/* ---- 2. a before-hook amends --------------------------------------------------- */

static int h_score_default(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    if (strcmp(rec_name(ev), "bad") == 0)
        json_object_set_new(ev->record, "score", json_string("high")); /* breaks the schema */
    else
        json_object_set_new(ev->record, "score", json_integer(10));
    *ev->amended = 1;
    return 0;
}

static int h_hot_stage(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    json_t *score = json_object_get(ev->record, "score");
    if (json_is_integer(score) && json_integer_value(score) > 50) {
        json_object_set_new(ev->record, "stage", json_string("hot"));
        *ev->amended = 1;
    }
    return 0;
}

static void before_hooks_amend(void **state)
{
    fx_t *f = *state;
    hctx_t *hc = hx(f, NULL, 0);
    hctx_t *hu = hx(f, NULL, 0);
    on(f->bus, "contacts.before_create", "score_default", 0, h_score_default, hc, NULL, 0);
    on(f->bus, "contacts.before_update", "hot_stage", 0, h_hot_stage, hu, NULL, 0);
    bus_attach(f->bus);

    kith_id_t id;
    json_t *j = tu_json("{\"name\":\"ann\"}");
    store_op_t *op = store_op_create("contacts", j);
    json_decref(j);
    assert_ok(store_exec(f->st, op));
    id = op->rid;
    json_t *res = json_parse(op->json, op->json_len),
           *want = tu_json("{\"name\":\"ann\",\"score\":10}");
    assert_non_null(res);
    assert_true(json_equal(res, want)); /* the op's result shows the amended record */
    json_decref(res);
    json_decref(want);
    store_op_free(op);
    assert_fields(f->st, "contacts", &id, "{\"name\":\"ann\",\"score\":10}");
    entries_t *es = log_after(f->st, 0);
    assert_int_equal(es->n, 1);
    assert_string_equal(es->v[0].changed, "name,score"); /* the log names the amended field */
    entries_free(es);

    /* an amend that breaks the schema fails the op and writes nothing */
    assert_int_equal(create_j(f->st, "contacts", "{\"name\":\"bad\",\"score\":1}", NULL, NULL),
                     KITH_EVALIDATION);
    assert_non_null(strstr(err_last()->msg, "before-hook"));
    assert_int_equal(tu_count(f->st, "contacts"), 1);
    assert_int_equal(tu_changes_last(f->st), 1);

    /* an update amended: the stored record, the change's field list and its
     * previous values include what the hook changed */
    uint64_t seq = 0;
    assert_ok(update_j(f->st, "contacts", &id, "{\"score\":60}", &seq));
    assert_int_equal(seq, 2);
    assert_fields(f->st, "contacts", &id, "{\"name\":\"ann\",\"stage\":\"hot\",\"score\":60}");
    es = log_after(f->st, 1);
    assert_int_equal(es->n, 1);
    assert_int_equal(es->v[0].op, STORE_CHANGE_UPDATE);
    assert_string_equal(es->v[0].changed, "stage,score");
    assert_non_null(es->v[0].before);
    json_t *before = tu_json(es->v[0].before), *wb = tu_json("{\"stage\":null,\"score\":10}");
    assert_true(json_equal(before, wb));
    json_decref(before);
    json_decref(wb);
    entries_free(es);

    assert_int_equal(rec_n(hc->rec), 2);
    assert_int_equal(rec_n(hu->rec), 1);
    rec_check(hc->rec);
    rec_check(hu->rec);
}

/* ---- 3. field filters ---------------------------------------------------------- */

static int h_stage_watch(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    int has = 0;
    for (size_t i = 0; i < ev->nchanged; i++)
        if (strcmp(ev->changed[i], "stage") == 0) has = 1;
    if (!has) rec_bad(h->rec, "%s ran for a change without stage", ev->key);
    if (ev->op != STORE_CHANGE_UPDATE) rec_bad(h->rec, "%s ran for op %d", ev->key, ev->op);
    return 0;
}

static void before_update_field_filter(void **state)
{
    fx_t *f = *state;
    static const char *const stage[] = {"stage"};
    hctx_t *hb = hx(f, NULL, 0);
    hctx_t *ha = hx(f, NULL, 0);
    on(f->bus, "contacts.before_update", "stage_before", 0, h_stage_watch, hb, stage, 1);
    on(f->bus, "contacts.updated", "stage_after", 0, h_stage_watch, ha, stage, 1);
    bus_attach(f->bus);

    kith_id_t id;
    uint64_t s1 = 0, s3 = 0;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"bo\",\"score\":1}", &id, NULL));
    assert_int_equal(rec_n(hb->rec), 0);
    assert_ok(update_j(f->st, "contacts", &id, "{\"stage\":\"lead\"}", &s1));
    assert_int_equal(rec_n(hb->rec), 1);
    assert_ok(update_j(f->st, "contacts", &id, "{\"score\":5}", NULL));
    assert_int_equal(rec_n(hb->rec), 1);
    assert_ok(update_j(f->st, "contacts", &id, "{\"stage\":\"won\",\"score\":6}", &s3));
    assert_int_equal(rec_n(hb->rec), 2);
    assert_ok(update_j(f->st, "contacts", &id, "{\"stage\":\"won\"}", NULL)); /* no change */
    assert_int_equal(rec_n(hb->rec), 2);
    assert_ok(update_j(f->st, "contacts", &id, "{\"touched\":1}", NULL));
    assert_int_equal(rec_n(hb->rec), 2);

    /* the after-hook with the same filter gets the two stage changes only */
    await(rec_n(ha->rec) >= 2 && caught_up(f->st, OWNER "/stage_after"));
    assert_int_equal(rec_n(ha->rec), 2);
    assert_int_equal(ha->rec->e[0].seq, s1);
    assert_int_equal(ha->rec->e[1].seq, s3);
    rec_check(hb->rec);
    rec_check(ha->rec);
}

/* ---- 4. a before-hook's writes commit or roll back with the op ---------------- */

static int h_audit(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    rec_note(h->rec, ev, 0);
    return w_create(w, "notes", json_pack("{s:s, s:s}", "what", "contact", "ref", rec_name(ev)));
}

static int h_veto_named(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    if (strcmp(rec_name(ev), "veto") == 0) return err_set(KITH_EVETO, "vetoed by policy");
    return 0;
}

static void before_hook_writes_are_atomic(void **state)
{
    fx_t *f = *state;
    hctx_t *ha = hx(f, NULL, 0);
    hctx_t *hv = hx(f, NULL, 0);
    /* registered veto first: priority, not registration, puts it second */
    on(f->bus, "contacts.before_create", "veto", 200, h_veto_named, hv, NULL, 0);
    on(f->bus, "contacts.before_create", "audit", 100, h_audit, ha, NULL, 0);
    bus_attach(f->bus);

    kith_id_t id;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"ok\"}", &id, NULL));
    assert_int_equal(tu_count(f->st, "contacts"), 1);
    assert_int_equal(tu_count(f->st, "notes"), 1);
    json_t *notes = all_fields(f->st, "notes"),
           *wn = tu_json("[{\"what\":\"contact\",\"ref\":\"ok\"}]");
    assert_true(json_equal(notes, wn));
    json_decref(notes);
    json_decref(wn);
    /* both in the log: the hook's write first, by the hook, one level deep */
    entries_t *es = log_after(f->st, 0);
    assert_int_equal(es->n, 2);
    assert_string_equal(es->v[0].coll, "notes");
    assert_string_equal(es->v[0].origin, OWNER "/audit");
    assert_int_equal(es->v[0].depth, 1);
    assert_string_equal(es->v[1].coll, "contacts");
    assert_string_equal(es->v[1].origin, "");
    assert_int_equal(es->v[1].depth, 0);
    assert_memory_equal(es->v[1].id.b, id.b, ID_LEN);
    entries_free(es);

    /* the later handler vetoes: the first one's note goes too */
    assert_int_equal(create_j(f->st, "contacts", "{\"name\":\"veto\"}", NULL, NULL), KITH_EVETO);
    assert_non_null(strstr(err_last()->msg, "vetoed by policy"));
    assert_int_equal(rec_n(ha->rec), 2); /* the audit hook did run and write */
    assert_int_equal(rec_n(hv->rec), 2);
    assert_int_equal(tu_count(f->st, "contacts"), 1);
    assert_int_equal(tu_count(f->st, "notes"), 1);
    assert_int_equal(tu_changes_last(f->st), 2);
    assert_int_equal(tu_check_problems(f->st), 0);
    rec_check(ha->rec);
    rec_check(hv->rec);
}

/* ---- 5. priority order --------------------------------------------------------- */

static int h_order(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, h->tag);
    return 0;
}

static void priority_order(void **state)
{
    fx_t *f = *state;
    rec_t *r = rec_new(f);
    hctx_t *h300 = hx(f, r, 300);
    hctx_t *h100 = hx(f, r, 100);
    hctx_t *h200 = hx(f, r, 200);
    hctx_t *hdflt = hx(f, r, 1);
    hctx_t *hafter = hx(f, NULL, 50);
    on(f->bus, "contacts.before_create", "p300", 300, h_order, h300, NULL, 0);
    on(f->bus, "contacts.before_create", "p100", 100, h_order, h100, NULL, 0);
    on(f->bus, "contacts.before_create", "p200", 200, h_order, h200, NULL, 0);
    /* priority 0 is the default (100): after p100, which registered earlier */
    on(f->bus, "contacts.before_create", "pdflt", 0, h_order, hdflt, NULL, 0);
    on(f->bus, "contacts.created", "after50", 50, h_order, hafter, NULL, 0);
    bus_attach(f->bus);

    assert_ok(create_j(f->st, "contacts", "{\"name\":\"x\"}", NULL, NULL));
    assert_int_equal(rec_n(r), 4);
    static const int want[] = {100, 1, 200, 300};
    for (int i = 0; i < 4; i++)
        assert_int_equal(r->e[i].tag, want[i]);

    buf_t b = BUF_INIT;
    bus_list(f->bus, &b);
    json_t *list = json_loadb(b.p, b.len, 0, NULL);
    if (!list) fail_msg("bus_list is not JSON: %.*s", (int)b.len, b.p);
    buf_free(&b);
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 5);
    static const struct {
        const char *key, *event, *phase;
        int priority;
    } wl[] = {
        {OWNER "/after50", "contacts.created", "after", 50},
        {OWNER "/p100", "contacts.before_create", "before", 100},
        {OWNER "/pdflt", "contacts.before_create", "before", 100},
        {OWNER "/p200", "contacts.before_create", "before", 200},
        {OWNER "/p300", "contacts.before_create", "before", 300},
    };
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(list, i);
        assert_string_equal(json_string_value(json_object_get(e, "key")), wl[i].key);
        assert_string_equal(json_string_value(json_object_get(e, "event")), wl[i].event);
        assert_string_equal(json_string_value(json_object_get(e, "owner")), OWNER);
        assert_string_equal(json_string_value(json_object_get(e, "phase")), wl[i].phase);
        assert_int_equal(json_integer_value(json_object_get(e, "priority")), wl[i].priority);
        assert_true(json_is_array(json_object_get(e, "fields")));
        /* only after-hooks have a cursor */
        assert_int_equal(json_object_get(e, "cursor") != NULL, i == 0);
    }
    json_decref(list);
    assert_int_equal(stats_of(f->bus).handlers, 5);
    rec_check(r);
}

/* A new after-hook that has delivered nothing yet is listed at the sequence
 * it starts from (what had committed when it registered), not at 0: the
 * writer is held at a gate, so no delivery round can save a cursor first. */
static void new_after_hook_lists_where_it_starts(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 3; i++)
        assert_ok(create_j(f->st, "contacts", "{\"name\":\"x\"}", NULL, NULL));
    uint64_t seq = store_writer_seq(f->st);
    assert_true(seq >= 3);
    tu_gate_t g;
    tu_gate_hold(f->st, &g);
    on(f->bus, "contacts.created", "late", 0, h_order, hx(f, NULL, 1), NULL, 0);
    bus_attach(f->bus);
    buf_t b = BUF_INIT;
    bus_list(f->bus, &b);
    int caught_up = bus_caught_up(f->bus);
    tu_gate_release(&g); /* before any assertion: a failed one must not hang */
    json_t *list = json_loadb(b.p, b.len, 0, NULL);
    buf_free(&b);
    assert_non_null(list);
    json_t *cur = json_object_get(json_array_get(list, 0), "cursor");
    assert_int_equal(json_integer_value(cur), (json_int_t)seq);
    json_decref(list);
    assert_true(caught_up);
}

/* ---- 6. after-hooks get every create, in commit order ------------------------- */

#define NTHREADS   4
#define PER_THREAD 50

typedef struct burst {
    store_t *st;
    int t;
    int failed;
    uint64_t seq[PER_THREAD];
    kith_id_t id[PER_THREAD];
} burst_t;

static void *burst_main(void *arg)
{
    burst_t *b = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"name\":\"t%d-%d\"}", b->t, i);
        json_t *j = json_loads(text, 0, NULL);
        store_op_t *op = store_op_create("contacts", j);
        json_decref(j);
        if (store_exec(b->st, op) != 0) b->failed++;
        b->seq[i] = op->seq;
        b->id[i] = op->rid;
        store_op_free(op);
    }
    return NULL;
}

static int h_created(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    if (ev->before_phase || ev->record || ev->amended || ev->op != STORE_CHANGE_CREATE ||
        strcmp(ev->name, "contacts.created") != 0 || ev->seq == 0 || ev->time_us <= 0)
        rec_bad(h->rec, "unexpected after-hook event %s seq %llu", ev->name,
                (unsigned long long)ev->seq);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void after_hook_commit_order(void **state)
{
    fx_t *f = *state;
    hctx_t *h = hx(f, NULL, 0);
    on(f->bus, "contacts.created", "created", 0, h_created, h, NULL, 0);
    bus_attach(f->bus);

    burst_t b[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        memset(&b[t], 0, sizeof b[t]);
        b[t].st = f->st;
        b[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, burst_main, &b[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(b[t].failed, 0);
    /* an update and a delete are not creates */
    assert_ok(update_j(f->st, "contacts", &b[0].id[0], "{\"score\":1}", NULL));
    store_op_t *del = store_op_delete("contacts", &b[1].id[0], 0);
    assert_ok(exec_op(f->st, del, NULL, NULL));

    const size_t total = NTHREADS * PER_THREAD;
    await(rec_n(h->rec) >= total && caught_up(f->st, OWNER "/created"));
    assert_int_equal(rec_n(h->rec), total);

    uint64_t want[NTHREADS * PER_THREAD];
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++)
            want[t * PER_THREAD + i] = b[t].seq[i];
    qsort(want, total, sizeof want[0], cmp_u64);
    for (size_t i = 0; i < total; i++) {
        const seen_t *s = &h->rec->e[i];
        if (s->seq != want[i])
            fail_msg("delivery %zu: seq %llu, want %llu", i, (unsigned long long)s->seq,
                     (unsigned long long)want[i]);
        /* and the id is the one that create committed with */
        int found = 0;
        for (int t = 0; t < NTHREADS && !found; t++)
            for (int k = 0; k < PER_THREAD && !found; k++)
                if (b[t].seq[k] == s->seq && memcmp(b[t].id[k].b, s->id.b, ID_LEN) == 0) found = 1;
        if (!found)
            fail_msg("delivery %zu (seq %llu) has the wrong id", i, (unsigned long long)s->seq);
    }
    bus_stats_t st = stats_of(f->bus);
    assert_int_equal(st.delivered, total);
    assert_int_equal(st.errors, 0);
    rec_check(h->rec);
}

/* ---- 7. a failing after-hook is retried, never skipped ------------------------ */

#define FLAKY_N 5

typedef struct flaky {
    pthread_mutex_t mu;
    uint64_t tried[64]; /* the seq of every attempt, in order */
    size_t ntried;
    size_t delivered;
} flaky_t;

static int h_flaky(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    flaky_t *fl = ctx;
    pthread_mutex_lock(&fl->mu);
    int attempt = 0;
    for (size_t i = 0; i < fl->ntried; i++)
        if (fl->tried[i] == ev->seq) attempt++;
    if (fl->ntried < 64) fl->tried[fl->ntried++] = ev->seq;
    attempt++;
    pthread_mutex_unlock(&fl->mu);
    /* the effect first: it must go when the attempt fails */
    char ids[ID_TEXT_LEN + 1];
    id_text(&ev->id, ids);
    int rc = w_create(
        w, "notes",
        json_pack("{s:s, s:s, s:I}", "what", "mark", "ref", ids, "seq", (json_int_t)ev->seq));
    if (rc) return rc;
    if (attempt <= 2) return err_set(KITH_EIO, "flaky (attempt %d)", attempt);
    pthread_mutex_lock(&fl->mu);
    fl->delivered++;
    pthread_mutex_unlock(&fl->mu);
    return 0;
}

static void flaky_free(void *p)
{
    flaky_t *fl = p;
    pthread_mutex_destroy(&fl->mu);
    free(fl);
}

static size_t flaky_delivered(flaky_t *fl)
{
    pthread_mutex_lock(&fl->mu);
    size_t n = fl->delivered;
    pthread_mutex_unlock(&fl->mu);
    return n;
}

static void after_hook_retried_not_skipped(void **state)
{
    fx_t *f = *state;
    flaky_t *fl = fx_own(f, xcalloc(1, sizeof *fl), flaky_free);
    pthread_mutex_init(&fl->mu, NULL);
    bus_handler_def_t d = {
        .event = "contacts.created", .owner = OWNER, .name = "flaky", .fn = h_flaky, .ctx = fl};
    assert_ok(bus_on(f->bus, &d));
    bus_attach(f->bus);

    kith_id_t ids[FLAKY_N];
    uint64_t seqs[FLAKY_N];
    for (int i = 0; i < FLAKY_N; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"name\":\"c%d\"}", i);
        assert_ok(create_j(f->st, "contacts", text, &ids[i], &seqs[i]));
    }
    /* three attempts each, the backoff 100 then 200 ms: about 1.5 s */
    await(flaky_delivered(fl) >= FLAKY_N && caught_up(f->st, OWNER "/flaky"));
    pthread_mutex_lock(&fl->mu); /* (never fail holding it: the writer would block) */
    size_t delivered = fl->delivered, ntried = fl->ntried;
    uint64_t tried[64];
    memcpy(tried, fl->tried, sizeof tried);
    pthread_mutex_unlock(&fl->mu);
    assert_int_equal(delivered, FLAKY_N);
    assert_int_equal(ntried, 3 * FLAKY_N);
    for (size_t i = 0; i < ntried; i++)
        if (tried[i] != seqs[i / 3])
            fail_msg("attempt %zu was for seq %llu, want %llu (records out of order or "
                     "skipped)",
                     i, (unsigned long long)tried[i], (unsigned long long)seqs[i / 3]);

    /* exactly one mark per create: the failed attempts' marks were undone */
    json_t *marks = all_fields(f->st, "notes");
    assert_int_equal(json_array_size(marks), FLAKY_N);
    for (size_t i = 0; i < FLAKY_N; i++) {
        char want[ID_TEXT_LEN + 1];
        id_text(&ids[i], want);
        json_t *m = json_array_get(marks, i);
        assert_string_equal(json_string_value(json_object_get(m, "ref")), want);
        assert_int_equal(json_integer_value(json_object_get(m, "seq")), seqs[i]);
    }
    json_decref(marks);

    bus_stats_t s = stats_of(f->bus);
    assert_int_equal(s.delivered, FLAKY_N);
    assert_int_equal(s.errors, 2 * FLAKY_N);
    assert_int_equal(s.runs, 3 * FLAKY_N);
    /* healthy again: no failures or retry time listed */
    buf_t b = BUF_INIT;
    bus_list(f->bus, &b);
    json_t *list = json_loadb(b.p, b.len, 0, NULL);
    buf_free(&b);
    assert_non_null(list);
    json_t *e = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "failures")), 0);
    assert_null(json_object_get(e, "retry_at"));
    json_decref(list);
}

/* ---- 8. a handler does not see its own writes ------------------------------------ */

/* after-hook: marks the record it was told about as touched */
static int h_touch(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    size_t n = rec_note(h->rec, ev, 0) + 1;
    return w_update(w, "contacts", &ev->id, json_pack("{s:I}", "touched", (json_int_t)n));
}

static void after_hook_own_writes_not_seen(void **state)
{
    fx_t *f = *state;
    hctx_t *h = hx(f, NULL, 0);
    on(f->bus, "contacts.updated", "touch", 0, h_touch, h, NULL, 0);
    bus_attach(f->bus);

    kith_id_t id;
    uint64_t s1 = 0, s2 = 0;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"ed\"}", &id, NULL));
    assert_ok(update_j(f->st, "contacts", &id, "{\"score\":1}", &s1));
    await(rec_n(h->rec) >= 1);
    assert_ok(update_j(f->st, "contacts", &id, "{\"score\":2}", &s2));
    /* its cursor at the log's end: it has looked at its own updates too */
    await(rec_n(h->rec) >= 2 && caught_up(f->st, OWNER "/touch"));
    assert_int_equal(rec_n(h->rec), 2);
    assert_int_equal(h->rec->e[0].seq, s1);
    assert_int_equal(h->rec->e[1].seq, s2);
    uint64_t version = 0;
    json_t *got = get_fields(f->st, "contacts", &id, &version);
    assert_int_equal(json_integer_value(json_object_get(got, "touched")), 2);
    json_decref(got);
    assert_int_equal(version, 5); /* create, 2 updates, 2 touches */
    assert_int_equal(tu_changes_last(f->st), 5);
    assert_int_equal(stats_of(f->bus).cascade_stops, 0);
    rec_check(h->rec);
}

/* before_update on score: bumps another contact's score */
static int h_bump_other(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    size_t n = rec_note(h->rec, ev, 0) + 1;
    if (memcmp(ev->id.b, h->other.b, ID_LEN) == 0) return 0; /* (would be a re-entry) */
    return w_update(w, "contacts", &h->other, json_pack("{s:I}", "score", (json_int_t)(1000 + n)));
}

static void before_hook_own_writes_not_seen(void **state)
{
    fx_t *f = *state;
    static const char *const score[] = {"score"};
    hctx_t *h = hx(f, NULL, 0);
    on(f->bus, "contacts.before_update", "bump", 0, h_bump_other, h, score, 1);
    bus_attach(f->bus);

    kith_id_t x, y;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"x\"}", &x, NULL));
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"y\"}", &y, NULL));
    h->other = y; /* the writer reads it only inside the next op */
    uint64_t seq = 0;
    assert_ok(update_j(f->st, "contacts", &x, "{\"score\":5}", &seq));
    assert_int_equal(rec_n(h->rec), 1); /* not again for its own update of y */
    assert_fields(f->st, "contacts", &x, "{\"name\":\"x\",\"score\":5}");
    assert_fields(f->st, "contacts", &y, "{\"name\":\"y\",\"score\":1001}");
    entries_t *es = log_after(f->st, 2);
    assert_int_equal(es->n, 2);
    assert_memory_equal(es->v[0].id.b, y.b, ID_LEN);
    assert_string_equal(es->v[0].origin, OWNER "/bump");
    assert_int_equal(es->v[0].depth, 1);
    assert_memory_equal(es->v[1].id.b, x.b, ID_LEN);
    assert_string_equal(es->v[1].origin, "");
    entries_free(es);

    /* a client's update of y does run it (nothing to bump then) */
    assert_ok(update_j(f->st, "contacts", &y, "{\"score\":7}", NULL));
    assert_int_equal(rec_n(h->rec), 2);
    rec_check(h->rec);
}

/* ---- 9. a cascade stops ----------------------------------------------------------- */

/* after-hook: creates a record in the collection named by tag ('a' or 'b') */
static int h_ping(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    rec_note(h->rec, ev, 0);
    if (ev->depth >= BUS_DEPTH_MAX) rec_bad(h->rec, "ran at depth %d", ev->depth);
    char coll[2] = {(char)h->tag, '\0'};
    return w_create(w, coll, json_pack("{s:i}", "n", ev->depth + 1));
}

static void cascade_stops(void **state)
{
    fx_t *f = *state;
    tu_schema(f->st, "{\"name\":\"a\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}");
    tu_schema(f->st, "{\"name\":\"b\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}");
    tu_schema(f->st, "{\"name\":\"c\",\"fields\":[{\"name\":\"n\",\"type\":\"int\"}]}");
    hctx_t *ha = hx(f, NULL, 'b');
    hctx_t *hb = hx(f, NULL, 'a');
    hctx_t *hc = hx(f, NULL, 0);
    on(f->bus, "a.created", "a_makes_b", 0, h_ping, ha, NULL, 0);
    on(f->bus, "b.created", "b_makes_a", 0, h_ping, hb, NULL, 0);
    on(f->bus, "c.created", "c_seen", 0, h_order, hc, NULL, 0);
    bus_attach(f->bus);

    assert_ok(create_j(f->st, "a", "{\"n\":0}", NULL, NULL));
    await(stats_of(f->bus).cascade_stops > 0);
    await(caught_up(f->st, OWNER "/a_makes_b") && caught_up(f->st, OWNER "/b_makes_a"));
    uint64_t na = tu_count(f->st, "a"), nb = tu_count(f->st, "b");
    if (na + nb > 2 * BUS_DEPTH_MAX + 2 || na + nb < BUS_DEPTH_MAX)
        fail_msg("the cascade wrote %llu a and %llu b", (unsigned long long)na,
                 (unsigned long long)nb);
    assert_int_equal(rec_n(ha->rec) + rec_n(hb->rec), na + nb - 1);

    /* the writer goes on: a later write commits and its after-hook runs */
    assert_ok(create_j(f->st, "c", "{\"n\":1}", NULL, NULL));
    await(rec_n(hc->rec) >= 1 && caught_up(f->st, OWNER "/c_seen"));
    assert_int_equal(rec_n(hc->rec), 1);
    assert_int_equal(tu_count(f->st, "a"), na); /* and the chain stayed stopped */
    assert_int_equal(tu_count(f->st, "b"), nb);
    rec_check(ha->rec);
    rec_check(hb->rec);
}

/* ---- 10. domain events -------------------------------------------------------------- */

/* before_create: a hot lead is announced with its name and score */
static int h_announce_hot(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    rec_note(h->rec, ev, 0);
    json_t *score = json_object_get(ev->record, "score");
    if (!json_is_integer(score) || json_integer_value(score) < 50) return 0;
    json_t *p = json_pack("{s:s, s:O}", "name", rec_name(ev), "score", score);
    size_t len;
    char *text = json_to_str(p, &len);
    json_decref(p);
    int rc = store_wtxn_emit(w, "lead.hot", text, len);
    free(text);
    return rc;
}

/* contacts.created: every new contact is announced with its seq */
static int h_announce_new(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    rec_note(h->rec, ev, 0);
    char text[64];
    int len = snprintf(text, sizeof text, "{\"seq\":%llu}", (unsigned long long)ev->seq);
    return store_wtxn_emit(w, "lead.new", text, (size_t)len);
}

static int h_domain(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    (void)w;
    rec_note(h->rec, ev, 0);
    if (ev->op != STORE_CHANGE_EVENT || strcmp(ev->coll, "_event") != 0 || ev->before_phase ||
        !ev->payload)
        rec_bad(h->rec, "unexpected domain event %s (op %d, coll %s)", ev->name, ev->op, ev->coll);
    return 0;
}

static void payload_is(const seen_t *s, const char *want)
{
    if (!s->payload) fail_msg("%s: no payload (want %s)", s->name, want);
    json_t *got = tu_json(s->payload), *w = tu_json(want);
    if (!json_equal(got, w)) fail_msg("%s: payload %s, want %s", s->name, s->payload, want);
    json_decref(got);
    json_decref(w);
}

static void domain_events(void **state)
{
    fx_t *f = *state;
    hctx_t *hb = hx(f, NULL, 0);
    hctx_t *ha = hx(f, NULL, 0);
    hctx_t *hot = hx(f, NULL, 0);
    hctx_t *fresh = hx(f, NULL, 0);
    on(f->bus, "contacts.before_create", "announce_hot", 0, h_announce_hot, hb, NULL, 0);
    on(f->bus, "contacts.created", "announce_new", 0, h_announce_new, ha, NULL, 0);
    on(f->bus, "lead.hot", "on_hot", 0, h_domain, hot, NULL, 0);
    on(f->bus, "lead.new", "on_new", 0, h_domain, fresh, NULL, 0);
    bus_attach(f->bus);

    uint64_t s1 = 0, s2 = 0;
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"hot one\",\"score\":90}", NULL, &s1));
    assert_ok(create_j(f->st, "contacts", "{\"name\":\"lukewarm\",\"score\":10}", NULL, &s2));
    await(rec_n(hot->rec) >= 1 && rec_n(fresh->rec) >= 2 && caught_up(f->st, OWNER "/on_hot") &&
          caught_up(f->st, OWNER "/on_new"));
    assert_int_equal(rec_n(hot->rec), 1);
    assert_string_equal(hot->rec->e[0].name, "lead.hot");
    payload_is(&hot->rec->e[0], "{\"name\":\"hot one\",\"score\":90}");
    assert_int_equal(rec_n(fresh->rec), 2);
    char want[64];
    snprintf(want, sizeof want, "{\"seq\":%llu}", (unsigned long long)s1);
    payload_is(&fresh->rec->e[0], want);
    snprintf(want, sizeof want, "{\"seq\":%llu}", (unsigned long long)s2);
    payload_is(&fresh->rec->e[1], want);
    /* the before-hook's event is logged just before its create */
    assert_true(hot->rec->e[0].seq == s1 - 1);
    rec_check(hot->rec);
    rec_check(fresh->rec);
}

/* ---- 11. cursors survive a restart ---------------------------------------------------- */

/* contacts.created: one mark per delivery, committed with the cursor */
static int h_mark(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    hctx_t *h = ctx;
    rec_note(h->rec, ev, 0);
    char ids[ID_TEXT_LEN + 1];
    id_text(&ev->id, ids);
    return w_create(w, "notes", json_pack("{s:s, s:s}", "what", "mark", "ref", ids));
}

static void create_contacts(store_t *st, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"name\":\"%s%d\"}", prefix, i);
        assert_ok(create_j(st, "contacts", text, NULL, NULL));
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void cursor_survives_restart(void **state)
{
    fx_t *f = *state;
    const char *key = OWNER "/mark";
    /* run 1: the server delivers 20 creates */
    hctx_t *h1 = hx(f, NULL, 0);
    on(f->bus, "contacts.created", "mark", 0, h_mark, h1, NULL, 0);
    bus_attach(f->bus);
    create_contacts(f->st, "first", 20);
    await(tu_count(f->st, "notes") >= 20 && caught_up(f->st, key));
    store_close(f->st);
    f->st = NULL;
    bus_free(f->bus);
    f->bus = NULL;
    uint64_t saved;

    /* the server is down: a tool writes 15 more, nobody delivers them */
    f->st = tu_store_reopen(f->dir, 0);
    saved = tu_cursor(f->st, key);
    assert_true(saved > 0);
    create_contacts(f->st, "offline", 15);
    assert_int_equal(tu_count(f->st, "notes"), 20);
    assert_int_equal(tu_cursor(f->st, key), saved);
    store_close(f->st);
    f->st = NULL;

    /* run 2: a new bus, the same handler key: it resumes after its cursor */
    f->st = tu_store_reopen(f->dir, 0);
    f->bus = bus_new(f->st, "default");
    hctx_t *h2 = hx(f, NULL, 0);
    on(f->bus, "contacts.created", "mark", 0, h_mark, h2, NULL, 0);
    bus_attach(f->bus);
    create_contacts(f->st, "second", 15);
    await(tu_count(f->st, "notes") >= 50 && caught_up(f->st, key));
    assert_int_equal(rec_n(h1->rec), 20);
    assert_int_equal(rec_n(h2->rec), 30);
    for (size_t i = 0; i < 30; i++)
        assert_true(h2->rec->e[i].seq > saved);

    /* every contact has exactly one mark */
    json_t *contacts = all_fields(f->st, "contacts");
    json_t *marks = all_fields(f->st, "notes");
    assert_int_equal(json_array_size(contacts), 50);
    assert_int_equal(json_array_size(marks), 50);
    kith_id_t ids[64];
    assert_int_equal(tu_query_ids(f->st, "contacts", NULL, NULL, ids, 64), 50);
    char want[50][ID_TEXT_LEN + 1];
    const char *wp[50], *gp[50];
    for (size_t i = 0; i < 50; i++) {
        id_text(&ids[i], want[i]);
        wp[i] = want[i];
        gp[i] = json_string_value(json_object_get(json_array_get(marks, i), "ref"));
        assert_non_null(gp[i]);
    }
    qsort(wp, 50, sizeof wp[0], cmp_str);
    qsort(gp, 50, sizeof gp[0], cmp_str);
    for (size_t i = 0; i < 50; i++)
        if (strcmp(wp[i], gp[i]) != 0) fail_msg("marks differ at %zu: %s vs %s", i, wp[i], gp[i]);
    json_decref(contacts);
    json_decref(marks);
    rec_check(h1->rec);
    rec_check(h2->rec);
}

/* ---- 12. event names ---------------------------------------------------------------- */

static int h_nop(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    (void)ctx;
    (void)w;
    (void)ev;
    return 0;
}

static void event_names(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *name;
        int before;
    } good[] = {
        {"contacts.created", 0},     {"contacts.updated", 0},
        {"contacts.deleted", 0},     {"lead.hot", 0},
        {"a.before_create", 1},      {"deals.before_update", 1},
        {"deals.before_delete", 1},  {"a.b.c", 0},
        {"web_form.submitted_2", 0},
    };
    static const char *const bad[] = {
        "",         "contacts",  "Contacts.created",  "x.before_crate", "a..b",      "a.b-c",
        ".created", "contacts.", "a.b.before_create", "a b.c",          "lead.hot!",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int before = -1;
        if (!bus_event_name_ok(good[i].name, &before))
            fail_msg("'%s' should be a good event name", good[i].name);
        assert_int_equal(before, good[i].before);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int before = -1;
        if (bus_event_name_ok(bad[i], &before)) fail_msg("'%s' should be a bad event name", bad[i]);
        assert_int_equal(before, 0);
    }
    assert_false(bus_event_name_ok(NULL, NULL));
    char longname[BUS_NAME_MAX + 8];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    longname[5] = '.';
    assert_false(bus_event_name_ok(longname, NULL));

    /* bus_on checks the same, and handler keys are unique */
    bus_handler_def_t d = {.event = "x.before_crate", .owner = OWNER, .name = "n", .fn = h_nop};
    assert_int_equal(bus_on(f->bus, &d), KITH_EINVAL);
    d.event = "lead.hot";
    d.owner = "";
    assert_int_equal(bus_on(f->bus, &d), KITH_EINVAL);
    d.owner = OWNER;
    assert_ok(bus_on(f->bus, &d));
    d.event = "contacts.created";
    assert_int_equal(bus_on(f->bus, &d), KITH_EEXIST);
    assert_int_equal(stats_of(f->bus).handlers, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(before_create_veto, setup, teardown),
        cmocka_unit_test_setup_teardown(before_hooks_amend, setup, teardown),
        cmocka_unit_test_setup_teardown(before_update_field_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(before_hook_writes_are_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(priority_order, setup, teardown),
        cmocka_unit_test_setup_teardown(new_after_hook_lists_where_it_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(after_hook_commit_order, setup, teardown),
        cmocka_unit_test_setup_teardown(after_hook_retried_not_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(after_hook_own_writes_not_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(before_hook_own_writes_not_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(cascade_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(domain_events, setup, teardown),
        cmocka_unit_test_setup_teardown(cursor_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(event_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
