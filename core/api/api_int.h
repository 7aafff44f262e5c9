/*
 * api/api_int: what the api module's files share.
 */
#ifndef KITH_API_INT_H
#define KITH_API_INT_H

#include "api/api.h"
#include "auth/auth_role.h"
#include "http/http_int.h"

#include <pthread.h>
#include <stdatomic.h>

#define API_WS_MAX      1024
#define API_KEY_CACHE   512   /* per loop */
#define API_KEY_TTL_MS  10000 /* a cached key is re-read at least this often */
#define API_LAT_BUCKETS 14
#define API_STATUS_MAX  27 /* api_status_list, then one for any other */

/* The statuses /metrics counts one by one (API_STATUS_MAX - 1 of them). */
extern const int api_status_list[API_STATUS_MAX - 1];

/* An open workspace, shared by every loop. */
typedef struct api_ws {
    char name[AUTH_WORKSPACE_MAX + 1];
    store_t *st;
    pthread_mutex_t roles_lock; /* guards roles, nroles */
    auth_role_t **roles;        /* custom roles loaded so far; never freed before the server */
    size_t nroles, roles_cap;
    struct bus *bus;      /* handlers of this workspace (api_scripts.c) */
    struct lua_host *lua; /* its scripts, on its writer thread */
} api_ws_t;

typedef struct api_route_metrics {
    atomic_uint_fast64_t by_status[API_STATUS_MAX];
    atomic_uint_fast64_t lat[API_LAT_BUCKETS];
    atomic_uint_fast64_t lat_sum_us;
    atomic_uint_fast64_t count;
} api_route_metrics_t;

struct api_server {
    config_t cfg;
    auth_dir_t *dir;
    pthread_mutex_t ws_lock; /* guards ws, nws */
    api_ws_t *ws[API_WS_MAX];
    size_t nws;
    atomic_uint_fast64_t gen; /* bumped when keys or roles change: caches refresh */
    api_route_metrics_t *routes;
    size_t nroutes;
    atomic_uint_fast64_t audit_writes, audit_failures;
    api_ext_t ext;
    http_route_t *table; /* the core's routes and the extension's */
    pthread_mutex_t loops_lock; /* guards loops, nloops */
    net_loop_t *loops[64];
    size_t nloops;
};

typedef struct api_key_entry {
    char token[AUTH_TOKEN_LEN + 1];
    auth_principal_t who;
    const auth_role_t *role;
    api_ws_t *ws;
    uint64_t gen;
    uint64_t expires_ms;
} api_key_entry_t;

typedef struct api_loop {
    api_server_t *srv;
    http_loop_t *hl;
    api_key_entry_t keys[API_KEY_CACHE];
    buf_t logbuf; /* request log lines, written in batches */
    uv_timer_t logflush;
    struct sse_loop *sse; /* change streams of this loop (api_stream.c) */
} api_loop_t;

/* r->api: who asks, where, and with which rights. */
typedef struct api_req {
    api_loop_t *lp;
    api_server_t *srv;
    auth_principal_t who;
    const auth_role_t *role;
    api_ws_t *ws;
    int action;  /* enum auth_action, or -1 */
    int scope;   /* for record actions */
    void *state; /* a handler's own state (streams, imports) */
    void (*state_free)(void *state);
} api_req_t;

static inline api_req_t *api_req(http_req_t *r)
{
    return r->api;
}

/* ---- api_server.c ---- */
/* The core's routes merged with an extension's (api_routes.c). */
http_route_t *api_routes_merge(const http_route_t *ext, size_t next, size_t *n);
/* The extension route that would answer in place of a bare record route of
 * collection coll (GET /v1/hello/{name} takes GET /v1/hello/{id}: it has more
 * literal segments), or NULL. The loader refuses such routes for the
 * collections plugins declare; the schema route refuses a new collection of
 * such a name, whose records could not be reached. */
const http_route_t *api_route_claim(const http_route_t *ext, size_t next, const char *coll);
/* Opens (once) and returns a workspace; NULL with a diagnostic. Any thread. */
api_ws_t *api_ws_get(api_server_t *s, const char *name);
/* A custom role of ws (loaded and kept), or NULL. */
const auth_role_t *api_ws_role(api_server_t *s, api_ws_t *ws, const char *name);
/* Maps a KITH_E* code (and the thread's diagnostic) to a problem answer. */
void api_fail(http_req_t *r, int code);
/* A problem's members from a diagnostic: "errors" (its fields) and, for
 * KITH_EEXIST, "existing_id"; NULL if it has neither. New reference. */
json_t *api_problem_members(const err_diag_t *e);
/* Whether e's existing record may be named to r's caller: a duplicate, in a
 * collection its role may read, not found by a field it sees masked. */
int api_existing_visible(http_req_t *r, const char *coll, const err_diag_t *e);
/* Refuses (403, answered: 1) an upsert on c by r's caller: it needs read and
 * update, and matching on values it sees masked is not allowed. 0: go on. */
int api_upsert_refused(http_req_t *r, const store_coll_t *c, const char *upsert);
/* The HTTP status and problem type of a KITH_E* code, and in *detail what the
 * client may read: msg, or for a handler's or internal failure (whose message
 * may quote data the caller may not see) a generic text — then *detail != msg
 * and the caller logs msg. Used for whole answers and per-row reports alike. */
int api_status(int code, const char *msg, const char **type, const char **detail);
/* Answers with the diagnostic of a failed op (store_op_t *op). */
void api_fail_op(http_req_t *r, const store_op_t *op);
/* Parses the JSON body (after checking Content-Type); NULL if it answered. */
json_t *api_body_json(http_req_t *r);
/* The collection param checked against the schema of rt; NULL if answered. */
const store_coll_t *api_coll(http_req_t *r, store_rtxn_t *rt, const char *name);
/* Opens a read snapshot of the request's workspace; NULL if answered. */
store_rtxn_t *api_read(http_req_t *r);
/* Every record of a system collection (scripts, roles), or those whose
 * "name" is name (if not NULL), to fn in one snapshot; -1 if answered. */
int api_read_named(http_req_t *r, const char *coll, const char *name, store_row_fn fn,
                   void *ctx);
/* {"actor","request"} for audited writes (new reference). */
json_t *api_audit_who(http_req_t *r);
/* Whether this role sees sensitive fields in clear. */
int api_unmask(const http_req_t *r);
/* The loop inbox where store completions for r arrive. */
loop_inbox_t *api_inbox(http_req_t *r);
auth_who_t api_who(const http_req_t *r);

/* ---- record scope inside write transactions (api_records.c) ---- */
typedef struct api_guard_ctx {
    int scope;
    char user[128];
    char team[128];
} api_guard_ctx_t;
/* A store guard: op->udata starts with an api_guard_ctx_t. Refuses writes to
 * records outside the scope (as not found) and writes that would move a
 * record out of it (forbidden). */
int api_scope_guard(store_wtxn_t *w, store_op_t *op, const json_t *before, const json_t *after);
void api_guard_ctx_init(http_req_t *r, int scope, api_guard_ctx_t *g);
/* Answers body (a buf, consumed); when ids is not NULL the answer reveals
 * sensitive data of those records and goes out only after its audit entry
 * is committed (api_records.c). */
void api_respond_revealing(http_req_t *r, const char *coll, json_t *ids, json_t *fields,
                           buf_t *body, const char *etag);
/* 1 if r's role may see coll's change-log entries (api_admin.c). */
int api_change_visible(http_req_t *r, const char *coll);
/* Refuses (403, answered; returns -1) filters or sorts on sensitive fields
 * for roles that see them masked (api_query.c). */
int api_check_sensitive(http_req_t *r, const store_coll_t *c, const json_t *filter,
                        const char *sort);

/* 1 if token still resolves to a live key with the same role (re-read after
 * keys or roles change). Loop thread. */
int api_key_valid(api_loop_t *lp, const char *token, size_t n, const char *role_name);

/* ---- change streams (api_stream.c) ---- */
void api_stream_loop_init(api_loop_t *lp);
void api_stream_loop_close(api_loop_t *lp);

/* ---- handlers ---- */
void api_h_records_create(http_req_t *r);
void api_h_records_get(http_req_t *r);
void api_h_records_update(http_req_t *r);
void api_h_records_replace(http_req_t *r);
void api_h_records_delete(http_req_t *r);
void api_h_records_list(http_req_t *r);
void api_h_records_query(http_req_t *r);
void api_h_bulk(http_req_t *r);
int api_h_bulk_body(http_req_t *r, const char *data, size_t n);
void api_h_import(http_req_t *r);
int api_h_import_body(http_req_t *r, const char *data, size_t n);
void api_h_export(http_req_t *r);
void api_h_schema_get(http_req_t *r);
void api_h_schema_put(http_req_t *r);
void api_h_schema_field(http_req_t *r);
void api_h_openapi(http_req_t *r);
void api_h_changes(http_req_t *r);
void api_h_changes_stream(http_req_t *r);
void api_h_audit(http_req_t *r);
void api_h_roles_list(http_req_t *r);
void api_h_roles_get(http_req_t *r);
void api_h_roles_put(http_req_t *r);
void api_h_roles_delete(http_req_t *r);
void api_h_keys_list(http_req_t *r);
void api_h_keys_create(http_req_t *r);
void api_h_keys_delete(http_req_t *r);
void api_h_me(http_req_t *r);
void api_h_health(http_req_t *r);
void api_h_metrics(http_req_t *r);
void api_h_routes(http_req_t *r);
void api_h_hooks(http_req_t *r);
void api_h_plugins(http_req_t *r);
void api_h_timers(http_req_t *r);
void api_h_scripts_list(http_req_t *r);
void api_h_scripts_get(http_req_t *r);
void api_h_scripts_put(http_req_t *r);
void api_h_scripts_delete(http_req_t *r);
void api_h_scripts_shipped(http_req_t *r);
void api_h_scripts_enable(http_req_t *r);
/* Gives an opened workspace its bus and Lua host and loads its scripts. */
int api_ws_extend(api_server_t *s, api_ws_t *w);
void api_ws_extend_free(api_ws_t *w);

#endif
