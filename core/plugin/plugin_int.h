/*
 * plugin/plugin_int: what the plugin module's files share.
 */
#ifndef KITH_PLUGIN_INT_H
#define KITH_PLUGIN_INT_H

#include "plugin/plugin.h"

#include "api/api_int.h"
#include "auth/auth_role.h"
#include "bus/bus.h"
#include "sched/sched.h"
#include "store/store.h"
#include "store/store_schema.h"

#include "kith/plugin.h"

#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>

#define PLUGIN_NAME_MAX   32
#define PLUGIN_REASON_MAX 512

typedef struct plugin_hook {
    struct kith_plugin *pl;
    char event[BUS_NAME_MAX];
    char name[BUS_NAME_MAX];
    int priority;
    char **fields;
    size_t nfields;
    kith_event_fn fn;
    void *ud;
} plugin_hook_t;

typedef struct plugin_route {
    struct kith_plugin *pl;
    int method;
    char *pattern, *name, *action, *coll;
    unsigned flags;
    kith_route_fn fn;
    void *ud;
} plugin_route_t;

typedef struct plugin_timer {
    char *id; /* full: plugin:<name>/<id> */
    char *spec, *event, *payload;
} plugin_timer_t;

struct kith_counter {
    struct kith_plugin *pl;
    char name[64];
    char *help;
    atomic_uint_fast64_t value;
};

/* A plugin: loaded, or refused (then only name, file and reason are set). */
struct kith_plugin {
    char name[PLUGIN_NAME_MAX + 1];  /* as configured; then the descriptor's */
    char owner[PLUGIN_NAME_MAX + 8]; /* "plugin:<name>" */
    char version[64];
    char file[PATH_MAX];            /* as found in a plugin directory */
    char real[PATH_MAX];            /* what it resolves to */
    char reason[PLUGIN_REASON_MAX]; /* refused: why */
    int loaded;
    int in_init;                         /* registrations are accepted */
    char conf_name[PLUGIN_NAME_MAX + 1]; /* the name in plugins.load (its config section) */
    void *dl;
    int fd; /* the checked open file, dlopened as /proc/self/fd/<fd>: open while
               loaded, so no other plugin reuses that name (dlopen matches names) */
    const kith_plugin_desc_t *desc; /* = &descbuf once checked */
    kith_plugin_desc_t descbuf;     /* the plugin's descriptor, zero past its size */
    json_t *config;
    plugin_hook_t *hooks;
    size_t nhooks;
    plugin_route_t *routes;
    size_t nroutes;
    json_t *colls; /* array of collection definitions */
    plugin_timer_t *timers;
    size_t ntimers;
    struct kith_counter **counters;
    size_t ncounters;
    struct plugin_set *set;
};

struct plugin_set {
    struct kith_plugin **v;
    size_t n;
    http_route_t *routes; /* of the loaded plugins */
    size_t nroutes;
    int testing; /* kith test's throw-away copy (kith_event_t.test) */
};

/* A transaction handed to a callback (plugin_api.c). */
struct kith_txn {
    store_wtxn_t *w;  /* hooks and write routes */
    store_rtxn_t *rt; /* read routes */
    struct kith_plugin *pl;
    const char *workspace;
    /* routes: the caller (NULL role: a hook, which acts as the system) */
    const auth_role_t *role;
    auth_who_t who;
    int unmask;
    json_t *audit_who; /* routes: {"actor","request"} for audited writes */
    json_t *revealed;  /* routes: {"<coll>": {"ids": [...], "fields": [...]}} */
};

extern const kith_api_t plugin_api_table;

/* A hook bound to one workspace: the bus handler's context. */
typedef struct plugin_bound {
    plugin_hook_t *h;
    char ws[AUTH_WORKSPACE_MAX + 1];
} plugin_bound_t;

/* The bus handler that runs a plugin's hook; ctx is a plugin_bound_t (plugin_api.c). */
int plugin_hook_call(void *ctx, store_wtxn_t *w, bus_event_t *ev);

/* Route handlers (plugin_ext.c). */
void plugin_route_handler(http_req_t *r);

/* Registrations during init (plugin_load.c). */
int plugin_reg_on(kith_plugin_t *p, const kith_hook_t *def);
int plugin_reg_route(kith_plugin_t *p, const kith_route_t *def);
int plugin_reg_collection(kith_plugin_t *p, const char *def_json);
int plugin_reg_every(kith_plugin_t *p, const char *id, const char *spec, const char *event,
                     const kith_json_t *payload);
kith_counter_t *plugin_reg_counter(kith_plugin_t *p, const char *name, const char *help);

/* A plugin's return code as a core code: its own KITH_PLUGIN_E* codes pass,
 * anything else (positive, or a number the core uses internally) is
 * KITH_EHANDLER. */
int plugin_code(int rc);

/* Copies a struct a plugin passed (size first) into *dst, zero past its
 * size, so an older, smaller struct reads as zeros. 0, or KITH_EINVAL if it
 * is smaller than min. */
int plugin_struct_in(void *dst, size_t cap, const void *src, size_t min, const char *what);

#endif
