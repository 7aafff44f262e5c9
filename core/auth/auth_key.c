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

int auth_key_create(auth_dir_t *d, const char *workspace, const char *role, const char *label,
                    char *token, char *key_id)
{
    if (!auth_role_builtin(role))
        return err_set(KITH_EINVAL, "unknown role '%s' (admin, manager, sales, support, readonly)",
                       role);
    if (!auth_workspace_exists(d, workspace))
        return err_set(KITH_ENOTFOUND, "no workspace '%s'", workspace);
    uint8_t secret[32];
    rand_bytes(secret, sizeof secret);
    memcpy(token, AUTH_TOKEN_PREFIX, sizeof AUTH_TOKEN_PREFIX); /* with its NUL */
    b64url_encode(secret, sizeof secret, token + strlen(AUTH_TOKEN_PREFIX));
    memset(secret, 0, sizeof secret);
    char hash[65];
    auth_token_hash(token, strlen(token), hash);
    json_t *rec = json_pack("{s:s,s:s,s:s}", "hash", hash, "workspace", workspace, "role", role);
    if (label && *label) json_object_set_new(rec, "label", json_string(label));
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
