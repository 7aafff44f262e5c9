/*
 * auth/auth_role: roles, capabilities, record scope and field masking.
 *
 * A role grants, per collection ("*" = any), record actions (read, create,
 * update, delete, export, import) with a scope — own (records whose `owner` is
 * the caller's user), team (whose `team` is the caller's team, or own), all —
 * plus workspace capabilities: unmask (see sensitive fields in clear), schema,
 * scripts, keys, audit. Built-in roles: admin, manager, sales, support,
 * readonly; custom roles are JSON (auth_role_parse) stored per workspace.
 */
#ifndef KITH_AUTH_ROLE_H
#define KITH_AUTH_ROLE_H

#include "store/store.h"

#include <jansson.h>

enum auth_action {
    ACT_READ = 0,
    ACT_CREATE,
    ACT_UPDATE,
    ACT_DELETE,
    ACT_EXPORT,
    ACT_IMPORT,
    ACT__COUNT
};

enum auth_cap {
    CAP_UNMASK = 1u << 0,
    CAP_SCHEMA = 1u << 1,
    CAP_SCRIPTS = 1u << 2,
    CAP_KEYS = 1u << 3,
    CAP_AUDIT = 1u << 4,
    /* a form key: it works only in the URL of a route that takes its key in
     * the path (a public web form), and those routes take only such keys */
    CAP_FORM = 1u << 5,
};

enum auth_scope { SCOPE_NONE = 0, SCOPE_OWN = 1, SCOPE_TEAM = 2, SCOPE_ALL = 3 };

#define AUTH_GRANTS_MAX 64

typedef struct auth_grant {
    char coll[STORE_NAME_MAX]; /* "*" for every collection */
    unsigned actions;          /* 1 << enum auth_action */
    int scope;
} auth_grant_t;

typedef struct auth_role {
    char name[64];
    auth_grant_t grants[AUTH_GRANTS_MAX];
    size_t ngrants;
    unsigned caps;
    int builtin;
} auth_role_t;

const char *auth_action_name(int action);
int auth_action_from_name(const char *name);
const char *auth_cap_name(unsigned cap);
unsigned auth_cap_from_name(const char *name);

/* The built-in role of that name, or NULL. */
const auth_role_t *auth_role_get_builtin(const char *name);

/* Parses {"name", "collections": {"<coll>|*": {"actions": [...], "scope": "own|team|all"}},
 * "capabilities": [...]}. KITH_EINVAL / KITH_EVALIDATION naming the problem. */
int auth_role_parse(const json_t *j, auth_role_t *out);
json_t *auth_role_to_json(const auth_role_t *r);

/* The scope with which role may do action on coll (SCOPE_NONE: not at all).
 * A grant for the collection itself wins over "*". */
int auth_role_scope(const auth_role_t *r, const char *coll, int action);

/* Who is asking, for record scope. */
typedef struct auth_who {
    const char *user; /* the key's user (its id when none was given) */
    const char *team; /* may be NULL */
} auth_who_t;

/* 1 if the record's owner/team fields put it within scope for who. A
 * collection without `owner` and `team` fields is shared: any scope covers it. */
int auth_scope_covers(int scope, const store_coll_t *c, const json_t *fields,
                      const auth_who_t *who);
/* The filter restricting a query to scope (new reference), or NULL for all. */
json_t *auth_scope_filter(int scope, const store_coll_t *c, const auth_who_t *who);

/* ---- masking ---- */

/* The masked form of one sensitive value: a phone 13812345678 reads
 * 138****5678, an e-mail a***@example.com, other text keeps its first
 * character, anything else "***". New reference. */
json_t *auth_mask_value(const store_field_t *f, const json_t *v);
/* Masks every sensitive field of c in fields (in place). Returns how many. */
int auth_mask_fields(const store_coll_t *c, json_t *fields);
/* 1 if c has any sensitive field. */
int auth_coll_has_sensitive(const store_coll_t *c);
/* For a caller who sees c's sensitive fields masked: KITH_EPERM (with a
 * message naming the field) if sort or filter uses one — the answers would
 * reveal it a prefix at a time; the filter's own code if it does not
 * compile; else 0. */
int auth_masked_use(const store_coll_t *c, const json_t *filter, const char *sort);

#endif
