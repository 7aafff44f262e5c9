/*
 * http_response: answers — whole, problem+json, or streamed (chunked) — and
 * dispatching requests to handlers.
 */
#include "http/http_int.h"

#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/rand.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PROBLEM_BASE "https://kith.dev/problems/"

const char *http_status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

const char *http_method_name(int m)
{
    return llhttp_method_name((llhttp_method_t)m);
}

static const char *loop_date(http_loop_t *l)
{
    int64_t now = time_now_us() / 1000000;
    if (now != l->date_sec) {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(l->date, sizeof l->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        l->date_sec = now;
    }
    return l->date;
}

/* Status line and common headers into b. len: >= 0 Content-Length, -1
 * chunked, -2 no body at all (204, 304). */
static void head(buf_t *b, http_req_t *r, http_loop_t *l, int status, const char *ctype,
                 long long len, const char *headers)
{
    buf_addf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: kith\r\nX-Request-Id: %s\r\n", status,
             http_status_text(status), loop_date(l), r->id);
    if (ctype) buf_addf(b, "Content-Type: %s\r\n", ctype);
    if (len >= 0)
        buf_addf(b, "Content-Length: %lld\r\n", len);
    else if (len == -1)
        buf_adds(b, "Transfer-Encoding: chunked\r\n");
    if (headers) buf_adds(b, headers);
    if (!r->keep_alive || (r->conn && (r->conn->close_after || r->conn->draining)))
        buf_adds(b, "Connection: close\r\n");
    else if (r->http_minor == 0)
        buf_adds(b, "Connection: keep-alive\r\n");
    buf_adds(b, "\r\n");
}

int http_req_gone(const http_req_t *r)
{
    return !r->conn || !r->conn->nc || r->conn->orphaned;
}

static void finish(http_req_t *r)
{
    http_conn_t *hc = r->conn;
    if (r->srv->hooks.after) r->srv->hooks.after(r);
    if (hc) http_conn_answered(hc);
}

void http_respond(http_req_t *r, int status, const char *ctype, const char *body, size_t len,
                  const char *headers)
{
    if (r->responded) {
        log_error("http", "request %s answered twice (second: %d)", r->id, status);
        return;
    }
    r->responded = 1;
    r->status = status;
    r->out_bytes = len;
    http_conn_t *hc = r->conn;
    if (hc && hc->nc && !hc->orphaned) {
        http_loop_t *l = http_loop_of(hc->nc->loop);
        buf_t *b = &l->scratch;
        buf_reset(b);
        int empty = status == 204 || status == 304;
        head(b, r, l, status, empty ? NULL : ctype, empty ? -2 : (long long)len, headers);
        if (!empty && r->method != HTTP_M_HEAD && len) buf_add(b, body, len);
        net_conn_send(hc->nc, b->p, b->len);
        if (b->cap > 1 << 20) buf_free(b);
    }
    finish(r);
}

void http_respond_json(http_req_t *r, int status, const json_t *body, const char *headers)
{
    buf_t b = BUF_INIT;
    json_write_value(&b, body);
    http_respond(r, status, "application/json", b.p, b.len, headers);
    buf_free(&b);
}

void http_respond_problem(http_req_t *r, int status, const char *type, const char *detail,
                          const json_t *extra)
{
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"type\":");
    char t[160];
    snprintf(t, sizeof t, "%s%s", PROBLEM_BASE, type);
    json_write_cstr(&b, t);
    buf_adds(&b, ",\"title\":");
    json_write_cstr(&b, http_status_text(status));
    buf_addf(&b, ",\"status\":%d,\"detail\":", status);
    json_write_cstr(&b, detail ? detail : http_status_text(status));
    buf_adds(&b, ",\"instance\":");
    buf_t path = BUF_INIT;
    http_req_path_shown(r, &path); /* never a key */
    json_write_str(&b, path.p ? path.p : "", path.len); /* raw bytes: made UTF-8 */
    buf_free(&path);
    buf_adds(&b, ",\"request_id\":");
    json_write_cstr(&b, r->id);
    if (extra) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)extra, k, v)
        {
            buf_addc(&b, ',');
            json_write_cstr(&b, k);
            buf_addc(&b, ':');
            json_write_value(&b, v);
        }
    }
    buf_addc(&b, '}');
    const char *hdrs = NULL;
    char allow[128];
    if (status == 405 && extra && json_is_string(json_object_get(extra, "allow"))) {
        snprintf(allow, sizeof allow, "Allow: %s\r\n",
                 json_string_value(json_object_get(extra, "allow")));
        hdrs = allow;
    } else if (status == 401) {
        hdrs = "WWW-Authenticate: Bearer realm=\"kith\"\r\n";
    }
    http_respond(r, status, "application/problem+json", b.p, b.len, hdrs);
    buf_free(&b);
}

/* ---- streaming ---- */

void http_stream_begin(http_req_t *r, int status, const char *ctype, const char *headers)
{
    r->streaming = 1;
    r->status = status;
    http_conn_t *hc = r->conn;
    if (!hc || !hc->nc || hc->orphaned) return;
    http_loop_t *l = http_loop_of(hc->nc->loop);
    buf_t *b = &l->scratch;
    buf_reset(b);
    head(b, r, l, status, ctype, -1, headers);
    net_conn_send(hc->nc, b->p, b->len);
    net_conn_flush(hc->nc);
}

int http_stream_write(http_req_t *r, const char *data, size_t n)
{
    http_conn_t *hc = r->conn;
    if (!hc || !hc->nc || hc->orphaned) return KITH_ESHUTDOWN;
    if (n == 0) return 0;
    if (r->method == HTTP_M_HEAD) return 0;
    char sz[24];
    int k = snprintf(sz, sizeof sz, "%zx\r\n", n);
    net_conn_send(hc->nc, sz, (size_t)k);
    net_conn_send(hc->nc, data, n);
    net_conn_send(hc->nc, "\r\n", 2);
    r->out_bytes += n;
    net_conn_flush(hc->nc);
    return 0;
}

void http_stream_end(http_req_t *r)
{
    if (r->responded) return;
    r->responded = 1;
    r->stream_done = 1;
    http_conn_t *hc = r->conn;
    if (hc && hc->nc && !hc->orphaned && r->method != HTTP_M_HEAD)
        net_conn_send(hc->nc, "0\r\n\r\n", 5);
    finish(r);
}

size_t http_stream_pending(const http_req_t *r)
{
    http_conn_t *hc = r->conn;
    return hc && hc->nc ? net_conn_pending(hc->nc) : 0;
}

void http_req_pause_body(http_req_t *r)
{
    http_conn_t *hc = r->conn;
    if (!hc || !hc->nc) return;
    hc->body_paused = 1;
    net_conn_set_deadline(hc->nc, 0);
    net_conn_pause(hc->nc);
}

void http_req_resume_body(http_req_t *r)
{
    http_conn_t *hc = r->conn;
    if (!hc || !hc->nc || !hc->body_paused) return;
    hc->body_paused = 0;
    if (hc->in_message) net_conn_set_deadline(hc->nc, hc->srv->cfg->body_timeout_ms);
    net_conn_resume(hc->nc);
}

/* ---- dispatch ---- */

static void new_request_id(http_req_t *r)
{
    size_t n;
    const char *given = http_req_header(r, "x-request-id", &n);
    if (given && n > 0 && n < sizeof r->id) {
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            char c = given[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.'))
                ok = 0;
        }
        if (ok) {
            memcpy(r->id, given, n);
            r->id[n] = '\0';
            return;
        }
    }
    static const char alpha[] = "0123456789abcdefghjkmnpqrstvwxyz";
    uint8_t raw[12];
    rand_bytes(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        r->id[i] = alpha[raw[i] & 31];
    r->id[sizeof raw] = '\0';
}

void http_conn_set_busy(http_conn_t *hc)
{
    if (hc->busy) return;
    hc->busy = 1;
    http_loop_of(hc->nc->loop)->busy++;
    if (!hc->req.id[0]) new_request_id(&hc->req);
}

static int route_gate(http_conn_t *hc)
{
    http_req_t *r = &hc->req;
    http_conn_set_busy(hc);
    if (!r->route) {
        if (r->status == 405) {
            /* name the methods that would work on this path */
            char allow[96] = "";
            int meths[] = {HTTP_M_GET, HTTP_M_POST, HTTP_M_PUT, HTTP_M_PATCH, HTTP_M_DELETE};
            http_req_t probe = *r;
            for (size_t i = 0; i < sizeof meths / sizeof *meths; i++) {
                probe.method = meths[i];
                http_route_match(hc->srv, &probe);
                if (probe.route) {
                    if (allow[0]) strcat(allow, ", ");
                    strcat(allow, http_method_name(meths[i]));
                }
            }
            json_t *x = json_pack("{s:s}", "allow", allow);
            http_respond_problem(r, 405, "method-not-allowed",
                                 "this path does not take that method", x);
            json_decref(x);
        } else {
            http_respond_problem(r, 404, "not-found", "no such route", NULL);
        }
        return 1;
    }
    if (hc->srv->hooks.before && hc->srv->hooks.before(r) != 0) return 1;
    return 0;
}

int http_dispatch_begin(http_conn_t *hc)
{
    return route_gate(hc);
}

void http_dispatch(http_conn_t *hc)
{
    http_req_t *r = &hc->req;
    if (hc->streaming_body) {
        if (!r->responded) r->route->fn(r);
        return;
    }
    if (route_gate(hc)) return;
    r->route->fn(r);
}
