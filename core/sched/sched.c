#include "sched/sched.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S   1000000LL
#define RETRY_US   (60 * US_PER_S) /* a timer that failed to fire waits this long */
#define MAX_US     (3650LL * 86400 * US_PER_S)
#define CRON_SCANS 200000 /* minutes scanned at most; past ~4 years of misses: never */

/* ---- durations ---------------------------------------------------------------- */

int sched_parse_duration(const char *s, int64_t *us)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) goto bad;
    double v = strtod(s, &end);
    if (end == s || !(v == v)) goto bad;
    double unit = 1;
    if (*end) {
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: goto bad;
        }
        if (end[1]) goto bad;
    }
    double t = v * unit * US_PER_S;
    if (t < US_PER_S || t > (double)MAX_US) {
        return err_set(KITH_EINVAL, "a duration is 1 second to 3650 days, not '%s'", s);
    }
    *us = (int64_t)t;
    return 0;
bad:
    return err_set(KITH_EINVAL,
                   "'%s' is not a duration (seconds, or a number with s, m, h or d: 90s, 15m)",
                   s ? s : "");
}

/* ---- cron --------------------------------------------------------------------- */

/* One field: a comma list of *, n, a-b, each with an optional /step. */
static int cron_field(const char *s, size_t n, int lo, int hi, uint64_t *bits, int *any)
{
    *bits = 0;
    *any = n == 1 && s[0] == '*';
    const char *p = s, *end = s + n;
    if (n == 0 || s[n - 1] == ',') return -1;
    while (p < end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q) q = end;
        int a = lo, b = hi, step = 1, range = 1;
        const char *x = p;
        if (x < q && *x == '*') {
            x++;
        } else {
            range = 0;
            if (x >= q || !isdigit((unsigned char)*x)) return -1;
            a = 0;
            while (x < q && isdigit((unsigned char)*x) && a < 1000)
                a = a * 10 + (*x++ - '0');
            b = a;
            if (x < q && *x == '-') {
                range = 1;
                x++;
                if (x >= q || !isdigit((unsigned char)*x)) return -1;
                b = 0;
                while (x < q && isdigit((unsigned char)*x) && b < 1000)
                    b = b * 10 + (*x++ - '0');
            }
        }
        if (x < q && *x == '/') {
            x++;
            if (x >= q || !isdigit((unsigned char)*x)) return -1;
            step = 0;
            while (x < q && isdigit((unsigned char)*x) && step < 1000)
                step = step * 10 + (*x++ - '0');
            if (step == 0) return -1;
            if (!range) b = hi; /* "5/15": from 5 on; "5-5/2" stays 5 */
        }
        if (x != q || a < lo || b > hi || a > b) return -1;
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
        p = q + 1;
    }
    return *bits ? 0 : -1;
}

static int parse_cron(const char *spec, sched_every_t *e)
{
    const char *f[5];
    size_t len[5];
    int nf = 0;
    const char *p = spec;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p) break;
        if (nf == 5) return -1;
        f[nf] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        len[nf] = (size_t)(p - f[nf]);
        nf++;
    }
    if (nf != 5) return -1;
    static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
    uint64_t bits[5];
    int any[5];
    for (int i = 0; i < 5; i++)
        if (cron_field(f[i], len[i], lo[i], hi[i], &bits[i], &any[i])) return -1;
    memset(e, 0, sizeof *e);
    e->min = bits[0];
    e->hour = (uint32_t)bits[1];
    e->dom = (uint32_t)bits[2];
    e->mon = (uint16_t)bits[3];
    e->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    e->dom_any = any[2];
    e->dow_any = any[4];
    return 0;
}

int sched_parse_every(const char *spec, sched_every_t *out)
{
    memset(out, 0, sizeof *out);
    if (!spec) return err_set(KITH_EINVAL, "no schedule");
    if (strchr(spec, ' ') || strchr(spec, '\t') || strchr(spec, '*')) {
        if (parse_cron(spec, out))
            return err_set(KITH_EINVAL,
                           "'%s' is not a cron line (5 fields: minute hour day-of-month month "
                           "day-of-week, each *, n, a-b, */n or a list)",
                           spec);
        if (sched_next(out, time_now_us()) == 0)
            return err_set(KITH_EINVAL, "'%s' never fires", spec);
        return 0;
    }
    if (sched_parse_duration(spec, &out->interval_us)) {
        err_set(KITH_EINVAL, "'%s' is neither an interval (15m, 2h, 1d) nor a cron line", spec);
        return KITH_EINVAL;
    }
    return 0;
}

static int day_ok(const sched_every_t *e, const struct tm *t)
{
    int d = (e->dom >> t->tm_mday) & 1, w = (e->dow >> t->tm_wday) & 1;
    if (e->dom_any && e->dow_any) return 1;
    if (e->dom_any) return w;
    if (e->dow_any) return d;
    return d || w; /* both restricted: either, as cron does */
}

int64_t sched_next(const sched_every_t *e, int64_t after_us)
{
    if (e->interval_us > 0) return after_us + e->interval_us;
    time_t t = (time_t)(after_us / US_PER_S);
    t = t - t % 60 + 60; /* the next whole minute */
    struct tm tm;
    for (int i = 0; i < CRON_SCANS; i++) {
        gmtime_r(&t, &tm);
        if (!((e->mon >> (tm.tm_mon + 1)) & 1)) {
            tm.tm_mon++, tm.tm_mday = 1, tm.tm_hour = 0, tm.tm_min = 0;
        } else if (!day_ok(e, &tm)) {
            tm.tm_mday++, tm.tm_hour = 0, tm.tm_min = 0;
        } else if (!((e->hour >> tm.tm_hour) & 1)) {
            tm.tm_hour++, tm.tm_min = 0;
        } else if (!((e->min >> tm.tm_min) & 1)) {
            tm.tm_min++;
        } else {
            return (int64_t)t * US_PER_S;
        }
        tm.tm_sec = 0;
        t = timegm(&tm); /* normalises the overflowed field */
    }
    return 0;
}

/* ---- the table ---------------------------------------------------------------- */

static char *job_text(const sched_timer_t *t, size_t *len)
{
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"owner\":");
    json_write_cstr(&b, t->owner ? t->owner : "");
    buf_adds(&b, ",\"event\":");
    json_write_cstr(&b, t->event);
    if (t->every) {
        buf_adds(&b, ",\"every\":");
        json_write_cstr(&b, t->every);
    }
    if (t->declared) buf_adds(&b, ",\"declared\":true");
    if (t->payload && t->payload_len) {
        buf_adds(&b, ",\"payload\":");
        buf_add(&b, t->payload, t->payload_len);
    }
    buf_addc(&b, '}');
    *len = b.len;
    return b.p;
}

int sched_put(store_wtxn_t *w, const sched_timer_t *t, int64_t due_us)
{
    if (!t->id || !*t->id || strlen(t->id) > SCHED_ID_MAX)
        return err_set(KITH_EINVAL, "a timer id is 1 to %d bytes", SCHED_ID_MAX);
    size_t len;
    char *job = job_text(t, &len);
    int rc = store_wtxn_timer_put(w, t->id, due_us, job, len);
    free(job);
    return rc;
}

int sched_cancel(store_wtxn_t *w, const char *id)
{
    return store_wtxn_timer_del(w, id);
}

int sched_same(store_wtxn_t *w, const sched_timer_t *t)
{
    char *old = NULL;
    size_t olen = 0, len;
    if (store_wtxn_timer_get(w, t->id, NULL, &old, &olen)) return 0;
    char *job = job_text(t, &len);
    /* as values, not text: a payload table's keys come out of Lua in
     * another order in every state, and each deploy makes a new state */
    json_t *a = json_parse(job, len), *b = json_parse(old, olen);
    int same = a && b && json_equal(a, b);
    if (a) json_decref(a);
    if (b) json_decref(b);
    free(job);
    free(old);
    return same;
}

typedef struct idlist {
    char **v;
    int64_t *due;
    char **job;
    size_t n, cap;
    int declared_only;
} idlist_t;

static int collect(void *ctx, const char *id, int64_t due, const char *job, size_t len)
{
    idlist_t *l = ctx;
    if (l->declared_only) {
        json_t *j = json_parse(job, len);
        int d = j && json_is_true(json_object_get(j, "declared"));
        if (j) json_decref(j);
        if (!d) return 0;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        l->due = xrealloc(l->due, l->cap * sizeof *l->due);
        l->job = xrealloc(l->job, l->cap * sizeof *l->job);
    }
    l->v[l->n] = xstrdup(id);
    l->due[l->n] = due;
    l->job[l->n] = xstrndup(job, len);
    l->n++;
    return 0;
}

static void idlist_free(idlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
        free(l->job[i]);
    }
    free(l->v);
    free(l->due);
    free(l->job);
}

int sched_cancel_prefix(store_wtxn_t *w, const char *prefix, int declared_only,
                        int (*keep)(void *ctx, const char *id), void *ctx)
{
    idlist_t l = {.declared_only = declared_only};
    int rc = store_wtxn_timers_prefix(w, prefix, collect, &l);
    int n = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (keep && keep(ctx, l.v[i])) continue;
        rc = store_wtxn_timer_del(w, l.v[i]);
        if (rc == 0) n++;
    }
    idlist_free(&l);
    return rc ? rc : n;
}

/* ---- firing ------------------------------------------------------------------- */

typedef struct firing {
    const char *id;
    const char *job;
    int64_t now;
} firing_t;

static int fire_one(store_wtxn_t *w, void *arg)
{
    firing_t *f = arg;
    json_t *j = json_parse(f->job, strlen(f->job));
    const char *event = j ? json_string_value(json_object_get(j, "event")) : NULL;
    if (!event) {
        if (j) json_decref(j);
        log_error("sched", "timer %s: its job is unreadable; removed", f->id);
        return store_wtxn_timer_del(w, f->id);
    }
    json_t *p = json_object_get(j, "payload");
    size_t plen = 0;
    char *ptext = p ? json_to_str(p, &plen) : NULL;
    /* fired by no handler: every handler sees it, at depth 0 */
    const char *origin0 = store_wtxn_origin(w);
    int depth0 = store_wtxn_set_origin(w, NULL, 0);
    int rc = store_wtxn_emit(w, event, ptext, plen);
    store_wtxn_set_origin(w, origin0, depth0);
    free(ptext);
    if (rc == 0) {
        const char *every = json_string_value(json_object_get(j, "every"));
        sched_every_t e;
        if (every && sched_parse_every(every, &e) == 0) {
            /* from now, not from the missed due time: what came due while
             * the server was down fires once */
            int64_t next = sched_next(&e, f->now);
            rc = next ? store_wtxn_timer_put(w, f->id, next, f->job, strlen(f->job))
                      : store_wtxn_timer_del(w, f->id);
        } else {
            rc = store_wtxn_timer_del(w, f->id);
        }
    }
    json_decref(j);
    return rc;
}

static int postpone(store_wtxn_t *w, void *arg)
{
    firing_t *f = arg;
    return store_wtxn_timer_put(w, f->id, f->now + RETRY_US, f->job, strlen(f->job));
}

static int first_due(void *ctx, const char *id, int64_t due, const char *job, size_t len)
{
    (void)id, (void)job, (void)len;
    *(int64_t *)ctx = due;
    return 1;
}

int sched_fire(store_wtxn_t *w, int64_t now_us, int64_t *next_us)
{
    *next_us = 0;
    idlist_t l = {0};
    int rc = store_wtxn_timers_due(w, now_us, SCHED_FIRE_MAX, collect, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        firing_t f = {l.v[i], l.job[i], now_us};
        int r = store_wtxn_nested(w, fire_one, &f);
        if (r && store_wtxn_retrying(w)) {
            rc = r; /* the writer runs the batch again (a grown map) */
        } else if (r) {
            log_error("sched", "timer %s did not fire (%s); again in %lld s", f.id,
                      err_last()->msg, (long long)(RETRY_US / US_PER_S));
            r = store_wtxn_nested(w, postpone, &f);
            if (r && store_wtxn_retrying(w)) rc = r;
        }
    }
    size_t fired = l.n;
    idlist_free(&l);
    if (rc) return rc;
    if (fired == SCHED_FIRE_MAX) {
        *next_us = now_us; /* more are due */
        return 0;
    }
    int64_t due = 0;
    rc = store_wtxn_timers_due(w, INT64_MAX, 1, first_due, &due);
    *next_us = due;
    return rc;
}
