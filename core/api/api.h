/*
 * api: every operation of the HTTP API (records, queries, bulk, import,
 * export, schema, change log, roles, keys, audit, metrics), implemented once
 * here; HTTP handlers, the CLI (import, export) and later Lua and plugins are
 * thin faces over it.
 */
#ifndef KITH_API_H
#define KITH_API_H

#include "auth/auth.h"
#include "config/config.h"
#include "http/http.h"

typedef struct api_server api_server_t;
struct bus;

/* What an extension (the plugin loader) adds to the server; every member
 * may be zero. The api module knows nothing of plugins beyond this. */
typedef struct api_ext {
    /* Extra routes, mounted after the core's literal routes and before its
     * parameterised ones (a literal plugin path wins over /v1/{collection}/{id}). */
    const http_route_t *routes;
    size_t nroutes;
    /* A workspace opens: register handlers on its bus (not yet attached) and
     * declare what it needs in its store. 0 or a KITH_E* code (logged). */
    int (*ws_open)(void *ctx, const char *workspace, store_t *st, struct bus *bus);
    /* Appends Prometheus text (/metrics). */
    void (*metrics)(void *ctx, buf_t *out);
    /* Appends a JSON array describing the extensions (GET /v1/plugins). */
    void (*list)(void *ctx, buf_t *out);
    void *ctx;
} api_ext_t;

struct lua_host;
/* What runs a workspace's rules over its open store: the bus (with the
 * scheduler's tick), the extension's hooks and declarations (ext may be NULL;
 * its failure goes to *ext_err, code 0 if none, and the rest opens anyway),
 * and the Lua host with the workspace's current scripts; then due timers and
 * undelivered after-hooks are kicked. Used by the server and by kith test.
 * 0, or the scripts' loading error (the bus and host are set either way). */
int api_ws_runtime_open(const char *workspace, store_t *st, const api_ext_t *ext, struct bus **bus,
                        struct lua_host **lua, err_diag_t *ext_err);
/* After the store is closed (no handler runs any more). */
void api_ws_runtime_close(struct bus *bus, struct lua_host *lua);

/* Opens the data directory for serving (stores get writer threads); ext may
 * be NULL. */
int api_server_new(const config_t *cfg, const api_ext_t *ext, api_server_t **out);
/* The server's whole route table: the core's and the extension's. */
const http_route_t *api_server_routes(const api_server_t *s, size_t *n);
/* Closes every workspace store (their writers finish what is queued). */
void api_server_free(api_server_t *s);

/* The core's route table, literal paths before parameterised ones. */
const http_route_t *api_routes(size_t *n);
/* The hooks the HTTP server calls around every request. */
http_hooks_t api_hooks(api_server_t *s);

/* Per-loop state; call on the loop's thread before serving. */
void api_loop_attach(api_server_t *s, net_loop_t *loop);
void api_loop_detach(net_loop_t *loop);

/* Prometheus text of every counter (any thread). */
void api_metrics_render(api_server_t *s, buf_t *out);

#endif
