/* Tests core/sched/sched.c (and the store's timer table under it):
 * durations and cron lines parsed and refused, cron next times against
 * known dates, timers put, replaced, cancelled and rolled back with their
 * transaction, and firing: due ones become change-log events in due order,
 * one-offs go, recurring ones fire once however many times they were
 * missed and go on from now, a broken job is removed. */
#include "testutil.h"

#include "base/timeutil.h"
#include "sched/sched.h"

#include <string.h>

#define S 1000000LL

static int64_t at(const char *rfc3339)
{
    int64_t us;
    if (time_parse_rfc3339(rfc3339, strlen(rfc3339), &us)) fail_msg("bad time %s", rfc3339);
    return us;
}

static void durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t us;
    } ok[] = {{"90", 90 * S},      {"90s", 90 * S},         {"15m", 900 * S},
              {"2h", 7200 * S},    {"1.5h", 5400 * S},      {"3d", 3 * 86400 * S},
              {"1", S},            {"3650d", 3650 * 86400 * S}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int64_t us = 0;
        assert_ok(sched_parse_duration(ok[i].s, &us));
        assert_int_equal(us, ok[i].us);
    }
    const char *bad[] = {"", "0s", "0.5", "-1m", "5x", "3651d", " 5s", "5s ", "5ms", "m", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t us = 0;
        if (sched_parse_duration(bad[i], &us) != KITH_EINVAL) fail_msg("'%s' accepted", bad[i]);
        assert_true(strlen(err_last()->msg) > 0);
    }
}

static void cron(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *after, *next;
    } cases[] = {
        /* Saturday -> the next weekday at 09:00 */
        {"0 9 * * 1-5", "2026-11-21T10:00:00Z", "2026-11-23T09:00:00Z"},
        {"*/15 * * * *", "2026-11-22T10:07:30Z", "2026-11-22T10:15:00Z"},
        {"*/15 * * * *", "2026-11-22T10:15:00Z", "2026-11-22T10:30:00Z"}, /* strictly after */
        {"0 0 1 1 *", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
        /* both day fields restricted: the 13th or a Friday (Nov 1, 2026 is a Sunday) */
        {"0 12 13 * 5", "2026-11-01T00:00:00Z", "2026-11-06T12:00:00Z"},
        {"30 2 * * 7", "2026-11-22T03:00:00Z", "2026-11-29T02:30:00Z"}, /* 7 is Sunday */
        {"0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"}, /* leap day */
        {"5,10-12/2 8 * * *", "2026-11-22T08:06:00Z", "2026-11-22T08:10:00Z"},
        {"5-5/2 8 * * *", "2026-11-22T08:06:00Z", "2026-11-23T08:05:00Z"}, /* a range of one */
        {"50/5 8 * * *", "2026-11-22T08:51:00Z", "2026-11-22T08:55:00Z"},  /* from 50 on */
        {"59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sched_every_t e;
        if (sched_parse_every(cases[i].spec, &e)) fail_msg("%s: %s", cases[i].spec, err_last()->msg);
        int64_t next = sched_next(&e, at(cases[i].after));
        char got[40];
        time_fmt_rfc3339(next, got, sizeof got, 0);
        if (next != at(cases[i].next))
            fail_msg("'%s' after %s: %s, want %s", cases[i].spec, cases[i].after, got,
                     cases[i].next);
    }
    const char *bad[] = {"61 * * * *", "* * *",       "0 0 30 2 *", "*/0 * * * *", "a * * * *",
                         "1-0 * * * *", "* 24 * * *", "* * 0 * *",  "* * * 13 *",  "* * * * 8",
                         "* * * * * *", "1, * * * *", "0s",         "junk"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sched_every_t e;
        if (sched_parse_every(bad[i], &e) != KITH_EINVAL) fail_msg("'%s' accepted", bad[i]);
    }
    sched_every_t e;
    assert_ok(sched_parse_every("15m", &e));
    assert_int_equal(sched_next(&e, 1000), 1000 + 900 * S);
}

/* ---- the table, in real write transactions ---- */

typedef int (*wfn)(store_wtxn_t *w, void *arg);
typedef struct call {
    wfn fn;
    void *arg;
} call_t;

static int custom(store_wtxn_t *w, store_op_t *op)
{
    call_t *c = op->udata;
    return c->fn(w, c->arg);
}

static int in_writer(store_t *st, wfn fn, void *arg)
{
    call_t c = {fn, arg};
    store_op_t *op = store_op_custom(custom, &c);
    int rc = store_exec(st, op);
    store_op_free(op);
    return rc;
}

typedef struct timer_row {
    char id[64];
    int64_t due;
    char job[512];
} timer_row_t;

typedef struct rows {
    timer_row_t v[16];
    size_t n;
} rows_t;

static int row(void *ctx, const char *id, int64_t due, const char *job, size_t len)
{
    rows_t *r = ctx;
    if (r->n < 16) {
        snprintf(r->v[r->n].id, sizeof r->v[0].id, "%s", id);
        r->v[r->n].due = due;
        snprintf(r->v[r->n].job, sizeof r->v[0].job, "%.*s", (int)len, job);
    }
    r->n++;
    return 0;
}

static rows_t timers(store_t *st)
{
    rows_t r = {.n = 0};
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_timers_prefix(rt, "", row, &r));
    store_read_end(rt);
    return r;
}

typedef struct events {
    char name[8][64];
    char payload[8][128];
    int depth[8];
    int origin_null[8];
    size_t n;
} events_t;

static int ev_row(void *ctx, const store_change_t *ch)
{
    events_t *e = ctx;
    if (ch->op != STORE_CHANGE_EVENT) return 0;
    if (e->n < 8) {
        snprintf(e->name[e->n], sizeof e->name[0], "%s", ch->event);
        snprintf(e->payload[e->n], sizeof e->payload[0], "%.*s", (int)ch->before_len,
                 ch->before ? ch->before : "");
        e->depth[e->n] = ch->depth;
        e->origin_null[e->n] = ch->origin == NULL;
    }
    e->n++;
    return 0;
}

static events_t events_after(store_t *st, uint64_t after)
{
    events_t e = {.n = 0};
    store_rtxn_t *rt;
    assert_ok(store_read_begin(st, &rt));
    assert_ok(store_changes(rt, after, 0, ev_row, &e));
    store_read_end(rt);
    return e;
}

typedef struct put_args {
    sched_timer_t t;
    int64_t due;
    int fail_after; /* return an error after putting: the put is undone */
} put_args_t;

static int do_put(store_wtxn_t *w, void *arg)
{
    put_args_t *p = arg;
    int rc = sched_put(w, &p->t, p->due);
    if (rc == 0 && p->fail_after) rc = err_set(KITH_EINVAL, "changed my mind");
    return rc;
}

static void put(store_t *st, const char *id, const char *event, const char *payload,
                const char *every, int64_t due)
{
    put_args_t p = {.t = {.id = id,
                          .owner = "test",
                          .event = event,
                          .payload = payload,
                          .payload_len = payload ? strlen(payload) : 0,
                          .every = every},
                    .due = due};
    assert_ok(in_writer(st, do_put, &p));
}

typedef struct fire_args {
    int64_t now, next;
} fire_args_t;

static int do_fire(store_wtxn_t *w, void *arg)
{
    fire_args_t *f = arg;
    return sched_fire(w, f->now, &f->next);
}

static int do_cancel(store_wtxn_t *w, void *arg)
{
    return sched_cancel(w, arg);
}

static void table_and_firing(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    int64_t now = at("2026-11-22T12:00:00Z");

    put(st, "b", "followup.due", "{\"n\":2}", NULL, now - 5 * S);
    put(st, "a", "followup.due", "{\"n\":1}", NULL, now - 10 * S);
    put(st, "later", "followup.due", NULL, NULL, now + 60 * S);
    put(st, "hb", "heartbeat.tick", NULL, "2s", now - 100 * S); /* missed 50 times */
    rows_t r = timers(st);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.v[0].id, "a"); /* id order */

    /* replacing an id moves it: nothing stays at the old time */
    put(st, "later", "followup.due", NULL, NULL, now + 120 * S);
    r = timers(st);
    assert_int_equal(r.n, 4);
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.v[i].id, "later") == 0) assert_int_equal(r.v[i].due, now + 120 * S);

    /* a put undone with its transaction leaves nothing */
    put_args_t undone = {.t = {.id = "ghost", .event = "x.y"}, .due = now, .fail_after = 1};
    assert_int_equal(in_writer(st, do_put, &undone), KITH_EINVAL);
    assert_int_equal(timers(st).n, 4);

    uint64_t seq0 = tu_changes_last(st);
    fire_args_t f = {.now = now};
    assert_ok(in_writer(st, do_fire, &f));
    assert_int_equal(f.next, now + 2 * S); /* the heartbeat, from now */
    events_t e = events_after(st, seq0);
    assert_int_equal(e.n, 3); /* hb, a, b in due order; hb once */
    assert_string_equal(e.name[0], "heartbeat.tick");
    assert_string_equal(e.payload[0], "");
    assert_string_equal(e.name[1], "followup.due");
    assert_string_equal(e.payload[1], "{\"n\":1}");
    assert_string_equal(e.payload[2], "{\"n\":2}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e.depth[i], 0);
        assert_true(e.origin_null[i]);
    }
    r = timers(st);
    assert_int_equal(r.n, 2); /* hb and later */
    assert_string_equal(r.v[0].id, "hb");
    assert_int_equal(r.v[0].due, now + 2 * S);

    /* nothing due: nothing fires, next is the heartbeat */
    seq0 = tu_changes_last(st);
    f.now = now + 1 * S;
    assert_ok(in_writer(st, do_fire, &f));
    assert_int_equal(events_after(st, seq0).n, 0);
    assert_int_equal(f.next, now + 2 * S);

    /* cancel: once */
    assert_ok(in_writer(st, do_cancel, "hb"));
    assert_int_equal(in_writer(st, do_cancel, "hb"), KITH_ENOTFOUND);
    f.now = now + 3 * S;
    assert_ok(in_writer(st, do_fire, &f));
    assert_int_equal(f.next, now + 120 * S);
    assert_ok(in_writer(st, do_cancel, "later"));
    assert_ok(in_writer(st, do_fire, &f));
    assert_int_equal(f.next, 0); /* none left */

    tu_store_close(st, dir);
}

typedef struct prefix_args {
    const char *prefix;
    int declared_only;
    int removed;
} prefix_args_t;

static int keep_odd(void *ctx, const char *id)
{
    (void)ctx;
    size_t n = strlen(id);
    return (id[n - 1] - '0') % 2 == 1;
}

static int do_cancel_prefix(store_wtxn_t *w, void *arg)
{
    prefix_args_t *p = arg;
    p->removed = sched_cancel_prefix(w, p->prefix, p->declared_only, keep_odd, NULL);
    return p->removed < 0 ? p->removed : 0;
}

static int do_same(store_wtxn_t *w, void *arg)
{
    return sched_same(w, arg) ? 0 : KITH_ENOTFOUND;
}

static void prefixes_and_declarations(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    int64_t now = time_now_us() + 3600 * S;
    char id[32];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "script:a/t%d", i);
        put_args_t p = {.t = {.id = id, .owner = "script:a", .event = "x.y", .every = "1h",
                              .declared = i < 4},
                        .due = now};
        assert_ok(in_writer(st, do_put, &p));
    }
    put(st, "script:b/t0", "x.y", NULL, NULL, now);
    /* declared ones of script a, even-numbered: t0 and t2 */
    prefix_args_t pa = {"script:a/", 1, 0};
    assert_ok(in_writer(st, do_cancel_prefix, &pa));
    assert_int_equal(pa.removed, 2);
    rows_t r = timers(st);
    assert_int_equal(r.n, 5);
    assert_string_equal(r.v[0].id, "script:a/t1");
    assert_string_equal(r.v[4].id, "script:b/t0");

    /* the same declaration is recognised; another payload is not */
    sched_timer_t same = {.id = "script:a/t1", .owner = "script:a", .event = "x.y", .every = "1h",
                          .declared = 1};
    assert_ok(in_writer(st, do_same, &same));
    same.every = "2h";
    assert_int_equal(in_writer(st, do_same, &same), KITH_ENOTFOUND);
    /* payloads compare as values: the key order differs from state to state */
    put_args_t pp = {.t = {.id = "script:c/p", .owner = "script:c", .event = "x.y",
                           .payload = "{\"a\":1,\"b\":[1,2]}", .payload_len = 17,
                           .every = "1h", .declared = 1},
                     .due = now};
    assert_ok(in_writer(st, do_put, &pp));
    sched_timer_t reordered = pp.t;
    reordered.payload = "{\"b\":[1,2],\"a\":1}";
    assert_ok(in_writer(st, do_same, &reordered));
    reordered.payload = "{\"b\":[2,1],\"a\":1}";
    assert_int_equal(in_writer(st, do_same, &reordered), KITH_ENOTFOUND);
    tu_store_close(st, dir);
}

static int do_put_raw(store_wtxn_t *w, void *arg)
{
    (void)arg;
    return store_wtxn_timer_put(w, "broken", 1, "not json", 8);
}

static void broken_job_is_removed(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    assert_ok(in_writer(st, do_put_raw, NULL));
    uint64_t seq0 = tu_changes_last(st);
    fire_args_t f = {.now = time_now_us()};
    assert_ok(in_writer(st, do_fire, &f));
    assert_int_equal(timers(st).n, 0);
    assert_int_equal(events_after(st, seq0).n, 0);
    assert_int_equal(f.next, 0);
    tu_store_close(st, dir);
}

static int orphan_due(MDB_txn *txn, MDB_dbi dbi, void *ctx)
{
    (void)ctx;
    uint8_t k[] = {'d', 0, 0, 0, 0, 0, 0, 0, 1, 'z'};
    MDB_val kk = {sizeof k, k}, v = {0, ""};
    return mdb_put(txn, dbi, &kk, &v, 0);
}

/* kith check counts timers and finds a due-time entry without its timer. */
static void check_walks_timers(void **state)
{
    (void)state;
    char *dir;
    store_t *st = tu_store_open(&dir, 0, 0);
    put(st, "one", "x.y", NULL, NULL, time_now_us() + 3600 * S);
    put(st, "two", "x.y", NULL, "1h", time_now_us() + 3600 * S);
    char *problems;
    store_check_report_t rep = tu_check(st, &problems);
    assert_int_equal(rep.problems, 0);
    assert_int_equal(rep.timers, 2);
    free(problems);
    store_close(st);
    tu_raw_edit(dir, "sched", orphan_due, NULL);
    st = tu_store_reopen(dir, 0);
    rep = tu_check(st, &problems);
    assert_int_equal(rep.problems, 1);
    assert_non_null(strstr(problems, "timer z: a due-time entry without its timer"));
    free(problems);
    tu_store_close(st, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),
        cmocka_unit_test(cron),
        cmocka_unit_test(table_and_firing),
        cmocka_unit_test(prefixes_and_declarations),
        cmocka_unit_test(broken_job_is_removed),
        cmocka_unit_test(check_walks_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
