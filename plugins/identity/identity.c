/*
 * identity: contacts and companies with one identity ("One ID").
 *
 * - Declares the collections contacts and companies.
 * - On every write of either (create, update, bulk, import, a plugin's or a
 *   script's write), before it happens: e-mail addresses trimmed and
 *   lower-cased, phone numbers in E.164 (normalize.h), company domains bare
 *   ("acme.com"); a contact without a name gets "first last".
 * - Duplicates: a contact whose e-mail or phone (config match_on), or a
 *   company whose domain, is already another record's is refused with 409
 *   and that record's id (existing_id, for callers who may read it); with
 *   POST /v1/contacts?upsert=true (or an import with upsert=true) that
 *   record is updated instead. Merged contacts (merged_into set) never match.
 * - quality (0..100): the weighted share of key fields that are filled in,
 *   kept up to date on every write (weights in config quality_weights).
 * - POST /v1/contacts/{id}/merge merges contacts into {id} (dry run,
 *   survivorship rules, related records moved, merged ids redirecting), and
 *   POST /v1/contacts/merges/{merge}/undo undoes one (README.md).
 *
 * Configuration (plugins.config.identity), all optional:
 *   default_country_code  "86"     for phone numbers written without +
 *   match_on              ["email", "phone"]   contact fields that identify
 *   quality_weights       {"contacts": {"name": 25, ...}, "companies": {...}}
 *   merge_rules           {"owner": "survivor", "team": "survivor"}
 *   merge_moves           [{"collection": "activities", "field": "contact_id"}, ...]
 */
#include "kp_sdk.h"
#include "kp_util.h"
#include "normalize.h"

#include <kith/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const kith_api_t *K;
/* Set while the merge and undo routes write (hooks run in the same thread,
 * inside their calls): only they may set or clear merged_into. */
static _Thread_local int merging;
static const char *country_code = "86";
static const kith_json_t *match_on;
static const kith_json_t *weights_contacts, *weights_companies;

static const char contacts_def[] =
    "{\"name\": \"contacts\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"first_name\", \"type\": \"string\"},"
    "{\"name\": \"last_name\", \"type\": \"string\"},"
    "{\"name\": \"email\", \"type\": \"email\", \"indexed\": true, \"sensitive\": true},"
    "{\"name\": \"phone\", \"type\": \"phone\", \"indexed\": true, \"sensitive\": true},"
    "{\"name\": \"title\", \"type\": \"string\"},"
    "{\"name\": \"company\", \"type\": \"string\"},"
    "{\"name\": \"company_id\", \"type\": \"ref\", \"ref\": \"companies\", \"indexed\": true},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"tags\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"lifecycle_stage\", \"type\": \"enum\", \"indexed\": true, \"values\": "
    "[\"subscriber\", \"lead\", \"qualified\", \"opportunity\", \"customer\", \"evangelist\", "
    "\"churned\"]},"
    "{\"name\": \"source\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"quality\", \"type\": \"int\", \"indexed\": true},"
    "{\"name\": \"merged_into\", \"type\": \"ref\", \"ref\": \"contacts\", \"indexed\": true,"
    " \"redirect\": true}]}";

/* One merge: enough to see what it did and to undo it. */
static const char merges_def[] =
    "{\"name\": \"contact_merges\", \"fields\": ["
    "{\"name\": \"survivor\", \"type\": \"ref\", \"ref\": \"contacts\", \"required\": true,"
    " \"indexed\": true},"
    "{\"name\": \"merged\", \"type\": \"array\", \"items\": \"ref\", \"ref\": \"contacts\","
    " \"required\": true, \"indexed\": true},"
    "{\"name\": \"before\", \"type\": \"object\", \"sensitive\": true},"
    "{\"name\": \"moved\", \"type\": \"array\", \"items\": \"object\"},"
    "{\"name\": \"survivor_version\", \"type\": \"int\"},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"undone\", \"type\": \"bool\"}]}";

static const char companies_def[] =
    "{\"name\": \"companies\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"required\": true, \"indexed\": true},"
    "{\"name\": \"domain\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"industry\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"phone\", \"type\": \"phone\"},"
    "{\"name\": \"country\", \"type\": \"string\"},"
    "{\"name\": \"employees\", \"type\": \"int\"},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"tags\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"lifecycle_stage\", \"type\": \"enum\", \"indexed\": true, \"values\": "
    "[\"subscriber\", \"lead\", \"qualified\", \"opportunity\", \"customer\", \"evangelist\", "
    "\"churned\"]},"
    "{\"name\": \"quality\", \"type\": \"int\", \"indexed\": true}]}";

static const char config_schema[] =
    "{\"default_country_code\": {\"type\": \"string\", \"default\": \"86\"},"
    " \"match_on\": {\"type\": \"array\", \"default\": [\"email\", \"phone\"]},"
    " \"quality_weights\": {\"type\": \"object\", \"default\": {"
    "   \"contacts\": {\"name\": 25, \"email\": 25, \"phone\": 20, \"company\": 15,"
    "                \"title\": 5, \"owner\": 5, \"lifecycle_stage\": 5},"
    "   \"companies\": {\"name\": 30, \"domain\": 25, \"industry\": 15, \"phone\": 10,"
    "                 \"country\": 10, \"owner\": 10}}},"
    " \"merge_rules\": {\"type\": \"object\", \"default\": {\"owner\": \"survivor\","
    "   \"team\": \"survivor\"}},"
    " \"merge_moves\": {\"type\": \"array\", \"default\": ["
    "   {\"collection\": \"activities\", \"field\": \"contact_id\"},"
    "   {\"collection\": \"deals\", \"field\": \"contact_id\"},"
    "   {\"collection\": \"tickets\", \"field\": \"contact_id\"},"
    "   {\"collection\": \"leads\", \"field\": \"contact_id\"}]}}";

/* ---- a record's fields ---- */

static const char *str_field(const kith_json_t *rec, const char *name)
{
    return K->string_value(K->object_get(rec, name));
}

static int has_changed(const kith_event_t *ev, const char *field)
{
    if (ev->op == KITH_OP_CREATE) return 1;
    for (size_t i = 0; i < ev->nchanged; i++)
        if (strcmp(ev->changed[i], field) == 0) return 1;
    return 0;
}

/* Replaces a string field with its normal form (fn), or drops it if nothing
 * is left of it. */
static void normalize_with(kith_event_t *ev, const char *field, char *(*fn)(const char *))
{
    const char *v = str_field(ev->record, field);
    if (!v) return;
    char *n = fn(v);
    if (!n) {
        K->object_del(ev->record, field);
        ev->amended = 1;
    } else if (strcmp(n, v) != 0) {
        K->object_set(ev->record, field, K->json_string(n));
        ev->amended = 1;
    }
    free(n);
}

/* The phone in E.164, or a refusal naming the field. */
static int normalize_phone(kith_event_t *ev, const char *field)
{
    const char *v = str_field(ev->record, field);
    if (!v || !has_changed(ev, field)) return 0;
    char out[NORM_PHONE_MAX];
    const char *why = "";
    if (norm_phone(v, country_code, out, &why) != 0) {
        K->fail(KITH_PLUGIN_EVALIDATION, "%s: the phone number cannot be read", ev->collection);
        K->fail_field(field, "%s", why);
        return KITH_PLUGIN_EVALIDATION;
    }
    if (strcmp(out, v) != 0) {
        K->object_set(ev->record, field, K->json_string(out));
        ev->amended = 1;
    }
    return 0;
}

/* ---- duplicates ---- */

typedef struct dup {
    const char *self; /* the record being written (never its own duplicate) */
    char id[KITH_ID_LEN + 1];
} dup_t;

static int dup_row(void *ud, const kith_record_t *rec)
{
    dup_t *d = ud;
    if (strcmp(rec->id, d->self) == 0) return 0;
    if (K->object_get(rec->fields, "merged_into")) return 0;
    memcpy(d->id, rec->id, sizeof d->id);
    return 1;
}

/* Refuses the write if another record of the collection has the same value
 * of field (after normalisation). */
static int refuse_duplicate(kith_txn_t *tx, kith_event_t *ev, const char *field, const char *what)
{
    const kith_json_t *v = K->object_get(ev->record, field);
    if (!K->string_value(v) || !has_changed(ev, field)) return 0;
    kith_json_t *filter = K->json_object();
    K->object_set(filter, field, K->json_deep_copy(v));
    kith_query_t q = {.size = sizeof q, .collection = ev->collection, .filter = filter, .limit = 3};
    dup_t d = {.self = ev->id, .id = ""};
    int rc = K->entity_query(tx, &q, dup_row, &d, NULL);
    K->json_decref(filter);
    if (rc < 0) return rc;
    if (!d.id[0]) return 0;
    /* the message names no record: the caller may not be allowed to see it */
    K->fail(KITH_PLUGIN_EEXIST, "%s: a record with this %s exists (One ID)", ev->collection, what);
    K->fail_field(field, "matches an existing %s record", ev->collection);
    K->fail_existing(d.id);
    return KITH_PLUGIN_EEXIST;
}

/* ---- quality ---- */

/* Whether a field counts as filled in: a non-blank string, a non-empty
 * array, any number, boolean or object. */
static int filled(const kith_json_t *v)
{
    if (!v) return 0;
    switch (K->json_type(v)) {
    case KITH_JSON_STRING: {
        const char *s = K->string_value(v);
        return s[strspn(s, " \t\r\n")] != '\0';
    }
    case KITH_JSON_ARRAY:
        return K->array_size(v) > 0;
    case KITH_JSON_NULL:
        return 0;
    default:
        return 1;
    }
}

static void set_quality(kith_event_t *ev, const kith_json_t *weights)
{
    int64_t total = 0, got = 0;
    for (void *it = K->object_iter((kith_json_t *)weights); it;
         it = K->object_next((kith_json_t *)weights, it)) {
        int64_t w = K->integer_value(K->iter_value(it));
        if (w <= 0) continue;
        total += w;
        if (filled(K->object_get(ev->record, K->iter_key(it)))) got += w;
    }
    int64_t q = total ? (got * 100 + total / 2) / total : 0;
    const kith_json_t *old = K->object_get(ev->record, "quality");
    if (old && K->json_type(old) == KITH_JSON_INTEGER && K->integer_value(old) == q) return;
    K->object_set(ev->record, "quality", K->json_integer(q));
    ev->amended = 1;
}

/* ---- hooks ---- */

static int contact_before(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    if (!merging && has_changed(ev, "merged_into") &&
        (ev->op == KITH_OP_UPDATE || K->object_get(ev->record, "merged_into"))) {
        K->fail(KITH_PLUGIN_EVALIDATION, "contacts: merged_into is set by a merge");
        K->fail_field("merged_into", "set only by POST /v1/contacts/{id}/merge and its undo");
        return KITH_PLUGIN_EVALIDATION;
    }
    if (K->object_get(ev->record, "merged_into")) return 0; /* a merged record: kept as is */
    normalize_with(ev, "email", norm_email);
    int rc = normalize_phone(ev, "phone");
    if (rc) return rc;
    const char *first = str_field(ev->record, "first_name"),
               *last = str_field(ev->record, "last_name");
    if (!filled(K->object_get(ev->record, "name")) &&
        (filled(K->object_get(ev->record, "first_name")) ||
         filled(K->object_get(ev->record, "last_name")))) {
        char name[4097]; /* a string field's most */
        kp_full_name(first, last, name, sizeof name);
        K->object_set(ev->record, "name", K->json_string(name));
        ev->amended = 1;
    }
    for (size_t i = 0; i < K->array_size(match_on); i++) {
        const char *f = K->string_value(K->array_get(match_on, i));
        if (!f) continue;
        rc = refuse_duplicate(tx, ev, f,
                              strcmp(f, "email") == 0   ? "e-mail address"
                              : strcmp(f, "phone") == 0 ? "phone number"
                                                        : f);
        if (rc) return rc;
    }
    set_quality(ev, weights_contacts);
    return 0;
}

static int company_before(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    normalize_with(ev, "domain", norm_domain);
    int rc = normalize_phone(ev, "phone");
    if (rc) return rc;
    if ((rc = refuse_duplicate(tx, ev, "domain", "domain"))) return rc;
    set_quality(ev, weights_companies);
    return 0;
}

/* ---- merge ---- */

#define MERGE_MAX 20   /* contacts merged into one at a time */
#define MOVES_MAX 1000 /* related records moved by one merge */

static const kith_json_t *merge_rules, *merge_moves;

typedef struct side {
    kith_record_t rec; /* in clear (entity_get_clear): what the writes use */
    const char *id;
} side_t;

/* Answers a problem and returns 0 (the route's answer is given). */
static int problem(kith_response_t *res, int status, const char *type, const char *detail)
{
    return kp_problem(K, res, status, type, detail);
}

/* The value of field that survives among s[0..n) (s[0] the survivor) under
 * rule, and which record it comes from (*from). Arrays are united. */
static kith_json_t *survive(side_t *s, size_t n, const char *field, const char *rule, size_t *from)
{
    *from = 0;
    const kith_json_t *v0 = K->object_get(s[0].rec.fields, field);
    if (K->json_type(v0) == KITH_JSON_ARRAY || !v0) {
        kith_json_t *u = NULL;
        for (size_t i = 0; i < n; i++) {
            const kith_json_t *a = K->object_get(s[i].rec.fields, field);
            if (!a || K->json_type(a) != KITH_JSON_ARRAY) continue;
            if (!u) u = K->json_array();
            for (size_t j = 0; j < K->array_size(a); j++) {
                const kith_json_t *x = K->array_get(a, j);
                int seen = 0;
                for (size_t k = 0; k < K->array_size(u) && !seen; k++)
                    seen = K->json_equal(K->array_get(u, k), x);
                if (!seen) {
                    K->array_append(u, K->json_deep_copy(x));
                    if (i) *from = i;
                }
            }
        }
        if (u) return u;
    }
    size_t best = n;
    if (strcmp(rule, "survivor") == 0 && filled(v0)) best = 0;
    for (size_t i = 0; best == n && i < n; i++) {
        if (!filled(K->object_get(s[i].rec.fields, field))) continue;
        best = i;
        for (size_t j = i + 1; j < n; j++) {
            if (!filled(K->object_get(s[j].rec.fields, field))) continue;
            int newer = s[j].rec.updated_ms > s[best].rec.updated_ms;
            if (strcmp(rule, "oldest") == 0
                    ? !newer && s[j].rec.updated_ms != s[best].rec.updated_ms
                    : newer)
                best = j;
        }
    }
    if (best == n) return NULL;
    *from = best;
    return K->json_deep_copy(K->object_get(s[best].rec.fields, field));
}

static const char *rule_for(const kith_json_t *asked, const char *field)
{
    const char *r = K->string_value(K->object_get(asked, field));
    if (!r) r = K->string_value(K->object_get(merge_rules, field));
    return r ? r : "newest";
}

static int rule_ok(const char *r)
{
    return strcmp(r, "newest") == 0 || strcmp(r, "oldest") == 0 || strcmp(r, "survivor") == 0;
}

/* Calls fn for each record whose field is id in coll (ids collected first:
 * the caller may rewrite them). Returns the count, or a negative code;
 * KITH_PLUGIN_ENOTFOUND (no such collection or field) counts as none. */
typedef struct idlist {
    size_t n;
    char id[MOVES_MAX + 1][KITH_ID_LEN + 1];
} idlist_t;

static int collect_id(void *ud, const kith_record_t *rec)
{
    idlist_t *l = ud;
    if (l->n == MOVES_MAX + 1) return 1;
    memcpy(l->id[l->n++], rec->id, KITH_ID_LEN + 1);
    return 0;
}

static int related(kith_txn_t *tx, const char *coll, const char *field, const char *id,
                   idlist_t *out)
{
    kith_json_t *filter = K->json_object();
    K->object_set(filter, field, K->json_string(id));
    kith_query_t q = {.size = sizeof q, .collection = coll, .filter = filter};
    int rc = kp_query_all(K, tx, &q, collect_id, out); /* collect_id stops past MOVES_MAX */
    K->json_decref(filter);
    /* no such collection, or no such field in it (another plugin declared
     * it without one): nothing to move there */
    if (rc == KITH_PLUGIN_ENOTFOUND || rc == KITH_PLUGIN_EVALIDATION || rc == KITH_PLUGIN_EINVAL)
        return 0;
    return rc < 0 ? rc : 0;
}

/* The patch that makes a record's fields `now` into `want` (an object). New. */
static kith_json_t *patch_to(const kith_json_t *now, const kith_json_t *want)
{
    kith_json_t *p = K->json_object();
    if (K->json_type(want) != KITH_JSON_OBJECT) return p; /* nothing known: change nothing */
    for (void *it = K->object_iter((kith_json_t *)want); it;
         it = K->object_next((kith_json_t *)want, it))
        K->object_set(p, K->iter_key(it), K->json_deep_copy(K->iter_value(it)));
    for (void *it = K->object_iter((kith_json_t *)now); it;
         it = K->object_next((kith_json_t *)now, it))
        if (!K->object_get(want, K->iter_key(it)))
            K->object_set(p, K->iter_key(it), K->json_null());
    return p;
}

static void sides_free(side_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].rec.fields) K->json_decref(s[i].rec.fields);
}

/* The surviving record of s[0..n) field by field (*rec, new) and how each
 * field was chosen (*fields, new: [{field, value, from, rule}]). */
static void survive_all(side_t *s, size_t n, const kith_json_t *rules, kith_json_t **rec,
                        kith_json_t **fields)
{
    *rec = K->json_deep_copy(s[0].rec.fields);
    *fields = K->json_array();
    static const char *const skip[] = {"quality", "merged_into"};
    for (size_t i = 0; i < n; i++)
        for (void *it = K->object_iter(s[i].rec.fields); it;
             it = K->object_next(s[i].rec.fields, it)) {
            const char *f = K->iter_key(it);
            int done = strcmp(f, skip[0]) == 0 || strcmp(f, skip[1]) == 0;
            for (size_t k = 0; k < K->array_size(*fields) && !done; k++)
                done = strcmp(K->string_value(K->object_get(K->array_get(*fields, k), "field")),
                              f) == 0;
            if (done) continue;
            const char *rule = rule_for(rules, f);
            size_t from = 0;
            kith_json_t *v = survive(s, n, f, rule, &from);
            if (!v) continue;
            kith_json_t *e = K->json_object();
            K->object_set(e, "field", K->json_string(f));
            K->object_set(e, "value", K->json_deep_copy(v));
            K->object_set(e, "from", K->json_string(s[from].id));
            K->object_set(e, "rule",
                          K->json_string(K->json_type(v) == KITH_JSON_ARRAY ? "union" : rule));
            K->array_append(*fields, e);
            K->object_set(*rec, f, v);
        }
}

static int merge_run(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    const kith_json_t *body = req->json, *ids = K->object_get(body, "ids"),
                      *dry = K->object_get(body, "dry_run"), *rules = K->object_get(body, "rules");
    if (!body || K->json_type(body) != KITH_JSON_OBJECT || !ids ||
        K->json_type(ids) != KITH_JSON_ARRAY || K->array_size(ids) == 0 ||
        K->array_size(ids) > MERGE_MAX)
        return problem(
            res, 400, "invalid",
            "send {\"ids\": [the contacts to merge into this one, 1 to 20], "
            "\"dry_run\": false, \"rules\": {field: \"newest\"|\"oldest\"|\"survivor\"}}");
    if (dry && K->json_type(dry) != KITH_JSON_TRUE && K->json_type(dry) != KITH_JSON_FALSE)
        return problem(res, 400, "invalid", "dry_run: true or false");
    if (rules && K->json_type(rules) != KITH_JSON_OBJECT)
        return problem(res, 400, "invalid", "rules: {field: \"newest\"|\"oldest\"|\"survivor\"}");
    for (void *it = rules ? K->object_iter((kith_json_t *)rules) : NULL; it;
         it = K->object_next((kith_json_t *)rules, it)) {
        const char *r = K->string_value(K->iter_value(it));
        if (!r || !rule_ok(r))
            return problem(res, 400, "invalid",
                           "rules: each is \"newest\", \"oldest\" or \"survivor\"");
    }
    int is_dry = dry && K->json_type(dry) == KITH_JSON_TRUE;
    side_t s[MERGE_MAX + 1];
    memset(s, 0, sizeof s);
    size_t n = 0;
    int rc = 0;
    char msg[200];
    s[n++].id = req->params[0];
    for (size_t i = 0; i < K->array_size(ids); i++) {
        const char *id = K->string_value(K->array_get(ids, i));
        if (!id) return problem(res, 400, "invalid", "ids: contact ids");
        for (size_t j = 0; j < n; j++)
            if (strcmp(s[j].id, id) == 0)
                return problem(res, 400, "invalid", "ids: each contact once, not the survivor");
        s[n++].id = id;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        s[i].rec.size = sizeof s[i].rec;
        /* in clear: the merge writes these values (entity_get would give a
         * role without unmask "a***@example.com" to write back) */
        rc = K->entity_get_clear(tx, "contacts", s[i].id, &s[i].rec);
        if (rc == KITH_PLUGIN_ENOTFOUND) {
            snprintf(msg, sizeof msg, "no contact %.40s", s[i].id);
            sides_free(s, n);
            return problem(res, 404, "not-found", msg);
        }
        if (rc == 0 && K->object_get(s[i].rec.fields, "merged_into")) {
            snprintf(msg, sizeof msg, "contact %.40s was merged already", s[i].id);
            sides_free(s, n);
            return problem(res, 409, "conflict", msg);
        }
    }
    if (rc) {
        sides_free(s, n);
        return rc;
    }

    /* the surviving record, field by field: in clear for the writes, and as
     * the caller may see it (the same choices over masked values) for the
     * answer */
    kith_json_t *rec, *clear_fields, *shown, *fields;
    survive_all(s, n, rules, &rec, &clear_fields);
    K->json_decref(clear_fields);
    side_t sm[MERGE_MAX + 1];
    memset(sm, 0, sizeof sm);
    for (size_t i = 0; i < n && rc == 0; i++) {
        sm[i].id = s[i].id;
        sm[i].rec.size = sizeof sm[i].rec;
        rc = K->entity_get(tx, "contacts", s[i].id, &sm[i].rec);
    }
    if (rc) {
        K->json_decref(rec);
        sides_free(sm, n);
        sides_free(s, n);
        return rc;
    }
    survive_all(sm, n, rules, &shown, &fields);
    sides_free(sm, n);

    /* related records to move */
    kith_json_t *moves = K->json_object(), *moved = K->json_array();
    idlist_t *relp = malloc(sizeof *relp); /* a writer per workspace: not static */
    if (!relp) {
        K->json_decref(shown);
        K->json_decref(rec);
        K->json_decref(fields);
        K->json_decref(moves);
        K->json_decref(moved);
        sides_free(s, n);
        return K->fail(KITH_PLUGIN_ELIMIT, "out of memory");
    }
    size_t total = 0;
    for (size_t m = 0; m < K->array_size(merge_moves) && rc == 0; m++) {
        const kith_json_t *mv = K->array_get(merge_moves, m);
        const char *coll = K->string_value(K->object_get(mv, "collection")),
                   *field = K->string_value(K->object_get(mv, "field"));
        size_t count = 0;
        for (size_t i = 1; i < n && rc == 0; i++) {
            relp->n = 0;
            rc = related(tx, coll, field, s[i].id, relp);
            total += relp->n;
            if (rc == 0 && total > MOVES_MAX) {
                rc = K->fail(KITH_PLUGIN_ELIMIT,
                             "more than %d related records to move; merge fewer contacts at once",
                             MOVES_MAX);
                break;
            }
            count += relp->n;
            for (size_t k = 0; k < relp->n && rc == 0 && !is_dry; k++) {
                kith_json_t *patch = K->json_object();
                K->object_set(patch, field, K->json_string(s[0].id));
                rc = K->entity_update(tx, coll, relp->id[k], patch, 0, NULL);
                K->json_decref(patch);
                kith_json_t *e = K->json_object();
                K->object_set(e, "collection", K->json_string(coll));
                K->object_set(e, "field", K->json_string(field));
                K->object_set(e, "id", K->json_string(relp->id[k]));
                K->object_set(e, "from", K->json_string(s[i].id));
                K->array_append(moved, e);
            }
        }
        if (coll) K->object_set(moves, coll, K->json_integer((int64_t)count));
    }

    kith_json_t *out = K->json_object();
    K->object_set(out, "survivor", K->json_string(s[0].id));
    K->object_set(out, "merged", K->json_deep_copy(ids));
    K->object_set(out, "fields", fields);
    K->object_set(out, "moves", moves);
    if (rc == 0 && is_dry) {
        K->object_set(out, "dry_run", K->json_bool(1));
        K->object_set(out, "record", K->json_incref(shown)); /* never rec: it is in clear */
    } else if (rc == 0) {
        /* the merged ones first: they give up their e-mail and phone, which
         * the survivor may take */
        kith_json_t *before = K->json_object();
        for (size_t i = 0; i < n; i++)
            K->object_set(before, s[i].id, K->json_deep_copy(s[i].rec.fields));
        for (size_t i = 1; i < n && rc == 0; i++) {
            kith_json_t *patch = K->json_object();
            K->object_set(patch, "merged_into", K->json_string(s[0].id));
            K->object_set(patch, "email", K->json_null());
            K->object_set(patch, "phone", K->json_null());
            rc = K->entity_update(tx, "contacts", s[i].id, patch, 0, NULL);
            K->json_decref(patch);
        }
        kith_record_t after = {.size = sizeof after};
        if (rc == 0) {
            kith_json_t *patch = patch_to(s[0].rec.fields, rec);
            rc = K->entity_update(tx, "contacts", s[0].id, patch, 0, &after);
            K->json_decref(patch);
        }
        kith_record_t m = {.size = sizeof m};
        if (rc == 0) {
            kith_json_t *mr = K->json_object();
            K->object_set(mr, "survivor", K->json_string(s[0].id));
            K->object_set(mr, "merged", K->json_deep_copy(ids));
            K->object_set(mr, "before", K->json_incref(before));
            K->object_set(mr, "moved", K->json_incref(moved));
            K->object_set(mr, "survivor_version", K->json_integer((int64_t)after.version));
            /* the survivor's owner and team: whoever may see it may see and
             * undo its merge */
            static const char *const ot[] = {"owner", "team"};
            for (size_t i = 0; i < 2; i++)
                if (K->object_get(after.fields, ot[i]))
                    K->object_set(mr, ot[i], K->json_deep_copy(K->object_get(after.fields, ot[i])));
            rc = K->entity_create(tx, "contact_merges", mr, &m);
            K->json_decref(mr);
        }
        if (rc == 0) {
            kith_json_t *ev = K->json_object();
            K->object_set(ev, "merge", K->json_string(m.id));
            K->object_set(ev, "survivor", K->json_string(s[0].id));
            K->object_set(ev, "merged", K->json_deep_copy(ids));
            rc = K->emit(tx, "contact.merged", ev);
            K->json_decref(ev);
        }
        if (rc == 0) {
            K->object_set(out, "merge_id", K->json_string(m.id));
            K->object_set(out, "record", K->json_incref(after.fields));
        }
        if (after.fields) K->json_decref(after.fields);
        if (m.fields) K->json_decref(m.fields);
        K->json_decref(before);
    }
    if (rc == 0) K->respond(res, 200, out);
    K->json_decref(out);
    K->json_decref(moved);
    K->json_decref(rec);
    K->json_decref(shown);
    free(relp);
    sides_free(s, n);
    return rc;
}

static int undo_run(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_record_t m = {.size = sizeof m}, sv = {.size = sizeof sv};
    /* in clear: its before images are written back (a role without unmask
     * would read them masked) */
    int rc = K->entity_get_clear(tx, "contact_merges", req->params[0], &m);
    if (rc == KITH_PLUGIN_ENOTFOUND) return problem(res, 404, "not-found", "no such merge");
    if (rc) return rc;
    const kith_json_t *f = m.fields;
    const char *survivor = K->string_value(K->object_get(f, "survivor"));
    const kith_json_t *before = K->object_get(f, "before"), *merged = K->object_get(f, "merged"),
                      *moved = K->object_get(f, "moved");
    if (K->json_type(before) != KITH_JSON_OBJECT ||
        K->json_type(K->object_get(before, survivor)) != KITH_JSON_OBJECT) {
        K->json_decref(m.fields);
        return problem(res, 409, "conflict", "this merge record has no before images to restore");
    }
    char msg[200];
    if (K->json_type(K->object_get(f, "undone")) == KITH_JSON_TRUE) {
        K->json_decref(m.fields);
        return problem(res, 409, "conflict", "this merge was undone already");
    }
    rc = K->entity_get_clear(tx, "contacts", survivor, &sv);
    if (rc == 0 && (int64_t)sv.version != K->integer_value(K->object_get(f, "survivor_version"))) {
        snprintf(msg, sizeof msg,
                 "the surviving contact changed after the merge (version %llu, the merge left "
                 "%lld): undoing would lose that change",
                 (unsigned long long)sv.version,
                 (long long)K->integer_value(K->object_get(f, "survivor_version")));
        K->json_decref(sv.fields);
        K->json_decref(m.fields);
        return problem(res, 409, "conflict", msg);
    }
    /* the survivor first: it gives back what it took */
    if (rc == 0) {
        kith_json_t *patch = patch_to(sv.fields, K->object_get(before, survivor));
        rc = K->entity_update(tx, "contacts", survivor, patch, 0, NULL);
        K->json_decref(patch);
    }
    for (size_t i = 0; i < K->array_size(merged) && rc == 0; i++) {
        const char *id = K->string_value(K->array_get(merged, i));
        kith_record_t r = {.size = sizeof r};
        rc = K->entity_get_clear(tx, "contacts", id, &r);
        if (rc) break;
        kith_json_t *patch = patch_to(r.fields, K->object_get(before, id));
        rc = K->entity_update(tx, "contacts", id, patch, 0, NULL);
        K->json_decref(patch);
        K->json_decref(r.fields);
    }
    size_t back = 0;
    for (size_t i = 0; i < K->array_size(moved) && rc == 0; i++) {
        const kith_json_t *e = K->array_get(moved, i);
        const char *coll = K->string_value(K->object_get(e, "collection")),
                   *field = K->string_value(K->object_get(e, "field")),
                   *id = K->string_value(K->object_get(e, "id"));
        kith_record_t r = {.size = sizeof r};
        int grc = K->entity_get(tx, coll, id, &r);
        if (grc == KITH_PLUGIN_ENOTFOUND) continue; /* deleted since: nothing to move back */
        if ((rc = grc)) break;
        const char *now = K->string_value(K->object_get(r.fields, field));
        if (now && strcmp(now, survivor) == 0) { /* else moved again since: left alone */
            kith_json_t *patch = K->json_object();
            K->object_set(patch, field, K->json_deep_copy(K->object_get(e, "from")));
            rc = K->entity_update(tx, coll, id, patch, 0, NULL);
            K->json_decref(patch);
            back++;
        }
        K->json_decref(r.fields);
    }
    if (rc == 0) {
        kith_json_t *patch = K->json_object();
        K->object_set(patch, "undone", K->json_bool(1));
        rc = K->entity_update(tx, "contact_merges", req->params[0], patch, 0, NULL);
        K->json_decref(patch);
    }
    if (rc == 0) {
        kith_json_t *ev = K->json_object();
        K->object_set(ev, "merge", K->json_string(req->params[0]));
        K->object_set(ev, "survivor", K->json_string(survivor));
        rc = K->emit(tx, "contact.merge_undone", ev);
        K->json_decref(ev);
    }
    if (rc == 0) {
        kith_json_t *out = K->json_object();
        K->object_set(out, "merge_id", K->json_string(req->params[0]));
        K->object_set(out, "restored", K->json_deep_copy(merged));
        K->object_set(out, "moved_back", K->json_integer((int64_t)back));
        K->respond(res, 200, out);
        K->json_decref(out);
    }
    if (sv.fields) K->json_decref(sv.fields);
    K->json_decref(m.fields);
    return rc;
}

static int merge(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    merging = 1;
    int rc = merge_run(ud, tx, req, res);
    merging = 0;
    return rc;
}

static int undo(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    merging = 1;
    int rc = undo_run(ud, tx, req, res);
    merging = 0;
    return rc;
}

/* ---- init ---- */

static int init(kith_plugin_t *p, const kith_api_t *api)
{
    K = api; /* level 2 (fail_field, fail_existing): min_api_level says so */
    const kith_json_t *conf = K->config(p);
    const char *cc = K->string_value(K->object_get(conf, "default_country_code"));
    if (cc) {
        size_t n = strlen(cc);
        if (n > 3 || strspn(cc, "0123456789") != n)
            return K->fail(KITH_PLUGIN_EINVAL,
                           "default_country_code: 1 to 3 digits, or \"\" for none (\"86\")");
        country_code = cc;
    }
    match_on = K->object_get(conf, "match_on");
    for (size_t i = 0; i < K->array_size(match_on); i++) {
        const char *f = K->string_value(K->array_get(match_on, i));
        if (!f || (strcmp(f, "email") != 0 && strcmp(f, "phone") != 0))
            return K->fail(KITH_PLUGIN_EINVAL, "match_on: a list of \"email\" and \"phone\"");
    }
    const kith_json_t *w = K->object_get(conf, "quality_weights");
    weights_contacts = K->object_get(w, "contacts");
    weights_companies = K->object_get(w, "companies");
    if (!weights_contacts || K->json_type(weights_contacts) != KITH_JSON_OBJECT ||
        !weights_companies || K->json_type(weights_companies) != KITH_JSON_OBJECT)
        return K->fail(KITH_PLUGIN_EINVAL,
                       "quality_weights: {\"contacts\": {field: weight}, \"companies\": {...}}");
    for (int k = 0; k < 2; k++) {
        kith_json_t *wk = (kith_json_t *)(k ? weights_companies : weights_contacts);
        for (void *it = K->object_iter(wk); it; it = K->object_next(wk, it)) {
            const kith_json_t *v = K->iter_value(it);
            if (K->json_type(v) != KITH_JSON_INTEGER || K->integer_value(v) < 0 ||
                K->integer_value(v) > 1000000)
                return K->fail(KITH_PLUGIN_EINVAL,
                               "quality_weights: each weight is an integer from 0 to 1000000");
        }
    }
    merge_rules = K->object_get(conf, "merge_rules");
    for (void *it = K->object_iter((kith_json_t *)merge_rules); it;
         it = K->object_next((kith_json_t *)merge_rules, it)) {
        const char *r = K->string_value(K->iter_value(it));
        if (!r || !rule_ok(r))
            return K->fail(KITH_PLUGIN_EINVAL, "merge_rules: {field: \"newest\"|\"oldest\"|"
                                               "\"survivor\"}");
    }
    merge_moves = K->object_get(conf, "merge_moves");
    for (size_t i = 0; i < K->array_size(merge_moves); i++) {
        const kith_json_t *m = K->array_get(merge_moves, i);
        if (!K->string_value(K->object_get(m, "collection")) ||
            !K->string_value(K->object_get(m, "field")))
            return K->fail(KITH_PLUGIN_EINVAL,
                           "merge_moves: [{\"collection\": name, \"field\": a ref to contacts}]");
    }
    int rc;
    if ((rc = K->collection(p, companies_def)) || (rc = K->collection(p, contacts_def)) ||
        (rc = K->collection(p, merges_def)))
        return rc;
    kith_route_t routes[] = {{.size = sizeof(kith_route_t),
                              .method = "POST",
                              .pattern = "/v1/contacts/{id}/merge",
                              .name = "merge",
                              .action = "update",
                              .collection = "contacts",
                              .flags = KITH_ROUTE_WRITE,
                              .fn = merge},
                             {.size = sizeof(kith_route_t),
                              .method = "POST",
                              .pattern = "/v1/contacts/merges/{merge}/undo",
                              .name = "merge_undo",
                              .action = "update",
                              .collection = "contacts",
                              .flags = KITH_ROUTE_WRITE,
                              .fn = undo}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = K->route(p, &routes[i]))) return rc;
    static const char *const events[][2] = {{"contacts.before_create", "contacts_create"},
                                            {"contacts.before_update", "contacts_update"},
                                            {"companies.before_create", "companies_create"},
                                            {"companies.before_update", "companies_update"}};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        kith_hook_t h = {.size = sizeof h,
                         .event = events[i][0],
                         .name = events[i][1],
                         .priority = 10, /* before other rules: they see the normal forms */
                         .fn = i < 2 ? contact_before : company_before};
        if ((rc = K->on(p, &h))) return rc;
    }
    return 0;
}

KITH_PLUGIN_DEFINE("identity", "1.0.0", 2, init, NULL, config_schema);
