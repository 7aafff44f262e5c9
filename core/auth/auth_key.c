/*
 * auth_key: API keys and the built-in roles.
 */
#include "auth/auth.h"

#include "base/codec.h"
#include "base/mem.h"
#include "base/rand.h"

#include <mbedtls/sha256.h>
#include <string.h>

static const char *const builtin_roles[] = {"admin",   "manager",  "sales",
                                            "support", "readonly", NULL};

int auth_role_builtin(const char *role)
{
    for (size_t i = 0; builtin_roles[i]; i++)
        if (strcmp(builtin_roles[i], role) == 0) return 1;
    return 0;
}

const char *const *auth_roles_builtin(void)
{
    return builtin_roles;
}

void auth_token_hash(const char *token, size_t len, char out[65])
{
    uint8_t h[32];
    mbedtls_sha256_ret((const unsigned char *)token, len, h, 0);
    hex_encode(h, sizeof h, out);
}

static int count_row(void *ctx, const store_record_t *rec)
{
    (void)rec;
    (*(uint64_t *)ctx)++;
    return 0;
}

int auth_role_known(store_t *ws, const char *role)
{
    if (auth_role_builtin(role)) return 1;
    store_rtxn_t *rt;
    if (store_read_begin(ws, &rt)) return 0;
    json_t *filter = json_pack("{s:s}", "name", role);
    uint64_t n = 0;
    char *next = NULL;
    store_query_t q = {.coll = "_roles", .filter = filter, .limit = 1};
    int rc = store_query(rt, &q, count_row, &n, &next);
    free(next);
    json_decref(filter);
    store_read_end(rt);
    return rc == 0 && n > 0;
}

static int text_ok(const char *s, size_t max)
{
    return !s || strlen(s) <= max;
}

int auth_key_create(auth_dir_t *d, const auth_key_spec_t *spec, char *token, char *key_id)
{
    if (!spec->role || !*spec->role) return err_set(KITH_EINVAL, "a key needs a role");
    if (!text_ok(spec->label, 200) || !text_ok(spec->user, 120) || !text_ok(spec->team, 120))
        return err_set(KITH_EINVAL, "label is at most 200 bytes, user and team 120");
    if (!spec->workspace || !auth_workspace_exists(d, spec->workspace))
        return err_set(KITH_ENOTFOUND, "no workspace '%s'", spec->workspace ? spec->workspace : "");
    uint8_t secret[32];
    rand_bytes(secret, sizeof secret);
    memcpy(token, AUTH_TOKEN_PREFIX, sizeof AUTH_TOKEN_PREFIX); /* with its NUL */
    b64url_encode(secret, sizeof secret, token + strlen(AUTH_TOKEN_PREFIX));
    memset(secret, 0, sizeof secret);
    char hash[65];
    auth_token_hash(token, strlen(token), hash);
    json_t *rec =
        json_pack("{s:s,s:s,s:s}", "hash", hash, "workspace", spec->workspace, "role", spec->role);
    if (spec->label && *spec->label) json_object_set_new(rec, "label", json_string(spec->label));
    if (spec->user && *spec->user) json_object_set_new(rec, "user", json_string(spec->user));
    if (spec->team && *spec->team) json_object_set_new(rec, "team", json_string(spec->team));
    store_op_t *op = store_op_create("_keys", rec);
    op->system = 1;
    json_decref(rec);
    int rc = store_exec(auth_dir_system(d), op);
    if (rc == 0) id_encode(&op->rid, key_id);
    store_op_free(op);
    if (rc) memset(token, 0, AUTH_TOKEN_LEN);
    return rc;
}

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

typedef struct found {
    int n;
    auth_principal_t p;
    int revoked;
} found_t;

static int key_row(void *ctx, const store_record_t *rec)
{
    found_t *f = ctx;
    json_t *j = store_record_fields(rec);
    if (!j) return KITH_ECORRUPT;
    f->n++;
    id_encode(&rec->id, f->p.key_id);
    snprintf(f->p.workspace, sizeof f->p.workspace, "%s",
             str_or_empty(json_string_value(json_object_get(j, "workspace"))));
    snprintf(f->p.role, sizeof f->p.role, "%s",
             str_or_empty(json_string_value(json_object_get(j, "role"))));
    f->revoked = json_is_true(json_object_get(j, "revoked"));
    const char *user = json_string_value(json_object_get(j, "user"));
    snprintf(f->p.user, sizeof f->p.user, "%s", user && *user ? user : f->p.key_id);
    snprintf(f->p.team, sizeof f->p.team, "%s",
             str_or_empty(json_string_value(json_object_get(j, "team"))));
    json_decref(j);
    return 0;
}

int auth_key_lookup(auth_dir_t *d, const char *token, size_t len, auth_principal_t *out)
{
    if (len != AUTH_TOKEN_LEN || memcmp(token, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)) != 0)
        return err_set(KITH_EPERM, "not a kith API key");
    char hash[65];
    auth_token_hash(token, len, hash);
    store_rtxn_t *rt;
    int rc = store_read_begin(auth_dir_system(d), &rt);
    if (rc) return rc;
    json_t *filter = json_pack("{s:s}", "hash", hash);
    found_t f = {0};
    char *next = NULL;
    store_query_t q = {.coll = "_keys", .filter = filter, .limit = 1};
    rc = store_query(rt, &q, key_row, &f, &next);
    free(next);
    json_decref(filter);
    store_read_end(rt);
    if (rc) return rc;
    if (f.n == 0) return err_set(KITH_EPERM, "unknown API key");
    if (f.revoked) return err_set(KITH_EPERM, "revoked API key");
    *out = f.p;
    return 0;
}

int auth_key_revoke(auth_dir_t *d, const char *workspace, const char *key_id)
{
    kith_id_t id;
    int rc = id_decode(key_id, strlen(key_id), &id);
    if (rc) return err_set(KITH_EINVAL, "'%s' is not a key id", key_id);
    store_rtxn_t *rt;
    if ((rc = store_read_begin(auth_dir_system(d), &rt))) return rc;
    store_record_t rec;
    char ws[AUTH_WORKSPACE_MAX + 1] = "";
    rc = store_get(rt, "_keys", &id, &rec);
    if (rc == 0) {
        json_t *j = store_record_fields(&rec);
        snprintf(ws, sizeof ws, "%s",
                 j ? str_or_empty(json_string_value(json_object_get(j, "workspace"))) : "");
        if (j) json_decref(j);
    }
    store_read_end(rt);
    /* A key of another workspace is as absent as a missing one. */
    if (rc == KITH_ENOTFOUND || (rc == 0 && workspace && strcmp(ws, workspace) != 0))
        return err_set(KITH_ENOTFOUND, "no key '%s'", key_id);
    if (rc) return rc;
    json_t *patch = json_pack("{s:b}", "revoked", 1);
    store_op_t *op = store_op_update("_keys", &id, patch, 0);
    op->system = 1;
    json_decref(patch);
    rc = store_exec(auth_dir_system(d), op);
    store_op_free(op);
    return rc;
}
