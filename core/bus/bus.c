/*
 * bus: the handler registry and its two dispatchers — before-hooks from the
 * store's before hook, after-hooks from the store's deliver hook (both on
 * the writer thread). See bus.h.
 */
#include "bus/bus.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELIVER_ROUND  256            /* changes one consumer takes per round */
#define BACKOFF_MIN_US (100LL * 1000) /* first retry after a failure */
#define BACKOFF_MAX_US (60LL * 1000000)

typedef struct handler {
    char event[BUS_NAME_MAX];
    char key[2 * BUS_NAME_MAX + 2]; /* owner/name: the cursor's and origin's name */
    char owner[BUS_NAME_MAX];
    char coll[STORE_NAME_MAX]; /* collection events: the collection, else "" */
    int before;                /* a before-hook */
    int op;                    /* collection events: enum store_change_op */
    int priority;
    uint64_t order; /* registration order, the tie-breaker */
    char *fields[BUS_FIELDS_MAX];
    size_t nfields;
    bus_fn fn;
    void *ctx;
    void (*ctx_free)(void *ctx);
    /* after-hooks (writer thread): where delivery resumes if no cursor was
     * saved yet, and the backoff after failures */
    uint64_t start_seq;
    unsigned failures;
    int64_t retry_at_us;
    uint64_t cursor; /* last known, for bus_list */
} handler_t;

struct bus {
    store_t *st;
    char *workspace;
    store_hooks_t hooks;
    bus_tick_fn tick; /* runs first at each delivery (the scheduler) */
    void *tick_ctx;
    pthread_mutex_t lock; /* guards h, n for bus_list against changes */
    handler_t **h;        /* sorted by (priority, order) */
    size_t n, cap;
    uint64_t next_order;
    atomic_uint_fast64_t runs, errors, vetoes, cascade_stops, delivered, lag_sum_us;
    atomic_uint_fast64_t lag_hist[8];
};

static const struct {
    const char *suffix;
    int before, op;
} coll_events[] = {
    {"before_create", 1, STORE_CHANGE_CREATE}, {"before_update", 1, STORE_CHANGE_UPDATE},
    {"before_delete", 1, STORE_CHANGE_DELETE}, {"created", 0, STORE_CHANGE_CREATE},
    {"updated", 0, STORE_CHANGE_UPDATE},       {"deleted", 0, STORE_CHANGE_DELETE},
};

static int seg_ok(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Parses name; *op is the collection event's op (0 for a domain event). */
static int event_parse(const char *name, int *before, int *op, char coll[STORE_NAME_MAX])
{
    *before = 0;
    *op = 0;
    coll[0] = '\0';
    size_t len = strlen(name);
    if (len == 0 || len >= BUS_NAME_MAX) return 0;
    const char *s = name;
    size_t nseg = 0;
    while (1) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (!seg_ok(s, n)) return 0;
        nseg++;
        if (!dot) break;
        s = dot + 1;
    }
    if (nseg < 2) return 0;
    const char *dot = strchr(name, '.');
    for (size_t i = 0; i < sizeof coll_events / sizeof coll_events[0]; i++) {
        if (nseg == 2 && strcmp(dot + 1, coll_events[i].suffix) == 0) {
            size_t cl = (size_t)(dot - name);
            if (cl >= STORE_NAME_MAX) return 0;
            memcpy(coll, name, cl);
            coll[cl] = '\0';
            *before = coll_events[i].before;
            *op = coll_events[i].op;
            return 1;
        }
    }
    /* before_* on anything else is a typo, not a domain event */
    return strstr(name, ".before_") == NULL;
}

int bus_event_name_ok(const char *name, int *before)
{
    int b, op;
    char coll[STORE_NAME_MAX];
    int ok = name && event_parse(name, &b, &op, coll);
    if (before) *before = ok && b;
    return ok;
}

int bus_event_is_domain(const char *name)
{
    int b, op;
    char coll[STORE_NAME_MAX];
    return name && event_parse(name, &b, &op, coll) && op == 0;
}

/* ---- registry ---------------------------------------------------------- */

static void handler_free(handler_t *h)
{
    if (h->ctx_free) h->ctx_free(h->ctx);
    for (size_t i = 0; i < h->nfields; i++)
        free(h->fields[i]);
    free(h);
}

int bus_on(bus_t *b, const bus_handler_def_t *def)
{
    handler_t *h = xcalloc(1, sizeof *h);
    if (!def->event || !event_parse(def->event, &h->before, &h->op, h->coll)) {
        free(h);
        return err_set(KITH_EINVAL,
                       "'%s' is not an event name (collection.created|updated|deleted|"
                       "before_create|before_update|before_delete, or a domain event like "
                       "lead.hot)",
                       def->event ? def->event : "");
    }
    if (!def->owner || !def->name || !def->owner[0] || !def->name[0] ||
        strlen(def->owner) >= BUS_NAME_MAX || strlen(def->name) >= BUS_NAME_MAX) {
        free(h);
        return err_set(KITH_EINVAL, "a handler needs an owner and a name (up to %d bytes)",
                       BUS_NAME_MAX - 1);
    }
    if (strlen(def->owner) + 1 + strlen(def->name) > 200) {
        free(h);
        return err_set(KITH_EINVAL, "a handler's owner/name is at most 200 bytes");
    }
    if (def->nfields > BUS_FIELDS_MAX) {
        free(h);
        return err_set(KITH_ELIMIT, "a handler watches at most %d fields", BUS_FIELDS_MAX);
    }
    snprintf(h->event, sizeof h->event, "%s", def->event);
    snprintf(h->owner, sizeof h->owner, "%s", def->owner);
    snprintf(h->key, sizeof h->key, "%s/%s", def->owner, def->name);
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->h[i]->key, h->key) == 0) {
            pthread_mutex_unlock(&b->lock);
            free(h);
            return err_set(KITH_EEXIST, "a handler named '%s' is registered already", def->name);
        }
    }
    for (size_t i = 0; i < def->nfields; i++)
        h->fields[h->nfields++] = xstrdup(def->fields[i]);
    h->priority = def->priority ? def->priority : BUS_PRIORITY_DFLT;
    h->order = b->next_order++;
    h->fn = def->fn;
    h->ctx = def->ctx;
    h->ctx_free = def->ctx_free;
    h->start_seq = store_writer_seq(b->st);
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->h = xrealloc(b->h, b->cap * sizeof *b->h);
    }
    size_t at = b->n;
    while (at > 0 && b->h[at - 1]->priority > h->priority) {
        b->h[at] = b->h[at - 1];
        at--;
    }
    b->h[at] = h;
    b->n++;
    pthread_mutex_unlock(&b->lock);
    if (!h->before) store_hooks_kick(b->st);
    return 0;
}

void bus_off_owner(bus_t *b, const char *owner)
{
    pthread_mutex_lock(&b->lock);
    size_t j = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->h[i]->owner, owner) == 0)
            handler_free(b->h[i]);
        else
            b->h[j++] = b->h[i];
    }
    b->n = j;
    pthread_mutex_unlock(&b->lock);
}

void bus_list(bus_t *b, buf_t *out)
{
    /* The cursor shown is the committed one, read in a snapshot: the
     * writer notes its own before the batch commits, and a client that saw
     * that could look for the handler's effects too early. */
    store_rtxn_t *rt = NULL;
    if (store_read_begin(b->st, &rt)) rt = NULL;
    pthread_mutex_lock(&b->lock);
    buf_addc(out, '[');
    for (size_t i = 0; i < b->n; i++) {
        const handler_t *h = b->h[i];
        if (i) buf_addc(out, ',');
        buf_add(out, "{\"event\":", 9);
        json_write_cstr(out, h->event);
        buf_add(out, ",\"key\":", 7);
        json_write_cstr(out, h->key);
        buf_add(out, ",\"owner\":", 9);
        json_write_cstr(out, h->owner);
        buf_addf(out, ",\"priority\":%d,\"phase\":\"%s\",\"fields\":[", h->priority,
                 h->before ? "before" : "after");
        for (size_t k = 0; k < h->nfields; k++) {
            if (k) buf_addc(out, ',');
            json_write_cstr(out, h->fields[k]);
        }
        buf_addc(out, ']');
        if (!h->before) {
            uint64_t cursor = 0;
            /* none saved yet: where it starts, as bus_caught_up counts it */
            if (!rt || store_cursor_get(rt, h->key, &cursor) || cursor == 0)
                cursor = h->cursor ? h->cursor : h->start_seq;
            buf_addf(out, ",\"cursor\":%llu,\"failures\":%u", (unsigned long long)cursor,
                     h->failures);
            if (h->retry_at_us) {
                char ts[40];
                buf_add(out, ",\"retry_at\":\"", 13);
                buf_add(out, ts, time_fmt_rfc3339(h->retry_at_us, ts, sizeof ts, 3));
                buf_addc(out, '"');
            }
        }
        buf_addc(out, '}');
    }
    buf_addc(out, ']');
    pthread_mutex_unlock(&b->lock);
    if (rt) store_read_end(rt);
}

void bus_stats(bus_t *b, bus_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->runs = atomic_load(&b->runs);
    out->errors = atomic_load(&b->errors);
    out->vetoes = atomic_load(&b->vetoes);
    out->cascade_stops = atomic_load(&b->cascade_stops);
    out->delivered = atomic_load(&b->delivered);
    out->lag_sum_us = atomic_load(&b->lag_sum_us);
    for (int i = 0; i < 8; i++)
        out->lag_hist[i] = atomic_load(&b->lag_hist[i]);
    pthread_mutex_lock(&b->lock);
    out->handlers = b->n;
    pthread_mutex_unlock(&b->lock);
}

int bus_caught_up(bus_t *b)
{
    store_rtxn_t *rt;
    if (store_read_begin(b->st, &rt)) return 1;
    uint64_t last = store_changes_last(rt);
    int done = 1;
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; done && i < b->n; i++) {
        const handler_t *h = b->h[i];
        if (h->before || h->failures) continue;
        uint64_t cursor = 0;
        if (store_cursor_get(rt, h->key, &cursor) || cursor == 0)
            cursor = h->start_seq; /* none saved yet: where it starts */
        if (cursor < last) done = 0;
    }
    pthread_mutex_unlock(&b->lock);
    store_read_end(rt);
    return done;
}

/* ---- dispatch (writer thread) -------------------------------------------- */

/* Whether h wants a change that touched changed[0..n). */
static int fields_match(const handler_t *h, const char *const *changed, size_t n)
{
    if (h->nfields == 0) return 1;
    for (size_t i = 0; i < h->nfields; i++)
        for (size_t k = 0; k < n; k++)
            if (strcmp(h->fields[i], changed[k]) == 0) return 1;
    return 0;
}

int bus_refusal(int code)
{
    return code == KITH_EVETO || code == KITH_EEXIST || code == KITH_ECONFLICT ||
           code == KITH_EVALIDATION || code == KITH_EPERM;
}

/* Runs one handler with w's origin set to it, one level deeper. */
static int run_handler(bus_t *b, handler_t *h, store_wtxn_t *w, bus_event_t *ev)
{
    const char *origin0 = store_wtxn_origin(w);
    int depth0 = store_wtxn_set_origin(w, h->key, ev->depth + 1);
    ev->key = h->key;
    err_clear();
    atomic_fetch_add(&b->runs, 1);
    int rc = h->fn(h->ctx, w, ev);
    store_wtxn_set_origin(w, origin0, depth0);
    if (ev->before_phase && bus_refusal(rc)) {
        atomic_fetch_add(&b->vetoes, 1);
    } else if (rc) {
        atomic_fetch_add(&b->errors, 1);
        log_error("bus", "workspace %s: handler %s on %s failed: %s", b->workspace, h->key,
                  ev->name, err_last()->msg);
    }
    return rc;
}

static int on_before(void *ctx, store_wtxn_t *w, store_pending_t *p)
{
    bus_t *b = ctx;
    if (b->n == 0) return 0;
    const char *origin = store_wtxn_origin(w);
    int depth = store_wtxn_depth(w);
    static const char *const suffix[] = {"", "before_create", "before_update", "before_delete"};
    char name[BUS_NAME_MAX + 16] = ""; /* written when a handler runs: writes are the hot path */
    bus_event_t ev = {.name = name,
                      .op = p->op,
                      .before_phase = 1,
                      .coll = p->coll->name,
                      .id = p->id,
                      .before = p->before,
                      .record = p->after,
                      .amended = &p->amended,
                      .changed = p->changed,
                      .nchanged = p->nchanged,
                      .depth = depth};
    for (size_t i = 0; i < b->n; i++) {
        handler_t *h = b->h[i];
        if (!h->before || h->op != p->op || strcmp(h->coll, p->coll->name) != 0) continue;
        if (origin && strcmp(origin, h->key) == 0) continue; /* its own write */
        if (p->op == STORE_CHANGE_UPDATE && !fields_match(h, p->changed, p->nchanged)) continue;
        if (!name[0]) snprintf(name, sizeof name, "%s.%s", p->coll->name, suffix[p->op]);
        if (depth >= BUS_DEPTH_MAX) {
            atomic_fetch_add(&b->cascade_stops, 1);
            log_error("bus",
                      "workspace %s: cascade stopped at depth %d: %s would run on %s "
                      "(written by %s)",
                      b->workspace, depth, h->key, name, origin ? origin : "?");
            return err_set(KITH_ELIMIT, "handlers cascade deeper than %d writes", BUS_DEPTH_MAX);
        }
        int rc = run_handler(b, h, w, &ev);
        if (rc) return rc;
        /* a handler may have amended: later ones see the new fields */
        ev.record = p->after;
    }
    return 0;
}

/* A change copied out of the log (the log cursor cannot stay open while a
 * handler writes in a nested transaction). */
typedef struct change {
    uint64_t seq;
    int64_t time_us;
    int op, depth;
    char coll[STORE_NAME_MAX];
    char event[BUS_NAME_MAX + 16];
    char origin[2 * BUS_NAME_MAX + 2];
    kith_id_t id;
    size_t nchanged;
    char **changed;
    char *before; /* JSON text or NULL */
    size_t before_len;
} change_t;

typedef struct collect {
    const handler_t *h;
    change_t *c;
    size_t n;
    uint64_t last; /* last seq looked at */
} collect_t;

static const char *change_event_name(const store_change_t *ch, char *buf, size_t cap)
{
    static const char *const suffix[] = {"", "created", "updated", "deleted"};
    if (ch->op == STORE_CHANGE_EVENT) return ch->event ? ch->event : "";
    snprintf(buf, cap, "%s.%s", ch->coll, suffix[ch->op <= 3 ? ch->op : 0]);
    return buf;
}

static int collect_fn(void *ctx, const store_change_t *ch)
{
    collect_t *cl = ctx;
    const handler_t *h = cl->h;
    cl->last = ch->seq;
    char nb[BUS_NAME_MAX + 16];
    const char *en = change_event_name(ch, nb, sizeof nb);
    if (strcmp(en, h->event) != 0) return 0;
    if (ch->origin && strcmp(ch->origin, h->key) == 0) return 0; /* its own write */
    if (ch->op == STORE_CHANGE_UPDATE && !fields_match(h, ch->changed, ch->nchanged)) return 0;
    change_t *c = &cl->c[cl->n++];
    memset(c, 0, sizeof *c);
    c->seq = ch->seq;
    c->time_us = ch->time_us;
    c->op = ch->op;
    c->depth = ch->depth;
    c->id = ch->id;
    snprintf(c->coll, sizeof c->coll, "%s", ch->coll);
    snprintf(c->event, sizeof c->event, "%s", en);
    snprintf(c->origin, sizeof c->origin, "%s", ch->origin ? ch->origin : "");
    c->nchanged = ch->nchanged;
    c->changed = xcalloc(ch->nchanged ? ch->nchanged : 1, sizeof *c->changed);
    for (size_t i = 0; i < ch->nchanged; i++)
        c->changed[i] = xstrdup(ch->changed[i]);
    if (ch->before) {
        c->before = xstrndup(ch->before, ch->before_len);
        c->before_len = ch->before_len;
    }
    return 0;
}

static void change_free(change_t *c)
{
    for (size_t i = 0; i < c->nchanged; i++)
        free(c->changed[i]);
    free(c->changed);
    free(c->before);
}

typedef struct one {
    bus_t *b;
    handler_t *h;
    change_t *c;
} one_t;

static int deliver_one(store_wtxn_t *w, void *arg)
{
    one_t *o = arg;
    change_t *c = o->c;
    json_t *before = NULL;
    if (c->before && c->op != STORE_CHANGE_EVENT) before = json_parse(c->before, c->before_len);
    bus_event_t ev = {.name = c->event,
                      .op = c->op,
                      .coll = c->coll,
                      .id = c->id,
                      .before = before,
                      .changed = (const char *const *)c->changed,
                      .nchanged = c->nchanged,
                      .seq = c->seq,
                      .time_us = c->time_us,
                      .depth = c->depth};
    if (c->op == STORE_CHANGE_EVENT) {
        ev.payload = c->before;
        ev.payload_len = c->before_len;
    }
    int rc = run_handler(o->b, o->h, w, &ev);
    if (before) json_decref(before);
    if (rc == 0) rc = store_wtxn_cursor_put(w, o->h->key, c->seq);
    return rc;
}

static void lag_note(bus_t *b, int64_t lag_us)
{
    static const int64_t le[] = {500, 1000, 2000, 5000, 10000, 50000, 250000};
    int i = 0;
    while (i < 7 && lag_us > le[i])
        i++;
    atomic_fetch_add(&b->lag_hist[i], 1);
    atomic_fetch_add(&b->lag_sum_us, lag_us > 0 ? (uint64_t)lag_us : 0);
}

/* Sets a handler's delivery state (the writer writes it, bus_list reads it). */
static void note(bus_t *b, handler_t *h, uint64_t cursor, unsigned failures, int64_t retry_at)
{
    pthread_mutex_lock(&b->lock);
    h->cursor = cursor;
    h->failures = failures;
    h->retry_at_us = retry_at;
    pthread_mutex_unlock(&b->lock);
}

/* One round for one after-hook. Returns 1 if it has more to deliver now. */
static int deliver_handler(bus_t *b, handler_t *h, store_wtxn_t *w, int64_t now)
{
    uint64_t committed = store_wtxn_committed(w);
    uint64_t cursor = 0;
    if (store_wtxn_cursor_get(w, h->key, &cursor)) {
        log_error("bus", "workspace %s: cursor of %s: %s", b->workspace, h->key, err_last()->msg);
        return 0;
    }
    if (cursor == 0 && h->start_seq) {
        /* never delivered: a new handler starts with what commits after it
         * registered (saved now, so a restart does not move it) */
        cursor = h->start_seq < committed ? h->start_seq : committed;
        store_wtxn_cursor_put(w, h->key, cursor);
    }
    note(b, h, cursor, h->failures, h->retry_at_us);
    if (cursor >= committed) return 0;
    change_t *cs = xcalloc(DELIVER_ROUND, sizeof *cs);
    collect_t cl = {.h = h, .c = cs, .last = cursor};
    int rc = store_wtxn_changes(w, cursor, DELIVER_ROUND, collect_fn, &cl);
    int more = 0;
    if (rc) {
        log_error("bus", "workspace %s: reading the change log for %s: %s", b->workspace, h->key,
                  err_last()->msg);
        cl.n = 0;
    }
    size_t i = 0;
    for (; i < cl.n; i++) {
        change_t *c = &cs[i];
        if (c->depth >= BUS_DEPTH_MAX) {
            atomic_fetch_add(&b->cascade_stops, 1);
            log_error("bus",
                      "workspace %s: cascade stopped at depth %d: %s not delivered to %s "
                      "(written by %s)",
                      b->workspace, c->depth, c->event, h->key, c->origin);
            continue;
        }
        lag_note(b, now - c->time_us);
        one_t o = {b, h, c};
        if (store_wtxn_nested(w, deliver_one, &o)) {
            unsigned f = h->failures + 1;
            int64_t back = BACKOFF_MIN_US << (f < 20 ? f - 1 : 19);
            if (back > BACKOFF_MAX_US) back = BACKOFF_MAX_US;
            note(b, h, c->seq - 1, f, now + back);
            break;
        }
        atomic_fetch_add(&b->delivered, 1);
        note(b, h, c->seq, 0, 0);
    }
    if (i == cl.n && rc == 0) {
        /* everything looked at is done (delivered or not wanted) */
        if (cl.last > h->cursor) {
            store_wtxn_cursor_put(w, h->key, cl.last);
            note(b, h, cl.last, h->failures, h->retry_at_us);
        }
        more = cl.last < committed;
    }
    for (size_t k = 0; k < cl.n; k++)
        change_free(&cs[k]);
    free(cs);
    return more;
}

static int on_deliver(void *ctx, store_wtxn_t *w, int *on_commit, int64_t *wake_us)
{
    bus_t *b = ctx;
    int64_t now = time_now_us(), wake = 0;
    int any = 0, more = 0;
    if (b->tick) {
        int rc = b->tick(b->tick_ctx, w, now, &wake);
        if (rc && store_wtxn_retrying(w)) return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        handler_t *h = b->h[i];
        if (h->before) continue;
        any = 1;
        if (h->retry_at_us && now < h->retry_at_us) {
            if (!wake || h->retry_at_us < wake) wake = h->retry_at_us;
            continue;
        }
        if (deliver_handler(b, h, w, now)) more = 1;
        if (h->retry_at_us && (!wake || h->retry_at_us < wake)) wake = h->retry_at_us;
    }
    *on_commit = any;
    *wake_us = more ? now : wake;
    return 0;
}

/* ---- life ------------------------------------------------------------------ */

bus_t *bus_new(store_t *st, const char *workspace)
{
    bus_t *b = xcalloc(1, sizeof *b);
    b->st = st;
    b->workspace = xstrdup(workspace);
    pthread_mutex_init(&b->lock, NULL);
    b->hooks.before = on_before;
    b->hooks.deliver = on_deliver;
    return b;
}

void bus_set_tick(bus_t *b, bus_tick_fn fn, void *ctx)
{
    b->tick = fn;
    b->tick_ctx = ctx;
}

void bus_attach(bus_t *b)
{
    store_set_hooks(b->st, &b->hooks, b);
}

void bus_free(bus_t *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++)
        handler_free(b->h[i]);
    free(b->h);
    free(b->workspace);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
