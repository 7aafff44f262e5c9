/*
 * http: HTTP/1.1 on llhttp (compiled from Debian's node-llhttp sources) over a
 * net connection — keep-alive, pipelining, limits, deadlines — with a router
 * and the response helpers handlers use (plain, problem+json, streaming).
 *
 * One request per connection is handled at a time; pipelined requests wait in
 * the connection's input until the previous response is queued, so responses
 * always leave in request order. A handler answers exactly once, at once or
 * later (after a store commit); the request stays valid until it has.
 * Everything runs on the connection's loop thread.
 */
#ifndef KITH_HTTP_H
#define KITH_HTTP_H

#include "base/buf.h"
#include "config/config.h"
#include "net/net.h"

#include <jansson.h>
#include <stdint.h>

typedef struct http_req http_req_t;
typedef struct http_conn http_conn_t;
typedef struct http_route http_route_t;
typedef struct http_server http_server_t;

enum http_method {
    HTTP_M_DELETE = 0, /* same numbers as llhttp_method_t */
    HTTP_M_GET = 1,
    HTTP_M_HEAD = 2,
    HTTP_M_POST = 3,
    HTTP_M_PUT = 4,
    HTTP_M_OPTIONS = 6,
    HTTP_M_PATCH = 28,
};

enum http_route_flag {
    HTTP_PUBLIC = 1u << 0,      /* no API key needed (/healthz, /metrics) */
    HTTP_STREAM_BODY = 1u << 1, /* body arrives in chunks through on_body (bulk, import) */
    /* the API key is the first {param} of the path, not a header (public web
     * forms); logs show the pattern instead of the path */
    HTTP_KEY_IN_PATH = 1u << 2,
};

typedef void (*http_handler_fn)(http_req_t *r);
/* A chunk of a streamed body; return 0, or an HTTP status to refuse (the
 * handler has then answered). */
typedef int (*http_body_fn)(http_req_t *r, const char *data, size_t n);

#define HTTP_PARAMS_MAX 4
#define HTTP_PARAM_MAX  256

struct http_route {
    int method;
    const char *pattern; /* "/v1/{collection}/{id}": {x} matches one segment */
    const char *name;    /* stable route name for metrics and logs */
    http_handler_fn fn;
    http_body_fn on_body; /* HTTP_STREAM_BODY routes */
    unsigned flags;
    const char *action; /* what it needs: "read", "create", ..., "schema", "keys" */
    const char *coll;   /* record actions: this collection, not the path's {collection} */
    const void *udata;  /* for the handler (plugin routes) */
};

typedef struct http_header {
    uint32_t name, name_len, value, value_len; /* offsets into the request's header buffer */
} http_header_t;

struct http_req {
    http_conn_t *conn; /* the connection (see http_req_gone) */
    http_server_t *srv;
    int method;
    int http_minor;
    buf_t url;       /* the request target as received */
    size_t path_len; /* url.p[0..path_len) is the path; the query follows '?' */
    buf_t hbuf;
    http_header_t *hdr;
    size_t nhdr, hdr_cap;
    buf_t body;
    uint64_t content_length;
    int has_content_length;
    int keep_alive;
    int expect_continue;
    const http_route_t *route;
    char params[HTTP_PARAMS_MAX][HTTP_PARAM_MAX]; /* percent-decoded {x} segments */
    int nparams;
    char id[24]; /* request id (X-Request-Id) */
    uint64_t t0_ns;
    int status; /* of the answer, for logs and metrics */
    size_t out_bytes;
    int responded, streaming, stream_done;
    /* for the layer above (api): the principal, the workspace, ... */
    void *api;
    void (*api_free)(http_req_t *r);
    /* streaming responses: called when the connection's output has drained */
    void (*on_drain)(http_req_t *r);
    void *user;
    char log_workspace[64];
    char log_key[32];
};

/* ---- requests ---- */

/* 1 once the client has disconnected: answers are then dropped (the handler
 * must still answer, to release the request). */
int http_req_gone(const http_req_t *r);

/* The value of header name (case-insensitive), or NULL; *len gets its length. */
const char *http_req_header(const http_req_t *r, const char *name, size_t *len);
/* The query parameter's percent-decoded value into out; 1 if present. */
int http_req_query(const http_req_t *r, const char *name, char *out, size_t cap);
/* Iterates query parameters: *pos starts at 0; returns 0 at the end. */
int http_req_query_next(const http_req_t *r, size_t *pos, char *name, size_t ncap, char *val,
                        size_t vcap);

/* ---- responses (exactly one per request) ---- */

/* headers: extra header lines, each ending in "\r\n", or NULL. */
void http_respond(http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                  const char *headers);
void http_respond_json(http_req_t *r, int status, const json_t *body, const char *headers);
/* RFC 9457 problem+json: type is a slug ("validation", "not-found", ...)
 * that becomes "https://kith.dev/problems/<slug>"; extra (may be NULL) is
 * merged into the object (e.g. {"errors": [...]}). */
void http_respond_problem(http_req_t *r, int status, const char *type, const char *detail,
                          const json_t *extra);

/* A chunked response; write chunks, then end. Backpressure: when
 * http_stream_pending() is large, stop producing until r->on_drain runs. */
void http_stream_begin(http_req_t *r, int status, const char *ctype, const char *headers);
int http_stream_write(http_req_t *r, const char *data, size_t n);
void http_stream_end(http_req_t *r);
size_t http_stream_pending(const http_req_t *r);

/* Streamed bodies: stop and restart reading the body (backpressure). */
void http_req_pause_body(http_req_t *r);
void http_req_resume_body(http_req_t *r);

const char *http_status_text(int status);
const char *http_method_name(int method);

/* ---- the server ---- */

typedef struct http_hooks {
    /* Before a matched route runs (authentication, permissions). Return 0 to
     * run the handler, or answer r and return nonzero. */
    int (*before)(http_req_t *r);
    /* After the answer is queued (logs, metrics). */
    void (*after)(http_req_t *r);
    void *ctx;
} http_hooks_t;

struct http_server {
    const config_t *cfg;
    const http_route_t *routes;
    size_t nroutes;
    http_hooks_t hooks;
    net_app_t app;
};

/* r's path as it may be shown (logs, a problem's instance): the segment
 * that holds an API key in a route with HTTP_KEY_IN_PATH is "{key}" —
 * whichever route the request matched, or none, so a mistyped method or a
 * trailing slash cannot leak it either. Appends to out. */
void http_req_path_shown(const http_req_t *r, buf_t *out);

/* Sets up the server's net application over a route table. */
void http_server_init(http_server_t *s, const config_t *cfg, const http_route_t *routes,
                      size_t nroutes, const http_hooks_t *hooks);

/* Connections with a request in flight (for draining). Loop thread. */
size_t http_loop_busy(net_loop_t *l);
/* Closes idle keep-alive connections, and each busy one after its answer. */
void http_loop_drain(net_loop_t *l);

#endif
