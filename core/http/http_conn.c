/*
 * http_conn: the HTTP/1.1 connection state machine on llhttp.
 *
 * Input is parsed one request at a time: on_message_complete dispatches the
 * request and pauses the parser, so later pipelined requests wait (in
 * conn->in) until this one is answered, and answers go out in order. Limit
 * violations found in callbacks set error_status and fail the parse; the
 * answer then carries that status and the connection closes.
 */
#include "http/http_int.h"

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rand.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>

/* states of head_scan (below) */
enum { HS_START, HS_START_CR, HS_LINE, HS_CR, HS_BOL, HS_END_CR, HS_DONE };

static http_conn_t *conn_of(llhttp_t *p)
{
    return p->data;
}

static void req_reset(http_req_t *r)
{
    buf_reset(&r->url);
    buf_reset(&r->hbuf);
    if (r->body.cap > 65536)
        buf_free(&r->body);
    else
        buf_reset(&r->body);
    r->nhdr = 0;
    r->path_len = 0;
    r->content_length = 0;
    r->has_content_length = 0;
    r->keep_alive = 0;
    r->expect_continue = 0;
    r->route = NULL;
    r->nparams = 0;
    r->status = 0;
    r->out_bytes = 0;
    r->responded = r->streaming = r->stream_done = 0;
    r->api = NULL;
    r->api_free = NULL;
    r->on_drain = NULL;
    r->user = NULL;
    r->log_workspace[0] = r->log_key[0] = '\0';
    r->id[0] = '\0';
}

static int fail(http_conn_t *hc, int status)
{
    if (!hc->error_status) hc->error_status = status;
    return HPE_USER;
}

/* ---- llhttp callbacks ---- */

static int cb_message_begin(llhttp_t *p)
{
    http_conn_t *hc = conn_of(p);
    http_req_t *r = &hc->req;
    req_reset(r);
    r->t0_ns = time_mono_ns();
    hc->in_message = 1;
    hc->hdr_state = 0;
    hc->hbytes = 0;
    hc->streaming_body = 0;
    hc->body_seen = 0;
    net_conn_set_deadline(hc->nc, hc->srv->cfg->header_timeout_ms);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *hc = conn_of(p);
    if (hc->req.url.len + n > hc->srv->cfg->url_bytes) return fail(hc, 414);
    /* a request-target is ASCII (RFC 3986: anything else is percent-encoded);
     * llhttp 8.1 lets raw 8-bit bytes through */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)at[i] >= 0x80) return fail(hc, 400);
    buf_add(&hc->req.url, at, n);
    return 0;
}

static int header_room(http_conn_t *hc, size_t n)
{
    hc->hbytes += n;
    return hc->hbytes <= hc->srv->cfg->header_bytes;
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *hc = conn_of(p);
    http_req_t *r = &hc->req;
    if (!header_room(hc, n)) return fail(hc, 431);
    if (hc->hdr_state != 1) {
        if (r->nhdr >= hc->srv->cfg->header_fields) return fail(hc, 431);
        if (r->nhdr == r->hdr_cap) {
            r->hdr_cap = r->hdr_cap ? r->hdr_cap * 2 : 16;
            r->hdr = xrealloc(r->hdr, r->hdr_cap * sizeof *r->hdr);
        }
        http_header_t *h = &r->hdr[r->nhdr++];
        h->name = (uint32_t)r->hbuf.len;
        h->name_len = 0;
        h->value = 0;
        h->value_len = 0;
        hc->hdr_state = 1;
    }
    buf_add(&r->hbuf, at, n);
    r->hdr[r->nhdr - 1].name_len += (uint32_t)n;
    return 0;
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *hc = conn_of(p);
    http_req_t *r = &hc->req;
    if (!header_room(hc, n)) return fail(hc, 431);
    http_header_t *h = &r->hdr[r->nhdr - 1];
    if (hc->hdr_state != 2) {
        h->value = (uint32_t)r->hbuf.len;
        hc->hdr_state = 2;
    }
    buf_add(&r->hbuf, at, n);
    h->value_len += (uint32_t)n;
    return 0;
}

static int ieq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn) return 0;
    for (size_t i = 0; i < an; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

/* 1 if a Connection header lists the token "close". llhttp 8.1 misses it when
 * followed by a tab ("close\t"), and would keep the connection open. */
static int conn_close_requested(const http_req_t *r)
{
    for (size_t i = 0; i < r->nhdr; i++) {
        const http_header_t *h = &r->hdr[i];
        if (!ieq(r->hbuf.p + h->name, h->name_len, "connection")) continue;
        const char *v = r->hbuf.p + h->value, *end = v + h->value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
                v++;
            const char *t = v;
            while (v < end && *v != ',')
                v++;
            const char *te = v;
            while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
                te--;
            if (ieq(t, (size_t)(te - t), "close")) return 1;
        }
    }
    return 0;
}

/* absolute-form "http://host/path?q" (RFC 9112 3.2.2: a server MUST accept
 * it): keeps only the path and query. 0, or -1 if url is not that form. */
static int absolute_to_origin(buf_t *url)
{
    size_t skip = 0;
    if (url->len >= 7 && ieq(url->p, 7, "http://"))
        skip = 7;
    else if (url->len >= 8 && ieq(url->p, 8, "https://"))
        skip = 8;
    else
        return -1;
    size_t i = skip;
    while (i < url->len && url->p[i] != '/' && url->p[i] != '?' && url->p[i] != '#')
        i++;
    if (i == skip) return -1; /* no host */
    size_t rest = url->len - i;
    if (i < url->len && url->p[i] == '/') {
        memmove(url->p, url->p + i, rest);
        url->len = rest;
    } else {
        url->p[0] = '/';
        memmove(url->p + 1, url->p + i, rest);
        url->len = rest + 1;
    }
    return 0;
}

static int cb_headers_complete(llhttp_t *p)
{
    http_conn_t *hc = conn_of(p);
    http_req_t *r = &hc->req;
    r->method = llhttp_get_method(p);
    r->http_minor = llhttp_get_http_minor(p);
    /* Upgrades (and CONNECT) are not offered: the request gets its ordinary
     * answer, which ends the connection (the bytes after it are in another
     * protocol). Said here, so an answer made at once closes too. */
    r->keep_alive = llhttp_should_keep_alive(p) && !conn_close_requested(r) && !p->upgrade;
    if (r->url.len && r->url.p[0] != '/') absolute_to_origin(&r->url);
    const char *q = memchr(r->url.p ? r->url.p : "", '?', r->url.len);
    r->path_len = q ? (size_t)(q - r->url.p) : r->url.len;
    if (r->url.len == 0 || r->url.p[0] != '/') return fail(hc, 400);
    /* llhttp 8.1 lets an empty Transfer-Encoding pass beside Content-Length:
     * two framings is a smuggling vector whatever the values (RFC 9112 6.1) */
    if ((p->flags & F_CONTENT_LENGTH) && http_req_header(r, "transfer-encoding", NULL))
        return fail(hc, 400);
    /* Route now: a streamed body needs its handler before the body comes. */
    http_route_match(hc->srv, r);
    const http_route_t *rt = r->route;
    size_t limit = rt && (rt->flags & HTTP_STREAM_BODY) ? hc->srv->cfg->stream_body_bytes
                                                        : hc->srv->cfg->body_bytes;
    if (p->flags & F_CONTENT_LENGTH) {
        r->has_content_length = 1;
        r->content_length = p->content_length;
        /* Refuse before reading a byte of it. */
        if (r->content_length > limit) return fail(hc, 413);
    }
    size_t vl;
    const char *ex = http_req_header(r, "expect", &vl);
    if (ex) {
        if (!ieq(ex, vl, "100-continue")) return fail(hc, 417);
        r->expect_continue = 1;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        net_conn_send(hc->nc, cont, sizeof cont - 1);
        net_conn_flush(hc->nc);
    }
    net_conn_set_deadline(hc->nc, hc->srv->cfg->body_timeout_ms);
    if (rt && (rt->flags & HTTP_STREAM_BODY) && r->method != HTTP_M_GET &&
        r->method != HTTP_M_HEAD) {
        hc->streaming_body = 1;
        /* Authenticate before accepting a potentially huge body. */
        if (http_dispatch_begin(hc) != 0) return fail(hc, 0);
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n)
{
    http_conn_t *hc = conn_of(p);
    http_req_t *r = &hc->req;
    if (hc->streaming_body) {
        hc->body_seen += n;
        /* a long upload is fine while it keeps moving: the deadline is for
         * inactivity, counted from the last chunk */
        if (!hc->body_paused) net_conn_set_deadline(hc->nc, hc->srv->cfg->body_timeout_ms);
        if (hc->body_seen > hc->srv->cfg->stream_body_bytes) return fail(hc, 413);
        if (r->responded) {
            /* answered early (refused): read and drop the rest, so the client
             * sees the answer and the connection lives on; a big rest is not
             * worth reading, the connection closes instead */
            if (hc->body_seen > hc->srv->cfg->body_bytes) return fail(hc, 0);
            return 0;
        }
        int st = r->route->on_body(r, at, n);
        if (st) return fail(hc, 0);
        return 0;
    }
    if (r->body.len + n > hc->srv->cfg->body_bytes) return fail(hc, 413);
    buf_add(&r->body, at, n);
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    http_conn_t *hc = conn_of(p);
    hc->in_message = 0;
    hc->head_scan = HS_START; /* the next message's header section */
    net_conn_set_deadline(hc->nc, 0);
    if (hc->streaming_body && hc->req.responded) {
        /* the end of a body we refused and dropped: on to the next request */
        net_conn_set_deadline(hc->nc, hc->srv->cfg->idle_timeout_ms);
        return HPE_PAUSED;
    }
    http_dispatch(hc); /* marks the connection busy until the answer */
    /* One request at a time: the rest waits until this one is answered. */
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ---- driving the parser ---- */

/* llhttp 8.1 takes a CR followed by any byte as a line end ("\r\rZ", "x:\rT")
 * and joins a line starting with whitespace to the previous value (obs-fold),
 * and takes an empty header name: each lets a proxy in front and this server
 * see different requests (request smuggling). So the header section is
 * checked on the raw bytes before the parser sees them: every line ends in
 * CRLF, and no header line starts with whitespace (RFC 9112 5.2 allows 400)
 * or ':'. The check runs from a message's first byte to its empty line. */
static int head_scan(http_conn_t *hc, const char *d, size_t n)
{
    int s = hc->head_scan;
    for (size_t i = 0; i < n && s != HS_DONE; i++) {
        char c = d[i];
        switch (s) {
        case HS_START: /* empty lines before a request line are ignored */
            s = c == '\r' ? HS_START_CR : c == '\n' ? HS_START : HS_LINE;
            break;
        case HS_START_CR:
            if (c != '\n') return -1;
            s = HS_START;
            break;
        case HS_LINE:
            if (c == '\n') return -1;
            if (c == '\r') s = HS_CR;
            break;
        case HS_CR:
            if (c != '\n') return -1;
            s = HS_BOL;
            break;
        case HS_BOL:
            if (c == ' ' || c == '\t' || c == ':' || c == '\n') return -1;
            s = c == '\r' ? HS_END_CR : HS_LINE;
            break;
        case HS_END_CR:
            if (c != '\n') return -1;
            s = HS_DONE;
            break;
        }
    }
    hc->head_scan = s;
    return 0;
}

static void conn_error(http_conn_t *hc, int status, const char *detail)
{
    http_req_t *r = &hc->req;
    hc->close_after = 1;
    if (r->responded || hc->nc == NULL) {
        if (hc->nc) net_conn_close(hc->nc, 1);
        return;
    }
    if (r->t0_ns == 0) r->t0_ns = time_mono_ns();
    r->keep_alive = 0;
    http_conn_set_busy(hc);
    http_respond_problem(r, status, status == 400 ? "bad-request" : "limit", detail, NULL);
}

/* Whether input may be parsed now: not while a request waits for its answer
 * (the next one must wait), except the body of a streamed request, which is
 * still arriving while its handler works. */
static int can_parse(const http_conn_t *hc)
{
    return !hc->busy || (hc->streaming_body && hc->in_message);
}

/* Parses data; returns the number of bytes consumed (the rest waits). */
static size_t conn_parse(http_conn_t *hc, const char *data, size_t n)
{
    size_t off = 0;
    while (off < n && can_parse(hc) && !hc->close_after && hc->nc) {
        if (hc->head_scan != HS_DONE && head_scan(hc, data + off, n - off) != 0) {
            if (!hc->in_message) req_reset(&hc->req); /* not the answered one's */
            conn_error(hc, 400,
                       "malformed request: a bare CR or LF, or a folded or "
                       "nameless header line");
            return n;
        }
        llhttp_errno_t e = llhttp_execute(&hc->parser, data + off, n - off);
        if (e == HPE_OK) return n;
        if (e == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&hc->parser);
            off = pos ? (size_t)(pos - data) : n;
            llhttp_resume(&hc->parser);
            continue;
        }
        if (e == HPE_PAUSED_UPGRADE) {
            /* Upgrades (WebSocket, h2c) are not offered: the request got its
             * ordinary answer; end the connection after it. */
            hc->close_after = 1;
            return n;
        }
        int st = hc->error_status;
        if (st == 0 && hc->req.responded) {
            /* refused by the handler while streaming: it answered already */
            hc->close_after = 1;
            if (!hc->busy) net_conn_close(hc->nc, 1);
            return n;
        }
        char detail[256];
        if (st)
            snprintf(detail, sizeof detail, "%s",
                     st == 414   ? "request line too long"
                     : st == 431 ? "headers too large or too many"
                     : st == 413 ? "body too large"
                     : st == 417 ? "unsupported Expect"
                                 : "malformed request");
        else
            snprintf(detail, sizeof detail, "malformed request: %s",
                     llhttp_get_error_reason(&hc->parser));
        conn_error(hc, st ? st : 400, detail);
        return n;
    }
    return off;
}

/* Feeds data after whatever is waiting; called when input arrives and when an
 * answer frees the connection for the next pipelined request. */
static void conn_feed(http_conn_t *hc, const char *data, size_t n)
{
    if (hc->in.len) {
        buf_add(&hc->in, data, n);
        if (!can_parse(hc)) return;
        buf_t in = hc->in;
        buf_init(&hc->in);
        size_t used = conn_parse(hc, in.p, in.len);
        if (used < in.len) buf_add(&hc->in, in.p + used, in.len - used);
        buf_free(&in);
    } else {
        size_t used = can_parse(hc) ? conn_parse(hc, data, n) : 0;
        if (used < n) buf_add(&hc->in, data + used, n - used);
    }
    /* Never hold more than one request's worth of pipelined input. */
    if (hc->in.len > hc->srv->cfg->header_bytes + hc->srv->cfg->url_bytes + 65536 && hc->nc)
        net_conn_pause(hc->nc);
}

static int app_on_open(net_conn_t *nc)
{
    http_server_t *s = nc->loop->app_ctx;
    http_conn_t *hc = xcalloc(1, sizeof *hc);
    hc->nc = nc;
    hc->srv = s;
    hc->req.srv = s;
    hc->req.conn = hc;
    hc->loop = http_loop_of(nc->loop);
    llhttp_init(&hc->parser, HTTP_REQUEST, &settings);
    hc->parser.data = hc;
    nc->app = hc;
    net_conn_set_deadline(nc, s->cfg->header_timeout_ms);
    http_loop_of(nc->loop)->nconns++;
    return 0;
}

static int app_on_data(net_conn_t *nc, const char *data, size_t n)
{
    http_conn_t *hc = nc->app;
    if (!hc->in_message && !hc->busy && hc->in.len == 0)
        net_conn_set_deadline(nc, s_header_deadline(hc));
    conn_feed(hc, data, n);
    return 0;
}

static void app_on_drain(net_conn_t *nc)
{
    http_conn_t *hc = nc->app;
    if (hc->busy && hc->req.streaming && hc->req.on_drain) hc->req.on_drain(&hc->req);
}

static void conn_free(http_conn_t *hc)
{
    http_req_t *r = &hc->req;
    if (r->api_free) r->api_free(r);
    buf_free(&r->url);
    buf_free(&r->hbuf);
    buf_free(&r->body);
    free(r->hdr);
    buf_free(&hc->in);
    free(hc);
}

static void app_on_close(net_conn_t *nc)
{
    http_conn_t *hc = nc->app;
    if (!hc) return;
    http_loop_of(nc->loop)->nconns--;
    hc->nc = NULL;
    nc->app = NULL;
    /* An answer still being prepared (a commit in flight) finds conn gone and
     * frees it; otherwise free now. */
    if (hc->busy && !hc->req.responded) {
        hc->orphaned = 1;
        hc->loop->busy--;
        hc->loop->orphans++;
        return;
    }
    if (hc->busy) hc->loop->busy--;
    conn_free(hc);
}

static void app_on_timeout(net_conn_t *nc)
{
    http_conn_t *hc = nc->app;
    if (hc && hc->in_message && !hc->busy) {
        conn_error(hc, 408, "the request took too long to arrive");
        return;
    }
    net_conn_close(nc, 0);
}

uint32_t s_header_deadline(const http_conn_t *hc)
{
    return hc->srv->cfg->header_timeout_ms;
}

void http_conn_answered(http_conn_t *hc)
{
    /* Called once the answer to the current request is fully queued. */
    http_req_t *r = &hc->req;
    if (hc->orphaned) {
        hc->loop->orphans--;
        conn_free(hc);
        return;
    }
    if (r->api_free) {
        r->api_free(r);
        r->api_free = NULL;
    }
    if (hc->busy) {
        hc->busy = 0;
        hc->loop->busy--;
    }
    /* A refused streamed body may still be arriving: the parser drops it (see
     * cb_body) and the connection goes on after it. */
    if (!r->keep_alive || hc->close_after || hc->draining) {
        net_conn_close(hc->nc, 1);
        return;
    }
    net_conn_set_deadline(hc->nc, hc->srv->cfg->idle_timeout_ms);
    net_conn_resume(hc->nc);
    if (hc->in.len) conn_feed(hc, "", 0);
    if (hc->nc) net_conn_flush(hc->nc);
}

size_t http_loop_busy(net_loop_t *l)
{
    return http_loop_of(l)->busy;
}

void http_loop_drain(net_loop_t *l)
{
    http_loop_t *hl = http_loop_of(l);
    hl->draining = 1;
    for (net_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        http_conn_t *hc = c->app;
        if (!hc) continue;
        hc->draining = 1;
        if (!hc->busy && !hc->in_message) net_conn_close(c, 1);
        /* a busy one closes after its answer (http_conn_answered); a stream
         * learns through its on_drain (the answer ends it) */
        else if (hc->busy && hc->req.streaming && hc->req.on_drain)
            hc->req.on_drain(&hc->req);
    }
}

void http_server_init(http_server_t *s, const config_t *cfg, const http_route_t *routes,
                      size_t nroutes, const http_hooks_t *hooks)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->routes = routes;
    s->nroutes = nroutes;
    if (hooks) s->hooks = *hooks;
    s->app.on_open = app_on_open;
    s->app.on_data = app_on_data;
    s->app.on_drain = app_on_drain;
    s->app.on_close = app_on_close;
    s->app.on_timeout = app_on_timeout;
}
