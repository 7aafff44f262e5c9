/*
 * auth_dir: the data directory and its workspaces.
 */
#include "auth/auth.h"

#include "base/json.h"
#include "base/mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct auth_dir {
    char *path;
    int mode;
    store_t *sys;
};

static const char *const system_schemas[] = {
    "{\"name\":\"_workspaces\",\"fields\":["
    "{\"name\":\"name\",\"type\":\"string\",\"required\":true,\"unique\":true,\"max_length\":63}]}",
    "{\"name\":\"_keys\",\"fields\":["
    "{\"name\":\"hash\",\"type\":\"string\",\"required\":true,\"unique\":true,\"max_length\":64},"
    "{\"name\":\"workspace\",\"type\":\"string\",\"required\":true,\"indexed\":true},"
    "{\"name\":\"role\",\"type\":\"string\",\"required\":true},"
    "{\"name\":\"label\",\"type\":\"string\",\"max_length\":200},"
    "{\"name\":\"revoked\",\"type\":\"bool\",\"default\":false},"
    "{\"name\":\"user\",\"type\":\"string\",\"max_length\":120},"
    "{\"name\":\"team\",\"type\":\"string\",\"max_length\":120}]}",
};

/* System collections of every workspace store. */
static const char *const workspace_schemas[] = {
    "{\"name\":\"_roles\",\"fields\":["
    "{\"name\":\"name\",\"type\":\"string\",\"required\":true,\"unique\":true,\"max_length\":63},"
    "{\"name\":\"def\",\"type\":\"object\",\"required\":true}]}",
    /* admin scripts: one record per deployed version (a tombstone deletes) */
    "{\"name\":\"_scripts\",\"fields\":["
    "{\"name\":\"name\",\"type\":\"string\",\"required\":true,\"indexed\":true,\"max_length\":64},"
    "{\"name\":\"rev\",\"type\":\"int\",\"required\":true},"
    "{\"name\":\"key\",\"type\":\"string\",\"required\":true,\"unique\":true,\"max_length\":90},"
    "{\"name\":\"source\",\"type\":\"text\"},"
    "{\"name\":\"by\",\"type\":\"string\",\"max_length\":120},"
    "{\"name\":\"deleted\",\"type\":\"bool\",\"default\":false},"
    /* enabled from Kith's scripts/: origin "shipped" and that copy's sha256 */
    "{\"name\":\"origin\",\"type\":\"string\",\"max_length\":16},"
    "{\"name\":\"shipped_sha256\",\"type\":\"string\",\"max_length\":64}]}",
};

/* Applies system collection definitions (a no-op when they are current). */
static int ensure_schemas(store_t *st, const char *const *defs, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *def = json_parse(defs[i], strlen(defs[i]));
        store_op_t *op = store_op_schema(def);
        op->system = 1;
        json_decref(def);
        rc = store_exec(st, op);
        store_op_free(op);
    }
    return rc;
}

int auth_workspace_prepare(store_t *ws)
{
    return ensure_schemas(ws, workspace_schemas, ARRAY_LEN(workspace_schemas));
}

static void join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) out[cap - 1] = '\0';
}

static int write_config(const char *dir, const char *plugins)
{
    char path[4096];
    join(path, sizeof path, dir, "kith.json");
    json_t *cfg = json_pack("{s:i,s:s,s:{s:s,s:s}}", "kith_data_format", AUTH_DATA_FORMAT, "listen",
                            "127.0.0.1:8443", "tls", "cert", "tls/cert.pem", "key", "tls/key.pem");
    if (plugins && plugins[0]) {
        json_t *load = json_array();
        for (const char *p = plugins; *p;) {
            size_t n = strcspn(p, ",");
            json_t *name = json_stringn(p, n);
            int ok = n > 0 && n <= 32 && strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_") >= n;
            if (!ok || !name) {
                if (name) json_decref(name);
                json_decref(load);
                json_decref(cfg);
                return err_set(KITH_EINVAL,
                               "--plugins: names of 1-32 of a-z 0-9 _, separated by commas");
            }
            json_array_append_new(load, name);
            p += n + (p[n] == ',');
        }
        json_object_set_new(cfg, "plugins", json_pack("{s:o}", "load", load));
    }
    char *text = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        free(text);
        return err_set(err_from_errno(errno), "%s: %s", path, strerror(errno));
    }
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    free(text);
    return ok ? 0 : err_set(KITH_EIO, "%s: %s", path, strerror(errno));
}

int auth_dir_layout_create(const char *path, const char *plugins)
{
    char p[4096];
    join(p, sizeof p, path, "tls");
    if (mkdir(p, 0700) != 0) return err_set(err_from_errno(errno), "%s: %s", p, strerror(errno));
    join(p, sizeof p, path, "workspaces");
    if (mkdir(p, 0750) != 0) return err_set(err_from_errno(errno), "%s: %s", p, strerror(errno));
    int rc = write_config(path, plugins);
    if (rc) return rc;
    join(p, sizeof p, path, "system");
    store_opts_t o = {.create = 1, .no_writer = 1};
    store_t *sys;
    if ((rc = store_open(&sys, p, &o))) return rc;
    rc = ensure_schemas(sys, system_schemas, ARRAY_LEN(system_schemas));
    store_close(sys);
    if (rc) return rc;
    auth_dir_t *d;
    if ((rc = auth_dir_open(path, AUTH_DIR_WRITE, &d))) return rc;
    rc = auth_workspace_create(d, "default");
    auth_dir_close(d);
    return rc;
}

int auth_dir_open(const char *path, int mode, auth_dir_t **out)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return err_set(err_from_errno(errno), "%s: %s", path,
                       errno == ENOENT ? "no such data directory" : strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return err_set(KITH_EINVAL, "%s: not a directory", path);
    if (access(path, R_OK | X_OK) != 0)
        return err_set(KITH_EPERM, "%s: cannot read the data directory: %s", path, strerror(errno));
    char p[4096];
    join(p, sizeof p, path, "kith.json");
    FILE *f = fopen(p, "r");
    if (!f)
        return err_set(errno == ENOENT ? KITH_EINVAL : err_from_errno(errno),
                       "%s: not a kith data directory (%s: %s); create one with kith init", path,
                       "kith.json", strerror(errno));
    json_error_t je;
    json_t *cfg = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!cfg) return err_set(KITH_ECORRUPT, "%s: line %d: %s", p, je.line, je.text);
    json_int_t fmt = json_integer_value(json_object_get(cfg, "kith_data_format"));
    json_decref(cfg);
    if (fmt < 1)
        return err_set(KITH_ECORRUPT, "%s: no kith_data_format: not a kith data directory", p);
    if (fmt > AUTH_DATA_FORMAT)
        return err_set(KITH_ECORRUPT, "%s: data format %lld is newer than this kith (%d)", p,
                       (long long)fmt, AUTH_DATA_FORMAT);
    auth_dir_t *d = xcalloc(1, sizeof *d);
    d->path = xstrdup(path);
    d->mode = mode;
    join(p, sizeof p, path, "system");
    store_opts_t o = {.read_only = mode == AUTH_DIR_READ, .no_writer = mode != AUTH_DIR_SERVE};
    int rc = store_open(&d->sys, p, &o);
    if (rc) {
        err_wrap("system store");
        free(d->path);
        free(d);
        return rc;
    }
    /* A directory made by an older kith gets the current system collections. */
    if (mode != AUTH_DIR_READ &&
        (rc = ensure_schemas(d->sys, system_schemas, ARRAY_LEN(system_schemas)))) {
        err_wrap("system store");
        auth_dir_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void auth_dir_close(auth_dir_t *d)
{
    if (!d) return;
    store_close(d->sys);
    free(d->path);
    free(d);
}

const char *auth_dir_path(const auth_dir_t *d)
{
    return d->path;
}

store_t *auth_dir_system(auth_dir_t *d)
{
    return d->sys;
}

int auth_workspace_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > AUTH_WORKSPACE_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
        if (!ok) return 0;
    }
    return 1;
}

void auth_workspace_path(const auth_dir_t *d, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/workspaces/%s", d->path, name);
    if (n < 0 || (size_t)n >= cap) out[cap - 1] = '\0';
}

typedef struct names {
    char **v;
    size_t n, cap;
} names_t;

static int collect_name(void *ctx, const store_record_t *rec)
{
    names_t *nm = ctx;
    json_t *f = store_record_fields(rec);
    const char *s = f ? json_string_value(json_object_get(f, "name")) : NULL;
    if (s) {
        if (nm->n == nm->cap) {
            nm->cap = nm->cap ? nm->cap * 2 : 8;
            nm->v = xrealloc(nm->v, nm->cap * sizeof *nm->v);
        }
        nm->v[nm->n++] = xstrdup(s);
    }
    if (f) json_decref(f);
    return 0;
}

static int workspace_query(auth_dir_t *d, const char *name, names_t *nm)
{
    store_rtxn_t *rt;
    int rc = store_read_begin(d->sys, &rt);
    if (rc) return rc;
    json_t *filter = name ? json_pack("{s:s}", "name", name) : NULL;
    store_query_t q = {.coll = "_workspaces", .filter = filter, .sort = "name"};
    rc = store_query_all(rt, &q, collect_name, nm);
    if (filter) json_decref(filter);
    store_read_end(rt);
    return rc;
}

int auth_workspace_exists(auth_dir_t *d, const char *name)
{
    names_t nm = {0};
    int rc = workspace_query(d, name, &nm);
    int found = rc == 0 && nm.n > 0;
    for (size_t i = 0; i < nm.n; i++)
        free(nm.v[i]);
    free(nm.v);
    return found;
}

int auth_workspace_list(auth_dir_t *d, char ***names, size_t *n)
{
    names_t nm = {0};
    int rc = workspace_query(d, NULL, &nm);
    if (rc) {
        for (size_t i = 0; i < nm.n; i++)
            free(nm.v[i]);
        free(nm.v);
        return rc;
    }
    *names = nm.v;
    *n = nm.n;
    return 0;
}

int auth_workspace_create(auth_dir_t *d, const char *name)
{
    if (!auth_workspace_name_ok(name))
        return err_set(KITH_EINVAL,
                       "'%s': a workspace name is 1 to 63 lower-case letters, digits, "
                       "'-' or '_', starting with a letter or digit",
                       name);
    if (d->mode == AUTH_DIR_READ)
        return err_set(KITH_EPERM, "the data directory is open read-only");
    if (auth_workspace_exists(d, name))
        return err_set(KITH_EEXIST, "workspace '%s' already exists", name);
    char p[4096];
    auth_workspace_path(d, name, p, sizeof p);
    store_opts_t o = {.create = 1, .no_writer = 1};
    store_t *st;
    int rc = store_open(&st, p, &o);
    if (rc) return rc;
    rc = auth_workspace_prepare(st);
    store_close(st);
    if (rc) return rc;
    /* Registered last: a workspace is listed only once its store exists. The
     * unique index makes a concurrent second create fail here. */
    json_t *rec = json_pack("{s:s}", "name", name);
    store_op_t *op = store_op_create("_workspaces", rec);
    op->system = 1;
    json_decref(rec);
    rc = store_exec(d->sys, op);
    store_op_free(op);
    if (rc == KITH_EEXIST) return err_set(KITH_EEXIST, "workspace '%s' already exists", name);
    return rc;
}

int auth_workspace_open(auth_dir_t *d, const char *name, store_t **out)
{
    if (!auth_workspace_name_ok(name))
        return err_set(KITH_EINVAL, "'%s' is not a valid workspace name", name);
    char p[4096];
    auth_workspace_path(d, name, p, sizeof p);
    store_opts_t o = {.read_only = d->mode == AUTH_DIR_READ,
                      .no_writer = d->mode != AUTH_DIR_SERVE};
    int rc = store_open(out, p, &o);
    if (rc == 0 && d->mode != AUTH_DIR_READ && (rc = auth_workspace_prepare(*out))) {
        store_close(*out);
        *out = NULL;
    }
    if (rc) err_wrap("workspace %s", name);
    return rc;
}
