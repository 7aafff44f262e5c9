/*
 * net: TCP listeners and connections on libuv loops.
 *
 * A connection carries bytes for one application (HTTP) through a transport
 * (plain, or TLS from core/tls): bytes from the socket go to
 * transport->on_wire, which hands plaintext to app->on_data; the application
 * sends plaintext with net_conn_send, which the transport turns into wire bytes
 * queued in conn->wout and written with one uv_write at a time.
 *
 * Each I/O thread runs one net_loop_t with its own listening socket bound with
 * SO_REUSEPORT, so the kernel spreads connections over the loops. Everything
 * about a connection happens on its loop's thread.
 */
#ifndef KITH_NET_H
#define KITH_NET_H

#include "base/buf.h"
#include "loop/loop_inbox.h"

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

typedef struct net_conn net_conn_t;
typedef struct net_loop net_loop_t;

typedef struct net_transport {
    const char *name;
    /* Sets up per-connection state (tr_state). 0 or a KITH_E* code. */
    int (*open)(net_conn_t *c);
    /* Bytes from the socket; deliver plaintext with net_conn_deliver.
     * Returns 0, or an error to close the connection. */
    int (*on_wire)(net_conn_t *c, const char *data, size_t n);
    /* Plaintext to send: append wire bytes with net_conn_queue_wire. */
    int (*send)(net_conn_t *c, const char *data, size_t n);
    /* Graceful end (TLS close_notify); may queue wire bytes. */
    void (*shutdown)(net_conn_t *c);
    void (*free)(net_conn_t *c);
} net_transport_t;

typedef struct net_app {
    /* A new connection: set c->app. Returns 0, or an error to close it. */
    int (*on_open)(net_conn_t *c);
    /* Plaintext arrived. Returns 0, or an error to close the connection. */
    int (*on_data)(net_conn_t *c, const char *data, size_t n);
    /* Everything queued has been written (for streaming and backpressure). */
    void (*on_drain)(net_conn_t *c);
    /* The connection is closing; free the application's state. */
    void (*on_close)(net_conn_t *c);
    /* Its deadline passed (see net_conn_set_deadline): the app may answer
     * (408) before the connection closes. */
    void (*on_timeout)(net_conn_t *c);
} net_app_t;

struct net_conn {
    uv_tcp_t tcp;
    net_loop_t *loop;
    const net_transport_t *tr;
    void *tr_state;
    void *app;
    buf_t wout;    /* wire bytes waiting for the socket */
    buf_t wflight; /* wire bytes being written */
    uv_write_t wreq;
    int writing;
    int closing; /* close after the last byte is written */
    int closed;  /* uv_close called */
    int reading;
    uint64_t deadline_ms; /* 0 = none */
    net_conn_t *prev, *next;
    char peer[64];
};

/* Counters of one loop, read by /metrics from any thread (relaxed atomics). */
typedef struct net_loop_stats {
    atomic_uint_fast64_t accepted, refused, open, timeouts, bytes_in, bytes_out;
} net_loop_stats_t;

struct net_loop {
    uv_loop_t loop;
    uv_tcp_t listener;
    int listening;
    uv_timer_t sweep;
    loop_inbox_t inbox;
    const net_transport_t *tr;
    void *tr_ctx; /* for the transport (TLS: the current certificate context) */
    const net_app_t *app;
    void *app_ctx;     /* for the application (the HTTP server's per-loop state) */
    size_t max_conns;  /* per loop */
    net_conn_t *conns; /* every open connection */
    size_t nconns;
    char rbuf[65536]; /* read buffer: consumed within the read callback */
    int rbuf_busy;
    net_loop_stats_t stats;
    int id;
};

/* Initialises a loop with a listening socket on host:port (SO_REUSEPORT,
 * TCP_NODELAY on accepted sockets). KITH_EIO / KITH_EPERM with a message. */
int net_loop_init(net_loop_t *l, int id, const char *host, int port, const net_transport_t *tr,
                  const net_app_t *app, void *app_ctx, size_t max_conns);
/* The port actually bound (for port 0). */
int net_loop_port(net_loop_t *l);
/* Stops accepting (closes the listening socket). Loop thread. */
void net_loop_stop_listening(net_loop_t *l);
/* Closes every handle; run the loop after this until it returns. Loop thread. */
void net_loop_close(net_loop_t *l);

/* Plaintext to the peer. Loop thread. */
int net_conn_send(net_conn_t *c, const char *data, size_t n);
/* For transports: wire bytes to write; the same buffer gets coalesced. */
void net_conn_queue_wire(net_conn_t *c, const char *data, size_t n);
/* For transports: plaintext to the application. */
int net_conn_deliver(net_conn_t *c, const char *data, size_t n);
/* Starts writing what is queued. */
void net_conn_flush(net_conn_t *c);
/* Closes after pending output is written (graceful=1), or now. */
void net_conn_close(net_conn_t *c, int graceful);
/* Stops/starts reading (backpressure). */
void net_conn_pause(net_conn_t *c);
void net_conn_resume(net_conn_t *c);
/* Bytes waiting to be written (for backpressure). */
size_t net_conn_pending(const net_conn_t *c);
/* Absolute deadline in ms from now (0 clears); checked once a second. */
void net_conn_set_deadline(net_conn_t *c, uint32_t ms_from_now);

/* Plain TCP: no transformation. */
extern const net_transport_t net_transport_plain;

#endif
