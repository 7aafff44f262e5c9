/*
 * net_loop: listening sockets and connections.
 */
#include "net/net.h"

#include "base/err.h"
#include "base/log.h"
#include "base/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SWEEP_MS    1000
#define WOUT_SHRINK 65536 /* free output buffers larger than this once written */

static int plain_on_wire(net_conn_t *c, const char *data, size_t n)
{
    return net_conn_deliver(c, data, n);
}

static int plain_send(net_conn_t *c, const char *data, size_t n)
{
    net_conn_queue_wire(c, data, n);
    return 0;
}

const net_transport_t net_transport_plain = {
    .name = "plain",
    .on_wire = plain_on_wire,
    .send = plain_send,
};

/* ---- connections ---- */

static void conn_unlink(net_conn_t *c)
{
    net_loop_t *l = c->loop;
    if (c->prev)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    l->nconns--;
}

static void conn_on_closed(uv_handle_t *h)
{
    net_conn_t *c = h->data;
    net_loop_t *l = c->loop;
    if (l->app->on_close) l->app->on_close(c);
    if (c->tr && c->tr->free) c->tr->free(c);
    buf_free(&c->wout);
    buf_free(&c->wflight);
    l->stats.open--;
    free(c);
}

static void conn_close_now(net_conn_t *c)
{
    if (c->closed) return;
    c->closed = 1;
    conn_unlink(c);
    uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

/* A write finished. notify: tell the application its output drained — only
 * from libuv's callback, never from inside net_conn_flush, so an application
 * writing in a loop is not re-entered by its own write. */
static void write_done(net_conn_t *c, int status, int notify)
{
    c->writing = 0;
    c->loop->stats.bytes_out += c->wflight.len;
    if (c->wflight.cap > WOUT_SHRINK)
        buf_free(&c->wflight);
    else
        buf_reset(&c->wflight);
    if (status < 0 || c->closed) {
        conn_close_now(c);
        return;
    }
    if (c->wout.len) {
        net_conn_flush(c);
        return;
    }
    if (c->closing) {
        conn_close_now(c);
        return;
    }
    if (notify && c->loop->app->on_drain) c->loop->app->on_drain(c);
}

static void conn_on_written(uv_write_t *w, int status)
{
    write_done(w->data, status, 1);
}

void net_conn_flush(net_conn_t *c)
{
    if (c->writing || c->closed || c->wout.len == 0) return;
    /* Swap buffers: what is queued goes out, new output queues behind it. */
    buf_t t = c->wflight;
    c->wflight = c->wout;
    c->wout = t;
    buf_reset(&c->wout);
    uv_buf_t b = uv_buf_init(c->wflight.p, (unsigned)c->wflight.len);
    /* Most responses fit the socket buffer: try without a round trip. */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len) {
        c->writing = 1;
        write_done(c, 0, 0);
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
        c->loop->stats.bytes_out += (size_t)n;
        memmove(c->wflight.p, c->wflight.p + n, c->wflight.len - (size_t)n);
        c->wflight.len -= (size_t)n;
        b.base = c->wflight.p;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
        conn_close_now(c);
        return;
    }
    c->writing = 1;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, conn_on_written) != 0) {
        c->writing = 0;
        conn_close_now(c);
    }
}

void net_conn_queue_wire(net_conn_t *c, const char *data, size_t n)
{
    buf_add(&c->wout, data, n);
}

int net_conn_deliver(net_conn_t *c, const char *data, size_t n)
{
    return c->loop->app->on_data(c, data, n);
}

int net_conn_send(net_conn_t *c, const char *data, size_t n)
{
    if (c->closed) return KITH_ESHUTDOWN;
    return c->tr->send(c, data, n);
}

void net_conn_close(net_conn_t *c, int graceful)
{
    if (c->closed) return;
    if (!graceful) {
        conn_close_now(c);
        return;
    }
    if (!c->closing) {
        c->closing = 1;
        if (c->tr->shutdown) c->tr->shutdown(c);
        net_conn_pause(c);
    }
    if (!c->writing && c->wout.len == 0)
        conn_close_now(c);
    else
        net_conn_flush(c);
}

size_t net_conn_pending(const net_conn_t *c)
{
    return c->wout.len + c->wflight.len;
}

void net_conn_set_deadline(net_conn_t *c, uint32_t ms)
{
    c->deadline_ms = ms ? uv_now(&c->loop->loop) + ms : 0;
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    net_conn_t *c = h->data;
    net_loop_t *l = c->loop;
    /* One buffer per loop: a read callback consumes its data before returning. */
    if (l->rbuf_busy) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    l->rbuf_busy = 1;
    b->base = l->rbuf;
    b->len = sizeof l->rbuf;
}

static void conn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    net_conn_t *c = s->data;
    net_loop_t *l = c->loop;
    if (b->base == l->rbuf) l->rbuf_busy = 0;
    if (n == 0) return;
    if (n < 0) {
        /* EOF or error: nothing more will come; finish what is queued. */
        if (n == UV_EOF && !c->closed)
            net_conn_close(c, 1);
        else
            conn_close_now(c);
        return;
    }
    l->stats.bytes_in += (size_t)n;
    if (c->closing) return;
    if (c->tr->on_wire(c, b->base, (size_t)n) != 0) {
        net_conn_close(c, 1);
        return;
    }
    net_conn_flush(c);
}

void net_conn_pause(net_conn_t *c)
{
    if (c->reading && !c->closed) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

void net_conn_resume(net_conn_t *c)
{
    if (!c->reading && !c->closed && !c->closing) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_on_read) == 0) c->reading = 1;
    }
}

static void on_connection(uv_stream_t *srv, int status)
{
    net_loop_t *l = srv->data;
    if (status < 0) return;
    net_conn_t *c = xcalloc(1, sizeof *c);
    c->loop = l;
    c->tr = l->tr;
    c->wreq.data = c;
    uv_tcp_init(&l->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    l->stats.open++;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    if (l->nconns > l->max_conns) {
        /* Over the cap: refuse at once rather than starve everyone. */
        l->stats.refused++;
        c->closed = 1;
        conn_unlink(c);
        l->stats.open--;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    l->stats.accepted++;
    /* mbedtls sends each handshake message on its own: without this, Nagle's
     * algorithm holds them back (20-25 handshakes/s measured). */
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        else
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s", ip);
    }
    if ((c->tr->open && c->tr->open(c) != 0) || (l->app->on_open && l->app->on_open(c) != 0)) {
        conn_close_now(c);
        return;
    }
    net_conn_resume(c);
}

static void on_sweep(uv_timer_t *t)
{
    net_loop_t *l = t->data;
    uint64_t now = uv_now(&l->loop);
    for (net_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (c->deadline_ms && now >= c->deadline_ms && !c->closed) {
            c->deadline_ms = 0;
            l->stats.timeouts++;
            if (l->app->on_timeout)
                l->app->on_timeout(c);
            else
                net_conn_close(c, 0);
        }
    }
}

static int listen_socket(const char *host, int port, int *fd_out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return err_set(KITH_EINVAL, "%s: not an IPv6 address", host);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return err_set(KITH_EINVAL, "%s: not an IPv4 address", host);
        sl = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return err_set(err_from_errno(errno), "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        int e = errno;
        close(fd);
        return err_set(err_from_errno(e), "SO_REUSEPORT: %s", strerror(e));
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        return err_set(e == EADDRINUSE ? KITH_EEXIST : err_from_errno(e), "%s:%d: %s", host, port,
                       strerror(e));
    }
    *fd_out = fd;
    return 0;
}

int net_loop_init(net_loop_t *l, int id, const char *host, int port, const net_transport_t *tr,
                  const net_app_t *app, void *app_ctx, size_t max_conns)
{
    memset(l, 0, sizeof *l);
    l->id = id;
    l->tr = tr;
    l->app = app;
    l->app_ctx = app_ctx;
    l->max_conns = max_conns;
    int rc = uv_loop_init(&l->loop);
    if (rc) return err_set(KITH_EIO, "uv_loop_init: %s", uv_strerror(rc));
    l->loop.data = l;
    int fd = -1;
    if ((rc = listen_socket(host, port, &fd))) {
        uv_loop_close(&l->loop);
        return rc;
    }
    uv_tcp_init(&l->loop, &l->listener);
    l->listener.data = l;
    rc = uv_tcp_open(&l->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&l->listener, 1024, on_connection);
    if (rc) {
        uv_close((uv_handle_t *)&l->listener, NULL);
        uv_run(&l->loop, UV_RUN_DEFAULT);
        uv_loop_close(&l->loop);
        return err_set(KITH_EIO, "%s:%d: listen: %s", host, port, uv_strerror(rc));
    }
    l->listening = 1;
    uv_timer_init(&l->loop, &l->sweep);
    l->sweep.data = l;
    uv_timer_start(&l->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&l->sweep);
    if ((rc = loop_inbox_init(&l->inbox, &l->loop))) return rc;
    l->inbox.async.data = &l->inbox;
    return 0;
}

int net_loop_port(net_loop_t *l)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&l->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void net_loop_stop_listening(net_loop_t *l)
{
    if (!l->listening) return;
    l->listening = 0;
    uv_close((uv_handle_t *)&l->listener, NULL);
}

void net_loop_close(net_loop_t *l)
{
    net_loop_stop_listening(l);
    for (net_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        conn_close_now(c);
    }
    uv_timer_stop(&l->sweep);
    uv_close((uv_handle_t *)&l->sweep, NULL);
    loop_inbox_close(&l->inbox, NULL);
}
