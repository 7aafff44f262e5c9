/*
 * bus: named events and their handlers, for one workspace.
 *
 * Before-hooks (`<collection>.before_create|before_update|before_delete`) run
 * on the store's writer thread inside the op's nested transaction: they may
 * read, amend the pending record, write other records, or veto. After-hooks
 * (`<collection>.created|updated|deleted` and domain events such as
 * `lead.hot`) are delivered after commit, in commit order, from the change
 * log: each handler is a durable consumer with its own cursor, its effects
 * and its cursor advance commit together (exactly once for store effects), a
 * failure is retried with backoff and never skipped.
 *
 * A handler never sees changes its own writes made; a cascade stops at depth
 * BUS_DEPTH_MAX with a logged error. Handlers run in priority order (lower
 * first, then registration order).
 *
 * Threads: bus_on and bus_off_owner run on the writer thread (inside a custom
 * op) or before bus_attach; bus_list and bus_caught_up on any thread.
 */
#ifndef KITH_BUS_H
#define KITH_BUS_H

#include "base/buf.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdint.h>

#define BUS_DEPTH_MAX     8
#define BUS_NAME_MAX      128 /* event names and handler keys */
#define BUS_PRIORITY_DFLT 100
#define BUS_FIELDS_MAX    32 /* fields one handler may watch */

typedef struct bus bus_t;

/* What a handler sees. */
typedef struct bus_event {
    const char *name; /* "contacts.before_update", "contacts.created", "lead.hot" */
    int op;           /* enum store_change_op */
    int before_phase; /* 1: a before-hook, inside the write */
    const char *coll; /* the record's collection ("_event" for domain events) */
    kith_id_t id;
    /* before-hooks: the stored fields (update, delete) or NULL. After-hooks:
     * the previous values of the changed fields (update), the deleted record
     * (delete), or NULL. */
    const json_t *before;
    /* before-hooks: the fields about to be written (create, update), which
     * the handler may change, then setting *amended = 1. NULL otherwise. */
    json_t *record;
    int *amended;
    const char *const *changed;
    size_t nchanged;
    const char *payload; /* a domain event's payload (JSON text) or NULL */
    size_t payload_len;
    uint64_t seq;    /* after-hooks: the change's sequence */
    int64_t time_us; /* after-hooks: when it committed */
    int depth;       /* cascade depth of the change */
    const char *key; /* the running handler's key (owner/name) */
} bus_event_t;

/* Returns 0, or a KITH_E* code with err_set: a refusal (bus_refusal; before-
 * hooks only) refuses the write with the message, its fields and the
 * existing record the code names; anything else is a failure (logged,
 * counted; a before-hook's failure fails the write, an after-hook's is
 * retried later). */
typedef int (*bus_fn)(void *ctx, store_wtxn_t *w, bus_event_t *ev);

/* Whether a before-hook returning code refuses the write (as a client's
 * mistake: the write fails with that code, nothing is logged) rather than
 * fails: KITH_EVETO (422), KITH_EEXIST (409, a duplicate; err_existing
 * names it), KITH_ECONFLICT (409), KITH_EVALIDATION (422, with fields),
 * KITH_EPERM (403). */
int bus_refusal(int code);

typedef struct bus_handler_def {
    const char *event;         /* an event name (see above) */
    const char *owner;         /* "script:<name>" or "plugin:<name>" */
    const char *name;          /* unique within the owner */
    int priority;              /* lower runs first; 0 means BUS_PRIORITY_DFLT */
    const char *const *fields; /* run only if one of these changed (0: always) */
    size_t nfields;
    bus_fn fn;
    void *ctx;
    void (*ctx_free)(void *ctx); /* called when the handler is removed */
} bus_handler_def_t;

typedef struct bus_stats {
    uint64_t runs, errors, vetoes, cascade_stops, delivered;
    uint64_t lag_hist[8]; /* commit -> after-hook start: <=0.5,1,2,5,10,50,250 ms, more */
    uint64_t lag_sum_us;
    size_t handlers;
} bus_stats_t;

bus_t *bus_new(store_t *st, const char *workspace);
/* Installs the bus as st's hooks. */
void bus_attach(bus_t *b);
/* Something that runs on the writer at the start of every delivery, before
 * the after-hooks, in the batch's transaction (the scheduler fires due
 * timers): it sets *wake_us to when it wants to run again (0: only when
 * kicked, store_hooks_kick). Set before bus_attach. */
typedef int (*bus_tick_fn)(void *ctx, store_wtxn_t *w, int64_t now_us, int64_t *wake_us);
void bus_set_tick(bus_t *b, bus_tick_fn fn, void *ctx);
void bus_free(bus_t *b);

/* Validates def (event name, key, fields) and registers a copy. KITH_EINVAL
 * (bad name) or KITH_EEXIST (owner/name taken). */
int bus_on(bus_t *b, const bus_handler_def_t *def);
/* Removes every handler of owner (calling ctx_free). */
void bus_off_owner(bus_t *b, const char *owner);
/* Appends a JSON array of the handlers in run order: event, key, owner,
 * priority, phase, fields, and for after-hooks cursor, failures, retry_at. */
void bus_list(bus_t *b, buf_t *out);
void bus_stats(bus_t *b, bus_stats_t *out);
/* Whether every after-hook was handed everything committed so far: in one
 * snapshot, each one's saved cursor is at the change log's last sequence.
 * One waiting to retry after a failure counts as caught up (it may wait a
 * minute). 1 also when the snapshot cannot be read. Any thread (kith test
 * polls it after each write). */
int bus_caught_up(bus_t *b);

/* Event-name syntax: "a.b" with [a-z0-9_] segments; the second of a
 * collection event is before_create|before_update|before_delete|created|
 * updated|deleted. Returns 1 if name is well formed; *before: a before-hook. */
int bus_event_name_ok(const char *name, int *before);
/* Whether name is a well-formed domain event (not a collection's event). */
int bus_event_is_domain(const char *name);

#endif
