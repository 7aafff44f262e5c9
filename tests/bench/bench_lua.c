/*
 * bench_lua: the figures of rules and events, each beside a baseline from the
 * same run.
 *
 *   lua_rules10       durable creates (batches of 1,024) with a Lua
 *                     before_create hook applying 10 scoring rules to the
 *                     record, vs the same creates in a store with no hook
 *                     (records/s; goal: ratio >= 0.8)
 *   lua_entity_get    kith.entity.get from a Lua handler vs store_wtxn_get from
 *                     a C handler, same record, same transaction (calls/s)
 *   hook_delivery_p50 an after-hook's start minus its change's batch time
 *   hook_delivery_p99 (so the commit's own fsync is included), at 1,000 creates
 *                     a second, vs the creates' own submit-to-acknowledgement
 *                     latency at the same percentile (µs; goal: p99 < 5 ms)
 *
 * usage: bench_lua DIR [--records N]
 */
#include "base/id.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"
#include "bench_util.h"
#include "bus/bus.h"
#include "lua/lua_host.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

static const char *schema = "{\"name\":\"bench\",\"fields\":["
                            "{\"name\":\"name\",\"type\":\"string\"},"
                            "{\"name\":\"stage\",\"type\":\"string\",\"indexed\":true},"
                            "{\"name\":\"score\",\"type\":\"int\"},"
                            "{\"name\":\"lead_score\",\"type\":\"int\"},"
                            "{\"name\":\"note\",\"type\":\"string\"}]}";

static const char *probe_schema = "{\"name\":\"probe\",\"fields\":["
                                  "{\"name\":\"target\",\"type\":\"string\"},"
                                  "{\"name\":\"n\",\"type\":\"int\"}]}";

/* Ten rules of the kind admins write: field tests adding to a score. */
static const char *rules10_default =
    "kith.on('bench.before_create', function(ev)\n"
    "  local r, s = ev.record, 0\n"
    "  if r.stage == 'stage-01' then s = s + 10 end\n"
    "  if r.stage == 'stage-02' then s = s + 5 end\n"
    "  if (r.score or 0) > 50000 then s = s + 20 end\n"
    "  if (r.score or 0) % 2 == 0 then s = s + 1 end\n"
    "  if r.name and r.name:find('Customer 0', 1, true) then s = s + 3 end\n"
    "  if r.note and #r.note > 100 then s = s + 2 end\n"
    "  if r.stage ~= 'stage-19' then s = s + 1 end\n"
    "  if (r.score or 0) < 1000 then s = s - 5 end\n"
    "  if r.name and #r.name > 20 then s = s + 1 end\n"
    "  if r.stage == 'stage-07' or r.stage == 'stage-08' then s = s + 4 end\n"
    "  r.lead_score = s\n"
    "end)\n";

static const char *rules10;

static const char *getter = "kith.on('probe.before_create', function(ev)\n"
                            "  local id, n = ev.record.target, ev.record.n\n"
                            "  for i = 1, n do\n"
                            "    local r = kith.entity.get('bench', id)\n"
                            "    if not r then error('missing') end\n"
                            "  end\n"
                            "end)\n";

static json_t *gen_fields(uint64_t i)
{
    char name[64], stage[16], note[160];
    snprintf(name, sizeof name, "Customer %08llu of the benchmark", (unsigned long long)i);
    snprintf(stage, sizeof stage, "stage-%02llu", (unsigned long long)(i % 20));
    memset(note, 'n', 120);
    note[120] = '\0';
    return json_pack("{s:s,s:s,s:I,s:s}", "name", name, "stage", stage, "score",
                     (json_int_t)((i * 7919) % 100000), "note", note);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_lua: %s: %s\n", what, err_last()->msg);
    exit(1);
}

/* A whole file (never freed), or exit. */
static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

typedef struct ws {
    store_t *st;
    bus_t *bus;
    lua_host_t *lua;
} ws_t;

typedef struct load_args {
    ws_t *ws;
    const lua_script_t *scripts;
    size_t n;
} load_args_t;

static int load_op(store_wtxn_t *w, store_op_t *op)
{
    load_args_t *a = op->udata;
    return lua_host_load(a->ws->lua, w, a->scripts, a->n);
}

static void run(store_t *st, store_op_t *op, const char *what)
{
    if (store_exec(st, op)) die(what);
    store_op_free(op);
}

static void ws_open(ws_t *w, const char *dir, int hooks, const char *script)
{
    memset(w, 0, sizeof *w);
    store_opts_t o = {.create = 1, .map_size = (size_t)1 << 30, .batch_max = 1024};
    if (store_open(&w->st, dir, &o)) die(dir);
    if (hooks) {
        w->bus = bus_new(w->st, "bench");
        lua_limits_t lim = {.time_ms = 60000}; /* the get loop is long on purpose */
        w->lua = lua_host_new(w->bus, "bench", &lim);
        bus_attach(w->bus);
    }
    json_t *d = json_parse(schema, strlen(schema));
    run(w->st, store_op_schema(d), "schema");
    json_decref(d);
    d = json_parse(probe_schema, strlen(probe_schema));
    run(w->st, store_op_schema(d), "schema");
    json_decref(d);
    if (script) {
        lua_script_t s = {"bench", script, strlen(script)};
        load_args_t a = {w, &s, 1};
        run(w->st, store_op_custom(load_op, &a), "load");
    }
}

static void ws_close(ws_t *w)
{
    store_close(w->st);
    lua_host_free(w->lua);
    bus_free(w->bus);
}

static double load(bench_runner_t *r, store_t *st, uint64_t n)
{
    return bench_load(r, st, n, 4096);
}

/* ---- entity get from C ---- */

typedef struct cget {
    kith_id_t id;
    long n;
} cget_t;

static int c_getter(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    (void)ev;
    cget_t *g = ctx;
    for (long i = 0; i < g->n; i++) {
        store_record_t rec;
        if (store_wtxn_get(w, "bench", &g->id, &rec)) return err_set(KITH_EINVAL, "missing");
    }
    return 0;
}

static double probe(store_t *st, const char *target, long n)
{
    json_t *f = json_pack("{s:s,s:I}", "target", target, "n", (json_int_t)n);
    store_op_t *op = store_op_create("probe", f);
    json_decref(f);
    double t0 = bench_now();
    run(st, op, "probe");
    return (double)n / (bench_now() - t0);
}

/* ---- delivery latency at a fixed rate ---- */

#define PACED_N 5000

typedef struct paced {
    bench_runner_t r;
    uv_timer_t timer;
    int64_t submit_us[PACED_N];
    int64_t ack_us[PACED_N];
    int64_t lag_us[PACED_N]; /* filled by the after-hook, on the writer thread */
    size_t nlag;
    size_t sent;
} paced_t;

static int after_hook(void *ctx, store_wtxn_t *w, bus_event_t *ev)
{
    (void)w;
    paced_t *p = ctx;
    if (p->nlag < PACED_N) p->lag_us[p->nlag++] = time_now_us() - ev->time_us;
    return 0;
}

static void paced_done(store_op_t *op, void *ctx)
{
    paced_t *p = ctx;
    size_t i = (size_t)(uintptr_t)op->udata;
    if (op->status) die("paced write");
    p->ack_us[i] = time_now_us() - p->submit_us[i];
    store_op_free(op);
    p->r.done++;
}

static void paced_tick(uv_timer_t *t)
{
    paced_t *p = t->data;
    if (p->sent == PACED_N) {
        uv_timer_stop(t);
        return;
    }
    store_op_t *op = store_op_create("bench", p->r.fields[p->sent % 4096]);
    op->udata = (void *)(uintptr_t)p->sent;
    p->submit_us[p->sent++] = time_now_us();
    store_submit(p->r.st, op, &p->r.inbox, paced_done, p);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp64);
    return n ? v[(size_t)(q * (double)(n - 1))] : 0;
}

int main(int argc, char **argv)
{
    mem_init();
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lua DIR [--records N] [--rules-only] [--rules FILE]\n");
        return 2;
    }
    uint64_t n = 200000;
    int rules_only = 0;
    rules10 = rules10_default;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rules-only") == 0)
            rules_only = 1;
        else if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc) /* your own rules, same event */
            rules10 = read_all(argv[++i]);
    mkdir(argv[1], 0700);
    char d1[1024], d2[1024], d3[1024];
    snprintf(d1, sizeof d1, "%s/plain", argv[1]);
    snprintf(d2, sizeof d2, "%s/rules", argv[1]);
    snprintf(d3, sizeof d3, "%s/events", argv[1]);
    json_t *fields[4096];
    for (int i = 0; i < 4096; i++)
        fields[i] = gen_fields((uint64_t)i);
    bench_runner_t r = {.coll = "bench", .fields = fields};
    loop_inbox_init(&r.inbox, uv_default_loop());

    /* rules: the same creates into a store without hooks, then one with them */
    ws_t plain, rules;
    ws_open(&plain, d1, 0, NULL);
    ws_open(&rules, d2, 1, rules10);
    load(&r, plain.st, 4096); /* warm both the same way */
    load(&r, rules.st, 4096);
    /* alternating halves, so neither side alone pays for the other's
     * writeback or a map growth */
    double base = 0, mine = 0;
    for (int round = 0; round < 4; round++) {
        if (round % 2 == 0)
            base += 1 / load(&r, plain.st, n / 4);
        else
            mine += 1 / load(&r, rules.st, n / 4);
        if (round % 2 == 0)
            mine += 1 / load(&r, rules.st, n / 4);
        else
            base += 1 / load(&r, plain.st, n / 4);
    }
    base = 4 / base; /* harmonic means: records/s over the same record counts */
    mine = 4 / mine;
    bench_line("lua_rules10", mine, "records/s", base);
    if (rules_only) { /* for profiling the rules alone */
        ws_close(&rules);
        ws_close(&plain);
        return 0;
    }

    /* kith.entity.get: Lua vs C, on one record, inside one create's handler */
    load(&r, rules.st, 1); /* a record of this store to read */
    char target[ID_TEXT_LEN + 1];
    id_encode(&r.last, target);
    ws_close(&rules);
    ws_open(&rules, d2, 1, getter);
    long calls = 200000;
    double lua_rate = probe(rules.st, target, calls);
    ws_close(&rules);
    cget_t cg = {.id = r.last, .n = 2000000};
    ws_open(&rules, d2, 1, NULL);
    bus_handler_def_t def = {.event = "probe.before_create",
                             .owner = "plugin:bench",
                             .name = "get",
                             .fn = c_getter,
                             .ctx = &cg};
    if (bus_on(rules.bus, &def)) die("bus_on");
    double c_rate = probe(rules.st, target, cg.n);
    bench_line("lua_entity_get", lua_rate, "calls/s", c_rate);
    ws_close(&rules);
    ws_close(&plain);

    /* delivery: an after-hook on every create at 1,000 creates/s */
    ws_t ev;
    ws_open(&ev, d3, 1, NULL);
    paced_t *p = xcalloc(1, sizeof *p);
    p->r.fields = fields;
    p->r.st = ev.st;
    loop_inbox_init(&p->r.inbox, uv_default_loop());
    bus_handler_def_t ad = {.event = "bench.created",
                            .owner = "plugin:bench",
                            .name = "lag",
                            .fn = after_hook,
                            .ctx = p};
    if (bus_on(ev.bus, &ad)) die("bus_on");
    store_hooks_kick(ev.st);
    uv_timer_init(uv_default_loop(), &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, paced_tick, 1, 1);
    while (p->r.done < PACED_N)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
    double t0 = bench_now();
    while (p->nlag < PACED_N && bench_now() - t0 < 10) { /* the last deliveries */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    uv_close((uv_handle_t *)&p->timer, NULL);
    size_t m = p->nlag;
    int64_t l50 = pct(p->lag_us, m, 0.50), l99 = pct(p->lag_us, m, 0.99);
    int64_t a50 = pct(p->ack_us, PACED_N, 0.50), a99 = pct(p->ack_us, PACED_N, 0.99);
    printf("# hook delivery at 1,000 creates/s: %zu events; after-hook start p50 %lld us, p99 "
           "%lld us (goal p99 < 5000); acknowledgement p50 %lld us, p99 %lld us\n",
           m, (long long)l50, (long long)l99, (long long)a50, (long long)a99);
    bench_line("hook_delivery_p50", (double)l50, "us", (double)a50);
    bench_line("hook_delivery_p99", (double)l99, "us", (double)a99);
    ws_close(&ev);
    free(p);
    for (int i = 0; i < 4096; i++)
        json_decref(fields[i]);
    return 0;
}
