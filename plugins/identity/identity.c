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
 *
 * Configuration (plugins.config.identity), all optional:
 *   default_country_code  "86"     for phone numbers written without +
 *   match_on              ["email", "phone"]   contact fields that identify
 *   quality_weights       {"name": 25, "email": 25, "phone": 20, ...}
 */
#include "normalize.h"

#include <kith/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const kith_api_t *K;
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
    "{\"name\": \"merged_into\", \"type\": \"ref\", \"ref\": \"contacts\", \"indexed\": true}]}";

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
    "                 \"country\": 10, \"owner\": 10}}}}";

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
    if (K->object_get(ev->record, "merged_into")) return 0; /* a merged record: kept as is */
    normalize_with(ev, "email", norm_email);
    int rc = normalize_phone(ev, "phone");
    if (rc) return rc;
    const char *first = str_field(ev->record, "first_name"),
               *last = str_field(ev->record, "last_name");
    if (!filled(K->object_get(ev->record, "name")) &&
        (filled(K->object_get(ev->record, "first_name")) ||
         filled(K->object_get(ev->record, "last_name")))) {
        char name[512];
        snprintf(name, sizeof name, "%s%s%s", first ? first : "", first && last ? " " : "",
                 last ? last : "");
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
    int rc;
    if ((rc = K->collection(p, companies_def)) || (rc = K->collection(p, contacts_def))) return rc;
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
