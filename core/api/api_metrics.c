/*
 * api_metrics: /metrics in the Prometheus text format (version 0.0.4).
 */
#include "api/api_int.h"
#include "base/mem.h"
#include "bus/bus.h"
#include "lua/lua_host.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>


static const char *const lat_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                     "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                     "0.25",   "1",       "5",      "+Inf"};

static void help(buf_t *b, const char *name, const char *type, const char *text)
{
    buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

typedef struct ws_counter {
    const char *name, *help;
    size_t off; /* of a uint64_t in the stats struct */
} ws_counter_t;

/* Each counter of defs, with a line per workspace that has stats: stats[i]
 * (stride bytes each) is workspace i's, or skipped where have[i] is 0. */
static void counters_by_ws(api_server_t *s, buf_t *b, const ws_counter_t *defs, size_t n,
                           const void *stats, size_t stride, const char *have)
{
    for (size_t m = 0; m < n; m++) {
        help(b, defs[m].name, "counter", defs[m].help);
        for (size_t i = 0; i < s->nws; i++) {
            if (!have[i]) continue;
            uint64_t v;
            memcpy(&v, (const char *)stats + i * stride + defs[m].off, sizeof v);
            buf_addf(b, "%s{workspace=\"%s\"} %llu\n", defs[m].name, s->ws[i]->name,
                     (unsigned long long)v);
        }
    }
}

/* Hook and Lua counters by workspace (ws_lock held), from one snapshot of
 * each workspace's stats. */
static void hooks_render(api_server_t *s, buf_t *b)
{
    static const ws_counter_t bc[] = {
        {"kith_hook_runs_total", "Handler runs (before and after), by workspace.",
         offsetof(bus_stats_t, runs)},
        {"kith_hook_errors_total", "Handler failures (errors, budgets), by workspace.",
         offsetof(bus_stats_t, errors)},
        {"kith_hook_vetoes_total", "Writes refused by before-hooks, by workspace.",
         offsetof(bus_stats_t, vetoes)},
        {"kith_hook_cascade_stops_total", "Cascades stopped at depth 8, by workspace.",
         offsetof(bus_stats_t, cascade_stops)},
        {"kith_hook_delivered_total", "After-hook deliveries committed, by workspace.",
         offsetof(bus_stats_t, delivered)},
    };
    static const ws_counter_t lc[] = {
        {"kith_lua_calls_total", "Lua handler calls, by workspace.",
         offsetof(lua_host_stats_t, calls)},
        {"kith_lua_errors_total", "Lua handler errors (any cause), by workspace.",
         offsetof(lua_host_stats_t, errors)},
        {"kith_lua_timeouts_total", "Lua handlers stopped by the time budget, by workspace.",
         offsetof(lua_host_stats_t, timeouts)},
        {"kith_lua_oom_total", "Lua handlers stopped by the memory budget, by workspace.",
         offsetof(lua_host_stats_t, oom)},
    };
    size_t n = s->nws ? s->nws : 1;
    bus_stats_t *bs = xcalloc(n, sizeof *bs);
    lua_host_stats_t *ls = xcalloc(n, sizeof *ls);
    char *has_bus = xcalloc(n, 1), *has_lua = xcalloc(n, 1);
    for (size_t i = 0; i < s->nws; i++) {
        if ((has_bus[i] = s->ws[i]->bus != NULL)) bus_stats(s->ws[i]->bus, &bs[i]);
        if ((has_lua[i] = s->ws[i]->lua != NULL)) lua_host_stats(s->ws[i]->lua, &ls[i]);
    }
    counters_by_ws(s, b, bc, sizeof bc / sizeof bc[0], bs, sizeof *bs, has_bus);
    static const char *const le[] = {"0.0005", "0.001", "0.002", "0.005",
                                     "0.01",   "0.05",  "0.25",  "+Inf"};
    help(b, "kith_hook_delivery_seconds", "histogram", "Commit to after-hook start, by workspace.");
    for (size_t i = 0; i < s->nws; i++) {
        if (!has_bus[i]) continue;
        uint64_t cum = 0;
        for (int k = 0; k < 8; k++) {
            cum += bs[i].lag_hist[k];
            buf_addf(b, "kith_hook_delivery_seconds_bucket{workspace=\"%s\",le=\"%s\"} %llu\n",
                     s->ws[i]->name, le[k], (unsigned long long)cum);
        }
        buf_addf(b, "kith_hook_delivery_seconds_sum{workspace=\"%s\"} %.6f\n", s->ws[i]->name,
                 (double)bs[i].lag_sum_us / 1e6);
        buf_addf(b, "kith_hook_delivery_seconds_count{workspace=\"%s\"} %llu\n", s->ws[i]->name,
                 (unsigned long long)cum);
    }
    counters_by_ws(s, b, lc, sizeof lc / sizeof lc[0], ls, sizeof *ls, has_lua);
    free(bs);
    free(ls);
    free(has_bus);
    free(has_lua);
}

void api_metrics_render(api_server_t *s, buf_t *b)
{
    size_t nroutes = s->nroutes;
    const http_route_t *routes = s->table;
    help(b, "kith_http_requests_total", "counter", "Requests answered, by route and status.");
    for (size_t i = 0; i < nroutes; i++)
        for (int k = 0; k < API_STATUS_MAX; k++) {
            uint64_t v = atomic_load_explicit(&s->routes[i].by_status[k], memory_order_relaxed);
            if (!v) continue;
            char st[8];
            if (k < API_STATUS_MAX - 1)
                snprintf(st, sizeof st, "%d", api_status_list[k]);
            else
                snprintf(st, sizeof st, "other");
            buf_addf(b, "kith_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                     routes[i].name, st, (unsigned long long)v);
        }
    help(b, "kith_http_request_duration_seconds", "histogram",
         "Time from the first byte of a request to its queued answer.");
    for (size_t i = 0; i < nroutes; i++) {
        uint64_t count = atomic_load_explicit(&s->routes[i].count, memory_order_relaxed);
        if (!count) continue;
        uint64_t cum = 0;
        for (int k = 0; k < API_LAT_BUCKETS; k++) {
            cum += atomic_load_explicit(&s->routes[i].lat[k], memory_order_relaxed);
            buf_addf(b, "kith_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} %llu\n",
                     routes[i].name, lat_le[k], (unsigned long long)cum);
        }
        buf_addf(b, "kith_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", routes[i].name,
                 (double)atomic_load(&s->routes[i].lat_sum_us) / 1e6);
        buf_addf(b, "kith_http_request_duration_seconds_count{route=\"%s\"} %llu\n", routes[i].name,
                 (unsigned long long)count);
    }
    uint64_t open = 0, accepted = 0, refused = 0, timeouts = 0, in = 0, out = 0;
    pthread_mutex_lock(&s->loops_lock);
    for (size_t i = 0; i < s->nloops; i++) {
        net_loop_stats_t *st = &s->loops[i]->stats;
        open += atomic_load_explicit(&st->open, memory_order_relaxed);
        accepted += atomic_load_explicit(&st->accepted, memory_order_relaxed);
        refused += atomic_load_explicit(&st->refused, memory_order_relaxed);
        timeouts += atomic_load_explicit(&st->timeouts, memory_order_relaxed);
        in += atomic_load_explicit(&st->bytes_in, memory_order_relaxed);
        out += atomic_load_explicit(&st->bytes_out, memory_order_relaxed);
    }
    size_t nloops = s->nloops;
    pthread_mutex_unlock(&s->loops_lock);
    help(b, "kith_http_connections_open", "gauge", "Open client connections.");
    buf_addf(b, "kith_http_connections_open %llu\n", (unsigned long long)open);
    help(b, "kith_http_connections_accepted_total", "counter", "Connections accepted.");
    buf_addf(b, "kith_http_connections_accepted_total %llu\n", (unsigned long long)accepted);
    help(b, "kith_http_connections_refused_total", "counter",
         "Connections refused over the connection cap.");
    buf_addf(b, "kith_http_connections_refused_total %llu\n", (unsigned long long)refused);
    help(b, "kith_http_timeouts_total", "counter", "Connections closed by a deadline.");
    buf_addf(b, "kith_http_timeouts_total %llu\n", (unsigned long long)timeouts);
    help(b, "kith_net_bytes_received_total", "counter", "Bytes read from clients.");
    buf_addf(b, "kith_net_bytes_received_total %llu\n", (unsigned long long)in);
    help(b, "kith_net_bytes_sent_total", "counter", "Bytes written to clients.");
    buf_addf(b, "kith_net_bytes_sent_total %llu\n", (unsigned long long)out);
    help(b, "kith_io_loops", "gauge", "I/O loops (threads) serving connections.");
    buf_addf(b, "kith_io_loops %zu\n", nloops);
    help(b, "kith_audit_reads_total", "counter", "Reads of sensitive data audited.");
    buf_addf(b, "kith_audit_reads_total %llu\n", (unsigned long long)atomic_load(&s->audit_writes));
    help(b, "kith_audit_failures_total", "counter",
         "Reads refused because their audit entry could not be written.");
    buf_addf(b, "kith_audit_failures_total %llu\n",
             (unsigned long long)atomic_load(&s->audit_failures));

    static const char *const hist_le[] = {"1", "4", "16", "64", "256", "1024", "+Inf"};
    help(b, "kith_store_commits_total", "counter", "Write transactions committed, by workspace.");
    pthread_mutex_lock(&s->ws_lock);
    for (size_t i = 0; i < s->nws; i++) {
        store_stats_t ss;
        store_stats_get(s->ws[i]->st, &ss);
        buf_addf(b, "kith_store_commits_total{workspace=\"%s\"} %llu\n", s->ws[i]->name,
                 (unsigned long long)ss.commits);
    }
    help(b, "kith_store_ops_total", "counter", "Write ops completed, by workspace and outcome.");
    for (size_t i = 0; i < s->nws; i++) {
        store_stats_t ss;
        store_stats_get(s->ws[i]->st, &ss);
        buf_addf(b, "kith_store_ops_total{workspace=\"%s\",outcome=\"ok\"} %llu\n", s->ws[i]->name,
                 (unsigned long long)(ss.ops - ss.ops_failed));
        buf_addf(b, "kith_store_ops_total{workspace=\"%s\",outcome=\"failed\"} %llu\n",
                 s->ws[i]->name, (unsigned long long)ss.ops_failed);
    }
    help(b, "kith_store_batch_size", "histogram", "Ops per committed batch (group commit).");
    for (size_t i = 0; i < s->nws; i++) {
        store_stats_t ss;
        store_stats_get(s->ws[i]->st, &ss);
        uint64_t cum = 0;
        for (int k = 0; k < STORE_BATCH_BUCKETS; k++) {
            cum += ss.batch_hist[k];
            buf_addf(b, "kith_store_batch_size_bucket{workspace=\"%s\",le=\"%s\"} %llu\n",
                     s->ws[i]->name, hist_le[k], (unsigned long long)cum);
        }
        buf_addf(b, "kith_store_batch_size_sum{workspace=\"%s\"} %llu\n", s->ws[i]->name,
                 (unsigned long long)ss.batch_sum);
        buf_addf(b, "kith_store_batch_size_count{workspace=\"%s\"} %llu\n", s->ws[i]->name,
                 (unsigned long long)cum);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } sizes[] = {
        {"kith_store_map_bytes", "LMDB map size, by workspace.", offsetof(store_stats_t, map_size)},
        {"kith_store_used_bytes", "Bytes up to LMDB's last page, by workspace.",
         offsetof(store_stats_t, used_bytes)},
        {"kith_store_file_bytes", "Size of data.mdb (zero-filled ahead of use), by workspace.",
         offsetof(store_stats_t, file_bytes)},
    };
    for (size_t m = 0; m < sizeof sizes / sizeof sizes[0]; m++) {
        help(b, sizes[m].name, "gauge", sizes[m].help);
        for (size_t i = 0; i < s->nws; i++) {
            store_stats_t ss;
            store_stats_get(s->ws[i]->st, &ss);
            size_t v;
            memcpy(&v, (const char *)&ss + sizes[m].off, sizeof v);
            buf_addf(b, "%s{workspace=\"%s\"} %zu\n", sizes[m].name, s->ws[i]->name, v);
        }
    }
    help(b, "kith_store_queue", "gauge", "Write ops waiting for the writer, by workspace.");
    for (size_t i = 0; i < s->nws; i++) {
        store_stats_t ss;
        store_stats_get(s->ws[i]->st, &ss);
        buf_addf(b, "kith_store_queue{workspace=\"%s\"} %zu\n", s->ws[i]->name, ss.queued);
    }
    hooks_render(s, b);
    pthread_mutex_unlock(&s->ws_lock);
    if (s->ext.metrics) s->ext.metrics(s->ext.ctx, b);
}

void api_h_metrics(http_req_t *r)
{
    buf_t b = BUF_INIT;
    api_metrics_render(r->conn->loop->api ? ((api_loop_t *)r->conn->loop->api)->srv : NULL, &b);
    http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, NULL);
    buf_free(&b);
}
