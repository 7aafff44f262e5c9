/*
 * sched: durable timers. A timer fires a domain event (with a JSON payload)
 * at a time: once after a delay (after), once at a time (at), or again and
 * again on an interval or a cron line (every). Timers live in the store's
 * sched table, written in the caller's transaction, so scheduling from a
 * handler is undone with the handler; firing appends the event to the
 * change log and moves or removes the timer in one nested transaction, so
 * a fired event is delivered to after-hooks exactly like kith.emit's, at
 * least once, across restarts. Timers that came due while the server was
 * down fire once when it starts (a recurring one then goes on from now).
 *
 * Ids are full names chosen by the caller (Lua scripts use
 * "script:<name>/<id>"), so re-scheduling an id replaces the timer and
 * cancelling names it. Writer thread only, inside a store_wtxn_t.
 */
#ifndef KITH_SCHED_H
#define KITH_SCHED_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

#define SCHED_ID_MAX   200 /* bytes of a full timer id */
#define SCHED_FIRE_MAX 256 /* timers fired per call; the rest on the next */

/* A recurrence: a fixed interval, or a 5-field cron line in UTC
 * ("min hour day-of-month month day-of-week": numbers, *, a-b, a/b, lists;
 * day-of-week 0-7 with 0 and 7 Sunday; when both day fields are
 * restricted, either matching is enough, as in cron). */
typedef struct sched_every {
    int64_t interval_us; /* > 0: an interval */
    uint64_t min;        /* cron bit sets */
    uint32_t hour, dom;
    uint16_t mon;
    uint8_t dow;
    int dom_any, dow_any;
} sched_every_t;

/* "90" or "90s", "15m", "2h", "3d" (also fractions: "1.5h") to µs. 0, or
 * KITH_EINVAL with a message. At least one second, at most ten years. */
int sched_parse_duration(const char *s, int64_t *us);
/* An interval (as sched_parse_duration) or a cron line; refuses a cron
 * line that never fires (30 February). 0, or KITH_EINVAL with a message. */
int sched_parse_every(const char *spec, sched_every_t *out);
/* The first time after after_us (exclusive) that e fires, in µs. */
int64_t sched_next(const sched_every_t *e, int64_t after_us);

typedef struct sched_timer {
    const char *id;      /* full id */
    const char *owner;   /* who scheduled it ("script:x"); listed, and cancelled with it */
    const char *event;   /* a domain event name (bus_event_is_domain) */
    const char *payload; /* JSON text, or NULL */
    size_t payload_len;
    const char *every; /* NULL: fires once */
    int declared;      /* declared at a script's top level (kept across reloads) */
} sched_timer_t;

/* Sets a timer to fire at due_us (and then by t->every, if set). */
int sched_put(store_wtxn_t *w, const sched_timer_t *t, int64_t due_us);
/* Removes a timer: 0, or KITH_ENOTFOUND. */
int sched_cancel(store_wtxn_t *w, const char *id);
/* Removes every timer whose id starts with prefix, or (keep != NULL) every
 * declared one whose id keep(ctx, id) does not want. Returns the count, or
 * a negative KITH_E* code. */
int sched_cancel_prefix(store_wtxn_t *w, const char *prefix, int declared_only,
                        int (*keep)(void *ctx, const char *id), void *ctx);
/* Whether timer id exists with the same job, compared as JSON values (so a
 * re-declared recurring timer keeps its due time). */
int sched_same(store_wtxn_t *w, const sched_timer_t *t);

/* Fires what is due at now_us (at most SCHED_FIRE_MAX), each in its own
 * nested transaction; *next_us gets the earliest due time left (0: none;
 * now_us: more are due). Writer thread, at the start of a batch. 0, or a
 * retryable store code. */
int sched_fire(store_wtxn_t *w, int64_t now_us, int64_t *next_us);

#endif
