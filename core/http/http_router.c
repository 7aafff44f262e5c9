/*
 * http_router: matching requests to routes, and reading the query string.
 */
#include "http/http_int.h"

#include "base/log.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes); plus_space for query strings.
 * Returns the length, or -1 on a bad escape, a NUL, or overflow. */
static long pct_decode(const char *s, size_t n, char *out, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            c = (char)(h * 16 + l);
            if (c == '\0') return -1;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Matches pattern against path; fills params. 1 on a match. */
static int match_path(const char *pat, const char *path, size_t plen, http_req_t *r)
{
    int np = 0;
    size_t i = 0;
    const char *p = pat;
    while (*p) {
        if (*p != '/' || i >= plen || path[i] != '/') return 0;
        p++;
        i++;
        const char *pe = strchr(p, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t j = i;
        while (j < plen && path[j] != '/')
            j++;
        size_t sl = j - i;
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (sl == 0 || np >= HTTP_PARAMS_MAX) return 0;
            if (pct_decode(path + i, sl, r->params[np], HTTP_PARAM_MAX, 0) < 0) return 0;
            np++;
        } else if (sl != pl || memcmp(p, path + i, pl) != 0) {
            return 0;
        }
        p += pl;
        i = j;
    }
    if (i != plen) return 0;
    r->nparams = np;
    return 1;
}

void http_route_match(http_server_t *s, http_req_t *r)
{
    const char *path = r->url.p;
    size_t plen = r->path_len;
    int method = r->method == HTTP_M_HEAD ? HTTP_M_GET : r->method;
    int path_matched = 0;
    r->route = NULL;
    /* Literal routes are listed before parameterised ones in the table, so the
     * first match is the most specific. */
    for (size_t i = 0; i < s->nroutes; i++) {
        const http_route_t *rt = &s->routes[i];
        if (!match_path(rt->pattern, path, plen, r)) continue;
        path_matched = 1;
        if (rt->method == method) {
            r->route = rt;
            return;
        }
    }
    r->nparams = 0;
    r->status = path_matched ? 405 : 404;
}

const char *http_req_header(const http_req_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->nhdr; i++) {
        const http_header_t *h = &r->hdr[i];
        if (h->name_len != nl) continue;
        const char *hn = r->hbuf.p + h->name;
        size_t k;
        for (k = 0; k < nl; k++) {
            char a = hn[k], b = name[k];
            if (a >= 'A' && a <= 'Z') a = (char)(a + 32);
            if (b >= 'A' && b <= 'Z') b = (char)(b + 32);
            if (a != b) break;
        }
        if (k == nl) {
            if (len) *len = h->value_len;
            return r->hbuf.p + h->value;
        }
    }
    return NULL;
}

int http_req_query_next(const http_req_t *r, size_t *pos, char *name, size_t ncap, char *val,
                        size_t vcap)
{
    const char *u = r->url.p;
    size_t end = r->url.len, i = *pos;
    if (i == 0) i = r->path_len + 1; /* past '?' */
    while (i < end) {
        size_t j = i;
        while (j < end && u[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(u + i, '=', j - i);
            size_t kl = eq ? (size_t)(eq - (u + i)) : j - i;
            *pos = j + 1;
            if (pct_decode(u + i, kl, name, ncap, 1) < 0) return -1;
            if (eq) {
                if (pct_decode(eq + 1, (size_t)(u + j - eq - 1), val, vcap, 1) < 0) return -1;
            } else {
                val[0] = '\0';
            }
            return 1;
        }
        i = j + 1;
    }
    *pos = end + 1;
    return 0;
}

int http_req_query(const http_req_t *r, const char *name, char *out, size_t cap)
{
    size_t pos = 0;
    char n[128];
    int rc;
    while ((rc = http_req_query_next(r, &pos, n, sizeof n, out, cap)) != 0) {
        if (rc < 0) continue;
        if (strcmp(n, name) == 0) return 1;
    }
    if (cap) out[0] = '\0';
    return 0;
}

void http_req_path_shown(const http_req_t *r, buf_t *out)
{
    const char *p = r->url.p ? r->url.p : "";
    size_t n = r->path_len;
    for (size_t i = 0; r->srv && i < r->srv->nroutes; i++) {
        const http_route_t *rt = &r->srv->routes[i];
        if (!(rt->flags & HTTP_KEY_IN_PATH)) continue;
        const char *brace = strchr(rt->pattern, '{');
        size_t pl = brace ? (size_t)(brace - rt->pattern) : 0;
        if (pl == 0 || n < pl || memcmp(p, rt->pattern, pl) != 0) continue;
        const char *seg_end = memchr(p + pl, '/', n - pl);
        buf_add(out, p, pl);
        buf_adds(out, "{key}");
        if (seg_end) buf_add(out, seg_end, n - (size_t)(seg_end - p));
        return;
    }
    buf_add(out, p, n);
}
