/*
 * auth: the data directory, its workspaces, API keys and roles.
 *
 * Layout of a data directory:
 *   kith.json            marker and configuration (data format, listen, TLS paths)
 *   tls/cert.pem, key.pem
 *   system/              an LMDB store with the system collections
 *                        _workspaces (name) and _keys (hash, workspace, role, ...)
 *   workspaces/<name>/   one LMDB store per workspace
 *
 * API keys are 256-bit random tokens ("kith_" + 43 base64url characters). Only
 * their SHA-256 is stored: a plain hash is right for full-entropy secrets
 * (password hashing exists to slow guessing of low-entropy secrets). A key
 * belongs to one workspace and one role; the workspace of a request comes from
 * its key and nowhere else.
 */
#ifndef KITH_AUTH_H
#define KITH_AUTH_H

#include "store/store.h"

#include <stddef.h>

#define AUTH_DATA_FORMAT   1
#define AUTH_TOKEN_PREFIX  "kith_"
#define AUTH_TOKEN_LEN     48 /* prefix + 43 */
#define AUTH_WORKSPACE_MAX 63

enum auth_dir_mode {
    AUTH_DIR_READ = 1,  /* read-only stores: check, backup, list */
    AUTH_DIR_WRITE = 2, /* writes run on the caller's thread (the CLI) */
    AUTH_DIR_SERVE = 3, /* stores get writer threads (the server) */
};

typedef struct auth_dir auth_dir_t;

/* Creates the layout inside path, which must exist and be empty: kith.json
 * (with plugins.load = plugins, a comma-separated list, if not NULL), tls/,
 * the system store and the "default" workspace. No certificate. */
int auth_dir_layout_create(const char *path, const char *plugins);

/* Opens an existing data directory. KITH_ENOTFOUND (no such directory),
 * KITH_EINVAL (not a kith data directory), KITH_EPERM, KITH_ECORRUPT,
 * KITH_ELOCKED: the message says what and where. */
int auth_dir_open(const char *path, int mode, auth_dir_t **out);
void auth_dir_close(auth_dir_t *d);
const char *auth_dir_path(const auth_dir_t *d);
store_t *auth_dir_system(auth_dir_t *d);

/* 1 if name is a valid workspace name: [a-z0-9][a-z0-9_-]{0,62}. */
int auth_workspace_name_ok(const char *name);
/* Registers and creates a workspace. KITH_EEXIST if it exists. */
int auth_workspace_create(auth_dir_t *d, const char *name);
/* Names in order; free each and the array. */
int auth_workspace_list(auth_dir_t *d, char ***names, size_t *n);
int auth_workspace_exists(auth_dir_t *d, const char *name);
/* Opens a workspace's store with the dir's mode (opts may add map_size). */
int auth_workspace_open(auth_dir_t *d, const char *name, store_t **out);
/* Path of a workspace's directory into out. */
void auth_workspace_path(const auth_dir_t *d, const char *name, char *out, size_t cap);

/* ---- roles ---- */

/* 1 for the built-in roles: admin, manager, sales, support, readonly. */
int auth_role_builtin(const char *role);
/* 1 if role is built-in or a custom role stored in the workspace's store. */
int auth_role_known(store_t *ws, const char *role);
/* Creates the workspace's system collections (_roles) if missing. */
int auth_workspace_prepare(store_t *ws);
/* The built-in role names, NULL-terminated. */
const char *const *auth_roles_builtin(void);

/* ---- keys ---- */

typedef struct auth_principal {
    char key_id[ID_TEXT_LEN + 1];
    char workspace[AUTH_WORKSPACE_MAX + 1];
    char role[64];
    char user[128]; /* for record scope "own": the key's user, or its id */
    char team[128]; /* for scope "team"; empty when none */
} auth_principal_t;

typedef struct auth_key_spec {
    const char *workspace;
    const char *role;  /* built-in, or a custom role of the workspace */
    const char *label; /* may be NULL */
    const char *user;  /* may be NULL: the key id stands for the user */
    const char *team;  /* may be NULL */
} auth_key_spec_t;

/* Creates a key; writes the token (AUTH_TOKEN_LEN + 1 bytes) and its id. The
 * token is shown once and never stored. The role must exist in the workspace. */
int auth_key_create(auth_dir_t *d, const auth_key_spec_t *spec, char *token, char *key_id);
/* Resolves a token. KITH_EPERM for an unknown, malformed or revoked key. */
int auth_key_lookup(auth_dir_t *d, const char *token, size_t len, auth_principal_t *out);
/* Revokes key_id (of workspace, when workspace is not NULL). */
int auth_key_revoke(auth_dir_t *d, const char *workspace, const char *key_id);

/* SHA-256 of token as 64 hex characters (+ NUL). */
void auth_token_hash(const char *token, size_t len, char out[65]);

#endif
