/*
 * api_stream: GET /v1/changes/stream — the change log as Server-Sent Events.
 *
 *   id: <seq>
 *   event: change
 *   data: {"seq":..,"time":..,"op":..,"collection":..,"id":..,"version":..,"changed":[..]}
 *
 * A client resumes with Last-Event-ID (or ?after=SEQ). Each loop polls its
 * streams' workspaces every 50 ms while it has streams (one read of the log's
 * last sequence per workspace when idle), sends a comment every 15 s to keep
 * proxies from closing the connection, and ends every stream when draining.
 */
#include "api/api_int.h"

#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_TICK_MS   50
#define SSE_PING_MS   15000
#define SSE_HIGH_MARK (1024 * 1024)
#define SSE_BATCH     500

typedef struct sse {
    http_req_t *r;
    api_ws_t *ws;
    uint64_t after;
    uint64_t last_sent_ms;
    char token[AUTH_TOKEN_LEN + 1]; /* re-checked when keys or roles change */
    uint64_t gen;
    struct sse *next;
} sse_t;

typedef struct sse_loop {
    uv_timer_t timer;
    sse_t *streams;
    int timer_on;
} sse_loop_t;

static sse_loop_t *sse_loop(api_loop_t *lp)
{
    return lp->sse;
}

typedef struct emit {
    http_req_t *r;
    buf_t out;
    uint64_t last;
} emit_t;

static int emit_change(void *ctx, const store_change_t *ch)
{
    emit_t *e = ctx;
    e->last = ch->seq;
    if (!api_change_visible(e->r, ch->coll)) return 0;
    buf_addf(&e->out, "id: %llu\nevent: change\ndata: ", (unsigned long long)ch->seq);
    store_change_render(&e->out, ch);
    buf_adds(&e->out, "\n\n");
    return 0;
}

static void sse_end(sse_t *s)
{
    http_req_t *r = s->r;
    r->on_drain = NULL;
    http_stream_end(r);
}

static void on_tick(uv_timer_t *t)
{
    api_loop_t *lp = t->data;
    sse_loop_t *sl = sse_loop(lp);
    uint64_t now = uv_now(t->loop);
    sse_t **pp = &sl->streams;
    while (*pp) {
        sse_t *s = *pp;
        uint64_t gen = atomic_load(&lp->srv->gen);
        int revoked = 0;
        if (gen != s->gen) { /* a key or role changed: is ours still good? */
            s->gen = gen;
            revoked = !api_key_valid(lp, s->token, strlen(s->token), api_req(s->r)->role->name);
        }
        if (http_req_gone(s->r) || lp->hl->draining || revoked) {
            *pp = s->next;
            sse_end(s);
            free(s);
            continue;
        }
        pp = &s->next;
        if (http_stream_pending(s->r) > SSE_HIGH_MARK) continue; /* a slow reader */
        store_rtxn_t *rt;
        if (store_read_begin(s->ws->st, &rt) != 0) continue;
        emit_t e = {.r = s->r, .last = s->after};
        if (store_changes_last(rt) > s->after)
            store_changes(rt, s->after, SSE_BATCH, emit_change, &e);
        store_read_end(rt);
        s->after = e.last;
        if (e.out.len) {
            http_stream_write(s->r, e.out.p, e.out.len);
            s->last_sent_ms = now;
        } else if (now - s->last_sent_ms >= SSE_PING_MS) {
            http_stream_write(s->r, ": ping\n\n", 8);
            s->last_sent_ms = now;
        }
        buf_free(&e.out);
    }
    if (!sl->streams) {
        uv_timer_stop(&sl->timer);
        sl->timer_on = 0;
    }
}

void api_stream_loop_init(api_loop_t *lp)
{
    sse_loop_t *sl = xcalloc(1, sizeof *sl);
    uv_timer_init(&lp->hl->net.loop, &sl->timer);
    sl->timer.data = lp;
    lp->sse = sl;
}

static void sse_closed(uv_handle_t *h)
{
    free(h->data); /* the sse_loop_t: the api loop may be gone already */
}

void api_stream_loop_close(api_loop_t *lp)
{
    sse_loop_t *sl = sse_loop(lp);
    while (sl->streams) {
        sse_t *s = sl->streams;
        sl->streams = s->next;
        sse_end(s);
        free(s);
    }
    uv_timer_stop(&sl->timer);
    sl->timer.data = sl;
    lp->sse = NULL;
    uv_close((uv_handle_t *)&sl->timer, sse_closed);
}

static void sse_on_drain(http_req_t *r)
{
    (void)r; /* the next tick sends more; draining is noticed there too */
}

void api_h_changes_stream(http_req_t *r)
{
    api_req_t *q = api_req(r);
    uint64_t after = 0;
    char v[32] = "";
    size_t n;
    const char *last = http_req_header(r, "last-event-id", &n);
    if (last && n && n < sizeof v) {
        memcpy(v, last, n);
        v[n] = '\0';
    } else {
        http_req_query(r, "after", v, sizeof v);
    }
    if (v[0]) {
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || v[0] == '-') {
            http_respond_problem(r, 400, "invalid", "Last-Event-ID / after: a sequence number",
                                 NULL);
            return;
        }
        after = x;
    }
    sse_t *s = xcalloc(1, sizeof *s);
    s->r = r;
    s->ws = q->ws;
    s->after = after;
    s->gen = atomic_load(&q->srv->gen);
    size_t tl;
    const char *auth = http_req_header(r, "authorization", &tl);
    while (auth && tl && auth[tl - 1] == ' ')
        tl--;
    if (auth && tl >= 7 + AUTH_TOKEN_LEN)
        memcpy(s->token, auth + tl - AUTH_TOKEN_LEN, AUTH_TOKEN_LEN);
    s->last_sent_ms = uv_now(&q->lp->hl->net.loop);
    sse_loop_t *sl = sse_loop(q->lp);
    s->next = sl->streams;
    sl->streams = s;
    http_stream_begin(r, 200, "text/event-stream",
                      "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n");
    r->on_drain = sse_on_drain;
    http_stream_write(r, ": kith change stream\n\n", 22);
    if (!sl->timer_on) {
        sl->timer_on = 1;
        uv_timer_start(&sl->timer, on_tick, 0, SSE_TICK_MS);
    }
}
