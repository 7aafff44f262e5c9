/*
 * http/http_int: what the http module's files share.
 */
#ifndef KITH_HTTP_INT_H
#define KITH_HTTP_INT_H

#include "http/http.h"

#include <llhttp.h>

/* Per-loop state; embeds the net loop (first member), so the net loop's
 * address is the http loop's. */
typedef struct http_loop {
    net_loop_t net;
    http_server_t *srv;
    size_t nconns;  /* open HTTP connections */
    size_t busy;    /* requests being handled */
    size_t orphans; /* handled for clients that left */
    int draining;
    char date[40]; /* IMF-fixdate of date_sec */
    int64_t date_sec;
    buf_t scratch; /* for building answers */
    void *api;     /* the api layer's per-loop state */
} http_loop_t;

static inline http_loop_t *http_loop_of(net_loop_t *l)
{
    return (http_loop_t *)l;
}

struct http_conn {
    net_conn_t *nc; /* NULL once the connection is gone */
    http_server_t *srv;
    llhttp_t parser;
    http_req_t req;
    buf_t in;       /* input waiting while a request is handled */
    int busy;       /* a request is being handled */
    int in_message; /* between the first byte and the end of a request */
    int hdr_state;  /* 0, 1 = in a header name, 2 = in a value */
    int head_scan;  /* raw check of the header section (head_scan in http_conn.c) */
    size_t hbytes;
    int error_status; /* a limit the parser callbacks hit */
    int close_after;  /* close once the current answer is out */
    int draining;
    int orphaned; /* the client left while its request was handled */
    int streaming_body;
    int body_paused; /* we stopped reading (backpressure): no deadline meanwhile */
    uint64_t body_seen;
    http_loop_t *loop;
};

/* Matches r's method and path against the routes; sets r->route and params,
 * or leaves route NULL with r->status 404 or 405. */
void http_route_match(http_server_t *s, http_req_t *r);
/* A complete request: runs the before hook and the handler. */
void http_dispatch(http_conn_t *hc);
/* A streamed-body request whose headers are in: runs the before hook early.
 * Returns nonzero if it answered (refused). */
int http_dispatch_begin(http_conn_t *hc);
/* Marks the current request as being handled (and gives it an id). */
void http_conn_set_busy(http_conn_t *hc);
/* The answer to the current request is queued: next request, or close. */
void http_conn_answered(http_conn_t *hc);
uint32_t s_header_deadline(const http_conn_t *hc);

#endif
