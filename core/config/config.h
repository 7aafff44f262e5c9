/*
 * config: the server's configuration, read from <data>/kith.json and
 * overridden by command-line flags. Unknown keys and bad values are refused
 * with a message naming the key; every value has a sensible default.
 */
#ifndef KITH_CONFIG_H
#define KITH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 4096

typedef struct config {
    char data_dir[CONFIG_PATH_MAX];
    char listen_host[256]; /* "127.0.0.1" */
    int listen_port;       /* 8443 */
    int plain;             /* serve HTTP without TLS (loopback only) */
    int threads;           /* I/O loops; 0 = one per core */
    char tls_cert[CONFIG_PATH_MAX];
    char tls_key[CONFIG_PATH_MAX];
    char scripts_dir[CONFIG_PATH_MAX]; /* Kith's shipped Lua; "" = lua_scripts_dir()'s default */
    /* limits */
    size_t max_connections;     /* 10,000 */
    size_t url_bytes;           /* request line: 8 KiB (414) */
    size_t header_bytes;        /* 32 KiB (431) */
    size_t header_fields;       /* 100 (431) */
    size_t body_bytes;          /* 1 MiB (413) */
    size_t stream_body_bytes;   /* bulk and import bodies: 1 GiB */
    uint32_t header_timeout_ms; /* first byte to end of headers: 10 s */
    uint32_t body_timeout_ms;   /* end of headers to end of body: 60 s */
    uint32_t idle_timeout_ms;   /* keep-alive idle: 75 s */
    uint32_t drain_timeout_ms;  /* SIGTERM: wait this long for requests in flight */
    size_t page_max;            /* most records in one page: 1000 */
    int log_requests;           /* one log line per request */
    /* kith.json's "plugins" section as config_load checked it (a reference),
     * or NULL: plugin_load_all reads this, not the file again */
    struct json_t *plugins;
} config_t;

/* Defaults for a data directory. */
void config_defaults(config_t *c, const char *data_dir);

/* Reads <data_dir>/kith.json over the defaults. 0, or KITH_EINVAL / KITH_EIO
 * with a message naming the file and key. A loaded config holds the plugins
 * section: config_release() when done with it (safe to repeat). */
int config_load(config_t *c, const char *data_dir);
void config_release(config_t *c);

/* Parses "HOST:PORT", "[v6]:PORT" or ":PORT" into c. 0 or KITH_EINVAL. */
int config_set_listen(config_t *c, const char *hostport);

/* 1 if host is a loopback address or "localhost". */
int config_host_is_loopback(const char *host);

#endif
