#include "auth/auth_role.h"

#include "base/codec.h"
#include "base/err.h"
#include "base/mem.h"
#include "store/store_filter.h"

#include <stdio.h>
#include <string.h>

static const char *const action_names[ACT__COUNT] = {"read",   "create", "update",
                                                     "delete", "export", "import"};

static const struct {
    unsigned cap;
    const char *name;
} caps[] = {
    {CAP_UNMASK, "unmask"}, {CAP_SCHEMA, "schema"}, {CAP_SCRIPTS, "scripts"},
    {CAP_KEYS, "keys"},     {CAP_AUDIT, "audit"},   {CAP_FORM, "form"},
};

#define ALL_ACTIONS ((1u << ACT__COUNT) - 1)
#define A(x)        (1u << (x))

static const auth_role_t builtin_roles[] = {
    {.name = "admin",
     .grants = {{"*", ALL_ACTIONS, SCOPE_ALL}},
     .ngrants = 1,
     .caps = CAP_UNMASK | CAP_SCHEMA | CAP_SCRIPTS | CAP_KEYS | CAP_AUDIT,
     .builtin = 1},
    {.name = "manager",
     .grants = {{"*", ALL_ACTIONS, SCOPE_ALL}},
     .ngrants = 1,
     .caps = CAP_UNMASK | CAP_AUDIT,
     .builtin = 1},
    {.name = "sales",
     .grants = {{"*", A(ACT_READ) | A(ACT_CREATE) | A(ACT_UPDATE) | A(ACT_EXPORT), SCOPE_TEAM}},
     .ngrants = 1,
     .builtin = 1},
    {.name = "support",
     .grants = {{"*", A(ACT_READ) | A(ACT_CREATE) | A(ACT_UPDATE), SCOPE_TEAM}},
     .ngrants = 1,
     .builtin = 1},
    {.name = "readonly", .grants = {{"*", A(ACT_READ), SCOPE_ALL}}, .ngrants = 1, .builtin = 1},
};

const char *auth_action_name(int action)
{
    return action >= 0 && action < ACT__COUNT ? action_names[action] : "?";
}

int auth_action_from_name(const char *name)
{
    for (int i = 0; i < ACT__COUNT; i++)
        if (strcmp(action_names[i], name) == 0) return i;
    return -1;
}

const char *auth_cap_name(unsigned cap)
{
    for (size_t i = 0; i < ARRAY_LEN(caps); i++)
        if (caps[i].cap == cap) return caps[i].name;
    return "?";
}

unsigned auth_cap_from_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(caps); i++)
        if (strcmp(caps[i].name, name) == 0) return caps[i].cap;
    return 0;
}

const auth_role_t *auth_role_get_builtin(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(builtin_roles); i++)
        if (strcmp(builtin_roles[i].name, name) == 0) return &builtin_roles[i];
    return NULL;
}

static const char *const scope_names[] = {"none", "own", "team", "all"};

int auth_role_parse(const json_t *j, auth_role_t *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) return err_set(KITH_EINVAL, "a role is a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "collections") && strcmp(k, "capabilities") &&
            strcmp(k, "builtin"))
            return err_set(KITH_EINVAL, "role: unknown attribute '%s'", k);
    }
    json_t *n = json_object_get(j, "name");
    const char *name = json_is_string(n) ? json_string_value(n) : "";
    size_t nl = strlen(name);
    int ok = nl > 0 && nl < sizeof out->name;
    for (size_t i = 0; ok && i < nl; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
             (i > 0 && (name[i] == '_' || name[i] == '-'));
    if (!ok) return err_set(KITH_EINVAL, "role: 'name' must be 1-63 of a-z 0-9 - _");
    snprintf(out->name, sizeof out->name, "%s", name);
    json_t *cs = json_object_get(j, "collections");
    if (cs && !json_is_object(cs))
        return err_set(KITH_EINVAL, "role %s: 'collections' must be an object", name);
    json_object_foreach(cs, k, v)
    {
        if (out->ngrants >= AUTH_GRANTS_MAX)
            return err_set(KITH_ELIMIT, "role %s: at most %d collections", name, AUTH_GRANTS_MAX);
        if (strlen(k) >= STORE_NAME_MAX || (strcmp(k, "*") && k[0] == '_'))
            return err_set(KITH_EINVAL, "role %s: '%s' is not a collection name", name, k);
        auth_grant_t *g = &out->grants[out->ngrants++];
        snprintf(g->coll, sizeof g->coll, "%s", k);
        if (!json_is_object(v))
            return err_set(KITH_EINVAL, "role %s: collections.%s must be an object", name, k);
        json_t *acts = json_object_get(v, "actions"), *sc = json_object_get(v, "scope");
        const char *kk;
        json_t *vv;
        json_object_foreach(v, kk, vv)
        {
            if (strcmp(kk, "actions") && strcmp(kk, "scope"))
                return err_set(KITH_EINVAL, "role %s: collections.%s: unknown attribute '%s'", name,
                               k, kk);
        }
        if (!json_is_array(acts))
            return err_set(KITH_EINVAL, "role %s: collections.%s.actions must be an array", name,
                           k);
        for (size_t i = 0; i < json_array_size(acts); i++) {
            json_t *a = json_array_get(acts, i);
            int act = json_is_string(a) ? auth_action_from_name(json_string_value(a)) : -1;
            if (act < 0)
                return err_set(KITH_EINVAL,
                               "role %s: collections.%s: unknown action (read, create, update, "
                               "delete, export, import)",
                               name, k);
            g->actions |= 1u << act;
        }
        g->scope = SCOPE_ALL;
        if (sc) {
            g->scope = SCOPE_NONE;
            for (int s = SCOPE_OWN; s <= SCOPE_ALL; s++)
                if (json_is_string(sc) && strcmp(json_string_value(sc), scope_names[s]) == 0)
                    g->scope = s;
            if (g->scope == SCOPE_NONE)
                return err_set(KITH_EINVAL,
                               "role %s: collections.%s.scope must be own, team or all", name, k);
        }
    }
    json_t *cp = json_object_get(j, "capabilities");
    if (cp && !json_is_array(cp))
        return err_set(KITH_EINVAL, "role %s: 'capabilities' must be an array", name);
    for (size_t i = 0; i < json_array_size(cp); i++) {
        json_t *c = json_array_get(cp, i);
        unsigned cap = json_is_string(c) ? auth_cap_from_name(json_string_value(c)) : 0;
        if (!cap)
            return err_set(KITH_EINVAL,
                           "role %s: unknown capability (unmask, schema, scripts, keys, audit)",
                           name);
        out->caps |= cap;
    }
    return 0;
}

json_t *auth_role_to_json(const auth_role_t *r)
{
    json_t *cs = json_object();
    for (size_t i = 0; i < r->ngrants; i++) {
        const auth_grant_t *g = &r->grants[i];
        json_t *acts = json_array();
        for (int a = 0; a < ACT__COUNT; a++)
            if (g->actions & (1u << a)) json_array_append_new(acts, json_string(action_names[a]));
        json_object_set_new(
            cs, g->coll, json_pack("{s:o,s:s}", "actions", acts, "scope", scope_names[g->scope]));
    }
    json_t *cp = json_array();
    for (size_t i = 0; i < ARRAY_LEN(caps); i++)
        if (r->caps & caps[i].cap) json_array_append_new(cp, json_string(caps[i].name));
    return json_pack("{s:s,s:o,s:o,s:b}", "name", r->name, "collections", cs, "capabilities", cp,
                     "builtin", r->builtin);
}

int auth_role_scope(const auth_role_t *r, const char *coll, int action)
{
    const auth_grant_t *star = NULL;
    for (size_t i = 0; i < r->ngrants; i++) {
        const auth_grant_t *g = &r->grants[i];
        if (strcmp(g->coll, coll) == 0)
            return (g->actions & (1u << action)) ? g->scope : SCOPE_NONE;
        if (strcmp(g->coll, "*") == 0) star = g;
    }
    if (coll[0] == '_') return SCOPE_NONE; /* system collections: never through roles */
    return star && (star->actions & (1u << action)) ? star->scope : SCOPE_NONE;
}

/* ---- scope ---- */

static int coll_scoped(const store_coll_t *c, int *has_owner, int *has_team)
{
    *has_owner = store_coll_field(c, "owner") != NULL;
    *has_team = store_coll_field(c, "team") != NULL;
    return *has_owner || *has_team;
}

static int field_is(const json_t *fields, const char *name, const char *want)
{
    json_t *v = json_object_get(fields, name);
    if (!want || !v) return 0;
    if (json_is_string(v)) return strcmp(json_string_value(v), want) == 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (json_is_string(json_array_get(v, i)) &&
                strcmp(json_string_value(json_array_get(v, i)), want) == 0)
                return 1;
    }
    return 0;
}

int auth_scope_covers(int scope, const store_coll_t *c, const json_t *fields, const auth_who_t *who)
{
    if (scope == SCOPE_ALL) return 1;
    if (scope == SCOPE_NONE) return 0;
    int ho, ht;
    if (!coll_scoped(c, &ho, &ht)) return 1;
    if (ho && field_is(fields, "owner", who->user)) return 1;
    if (scope == SCOPE_TEAM && ht && field_is(fields, "team", who->team)) return 1;
    return 0;
}

json_t *auth_scope_filter(int scope, const store_coll_t *c, const auth_who_t *who)
{
    int ho, ht;
    if (scope == SCOPE_ALL || !coll_scoped(c, &ho, &ht)) return NULL;
    json_t *any = json_array();
    if (ho) json_array_append_new(any, json_pack("{s:s}", "owner", who->user));
    if (scope == SCOPE_TEAM && ht && who->team)
        json_array_append_new(any, json_pack("{s:s}", "team", who->team));
    if (json_array_size(any) == 0) {
        /* nothing can match: an impossible id */
        json_decref(any);
        return json_pack("{s:{s:b}}", "id", "exists", 0);
    }
    return json_pack("{s:o}", "or", any);
}

/* ---- masking ---- */

/* The length of the E.164 country calling code that digits d start with
 * (codes are prefix-free: 1 and 7 are one digit, the two-digit ones are
 * listed, all others have three). */
static size_t e164_cc_len(const char *d, size_t n)
{
    if (n < 1) return 0;
    if (d[0] == '1' || d[0] == '7') return 1;
    if (n < 2) return 0;
    static const char two[] = "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 "
                              "56 57 58 60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98";
    for (size_t i = 0; i + 2 < sizeof two; i += 3) /* entries at 0, 3, 6, ... */
        if (two[i] == d[0] && two[i + 1] == d[1]) return 2;
    return n >= 3 ? 3 : 0;
}

json_t *auth_mask_value(const store_field_t *f, const json_t *v)
{
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(a, auth_mask_value(f, json_array_get(v, i)));
        return a;
    }
    if (!json_is_string(v)) return json_string("***");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char out[512];
    if (type == ST_PHONE) {
        char d[64];
        size_t nd = 0;
        for (size_t i = 0; i < n && nd < sizeof d; i++)
            if (s[i] >= '0' && s[i] <= '9') d[nd++] = s[i];
        /* an international number keeps its country code, and the national
         * number is masked as a national one: +86 138****5678 */
        size_t cc = n && s[0] == '+' ? e164_cc_len(d, nd) : 0;
        if (cc && nd - cc >= 8) {
            size_t o = 0;
            out[o++] = '+';
            memcpy(out + o, d, cc);
            o += cc;
            out[o++] = ' ';
            memcpy(out + o, d + cc, 3);
            o += 3;
            for (size_t i = cc + 3; i < nd - 4; i++)
                out[o++] = '*';
            memcpy(out + o, d + nd - 4, 4);
            return json_stringn(out, o + 4);
        }
        if (nd >= 8) {
            size_t o = 0;
            memcpy(out, d, 3);
            o = 3;
            for (size_t i = 3; i < nd - 4; i++)
                out[o++] = '*';
            memcpy(out + o, d + nd - 4, 4);
            return json_stringn(out, o + 4);
        }
        return json_string("***");
    }
    if (type == ST_EMAIL) {
        const char *at = memchr(s, '@', n);
        if (at && at > s && (size_t)(n - (size_t)(at - s)) < sizeof out - 8) {
            size_t first = utf8_seq_len((const uint8_t *)s, (size_t)(at - s));
            size_t rest = n - (size_t)(at - s);
            memcpy(out, s, first);
            memcpy(out + first, "***", 3);
            memcpy(out + first + 3, at, rest);
            return json_stringn(out, first + 3 + rest);
        }
        return json_string("***");
    }
    size_t first = n ? utf8_seq_len((const uint8_t *)s, n) : 0;
    if (first == 0) return json_string("***");
    memcpy(out, s, first);
    memcpy(out + first, "***", 3);
    return json_stringn(out, first + 3);
}

int auth_mask_fields(const store_coll_t *c, json_t *fields)
{
    int n = 0;
    for (size_t i = 0; i < c->nfields; i++) {
        const store_field_t *f = &c->fields[i];
        if (!(f->flags & SF_SENSITIVE)) continue;
        json_t *v = json_object_get(fields, f->name);
        if (!v) continue;
        json_object_set_new(fields, f->name, auth_mask_value(f, v));
        n++;
    }
    return n;
}

int auth_coll_has_sensitive(const store_coll_t *c)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].flags & SF_SENSITIVE) return 1;
    return 0;
}

int auth_masked_use(const store_coll_t *c, const json_t *filter, const char *sort)
{
    if (!auth_coll_has_sensitive(c)) return 0;
    if (sort && *sort) {
        const store_field_t *f = store_coll_field(c, sort[0] == '-' ? sort + 1 : sort);
        if (f && (f->flags & SF_SENSITIVE))
            return err_set(KITH_EPERM, "'%s' is sensitive: your role cannot sort by it", f->name);
    }
    if (!filter) return 0;
    store_filter_t *sf;
    int rc = store_filter_compile(c, filter, &sf);
    if (rc) return rc;
    const store_field_t *used[64];
    size_t nused;
    store_filter_fields(sf, used, &nused, 64);
    store_filter_free(sf);
    for (size_t i = 0; i < nused; i++)
        if (used[i]->flags & SF_SENSITIVE)
            return err_set(KITH_EPERM, "'%s' is sensitive: your role cannot filter by it",
                           used[i]->name);
    return 0;
}
