/*
 * kith/plugin.h — the only header a Kith plugin needs (C11 standard headers
 * only). Compatibility promises: sdk/docs/CONTRACT.md.
 *
 * A plugin is a shared object that exports one constant descriptor named
 * `kith_plugin` (use KITH_PLUGIN_DEFINE). The server checks it (ABI number,
 * build signature, API level, name), validates the plugin's configuration
 * against its schema, and calls init once with a function table, kith_api_t.
 * During init the plugin registers what it provides — event handlers,
 * HTTP routes, collections, recurring timers, counters; they apply to every
 * workspace. If init fails, everything it registered is rolled back and the
 * server starts without it. fini is called once at shutdown (only if init
 * succeeded).
 *
 * Threads: event handlers run on a workspace's writer thread, inside its
 * write transaction; read routes run on any I/O thread, write routes on the
 * writer. Plugin global state must be immutable after init, or protected by
 * the plugin. The kith_txn_t a callback gets is valid only during the call.
 *
 * Errors: functions returning int return 0 or a negative KITH_PLUGIN_E*
 * code, and leave a message for the calling thread (api->errmsg()). A
 * handler fails by returning such a code, after api->fail() to say why.
 *
 * JSON crosses the boundary as kith_json_t (reference-counted values with
 * the helpers in the table): "borrowed" arguments are not consumed, "steals"
 * ones are; values the core returns as "new" are the caller's to release with
 * api->json_decref.
 */
#ifndef KITH_PLUGIN_H
#define KITH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a change breaks existing plugins: a plugin built for another
 * ABI is refused. */
#define KITH_PLUGIN_ABI 1
/* Bumped when the table, the Lua API or the HTTP API grows: a plugin asks for
 * a minimum level and is refused by an older server. */
#define KITH_PLUGIN_API_LEVEL 2

#if defined(__GNUC__) || defined(__clang__)
#define KITH_PLUGIN_EXPORT       __attribute__((visibility("default")))
#define KITH_PLUGIN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KITH_PLUGIN_EXPORT
#define KITH_PLUGIN_PRINTF(f, a)
#endif

#define KITH_PLUGIN_STR_(x) #x
#define KITH_PLUGIN_STR(x)  KITH_PLUGIN_STR_(x)
/* How the plugin was built, as far as it matters across the boundary: the
 * ABI, pointer and long size, byte order. The server refuses a mismatch. */
#if defined(__SIZEOF_POINTER__) && defined(__SIZEOF_LONG__) && defined(__BYTE_ORDER__)
#define KITH_PLUGIN_SIGNATURE                                                                      \
    "kith-abi" KITH_PLUGIN_STR(KITH_PLUGIN_ABI) "/p" KITH_PLUGIN_STR(                              \
        __SIZEOF_POINTER__) "/l" KITH_PLUGIN_STR(__SIZEOF_LONG__) "/o" KITH_PLUGIN_STR(__BYTE_ORDER__)
#else
#define KITH_PLUGIN_SIGNATURE "kith-abi" KITH_PLUGIN_STR(KITH_PLUGIN_ABI) "/unknown"
#endif

enum {
    KITH_PLUGIN_OK = 0,
    KITH_PLUGIN_EINVAL = -1,      /* bad argument */
    KITH_PLUGIN_ENOTFOUND = -2,   /* no such record, collection, ... */
    KITH_PLUGIN_EEXIST = -3,      /* exists, or a unique value is taken */
    KITH_PLUGIN_ECONFLICT = -4,   /* stale version */
    KITH_PLUGIN_EVALIDATION = -5, /* a record breaks its schema */
    KITH_PLUGIN_ELIMIT = -11,     /* a size or count limit */
    KITH_PLUGIN_EPERM = -12,      /* not allowed (the caller's role, or the phase) */
    KITH_PLUGIN_EVETO = -13,      /* before-hooks: refuse the write (HTTP 422) */
    KITH_PLUGIN_EHANDLER = -17,   /* a handler failed */
};

typedef struct kith_plugin kith_plugin_t; /* the core's handle of a loaded plugin */
typedef struct kith_txn kith_txn_t;       /* a transaction of one workspace */
typedef struct kith_json kith_json_t;     /* a JSON value */
typedef struct kith_counter kith_counter_t;
typedef struct kith_api kith_api_t;

/* ---- the descriptor ---- */

typedef struct kith_plugin_desc {
    uint32_t size;          /* sizeof(kith_plugin_desc_t) */
    uint32_t abi;           /* KITH_PLUGIN_ABI */
    const char *signature;  /* KITH_PLUGIN_SIGNATURE */
    const char *name;       /* [a-z0-9_], 1..32 characters; unique among loaded plugins */
    const char *version;    /* free text, e.g. "1.2.0" */
    uint32_t min_api_level; /* the lowest KITH_PLUGIN_API_LEVEL it works with */
    /* Registers what the plugin provides; 0, or a KITH_PLUGIN_E* code (after
     * api->fail) to refuse loading. */
    int (*init)(kith_plugin_t *p, const kith_api_t *api);
    void (*fini)(kith_plugin_t *p);
    /* The configuration it accepts (JSON text, NULL: none): an object mapping
     * each key to {"type": "string|integer|number|boolean|object|array",
     * "default": value, "required": bool}. Unknown keys are refused. */
    const char *config_schema;
} kith_plugin_desc_t;

/* Defines the exported descriptor: KITH_PLUGIN_DEFINE("hello", "1.0.0", 1,
 * init, fini, schema). */
#define KITH_PLUGIN_DEFINE(name_, version_, min_level_, init_, fini_, schema_)                     \
    KITH_PLUGIN_EXPORT                                                                             \
    const kith_plugin_desc_t kith_plugin = {sizeof(kith_plugin_desc_t),                            \
                                            KITH_PLUGIN_ABI,                                       \
                                            KITH_PLUGIN_SIGNATURE,                                 \
                                            name_,                                                 \
                                            version_,                                              \
                                            min_level_,                                            \
                                            init_,                                                 \
                                            fini_,                                                 \
                                            schema_}

/* ---- what callbacks see ---- */

#define KITH_ID_LEN 26 /* record ids: 26 characters of Crockford base32 */

typedef struct kith_record {
    uint32_t size; /* set by the caller: sizeof(kith_record_t) */
    char id[KITH_ID_LEN + 1];
    uint64_t version;
    int64_t created_ms, updated_ms;
    kith_json_t *fields; /* the record's fields: new from entity_get/create/update
                            (json_decref it), borrowed in query rows */
} kith_record_t;

enum kith_op { KITH_OP_CREATE = 1, KITH_OP_UPDATE = 2, KITH_OP_DELETE = 3, KITH_OP_EVENT = 4 };

typedef struct kith_event {
    uint32_t size;
    const char *name;       /* "contacts.before_update", "deals.created", "lead.hot" */
    int op;                 /* enum kith_op */
    int before;             /* 1: a before-hook, inside the write */
    const char *collection; /* NULL for domain events */
    const char *id;         /* the record's id, NULL for domain events */
    /* before-hooks: the stored fields (update, delete); after-hooks: the
     * previous values of the changed fields (update), the deleted record
     * (delete). NULL otherwise. Borrowed. */
    const kith_json_t *previous;
    /* before-hooks of create and update: the fields about to be written; the
     * handler may change them and then sets amended = 1. NULL otherwise. */
    kith_json_t *record;
    int amended;
    const char *const *changed; /* the fields an update changes */
    size_t nchanged;
    const kith_json_t *payload; /* a domain event's payload, or NULL */
    uint64_t seq;               /* after-hooks: the change's sequence */
    int64_t time_ms;            /* after-hooks: when it committed */
    int depth;                  /* cascade depth */
    const char *workspace;
    /* 1 in `kith test`'s throw-away copy of a workspace: do nothing outside
     * the store (no webhooks, e-mail, SMS). */
    int test;
} kith_event_t;

/* 0; a refusal (before-hooks only, with api->fail's message): the write
 * fails as the client's mistake with KITH_PLUGIN_EVETO (HTTP 422),
 * KITH_PLUGIN_EVALIDATION (422, name the fields with api->fail_field),
 * KITH_PLUGIN_EEXIST (409, a duplicate: name it with api->fail_existing, and
 * an upsert updates that record instead), KITH_PLUGIN_ECONFLICT (409) or
 * KITH_PLUGIN_EPERM (403) — the last four from API level 2 on; or another
 * code: a failure (a before-hook's fails the write with HTTP 500 and a log
 * line; an after-hook's is retried with backoff, never skipped). */
typedef int (*kith_event_fn)(void *ud, kith_txn_t *tx, kith_event_t *ev);

typedef struct kith_hook {
    uint32_t size;
    const char *event;         /* an event name */
    const char *name;          /* unique within the plugin: [a-z0-9_.-] */
    int priority;              /* lower runs first; 0: 100 */
    const char *const *fields; /* update handlers: run only if one changed */
    size_t nfields;
    kith_event_fn fn;
    void *ud;
} kith_hook_t;

/* ---- HTTP routes ---- */

enum kith_route_flag {
    KITH_ROUTE_WRITE = 1u << 0, /* runs on the writer inside a write transaction;
                                   a failure rolls back everything it wrote */
    /* API level 2: the pattern's first {param} is the caller's API key, in
     * place of the Authorization header — for public web forms, which post to
     * a URL. Logs show the pattern, not the path. Give such keys a role that
     * may do only what the route needs. */
    KITH_ROUTE_KEY_IN_PATH = 1u << 1,
    /* API level 2: entity calls are not limited by the caller's role and
     * scope (the route's own action is still checked before it runs, and
     * writes are still audited as the caller): for routes that act for a
     * narrow caller, such as a web form's key creating a lead. Values come
     * in clear: such a route must not answer with record data. */
    KITH_ROUTE_AS_SYSTEM = 1u << 2,
};

typedef struct kith_request {
    uint32_t size;
    const char *method; /* "GET", "POST", ... */
    const char *path;
    const char *const *params; /* the pattern's {x} segments, decoded, in order */
    size_t nparams;
    const char *query; /* the raw query string (after '?'), "" if none */
    const char *body;  /* the request body (not NUL-terminated), or NULL */
    size_t body_len;
    const kith_json_t *json; /* the body parsed, when it is JSON; else NULL */
    const char *workspace;
    const char *key_id; /* the caller's API key id */
    const char *role;   /* the caller's role */
    const char *user;   /* who the key stands for (owner scope) */
    const char *request_id;
} kith_request_t;

typedef struct kith_response kith_response_t;

/* Answer with api->respond or api->respond_problem (once). Returning a
 * KITH_PLUGIN_E* code sends the matching problem+json, unless you answered
 * with a problem yourself; a success answer followed by a failure code is
 * dropped. An error answer (status >= 400) rolls back a write route's writes
 * even when the function returns 0. */
typedef int (*kith_route_fn)(void *ud, kith_txn_t *tx, const kith_request_t *req,
                             kith_response_t *res);

typedef struct kith_route {
    uint32_t size;
    const char *method;  /* GET, POST, PUT, PATCH, DELETE */
    const char *pattern; /* under /v1/, {x} matches one segment: "/v1/leads/{id}/score" */
    const char *name;    /* for metrics and logs: [a-z0-9_.] */
    /* What the caller's role needs: a record action ("read", "create",
     * "update", "delete", "export", "import") on `collection`, a capability
     * ("schema", "scripts", "keys", "audit"), "any" (any valid key). */
    const char *action;
    const char *collection;
    unsigned flags; /* enum kith_route_flag */
    kith_route_fn fn;
    void *ud;
} kith_route_t;

/* ---- queries ---- */

typedef struct kith_query {
    uint32_t size;
    const char *collection;
    const kith_json_t *filter; /* the store's filter grammar, or NULL (borrowed) */
    const char *sort;          /* "field" or "-field", NULL: id order */
    size_t limit;              /* 0: 50; at most 1000 */
    const char *cursor;        /* from a previous page */
} kith_query_t;

/* Return 0 to go on, nonzero to stop (returned by entity_query). */
typedef int (*kith_row_fn)(void *ud, const kith_record_t *rec);

enum kith_json_type {
    KITH_JSON_OBJECT,
    KITH_JSON_ARRAY,
    KITH_JSON_STRING,
    KITH_JSON_INTEGER,
    KITH_JSON_REAL,
    KITH_JSON_TRUE,
    KITH_JSON_FALSE,
    KITH_JSON_NULL,
};

enum kith_log_level { KITH_LOG_DEBUG, KITH_LOG_INFO, KITH_LOG_WARN, KITH_LOG_ERROR };

/* ---- the function table ---- */

/* Grows only at the end; check `size` (or api_level) before using a member
 * added after the level you require. */
struct kith_api {
    uint32_t size;
    uint32_t api_level;

    /* -- registration (during init only; KITH_PLUGIN_EPERM afterwards) -- */
    int (*on)(kith_plugin_t *p, const kith_hook_t *hook);
    int (*route)(kith_plugin_t *p, const kith_route_t *route);
    /* Declares a collection (a schema definition as JSON text, as PUT
     * /v1/schema/{collection} takes it) in every workspace: created if
     * missing; fields it lacks are added; nothing else is changed. */
    int (*collection)(kith_plugin_t *p, const char *definition_json);
    /* A recurring timer in every workspace (interval "15m" or a 5-field
     * cron line in UTC) firing domain event `event` with payload (borrowed,
     * may be NULL); kept across restarts, removed when no longer declared. */
    int (*every_declare)(kith_plugin_t *p, const char *id, const char *spec, const char *event,
                         const kith_json_t *payload);
    /* A counter shown in /metrics as kith_plugin_<plugin>_<name>_total. */
    kith_counter_t *(*counter)(kith_plugin_t *p, const char *name, const char *help);

    /* -- any time -- */
    void (*counter_add)(kith_counter_t *c, uint64_t n);
    void (*log)(kith_plugin_t *p, int level, const char *fmt, ...) KITH_PLUGIN_PRINTF(3, 4);
    /* The plugin's configuration (its section, defaults filled in): an
     * object, borrowed, immutable. */
    const kith_json_t *(*config)(kith_plugin_t *p);
    /* Sets the calling thread's message (for a veto or failure); returns code. */
    int (*fail)(int code, const char *fmt, ...) KITH_PLUGIN_PRINTF(2, 3);
    const char *(*errmsg)(void);
    int64_t (*now_ms)(void);

    /* -- records, in a callback's transaction -- */
    int (*entity_get)(kith_txn_t *tx, const char *coll, const char *id, kith_record_t *out);
    /* *next_cursor (may be NULL) gets the next page's cursor (free with api->free) or NULL. */
    int (*entity_query)(kith_txn_t *tx, const kith_query_t *q, kith_row_fn fn, void *ud,
                        char **next_cursor);
    /* fields/patch borrowed; out may be NULL. if_version 0: any. */
    int (*entity_create)(kith_txn_t *tx, const char *coll, const kith_json_t *fields,
                         kith_record_t *out);
    int (*entity_update)(kith_txn_t *tx, const char *coll, const char *id, const kith_json_t *patch,
                         uint64_t if_version, kith_record_t *out);
    int (*entity_delete)(kith_txn_t *tx, const char *coll, const char *id, uint64_t if_version);

    /* -- bus and scheduler, in a write transaction -- */
    int (*emit)(kith_txn_t *tx, const char *event, const kith_json_t *payload);
    /* Timers fire domain events; ids are the plugin's own, 1 to 64 of
     * a-z 0-9 _ . - (lower-case a record id first); re-using one replaces
     * the timer. delay in ms (at least 1 s); at in Unix ms. */
    int (*after)(kith_txn_t *tx, const char *id, int64_t delay_ms, const char *event,
                 const kith_json_t *payload);
    int (*at)(kith_txn_t *tx, const char *id, int64_t at_ms, const char *event,
              const kith_json_t *payload);
    int (*every)(kith_txn_t *tx, const char *id, const char *spec, const char *event,
                 const kith_json_t *payload);
    /* 0, or KITH_PLUGIN_ENOTFOUND. */
    int (*cancel)(kith_txn_t *tx, const char *id);
    const char *(*txn_workspace)(const kith_txn_t *tx);

    /* -- HTTP answers -- */
    /* body borrowed (NULL: no body); status 200..599. */
    int (*respond)(kith_response_t *res, int status, const kith_json_t *body);
    /* An RFC 9457 problem: type is a slug ("invalid", "not-found", ...). */
    int (*respond_problem)(kith_response_t *res, int status, const char *type, const char *detail);

    /* -- JSON -- */
    kith_json_t *(*json_parse)(const char *text, size_t len); /* new, or NULL (errmsg) */
    char *(*json_dump)(const kith_json_t *v, size_t *len);    /* compact; api->free it */
    void (*free)(void *p);
    kith_json_t *(*json_incref)(kith_json_t *v);
    void (*json_decref)(kith_json_t *v);
    int (*json_type)(const kith_json_t *v);
    int (*json_equal)(const kith_json_t *a, const kith_json_t *b);
    kith_json_t *(*json_deep_copy)(const kith_json_t *v);
    kith_json_t *(*json_object)(void);
    kith_json_t *(*json_array)(void);
    kith_json_t *(*json_string)(const char *s); /* NULL if s is not UTF-8 */
    kith_json_t *(*json_integer)(int64_t v);
    kith_json_t *(*json_real)(double v);
    kith_json_t *(*json_bool)(int v);
    kith_json_t *(*json_null)(void);
    kith_json_t *(*object_get)(const kith_json_t *o, const char *key);  /* borrowed or NULL */
    int (*object_set)(kith_json_t *o, const char *key, kith_json_t *v); /* steals v */
    int (*object_del)(kith_json_t *o, const char *key);
    size_t (*object_size)(const kith_json_t *o);
    /* Iteration: it = object_iter(o); while (it) { key, value; it = object_next(o, it); } */
    void *(*object_iter)(kith_json_t *o);
    void *(*object_next)(kith_json_t *o, void *it);
    const char *(*iter_key)(void *it);
    kith_json_t *(*iter_value)(void *it);
    size_t (*array_size)(const kith_json_t *a);
    kith_json_t *(*array_get)(const kith_json_t *a, size_t i); /* borrowed or NULL */
    int (*array_append)(kith_json_t *a, kith_json_t *v);       /* steals v */
    const char *(*string_value)(const kith_json_t *v);         /* NULL if not a string */
    int64_t (*integer_value)(const kith_json_t *v);            /* 0 if not an integer */
    double (*number_value)(const kith_json_t *v);              /* integer or real; else 0 */

    /* -- API level 2 -- */
    /* After api->fail: one offending field of the failure, listed in the
     * problem's "errors" ({"field", "detail"}). */
    void (*fail_field)(const char *field, const char *fmt, ...) KITH_PLUGIN_PRINTF(2, 3);
    /* After api->fail(KITH_PLUGIN_EEXIST, ...): the id of the record the
     * write duplicates, in the same collection. The client sees it as the
     * problem's "existing_id" if it may read that record; an upsert
     * (POST /v1/{collection}?upsert=true) updates it instead. */
    void (*fail_existing)(const char *id);
    /* After an entity call failed with KITH_PLUGIN_EEXIST: the id of the
     * record it would duplicate, or "" if none was named (or the caller may
     * not read it). Valid until the thread's next call into the core. */
    const char *(*errexisting)(void);
    /* entity_get with sensitive fields in clear whatever the caller's role
     * (the caller's scope still applies): for values a route copies into
     * writes — a merge, a conversion — which entity_get would hand over
     * masked ("a***@example.com"), and writing those back destroys data.
     * Never put what it returns into an answer. */
    int (*entity_get_clear)(kith_txn_t *tx, const char *coll, const char *id, kith_record_t *out);
};

#ifdef __cplusplus
}
#endif

#endif
