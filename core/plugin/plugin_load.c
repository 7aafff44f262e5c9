/*
 * plugin_load: finding, checking, loading and unloading plugins, and their
 * registrations during init.
 *
 * The order of checks is the order of cost and of what a message can say:
 * the configuration names the plugin; the file is found in a configured
 * directory, owned by root or the service user and writable by nobody else
 * (the directory too); it starts like an ELF file; dlopen with RTLD_NOW |
 * RTLD_LOCAL resolves every symbol (a truncated file or an unresolved symbol
 * fails here); it exports `kith_plugin`; the descriptor's size, ABI, build
 * signature, API level and name fit; its configuration passes its schema;
 * init succeeds. Registrations made during init stay on the plugin's own
 * lists and reach workspaces only after init returned 0, so a failed init
 * leaves nothing behind.
 */
#include "plugin/plugin_int.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(KITH_PLUGIN_API_LEVEL == KITH_API_LEVEL, "sdk and core API levels differ");
_Static_assert((int)KITH_PLUGIN_EVETO == (int)KITH_EVETO &&
                   (int)KITH_PLUGIN_ENOTFOUND == (int)KITH_ENOTFOUND &&
                   (int)KITH_PLUGIN_EPERM == (int)KITH_EPERM &&
                   (int)KITH_PLUGIN_EHANDLER == (int)KITH_EHANDLER &&
                   (int)KITH_PLUGIN_EVALIDATION == (int)KITH_EVALIDATION &&
                   (int)KITH_PLUGIN_ECONFLICT == (int)KITH_ECONFLICT &&
                   (int)KITH_PLUGIN_ELIMIT == (int)KITH_ELIMIT,
               "plugin error codes are the core's");

#define DESC_MIN offsetof(kith_plugin_desc_t, config_schema)

int plugin_struct_in(void *dst, size_t cap, const void *src, size_t min, const char *what)
{
    memset(dst, 0, cap);
    uint32_t size;
    if (!src) return err_set(KITH_EINVAL, "%s: NULL", what);
    memcpy(&size, src, sizeof size);
    if (size < min) return err_set(KITH_EINVAL, "%s: size %u is too small (set .size)", what, size);
    memcpy(dst, src, size < cap ? size : cap);
    return 0;
}

/* ---- registrations (plugin_api_table's first members) ---- */

static void hook_clear(plugin_hook_t *h)
{
    for (size_t i = 0; i < h->nfields; i++)
        free(h->fields[i]);
    free(h->fields);
}

static void registrations_free(struct kith_plugin *p)
{
    for (size_t i = 0; i < p->nhooks; i++)
        hook_clear(&p->hooks[i]);
    free(p->hooks);
    for (size_t i = 0; i < p->nroutes; i++) {
        plugin_route_t *r = &p->routes[i];
        free(r->pattern), free(r->name), free(r->action), free(r->coll);
    }
    free(p->routes);
    for (size_t i = 0; i < p->ntimers; i++) {
        plugin_timer_t *t = &p->timers[i];
        free(t->id), free(t->spec), free(t->event), free(t->payload);
    }
    free(p->timers);
    for (size_t i = 0; i < p->ncounters; i++) {
        free(p->counters[i]->help);
        free(p->counters[i]);
    }
    free(p->counters);
    if (p->colls) json_decref(p->colls);
    p->hooks = NULL, p->routes = NULL, p->timers = NULL, p->counters = NULL, p->colls = NULL;
    p->nhooks = p->nroutes = p->ntimers = p->ncounters = 0;
}

static int need_init(const struct kith_plugin *p, const char *what)
{
    if (!p || !p->in_init)
        return err_set(KITH_EPERM, "%s: registrations are accepted only during init", what);
    return 0;
}

int plugin_reg_on(kith_plugin_t *p, const kith_hook_t *given)
{
    if (need_init(p, "on")) return KITH_EPERM;
    kith_hook_t d;
    if (plugin_struct_in(&d, sizeof d, given, offsetof(kith_hook_t, fn) + sizeof d.fn, "on"))
        return KITH_EINVAL;
    const kith_hook_t *def = &d;
    const char *event = def->event, *name = def->name;
    if (!event || !bus_event_name_ok(event, NULL))
        return err_set(KITH_EINVAL, "on: '%s' is not an event name", event ? event : "");
    if (!ident_ok(name, 64, ".-"))
        return err_set(KITH_EINVAL, "on: handler name '%s' is not 1-64 of a-z 0-9 _ . -",
                       name ? name : "");
    if (!def->fn) return err_set(KITH_EINVAL, "on %s: no function", event);
    if (def->nfields > BUS_FIELDS_MAX)
        return err_set(KITH_ELIMIT, "on %s: more than %d fields", event, BUS_FIELDS_MAX);
    for (size_t i = 0; i < p->nhooks; i++)
        if (strcmp(p->hooks[i].name, name) == 0)
            return err_set(KITH_EEXIST, "on: handler '%s' is already registered", name);
    p->hooks = xrealloc(p->hooks, (p->nhooks + 1) * sizeof *p->hooks);
    plugin_hook_t *h = &p->hooks[p->nhooks];
    memset(h, 0, sizeof *h);
    h->pl = p;
    snprintf(h->event, sizeof h->event, "%s", event);
    snprintf(h->name, sizeof h->name, "%s", name);
    h->priority = def->priority;
    h->fn = def->fn;
    h->ud = def->ud;
    if (def->nfields) {
        h->fields = xcalloc(def->nfields, sizeof *h->fields);
        for (size_t i = 0; i < def->nfields; i++) {
            if (!def->fields || !def->fields[i]) {
                hook_clear(h);
                return err_set(KITH_EINVAL, "on %s: field %zu is NULL", event, i);
            }
            h->fields[h->nfields++] = xstrdup(def->fields[i]);
        }
    }
    p->nhooks++;
    return 0;
}

static int method_of(const char *m)
{
    static const struct {
        const char *name;
        int method;
    } ms[] = {{"GET", HTTP_M_GET},
              {"POST", HTTP_M_POST},
              {"PUT", HTTP_M_PUT},
              {"PATCH", HTTP_M_PATCH},
              {"DELETE", HTTP_M_DELETE}};
    for (size_t i = 0; m && i < sizeof ms / sizeof *ms; i++)
        if (strcmp(ms[i].name, m) == 0) return ms[i].method;
    return -1;
}

/* ---- route overlap ----
 * The router takes the first match; api_routes_merge places a plugin route
 * before the first parameterised core route with fewer literal segments, so
 * on paths both match, the route with more literal segments wins and a tie
 * goes to the core. A plugin route is refused when it would take requests a
 * core route answers now — except from the bare record routes
 * (/v1/{collection}, /v1/{collection}/{id}), where a literal first segment
 * claims a name (/v1/reports/pipeline) unless a plugin declares a
 * collection of that name. Plugin routes never overlap each other. */

#define SEGS_MAX 16

typedef struct segs {
    int n;
    const char *s[SEGS_MAX];
    size_t len[SEGS_MAX];
} segs_t;

static void split(const char *pat, segs_t *g)
{
    g->n = 0;
    for (const char *s = pat + 1; *s && g->n < SEGS_MAX;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        g->s[g->n] = s;
        g->len[g->n++] = n;
        s += n;
        if (*s == '/') s++;
    }
}

static int is_param(const segs_t *g, int i)
{
    return g->s[i][0] == '{';
}

static int literals(const segs_t *g)
{
    int n = 0;
    for (int i = 0; i < g->n; i++)
        n += !is_param(g, i);
    return n;
}

/* Some path matches both. */
static int overlap(const segs_t *a, const segs_t *b)
{
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (!is_param(a, i) && !is_param(b, i) &&
            (a->len[i] != b->len[i] || memcmp(a->s[i], b->s[i], a->len[i]) != 0))
            return 0;
    return 1;
}

/* Every path one matches, the other matches too. */
static int same_shape(const segs_t *a, const segs_t *b)
{
    if (!overlap(a, b)) return 0;
    for (int i = 0; i < a->n; i++)
        if (is_param(a, i) != is_param(b, i)) return 0;
    return 1;
}

/* Whether a loaded plugin (or p) declares collection name. */
static int declared_coll(const struct kith_plugin *p, const char *name, size_t len)
{
    const struct plugin_set *ps = p->set;
    for (size_t k = 0; k <= ps->n; k++) {
        const struct kith_plugin *q = k < ps->n ? ps->v[k] : p;
        if (k < ps->n && !q->loaded) continue;
        size_t i;
        json_t *def;
        json_array_foreach(q->colls, i, def)
        {
            const char *c = json_string_value(json_object_get(def, "name"));
            if (c && strlen(c) == len && memcmp(c, name, len) == 0) return 1;
        }
    }
    return 0;
}

/* Segments of /v1/...: literal [a-z0-9_.-] or {name}; at most HTTP_PARAMS_MAX params. */
static int pattern_ok(const char *pat)
{
    if (!pat || strncmp(pat, "/v1/", 4) != 0 || strlen(pat) > 200) return 0;
    int params = 0;
    const char *s = pat + 4;
    if (!*s) return 0;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0) return 0;
        if (s[0] == '{') {
            if (n < 3 || s[n - 1] != '}') return 0;
            for (size_t i = 1; i + 1 < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) return 0;
            params++;
        } else {
            for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                      s[i] == '-' || s[i] == '.'))
                    return 0;
        }
        s += n;
        if (*s == '/') s++;
        if (e && !*s) return 0; /* trailing slash */
    }
    return params <= HTTP_PARAMS_MAX;
}

/* 0 if method+pat may be mounted; else KITH_EEXIST with why. */
static int route_conflict(const struct kith_plugin *p, int method, const char *pat)
{
    segs_t a, b;
    split(pat, &a);
    size_t n;
    const http_route_t *core = api_routes(&n);
    for (size_t i = 0; i < n; i++) {
        if (core[i].method != method) continue;
        split(core[i].pattern, &b);
        if (!overlap(&a, &b)) continue;
        if (same_shape(&a, &b))
            return err_set(KITH_EEXIST, "the same paths as the core route %s", core[i].name);
        if (literals(&a) <= literals(&b)) continue; /* the core route wins where both match */
        int bare = literals(&b) == 1;               /* /v1/{collection}, /v1/{collection}/{id} */
        if (!bare)
            return err_set(KITH_EEXIST, "it would take requests of the core route %s (%s)",
                           core[i].name, core[i].pattern);
        if (is_param(&a, 1))
            return err_set(KITH_EEXIST, "it would take requests of the core route %s (%s)",
                           core[i].name, core[i].pattern);
        if (declared_coll(p, a.s[1], a.len[1]))
            return err_set(KITH_EEXIST,
                           "it would take requests of the core route %s for the "
                           "collection '%.*s' a plugin declares",
                           core[i].name, (int)a.len[1], a.s[1]);
    }
    const struct plugin_set *ps = p->set;
    for (size_t k = 0; k <= ps->n; k++) {
        const struct kith_plugin *q = k < ps->n ? ps->v[k] : p;
        if (k < ps->n && (!q->loaded || q == p)) continue;
        for (size_t i = 0; i < q->nroutes; i++) {
            if (q->routes[i].method != method) continue;
            split(q->routes[i].pattern, &b);
            if (overlap(&a, &b))
                return err_set(KITH_EEXIST, "it overlaps plugin %s's route %s (%s)", q->name,
                               q->routes[i].name, q->routes[i].pattern);
        }
    }
    return 0;
}

int plugin_reg_route(kith_plugin_t *p, const kith_route_t *given)
{
    if (need_init(p, "route")) return KITH_EPERM;
    kith_route_t d;
    if (plugin_struct_in(&d, sizeof d, given, offsetof(kith_route_t, fn) + sizeof d.fn, "route"))
        return KITH_EINVAL;
    const kith_route_t *def = &d;
    int method = method_of(def->method);
    if (method < 0)
        return err_set(KITH_EINVAL, "route: method '%s' is not GET, POST, PUT, PATCH or DELETE",
                       def->method ? def->method : "");
    if (!pattern_ok(def->pattern))
        return err_set(KITH_EINVAL,
                       "route: '%s' is not a path under /v1/ (segments of a-z 0-9 _ - . or "
                       "{name}, at most %d of them parameters)",
                       def->pattern ? def->pattern : "", HTTP_PARAMS_MAX);
    if (!ident_ok(def->name, 64, "."))
        return err_set(KITH_EINVAL, "route %s: name '%s' is not 1-64 of a-z 0-9 _ .", def->pattern,
                       def->name ? def->name : "");
    if (def->flags & ~(unsigned)(KITH_ROUTE_WRITE | KITH_ROUTE_KEY_IN_PATH | KITH_ROUTE_AS_SYSTEM))
        return err_set(KITH_EINVAL, "route %s: unknown flags 0x%x", def->pattern, def->flags);
    if ((def->flags & KITH_ROUTE_KEY_IN_PATH) && !strchr(def->pattern, '{'))
        return err_set(KITH_EINVAL, "route %s: KITH_ROUTE_KEY_IN_PATH needs a {key} parameter",
                       def->pattern);
    const char *act = def->action ? def->action : "";
    int rec = auth_action_from_name(act) >= 0;
    if (!rec && strcmp(act, "any") != 0 && !auth_cap_from_name(act))
        return err_set(KITH_EINVAL,
                       "route %s: action '%s' is not a record action, a "
                       "capability or \"any\"",
                       def->pattern, act);
    if (rec && (!def->collection || !ident_ok(def->collection, 63, "-")))
        return err_set(KITH_EINVAL, "route %s: action '%s' needs a collection", def->pattern, act);
    if (!def->fn) return err_set(KITH_EINVAL, "route %s: no function", def->pattern);
    if (route_conflict(p, method, def->pattern))
        return err_wrap("route %s %s", def->method, def->pattern);
    p->routes = xrealloc(p->routes, (p->nroutes + 1) * sizeof *p->routes);
    plugin_route_t *r = &p->routes[p->nroutes++];
    memset(r, 0, sizeof *r);
    r->pl = p;
    r->method = method;
    r->pattern = xstrdup(def->pattern);
    char full[200];
    snprintf(full, sizeof full, "%s.%s", p->name, def->name);
    r->name = xstrdup(full);
    r->action = xstrdup(act);
    r->coll = rec ? xstrdup(def->collection) : NULL;
    r->flags = def->flags;
    r->fn = def->fn;
    r->ud = def->ud;
    return 0;
}

int plugin_reg_collection(kith_plugin_t *p, const char *def_json)
{
    if (need_init(p, "collection")) return KITH_EPERM;
    json_t *d = def_json ? json_parse(def_json, strlen(def_json)) : NULL;
    const char *name = d ? json_string_value(json_object_get(d, "name")) : NULL;
    if (!d || !json_is_object(d) || !name || name[0] == '_') {
        if (d) json_decref(d);
        return err_set(KITH_EINVAL, "collection: the definition is a JSON object with a name "
                                    "(not starting with '_')");
    }
    /* the store checks the rest when a workspace opens; check it now with a
     * throw-away parse so a bad definition fails init, not every workspace */
    if (store_schema_def_check(d)) {
        json_decref(d);
        return err_wrap("collection %s", name);
    }
    /* a plugin route that answers /v1/<name>/... in place of the record
     * routes would hide the collection's records */
    const struct plugin_set *ps = p->set;
    for (size_t k = 0; k <= ps->n; k++) {
        const struct kith_plugin *q = k < ps->n ? ps->v[k] : p;
        if (k < ps->n && !q->loaded) continue;
        for (size_t i = 0; i < q->nroutes; i++) {
            segs_t g;
            split(q->routes[i].pattern, &g);
            if (g.n <= 3 && g.n >= 2 && !is_param(&g, 1) && g.len[1] == strlen(name) &&
                memcmp(g.s[1], name, g.len[1]) == 0) {
                json_decref(d);
                return err_set(KITH_EEXIST,
                               "collection %s: plugin %s's route %s answers its record paths", name,
                               q->name, q->routes[i].pattern);
            }
        }
    }
    if (!p->colls) p->colls = json_array();
    json_array_append_new(p->colls, d);
    return 0;
}

int plugin_reg_every(kith_plugin_t *p, const char *id, const char *spec, const char *event,
                     const kith_json_t *payload)
{
    if (need_init(p, "every_declare")) return KITH_EPERM;
    if (!ident_ok(id, 64, ".-"))
        return err_set(KITH_EINVAL, "every_declare: id '%s' is not 1-64 of a-z 0-9 _ . -",
                       id ? id : "");
    sched_every_t e;
    if (!spec || sched_parse_every(spec, &e)) return err_wrap("every_declare %s", id);
    if (!event || !bus_event_is_domain(event))
        return err_set(KITH_EINVAL, "every_declare %s: '%s' is not a domain event name", id,
                       event ? event : "");
    char full[SCHED_ID_MAX];
    snprintf(full, sizeof full, "%s/%s", p->owner, id);
    for (size_t i = 0; i < p->ntimers; i++)
        if (strcmp(p->timers[i].id, full) == 0)
            return err_set(KITH_EEXIST, "every_declare: '%s' is already declared", id);
    p->timers = xrealloc(p->timers, (p->ntimers + 1) * sizeof *p->timers);
    plugin_timer_t *t = &p->timers[p->ntimers++];
    t->id = xstrdup(full);
    t->spec = xstrdup(spec);
    t->event = xstrdup(event);
    t->payload = payload ? json_dumps((const json_t *)payload, JSON_COMPACT) : NULL;
    return 0;
}

kith_counter_t *plugin_reg_counter(kith_plugin_t *p, const char *name, const char *help)
{
    if (need_init(p, "counter")) return NULL;
    if (!ident_ok(name, 48, NULL)) {
        err_set(KITH_EINVAL, "counter: '%s' is not 1-48 of a-z 0-9 _", name ? name : "");
        return NULL;
    }
    for (size_t i = 0; i < p->ncounters; i++)
        if (strcmp(p->counters[i]->name, name) == 0) return p->counters[i];
    struct kith_counter *c = xcalloc(1, sizeof *c);
    c->pl = p;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->help = xstrdup(help ? help : name);
    for (char *s = c->help; *s; s++)
        if (*s == '\n' || *s == '\\') *s = ' ';
    p->counters = xrealloc(p->counters, (p->ncounters + 1) * sizeof *p->counters);
    p->counters[p->ncounters++] = c;
    return c;
}

/* ---- checks ---- */

static int refuse(struct kith_plugin *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int refuse(struct kith_plugin *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof p->reason, fmt, ap);
    va_end(ap);
    p->loaded = 0;
    return -1;
}

/* Owned by root or us, not writable by group or others. */
static int owner_ok(struct kith_plugin *p, const char *path, const struct stat *st,
                    const char *what)
{
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return refuse(p, "%s %s is owned by uid %u, not by root or the service user (uid %u)", what,
                      path, (unsigned)st->st_uid, (unsigned)geteuid());
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return refuse(p, "%s %s is writable by %s", what, path,
                      (st->st_mode & S_IWOTH) ? "others" : "its group");
    return 0;
}

/* Finds <dir>/<name>.so in the configured directories and checks its path. */
static int find_file(struct kith_plugin *p, const char *data_dir, const json_t *dirs)
{
    char tried[PLUGIN_REASON_MAX / 2] = "";
    size_t i;
    json_t *v;
    json_array_foreach(dirs, i, v)
    {
        const char *d = json_string_value(v);
        char dir[PATH_MAX];
        int n = d[0] == '/' ? snprintf(dir, sizeof dir, "%s", d)
                            : snprintf(dir, sizeof dir, "%s/%s", data_dir, d);
        if (n < 0 || (size_t)n >= sizeof dir) continue;
        n = snprintf(p->file, sizeof p->file, "%s/%s.so", dir, p->name);
        if (n < 0 || (size_t)n >= sizeof p->file) continue;
        struct stat st;
        if (lstat(p->file, &st) != 0) {
            size_t k = strlen(tried);
            snprintf(tried + k, sizeof tried - k, "%s%.200s", k ? ", " : "", dir);
            continue;
        }
        /* a link is followed, and what it leads to is checked: the file and
         * the directory it really is in (the configured one too) */
        if (!realpath(p->file, p->real)) return refuse(p, "%s: %s", p->file, strerror(errno));
        char realdir[PATH_MAX];
        snprintf(realdir, sizeof realdir, "%s", p->real);
        char *slash = strrchr(realdir, '/');
        if (slash) *slash = '\0';
        struct stat ds;
        if (stat(dir, &ds) != 0) return refuse(p, "%s: %s", dir, strerror(errno));
        if (owner_ok(p, dir, &ds, "the directory")) return -1;
        if (strcmp(realdir, dir) != 0) {
            if (stat(realdir[0] ? realdir : "/", &ds) != 0)
                return refuse(p, "%s: %s", realdir, strerror(errno));
            if (owner_ok(p, realdir, &ds, "the directory")) return -1;
        }
        return 0;
    }
    p->file[0] = '\0';
    return refuse(p, "no %s.so in the plugin directories (%s)", p->name,
                  tried[0] ? tried : "none configured");
}

#if defined(__x86_64__)
#define ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define ELF_MACHINE EM_AARCH64
#endif

/* Opens the resolved file once: its owner and mode, its ELF headers and
 * dlopen all see this open file (through /proc/self/fd), so it cannot be
 * swapped between the checks and the load. dlopen maps a file's segments and
 * dies of SIGBUS when one lies past the end of a truncated file: the headers
 * are checked against the size first. Returns the fd, or -1 (refused). */
static int open_checked(struct kith_plugin *p)
{
    int fd = open(p->real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return refuse(p, "%s: %s", p->file, strerror(errno));
    struct stat st;
    Elf64_Ehdr eh;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return refuse(p, "%s is not a regular file", p->file);
    }
    if (owner_ok(p, p->file, &st, "the file")) {
        close(fd);
        return -1;
    }
    ssize_t n = pread(fd, &eh, sizeof eh, 0);
    if (n < 4 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        close(fd);
        return refuse(p, "%s is not an ELF file", p->file);
    }
    uint64_t size = (uint64_t)st.st_size;
    const char *bad = NULL;
    if ((size_t)n < sizeof eh)
        bad = "truncated (shorter than an ELF header)";
    else if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        bad = "not a 64-bit little-endian ELF file";
    else if (eh.e_type != ET_DYN)
        bad = "not a shared object";
#ifdef ELF_MACHINE
    else if (eh.e_machine != ELF_MACHINE)
        bad = "built for another machine";
#endif
    else if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
             eh.e_phoff + (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size)
        bad = "truncated (program headers past the end of the file)";
    else if (eh.e_shnum && eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize > size)
        bad = "truncated (section headers past the end of the file)";
    for (uint16_t i = 0; !bad && i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != sizeof ph ||
            ((ph.p_type == PT_LOAD || ph.p_type == PT_DYNAMIC) && ph.p_offset + ph.p_filesz > size))
            bad = "truncated (a segment lies past the end of the file)";
    }
    if (bad) {
        close(fd);
        return refuse(p, "%s is %s", p->file, bad);
    }
    return fd;
}

/* Fills in defaults and refuses unknown keys and wrong types. */
static int config_apply(struct kith_plugin *p, const json_t *given)
{
    json_t *out = json_object();
    json_t *schema = NULL;
    const char *stext = p->desc->config_schema; /* zero when the descriptor stops before it */
    if (stext) {
        schema = json_parse(stext, strlen(stext));
        if (!schema || !json_is_object(schema)) {
            if (schema) json_decref(schema);
            json_decref(out);
            return refuse(p, "its config_schema is not a JSON object");
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)given, k, v)
    {
        if (!schema || !json_object_get(schema, k)) {
            if (schema) json_decref(schema);
            json_decref(out);
            return refuse(p, "config: unknown key '%s'", k);
        }
    }

    json_object_foreach(schema, k, v)
    {
        const char *type = json_string_value(json_object_get(v, "type"));
        json_t *val = json_object_get(given, k);
        if (!val) val = json_object_get(v, "default");
        if (!val) {
            if (json_is_true(json_object_get(v, "required"))) {
                refuse(p, "config: '%s' is required", k);
                json_decref(schema);
                json_decref(out);
                return -1;
            }
            continue;
        }
        int ok = !type                          ? 0
                 : strcmp(type, "string") == 0  ? json_is_string(val)
                 : strcmp(type, "integer") == 0 ? json_is_integer(val)
                 : strcmp(type, "number") == 0  ? json_is_number(val)
                 : strcmp(type, "boolean") == 0 ? json_is_boolean(val)
                 : strcmp(type, "object") == 0  ? json_is_object(val)
                 : strcmp(type, "array") == 0   ? json_is_array(val)
                                                : 0;
        if (!ok) {
            if (!type || !strstr("string integer number boolean object array", type))
                refuse(p, "its config_schema gives '%s' no known type", k);
            else
                refuse(p, "config: '%s' must be of type %s", k, type);
            json_decref(schema); /* type and k point into it */
            json_decref(out);
            return -1;
        }
        json_object_set(out, k, val);
    }
    if (schema) json_decref(schema);
    p->config = out;
    return 0;
}

static int load_one(struct plugin_set *ps, struct kith_plugin *p, const char *data_dir,
                    const json_t *dirs, const json_t *conf)
{
    if (find_file(p, data_dir, dirs)) return -1;
    int fd = open_checked(p);
    if (fd < 0) return -1;
    char via[64];
    snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
    dlerror();
    p->dl = dlopen(via, RTLD_NOW | RTLD_LOCAL);
    p->fd = fd;
    if (!p->dl) {
        const char *e = dlerror();
        return refuse(p, "%s cannot be loaded: %s", p->file, e ? e : "dlopen failed");
    }
    const kith_plugin_desc_t *given = dlsym(p->dl, "kith_plugin");
    if (!given) return refuse(p, "%s exports no kith_plugin descriptor", p->file);
    if (plugin_struct_in(&p->descbuf, sizeof p->descbuf, given, DESC_MIN, "descriptor"))
        return refuse(p, "its descriptor is %u bytes, smaller than any ABI's", given->size);
    p->desc = &p->descbuf;
    const kith_plugin_desc_t *d = p->desc;
    if (d->abi != KITH_PLUGIN_ABI)
        return refuse(p, "built for plugin ABI %u; this kith speaks ABI %d", d->abi,
                      KITH_PLUGIN_ABI);
    if (!d->signature || strcmp(d->signature, KITH_PLUGIN_SIGNATURE) != 0)
        return refuse(p, "built with signature '%.100s'; this kith needs '%s'",
                      d->signature ? d->signature : "(none)", KITH_PLUGIN_SIGNATURE);
    if (d->min_api_level > KITH_API_LEVEL)
        return refuse(p, "needs API level %u; this kith offers %d", d->min_api_level,
                      KITH_API_LEVEL);
    if (!ident_ok(d->name, PLUGIN_NAME_MAX, NULL))
        return refuse(p, "its descriptor's name is not 1-32 of a-z 0-9 _");
    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i] != p && ps->v[i]->loaded && strcmp(ps->v[i]->name, d->name) == 0)
            return refuse(p, "duplicate name: a plugin named %s is already loaded from %s", d->name,
                          ps->v[i]->file);
    if (!d->init) return refuse(p, "its descriptor has no init function");
    snprintf(p->name, sizeof p->name, "%s", d->name);
    snprintf(p->owner, sizeof p->owner, "plugin:%s", p->name);
    snprintf(p->version, sizeof p->version, "%s", d->version ? d->version : "");
    if (config_apply(p, json_object_get(conf, p->conf_name))) return -1;
    p->in_init = 1;
    err_clear();
    int rc = d->init(p, &plugin_api_table);
    p->in_init = 0;
    if (rc != 0) {
        const err_diag_t *e = err_last();
        refuse(p, "init failed (%d): %s", rc, e->msg[0] ? e->msg : "no message");
        registrations_free(p); /* nothing it registered goes live */
        return -1;
    }
    p->loaded = 1;
    return 0;
}

plugin_set_t *plugin_load_all(const config_t *cfg)
{
    const char *data_dir = cfg->data_dir;
    struct plugin_set *ps = xcalloc(1, sizeof *ps);
    json_t *sec = cfg->plugins;
    json_t *load = json_object_get(sec, "load"), *conf = json_object_get(sec, "config");
    json_t *dirs = json_object_get(sec, "dirs");
    json_t *dflt = NULL;
    if (!dirs) {
        /* beside an installed kith: <prefix>/lib/kith/plugins */
        char exe[PATH_MAX];
        dflt = json_array();
        if (file_exe_dir(exe, sizeof exe) == 0)
            json_array_append_new(dflt, json_sprintf("%s/../lib/kith/plugins", exe));
        dirs = dflt;
    }
    size_t i;
    json_t *v;
    json_array_foreach(load, i, v)
    {
        struct kith_plugin *p = xcalloc(1, sizeof *p);
        p->set = ps;
        p->fd = -1;
        snprintf(p->name, sizeof p->name, "%s", json_string_value(v));
        snprintf(p->conf_name, sizeof p->conf_name, "%s", p->name);
        ps->v = xrealloc(ps->v, (ps->n + 1) * sizeof *ps->v);
        ps->v[ps->n++] = p;
        for (size_t k = 0; k + 1 < ps->n; k++)
            if (strcmp(ps->v[k]->name, p->name) == 0 && ps->v[k]->loaded) {
                refuse(p, "listed twice in plugins.load");
                break;
            }
        if (!p->reason[0] && load_one(ps, p, data_dir, dirs, conf) == 0) {
            log_info("plugin", "plugin %s %s loaded from %s (%zu hooks, %zu routes)", p->name,
                     p->version, p->file, p->nhooks, p->nroutes);
        } else {
            log_error("plugin", "plugin %s refused: %s", p->name, p->reason);
            if (p->dl) dlclose(p->dl);
            if (p->fd >= 0) close(p->fd);
            p->dl = NULL;
            p->fd = -1;
            p->desc = NULL;
        }
    }
    /* the routes of the loaded plugins, literal ones first */
    for (size_t k = 0; k < ps->n; k++) {
        struct kith_plugin *p = ps->v[k];
        if (!p->loaded) continue;
        for (size_t r = 0; r < p->nroutes; r++) {
            plugin_route_t *pr = &p->routes[r];
            ps->routes = xrealloc(ps->routes, (ps->nroutes + 1) * sizeof *ps->routes);
            ps->routes[ps->nroutes++] = (http_route_t){
                .method = pr->method,
                .pattern = pr->pattern,
                .name = pr->name,
                .fn = plugin_route_handler,
                .flags = pr->flags & KITH_ROUTE_KEY_IN_PATH ? HTTP_KEY_IN_PATH : 0,
                .action = pr->action,
                .coll = pr->coll,
                .udata = pr,
            };
        }
    }
    if (dflt) json_decref(dflt);
    return ps;
}

void plugin_set_testing(plugin_set_t *ps)
{
    ps->testing = 1;
}

void plugin_set_free(plugin_set_t *ps)
{
    if (!ps) return;
    for (size_t k = ps->n; k-- > 0;) {
        struct kith_plugin *p = ps->v[k];
        if (p->loaded && p->desc->fini) p->desc->fini(p);
        if (p->dl) dlclose(p->dl);
        if (p->fd >= 0) close(p->fd);
        registrations_free(p);
        if (p->config) json_decref(p->config);
        free(p);
    }
    free(ps->v);
    free(ps->routes);
    free(ps);
}

size_t plugin_set_refused(const plugin_set_t *ps)
{
    size_t n = 0;
    for (size_t k = 0; k < ps->n; k++)
        n += !ps->v[k]->loaded;
    return n;
}

void plugin_set_report(const plugin_set_t *ps, buf_t *out)
{
    for (size_t k = 0; k < ps->n; k++) {
        const struct kith_plugin *p = ps->v[k];
        if (p->loaded)
            buf_addf(out, "loaded %s %s %s (%zu hooks, %zu routes, %zu collections, %zu timers)\n",
                     p->name, p->version, p->file, p->nhooks, p->nroutes,
                     p->colls ? json_array_size(p->colls) : 0, p->ntimers);
        else
            buf_addf(out, "refused %s: %s\n", p->name, p->reason);
    }
}

void plugin_set_list(const plugin_set_t *ps, buf_t *out)
{
    json_t *a = json_array();
    for (size_t k = 0; k < ps->n; k++) {
        const struct kith_plugin *p = ps->v[k];
        json_t *o = json_pack("{s:s,s:s,s:s}", "name", p->name, "state",
                              p->loaded ? "loaded" : "refused", "file", p->file);
        if (p->loaded) {
            json_t *hooks = json_array(), *routes = json_array();
            for (size_t i = 0; i < p->nhooks; i++)
                json_array_append_new(hooks, json_pack("{s:s,s:s}", "event", p->hooks[i].event,
                                                       "name", p->hooks[i].name));
            for (size_t i = 0; i < p->nroutes; i++)
                json_array_append_new(routes,
                                      json_pack("{s:s,s:s,s:s}", "method",
                                                http_method_name(p->routes[i].method), "path",
                                                p->routes[i].pattern, "name", p->routes[i].name));
            json_object_set_new(o, "version", json_string(p->version));
            json_object_set_new(o, "hooks", hooks);
            json_object_set_new(o, "routes", routes);
            json_object_set_new(o, "collections",
                                p->colls ? json_deep_copy(p->colls) : json_array());
        } else {
            json_object_set_new(o, "reason", json_string(p->reason));
        }
        json_array_append_new(a, o);
    }
    char *s = json_dumps(a, JSON_COMPACT);
    buf_add(out, s, strlen(s));
    free(s);
    json_decref(a);
}
