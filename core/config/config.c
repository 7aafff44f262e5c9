#include "config/config.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void config_defaults(config_t *c, const char *data_dir)
{
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "%s", data_dir);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8443;
    snprintf(c->tls_cert, sizeof c->tls_cert, "%s/tls/cert.pem", data_dir);
    snprintf(c->tls_key, sizeof c->tls_key, "%s/tls/key.pem", data_dir);
    c->max_connections = 10000;
    c->url_bytes = 8 * 1024;
    c->header_bytes = 32 * 1024;
    c->header_fields = 100;
    c->body_bytes = 1024 * 1024;
    c->stream_body_bytes = (size_t)1 << 30;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 60000;
    c->idle_timeout_ms = 75000;
    c->drain_timeout_ms = 30000;
    c->page_max = 1000;
    c->log_requests = 1;
}

int config_host_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int config_set_listen(config_t *c, const char *hp)
{
    const char *colon = strrchr(hp, ':');
    if (!colon) return err_set(KITH_EINVAL, "listen '%s': expected HOST:PORT", hp);
    size_t hl = (size_t)(colon - hp);
    const char *h = hp;
    if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof c->listen_host) return err_set(KITH_EINVAL, "listen '%s': host too long", hp);
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return err_set(KITH_EINVAL, "listen '%s': the port must be 0 to 65535", hp);
    if (hl == 0) {
        snprintf(c->listen_host, sizeof c->listen_host, "0.0.0.0");
    } else {
        memcpy(c->listen_host, h, hl);
        c->listen_host[hl] = '\0';
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(c->listen_host, "localhost") == 0)
        snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    else if (inet_pton(AF_INET, c->listen_host, &a4) != 1 &&
             inet_pton(AF_INET6, c->listen_host, &a6) != 1)
        return err_set(KITH_EINVAL, "listen '%s': the host must be an IP address or localhost", hp);
    c->listen_port = (int)port;
    return 0;
}

static int get_size(const json_t *o, const char *key, size_t lo, size_t hi, size_t *out,
                    const char *path)
{
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo ||
        (uint64_t)json_integer_value(v) > hi)
        return err_set(KITH_EINVAL, "%s: '%s' must be an integer from %zu to %zu", path, key, lo,
                       hi);
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int get_ms(const json_t *o, const char *key, uint32_t *out, const char *path)
{
    size_t v = *out;
    int rc = get_size(o, key, 100, 3600 * 1000, &v, path);
    *out = (uint32_t)v;
    return rc;
}

static int get_path(const json_t *o, const char *key, const char *data_dir, char *out, size_t cap,
                    const char *path)
{
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return err_set(KITH_EINVAL, "%s: '%s' must be a file path", path, key);
    const char *s = json_string_value(v);
    int n = s[0] == '/' ? snprintf(out, cap, "%s", s) : snprintf(out, cap, "%s/%s", data_dir, s);
    if (n < 0 || (size_t)n >= cap) return err_set(KITH_EINVAL, "%s: '%s' is too long", path, key);
    return 0;
}

static int only_keys(const json_t *o, const char *const *keys, const char *path, const char *what)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            if (strcmp(keys[i], k) == 0) known = 1;
        if (!known) return err_set(KITH_EINVAL, "%s: unknown key '%s%s'", path, what, k);
    }
    return 0;
}

/* "plugins": {"dirs": [path...], "load": [name...], "config": {name: {...}}};
 * the loader (core/plugin) checks each plugin's own section. */
static int plugins_check(const json_t *p, const char *path)
{
    static const char *const keys[] = {"dirs", "load", "config", NULL};
    if (!json_is_object(p)) return err_set(KITH_EINVAL, "%s: 'plugins' must be an object", path);
    int rc = only_keys(p, keys, path, "plugins.");
    if (rc) return rc;
    const json_t *dirs = json_object_get(p, "dirs"), *load = json_object_get(p, "load"),
                 *conf = json_object_get(p, "config"), *v;
    size_t i;
    if (dirs && !json_is_array(dirs))
        return err_set(KITH_EINVAL, "%s: 'plugins.dirs' must be an array of paths", path);
    json_array_foreach(dirs, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= CONFIG_PATH_MAX)
            return err_set(KITH_EINVAL, "%s: 'plugins.dirs' must be an array of paths", path);
    }
    if (load && !json_is_array(load))
        return err_set(KITH_EINVAL, "%s: 'plugins.load' must be an array of plugin names", path);
    json_array_foreach(load, i, v)
    {
        if (!ident_ok(json_string_value(v), 32, NULL))
            return err_set(KITH_EINVAL,
                           "%s: 'plugins.load' entry %zu is not a plugin name (1-32 of a-z 0-9 _)",
                           path, i);
    }
    if (conf && !json_is_object(conf))
        return err_set(KITH_EINVAL, "%s: 'plugins.config' must map plugin names to objects", path);
    const char *k;
    json_object_foreach((json_t *)conf, k, v)
    {
        if (!json_is_object(v))
            return err_set(KITH_EINVAL, "%s: 'plugins.config.%s' must be an object", path, k);
    }
    return 0;
}

int config_load(config_t *c, const char *data_dir)
{
    config_defaults(c, data_dir);
    char path[CONFIG_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/kith.json", data_dir);
    FILE *f = fopen(path, "r");
    if (!f) return err_set(err_from_errno(errno), "%s: %s", path, strerror(errno));
    json_error_t je;
    json_t *j = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!j) return err_set(KITH_EINVAL, "%s: line %d: %s", path, je.line, je.text);
    static const char *const top[] = {"kith_data_format", "listen",  "threads",     "tls", "limits",
                                      "log_requests",     "plugins", "scripts_dir", NULL};
    static const char *const tls[] = {"cert", "key", NULL};
    static const char *const lim[] = {"max_connections",   "url_bytes",       "header_bytes",
                                      "header_fields",     "body_bytes",      "stream_body_bytes",
                                      "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms",
                                      "drain_timeout_ms",  "page_max",        NULL};
    int rc = !json_is_object(j) ? err_set(KITH_EINVAL, "%s: expected a JSON object", path)
                                : only_keys(j, top, path, "");
    json_t *v;
    if (rc == 0 && (v = json_object_get(j, "listen"))) {
        rc = json_is_string(v) ? config_set_listen(c, json_string_value(v))
                               : err_set(KITH_EINVAL, "%s: 'listen' must be \"HOST:PORT\"", path);
        if (rc) err_wrap("%s", path);
    }
    if (rc == 0 && (v = json_object_get(j, "threads"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 64)
            rc = err_set(KITH_EINVAL, "%s: 'threads' must be 0 (one per core) to 64", path);
        else
            c->threads = (int)json_integer_value(v);
    }
    if (rc == 0 && (v = json_object_get(j, "log_requests"))) {
        if (!json_is_boolean(v))
            rc = err_set(KITH_EINVAL, "%s: 'log_requests' must be true or false", path);
        else
            c->log_requests = json_is_true(v);
    }
    json_t *t = json_object_get(j, "tls");
    if (rc == 0 && t) {
        rc = json_is_object(t) ? only_keys(t, tls, path, "tls.")
                               : err_set(KITH_EINVAL, "%s: 'tls' must be an object", path);
        if (rc == 0) rc = get_path(t, "cert", data_dir, c->tls_cert, sizeof c->tls_cert, path);
        if (rc == 0) rc = get_path(t, "key", data_dir, c->tls_key, sizeof c->tls_key, path);
    }
    if (rc == 0 && json_object_get(j, "scripts_dir")) {
        rc = get_path(j, "scripts_dir", data_dir, c->scripts_dir, sizeof c->scripts_dir, path);
        struct stat st;
        if (rc == 0 && (stat(c->scripts_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
            rc = err_set(KITH_EINVAL, "%s: 'scripts_dir' %s is not a directory", path,
                         c->scripts_dir);
    }
    json_t *p = json_object_get(j, "plugins");
    if (rc == 0 && p) rc = plugins_check(p, path);
    json_t *l = json_object_get(j, "limits");
    if (rc == 0 && l) {
        rc = json_is_object(l) ? only_keys(l, lim, path, "limits.")
                               : err_set(KITH_EINVAL, "%s: 'limits' must be an object", path);
        if (rc == 0) rc = get_size(l, "max_connections", 1, 1000000, &c->max_connections, path);
        if (rc == 0) rc = get_size(l, "url_bytes", 256, 1 << 20, &c->url_bytes, path);
        if (rc == 0) rc = get_size(l, "header_bytes", 1024, 1 << 20, &c->header_bytes, path);
        if (rc == 0) rc = get_size(l, "header_fields", 8, 1000, &c->header_fields, path);
        if (rc == 0) rc = get_size(l, "body_bytes", 1024, (size_t)1 << 30, &c->body_bytes, path);
        if (rc == 0)
            rc = get_size(l, "stream_body_bytes", 1024, (size_t)1 << 40, &c->stream_body_bytes,
                          path);
        if (rc == 0) rc = get_ms(l, "header_timeout_ms", &c->header_timeout_ms, path);
        if (rc == 0) rc = get_ms(l, "body_timeout_ms", &c->body_timeout_ms, path);
        if (rc == 0) rc = get_ms(l, "idle_timeout_ms", &c->idle_timeout_ms, path);
        if (rc == 0) rc = get_ms(l, "drain_timeout_ms", &c->drain_timeout_ms, path);
        if (rc == 0) rc = get_size(l, "page_max", 1, 10000, &c->page_max, path);
    }
    if (rc == 0 && p) c->plugins = json_incref(p);
    json_decref(j);
    return rc;
}

void config_release(config_t *c)
{
    if (c->plugins) json_decref(c->plugins);
    c->plugins = NULL;
}
