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

/* Opens the data directory for serving (stores get writer threads). */
int api_server_new(const config_t *cfg, api_server_t **out);
/* Closes every workspace store (their writers finish what is queued). */
void api_server_free(api_server_t *s);

/* The route table, literal paths before parameterised ones. */
const http_route_t *api_routes(size_t *n);
/* The hooks the HTTP server calls around every request. */
http_hooks_t api_hooks(api_server_t *s);

/* Per-loop state; call on the loop's thread before serving. */
void api_loop_attach(api_server_t *s, net_loop_t *loop);
void api_loop_detach(net_loop_t *loop);

/* Prometheus text of every counter (any thread). */
void api_metrics_render(api_server_t *s, buf_t *out);

#endif
