/*
 * leads: lead capture from web forms, touches and attribution, and lead
 * conversion (README.md).
 *
 * - Declares `leads` and `touches` (each touch: a form, e-mail, visit, ...
 *   with its UTM source, medium, campaign and landing page).
 * - POST /v1/capture/{form_key}: a public endpoint for web forms. The form
 *   key is an API key (in the path: forms post to a URL) whose role may
 *   create leads; the route then acts as the system for its own writes, so
 *   a key that may do nothing else is enough. Rate-limited per key. Creates
 *   the lead or finds it (by e-mail, then phone) and records a touch.
 * - POST /v1/leads/{id}/touches: a later e-mail, visit, ... on a lead.
 * - POST /v1/leads/{id}/convert: creates or links the contact, the company
 *   and a deal in one transaction.
 * - GET /v1/reports/attribution?model=first|last|linear|time_decay&from=&to=:
 *   conversions and revenue credited to each source.
 * - On deal.won (the pipeline plugin's event), the deal's lead gets its
 *   revenue.
 */
#include "attrib.h"
#include "kp_sdk.h"
#include "kp_util.h"
#include "normalize.h"

#include <kith/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

static const kith_api_t *K;
static const char *country_code = "86";
static int64_t per_minute = 60;
static double half_life_ms = 7.0 * 86400000.0;
static int64_t threshold = 60;
static const char *hot_tag = "hot";
static int64_t follow_up_min = 240;
static work_hours_t work = {.days = 0x1f, .start_h = 9, .end_h = 18, .tz_min = 480};

#define WEEK_MS (7 * 86400000LL)

static const char leads_def[] =
    "{\"name\": \"leads\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"first_name\", \"type\": \"string\"},"
    "{\"name\": \"last_name\", \"type\": \"string\"},"
    "{\"name\": \"email\", \"type\": \"email\", \"indexed\": true, \"sensitive\": true},"
    "{\"name\": \"phone\", \"type\": \"phone\", \"indexed\": true, \"sensitive\": true},"
    "{\"name\": \"company\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"title\", \"type\": \"string\"},"
    "{\"name\": \"industry\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"country\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"city\", \"type\": \"string\"},"
    "{\"name\": \"territory\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"message\", \"type\": \"text\"},"
    "{\"name\": \"source\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"medium\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"campaign\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"landing_page\", \"type\": \"string\"},"
    "{\"name\": \"origin\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"status\", \"type\": \"enum\", \"indexed\": true, \"default\": \"new\", "
    "\"values\": "
    "[\"new\", \"working\", \"nurturing\", \"qualified\", \"unqualified\", \"converted\"]},"
    "{\"name\": \"lifecycle_stage\", \"type\": \"enum\", \"indexed\": true, \"values\": "
    "[\"subscriber\", \"lead\", \"qualified\", \"opportunity\", \"customer\", \"evangelist\", "
    "\"churned\"]},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"tags\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"score\", \"type\": \"int\", \"indexed\": true},"
    "{\"name\": \"score_detail\", \"type\": \"array\", \"items\": \"object\"},"
    "{\"name\": \"hot_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"active_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"inactive_weeks\", \"type\": \"int\"},"
    "{\"name\": \"rescored_at\", \"type\": \"datetime\"},"
    "{\"name\": \"events\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"visits\", \"type\": \"number\"},"
    "{\"name\": \"time_on_site\", \"type\": \"int\"},"
    "{\"name\": \"page_views_per_visit\", \"type\": \"number\"},"
    "{\"name\": \"last_activity\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"touches\", \"type\": \"int\"},"
    "{\"name\": \"last_touch_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"converted\", \"type\": \"bool\", \"indexed\": true},"
    "{\"name\": \"converted_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"contact_id\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"company_id\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"deal_id\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"revenue\", \"type\": \"money\"},"
    "{\"name\": \"won_at\", \"type\": \"datetime\"},"
    "{\"name\": \"external_id\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"lead_number\", \"type\": \"int\", \"indexed\": true}]}";

static const char touches_def[] =
    "{\"name\": \"touches\", \"fields\": ["
    "{\"name\": \"lead_id\", \"type\": \"ref\", \"ref\": \"leads\", \"required\": true,"
    " \"indexed\": true},"
    "{\"name\": \"kind\", \"type\": \"enum\", \"required\": true, \"indexed\": true, \"values\": "
    "[\"form\", \"email\", \"visit\", \"download\", \"call\", \"ad\", \"event\", \"chat\","
    " \"other\"]},"
    "{\"name\": \"at\", \"type\": \"datetime\", \"required\": true, \"indexed\": true},"
    "{\"name\": \"source\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"medium\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"campaign\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"term\", \"type\": \"string\"},"
    "{\"name\": \"content\", \"type\": \"string\"},"
    "{\"name\": \"landing_page\", \"type\": \"string\"},"
    "{\"name\": \"referrer\", \"type\": \"string\"},"
    "{\"name\": \"form\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"email\", \"type\": \"email\", \"sensitive\": true},"
    "{\"name\": \"phone\", \"type\": \"phone\", \"sensitive\": true},"
    "{\"name\": \"sent\", \"type\": \"object\", \"sensitive\": true}]}";

/* Reps new leads are assigned to, and the rules that choose among them. */
static const char reps_def[] =
    "{\"name\": \"sales_reps\", \"fields\": ["
    "{\"name\": \"user\", \"type\": \"string\", \"required\": true, \"unique\": true},"
    "{\"name\": \"name\", \"type\": \"string\"},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"available\", \"type\": \"bool\", \"default\": true, \"indexed\": true},"
    "{\"name\": \"territories\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"industries\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"last_assigned_at\", \"type\": \"datetime\"},"
    "{\"name\": \"assigned\", \"type\": \"int\"}]}";

static const char rules_def[] =
    "{\"name\": \"assignment_rules\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"required\": true},"
    "{\"name\": \"priority\", \"type\": \"int\", \"default\": 100, \"indexed\": true},"
    "{\"name\": \"territory\", \"type\": \"string\"},"
    "{\"name\": \"industry\", \"type\": \"string\"},"
    "{\"name\": \"score_min\", \"type\": \"int\"},"
    "{\"name\": \"score_max\", \"type\": \"int\"},"
    "{\"name\": \"method\", \"type\": \"enum\", \"default\": \"round_robin\", \"values\": "
    "[\"round_robin\", \"least_loaded\"]},"
    "{\"name\": \"team\", \"type\": \"string\"},"
    "{\"name\": \"reps\", \"type\": \"array\", \"items\": \"string\"},"
    "{\"name\": \"match_rep\", \"type\": \"bool\"}]}";

/* The follow-up task of a hot lead (the fields the pipeline plugin also
 * declares, and lead_id: whichever loads first makes the collection, the
 * other adds what it lacks). */
static const char activities_def[] =
    "{\"name\": \"activities\", \"fields\": ["
    "{\"name\": \"kind\", \"type\": \"enum\", \"required\": true, \"indexed\": true,"
    " \"values\": [\"call\", \"meeting\", \"note\", \"email\", \"task\"]},"
    "{\"name\": \"subject\", \"type\": \"string\"},"
    "{\"name\": \"due_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"done\", \"type\": \"bool\", \"indexed\": true},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"lead_id\", \"type\": \"string\", \"indexed\": true}]}";

static const char config_schema[] =
    "{\"default_country_code\": {\"type\": \"string\", \"default\": \"86\"},"
    " \"capture_per_minute\": {\"type\": \"integer\", \"default\": 60},"
    " \"attribution_half_life_days\": {\"type\": \"number\", \"default\": 7},"
    " \"score_threshold\": {\"type\": \"integer\", \"default\": 60},"
    " \"hot_tag\": {\"type\": \"string\", \"default\": \"hot\"},"
    " \"follow_up_hours\": {\"type\": \"number\", \"default\": 4},"
    " \"work_hours\": {\"type\": \"object\", \"default\": {\"days\": [\"mon\", \"tue\","
    "   \"wed\", \"thu\", \"fri\"], \"start\": 9, \"end\": 18, \"utc_offset_minutes\": 480}},"
    " \"rescore_schedule\": {\"type\": \"string\", \"default\": \"0 3 * * *\"},"
    " \"assignment\": {\"type\": \"string\", \"default\": \"round_robin\"}}";

/* ---- small helpers ---- */

static const char *str_field(const kith_json_t *o, const char *name)
{
    return K->string_value(K->object_get(o, name));
}

/* An RFC 3339 time or a date as Unix ms; *ok = 0 (and 0) if it is not one. */
static int64_t time_ms(const char *s, int *ok)
{
    int64_t ms = 0;
    *ok = kp_time_parse(s, &ms) == 0;
    return *ok ? ms : 0;
}

static int problem(kith_response_t *res, int status, const char *type, const char *detail)
{
    return kp_problem(K, res, status, type, detail);
}

static void now_text(char out[KP_ISO_MAX])
{
    kp_iso_from_ms(K->now_ms(), out);
}

/* ---- lead hooks: normal forms ---- */

static int lead_before(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud, (void)tx;
    const char *email = str_field(ev->record, "email");
    if (email) {
        char *n = norm_email(email);
        if (!n) {
            K->object_del(ev->record, "email");
            ev->amended = 1;
        } else if (strcmp(n, email) != 0) {
            K->object_set(ev->record, "email", K->json_string(n));
            ev->amended = 1;
        }
        free(n);
    }
    const char *phone = str_field(ev->record, "phone");
    char e164[NORM_PHONE_MAX];
    const char *why;
    /* a lead keeps a number it cannot make E.164 as written: it is not an
     * identity yet (contacts are strict) */
    if (phone && norm_phone(phone, country_code, e164, &why) == 0 && strcmp(e164, phone) != 0) {
        K->object_set(ev->record, "phone", K->json_string(e164));
        ev->amended = 1;
    }
    /* inactivity, for the scoring rules' decay */
    char now[KP_ISO_MAX];
    kp_iso_from_ms(K->now_ms(), now);
    const char *active = str_field(ev->record, "active_at");
    if (!active) {
        K->object_set(ev->record, "active_at", K->json_string(now));
        ev->amended = 1;
        active = now;
    }
    int ok;
    int64_t a = time_ms(active, &ok),
            weeks = ok && K->now_ms() > a ? (K->now_ms() - a) / WEEK_MS : 0;
    const kith_json_t *w0 = K->object_get(ev->record, "inactive_weeks");
    if (!w0 || K->integer_value(w0) != weeks) {
        K->object_set(ev->record, "inactive_weeks", K->json_integer(weeks));
        ev->amended = 1;
    }
    const char *first = str_field(ev->record, "first_name"),
               *last = str_field(ev->record, "last_name");
    if (!K->object_get(ev->record, "name") && (first || last)) {
        char name[4097]; /* a string field's most */
        kp_full_name(first, last, name, sizeof name);
        K->object_set(ev->record, "name", K->json_string(name));
        ev->amended = 1;
    }
    return 0;
}

/* ---- rate limit: a token bucket per form key ---- */

#define BUCKETS 512

typedef struct bucket {
    char key[48];
    double tokens;
    int64_t at_ms;
} bucket_t;

static bucket_t buckets[BUCKETS];
static mtx_t bucket_lock;

/* Whether key may post now; *retry_s: when it may again. */
static int rate_ok(const char *key, int64_t *retry_s)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    int64_t now = K->now_ms();
    double cap = (double)per_minute, per_ms = (double)per_minute / 60000.0;
    mtx_lock(&bucket_lock);
    bucket_t *b = &buckets[h % BUCKETS];
    if (strcmp(b->key, key) != 0) { /* new, or another key's slot: it starts full */
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = cap;
        b->at_ms = now;
    }
    b->tokens += (double)(now - b->at_ms) * per_ms;
    if (b->tokens > cap) b->tokens = cap;
    b->at_ms = now;
    int ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    else
        *retry_s = (int64_t)((1.0 - b->tokens) / per_ms / 1000.0) + 1;
    mtx_unlock(&bucket_lock);
    return ok;
}

/* ---- capture ---- */

/* Lead fields a form may set, and the touch fields, with the names forms
 * use for them. */
static const char *const lead_keys[] = {"name",    "first_name", "last_name", "email",
                                        "phone",   "company",    "title",     "industry",
                                        "country", "city",       "message"};
static const struct {
    const char *form, *field;
} touch_keys[] = {
    {"utm_source", "source"}, {"source", "source"},         {"utm_medium", "medium"},
    {"medium", "medium"},     {"utm_campaign", "campaign"}, {"campaign", "campaign"},
    {"utm_term", "term"},     {"utm_content", "content"},   {"landing_page", "landing_page"},
    {"page", "landing_page"}, {"referrer", "referrer"}};

/* application/x-www-form-urlencoded as an object of strings (new), or NULL
 * if a value is not UTF-8. */
static kith_json_t *form_decode(const char *s, size_t n)
{
    kith_json_t *o = K->json_object();
    char *buf = malloc(n + 1);
    size_t i = 0;
    while (buf && i < n) {
        size_t k = 0, eq = (size_t)-1;
        for (; i < n && s[i] != '&'; i++) {
            char c = s[i];
            if (c == '=' && eq == (size_t)-1) {
                buf[k++] = '\0';
                eq = k;
                continue;
            }
            if (c == '+') c = ' ';
            if (c == '%' && i + 2 < n && kp_hex(s[i + 1]) >= 0 && kp_hex(s[i + 2]) >= 0) {
                c = (char)(kp_hex(s[i + 1]) * 16 + kp_hex(s[i + 2]));
                i += 2;
            }
            buf[k++] = c;
        }
        i++; /* past '&' */
        buf[k] = '\0';
        if (eq == (size_t)-1 || buf[0] == '\0') continue;
        kith_json_t *v = K->json_string(buf + eq);
        if (!v) {
            K->json_decref(o);
            free(buf);
            return NULL;
        }
        K->object_set(o, buf, v);
    }
    free(buf);
    return o;
}

typedef struct found {
    char id[KITH_ID_LEN + 1];
} found_t;

static int first_row(void *ud, const kith_record_t *rec)
{
    memcpy(((found_t *)ud)->id, rec->id, KITH_ID_LEN + 1);
    return 1;
}

/* The id of a lead whose field equals v, in out; "" if none. */
static int find_lead(kith_txn_t *tx, const char *field, const char *v, found_t *out)
{
    out->id[0] = '\0';
    if (!v) return 0;
    kith_json_t *f = K->json_object();
    K->object_set(f, field, K->json_string(v));
    kith_query_t q = {.size = sizeof q, .collection = "leads", .filter = f, .limit = 1};
    int rc = K->entity_query(tx, &q, first_row, out, NULL);
    K->json_decref(f);
    /* a value the field's type refuses matches nothing (the write that
     * follows says what is wrong with it) */
    if (rc == KITH_PLUGIN_EINVAL || rc == KITH_PLUGIN_EVALIDATION) return 0;
    return rc < 0 ? rc : 0;
}

/* Adds a touch to lead id (its fields from src by touch_keys, or by name if
 * from_form is 0) and counts it on the lead. */
static int add_touch(kith_txn_t *tx, const char *lead, const char *kind, const kith_json_t *src,
                     int from_form, const char *form, const char *at, const kith_json_t *sent)
{
    kith_json_t *t = K->json_object();
    /* a form's lead fields, on the touch: typed, so they are checked alike */
    for (void *it = sent ? K->object_iter((kith_json_t *)sent) : NULL; it;
         it = K->object_next((kith_json_t *)sent, it)) {
        const char *k = K->iter_key(it);
        if (strcmp(k, "email") == 0 || strcmp(k, "phone") == 0)
            K->object_set(t, k, K->json_deep_copy(K->iter_value(it)));
    }
    if (sent && K->object_size(sent)) K->object_set(t, "sent", K->json_deep_copy(sent));
    K->object_set(t, "lead_id", K->json_string(lead));
    K->object_set(t, "kind", K->json_string(kind));
    K->object_set(t, "at", K->json_string(at));
    for (size_t i = 0; i < sizeof touch_keys / sizeof touch_keys[0]; i++) {
        const char *name = from_form ? touch_keys[i].form : touch_keys[i].field;
        const char *v = str_field(src, name);
        if (v && v[0] && !K->object_get(t, touch_keys[i].field))
            K->object_set(t, touch_keys[i].field, K->json_string(v));
    }
    if (form) K->object_set(t, "form", K->json_string(form));
    int rc = K->entity_create(tx, "touches", t, NULL);
    K->json_decref(t);
    if (rc) return rc;
    kith_record_t l = {.size = sizeof l};
    if ((rc = K->entity_get(tx, "leads", lead, &l))) return rc;
    kith_json_t *patch = K->json_object();
    K->object_set(patch, "touches",
                  K->json_integer(K->integer_value(K->object_get(l.fields, "touches")) + 1));
    const char *last = str_field(l.fields, "last_touch_at");
    int ok1, ok2;
    if (!last || time_ms(at, &ok1) >= time_ms(last, &ok2)) {
        K->object_set(patch, "last_touch_at", K->json_string(at));
        K->object_set(patch, "active_at", K->json_string(at));
    }
    /* what happened, for the scoring rules: "visit:/pricing", "download:..." */
    const char *what = str_field(src, "landing_page");
    if (!what) what = str_field(src, from_form ? "page" : "content");
    if (!what) what = str_field(src, from_form ? "utm_content" : "campaign");
    char e[300];
    snprintf(e, sizeof e, "%s:%.200s", kind, what ? what : "");
    kith_json_t *ev_s = K->json_string(e); /* NULL if the cut split a character */
    const kith_json_t *events = K->object_get(l.fields, "events");
    int seen = !ev_s;
    for (size_t i = 0; i < K->array_size(events) && !seen; i++)
        seen = K->json_equal(K->array_get(events, i), ev_s);
    if (ev_s && seen) K->json_decref(ev_s);
    if (!seen) {
        kith_json_t *ne = K->json_array();
        size_t n = K->array_size(events), from = n >= 200 ? n - 199 : 0; /* the latest 200 */
        for (size_t i = from; i < n; i++)
            K->array_append(ne, K->json_deep_copy(K->array_get(events, i)));
        K->array_append(ne, ev_s);
        K->object_set(patch, "events", ne);
    }
    if (kind && strcmp(kind, "visit") == 0)
        K->object_set(patch, "visits",
                      K->json_real(K->number_value(K->object_get(l.fields, "visits")) + 1));
    K->json_decref(l.fields);
    rc = K->entity_update(tx, "leads", lead, patch, 0, NULL);
    K->json_decref(patch);
    return rc;
}

static int capture(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    int64_t retry = 0;
    if (!rate_ok(req->key_id, &retry)) {
        char d[120];
        snprintf(d, sizeof d, "too many submissions from this form; try again in %lld s",
                 (long long)retry);
        return problem(res, 429, "rate-limited", d);
    }
    kith_json_t *in = NULL;
    if (req->json) {
        if (K->json_type(req->json) != KITH_JSON_OBJECT)
            return problem(res, 400, "invalid", "send the form's fields as a JSON object");
        in = K->json_incref((kith_json_t *)req->json);
    } else if (req->body) {
        in = form_decode(req->body, req->body_len);
        if (!in) return problem(res, 400, "invalid", "a form value is not UTF-8 text");
    } else {
        return problem(res, 400, "invalid",
                       "send the form (application/x-www-form-urlencoded or JSON)");
    }
    kith_json_t *lead = K->json_object();
    for (size_t i = 0; i < sizeof lead_keys / sizeof lead_keys[0]; i++) {
        const char *v = str_field(in, lead_keys[i]);
        if (v && v[strspn(v, " \t\r\n")]) K->object_set(lead, lead_keys[i], K->json_string(v));
    }
    int rc = 0;
    /* lengths checked here, the same for a known lead or a new one (a known
     * one's fields go on the touch, where the store would not check them) */
    for (void *it = K->object_iter(lead); it; it = K->object_next(lead, it)) {
        size_t max = strcmp(K->iter_key(it), "message") == 0 ? 256 * 1024 : 4096;
        if (strlen(K->string_value(K->iter_value(it))) > max) rc = KITH_PLUGIN_EVALIDATION;
    }
    if (rc) {
        K->json_decref(lead);
        K->json_decref(in);
        return problem(res, 422, "validation",
                       "the form has a value that is not valid (an e-mail address, a phone "
                       "number, or a text that is too long)");
    }
    if (!K->object_get(lead, "email") && !K->object_get(lead, "phone")) {
        K->json_decref(lead);
        K->json_decref(in);
        return problem(res, 422, "validation", "a lead needs an email or a phone");
    }
    /* an existing lead: found by its normal e-mail, then phone */
    found_t f = {""};
    char *email = str_field(lead, "email") ? norm_email(str_field(lead, "email")) : NULL;
    rc = find_lead(tx, "email", email, &f);
    free(email);
    char e164[NORM_PHONE_MAX];
    const char *why, *phone = str_field(lead, "phone");
    if (rc == 0 && !f.id[0] && phone)
        rc = find_lead(tx, "phone", norm_phone(phone, country_code, e164, &why) == 0 ? e164 : phone,
                       &f);
    int created = 0;
    if (rc == 0 && f.id[0]) {
        /* a known lead is not changed by a public form (anyone with the page
         * could attach data to it): what was sent is kept on the touch,
         * checked the same way, for a person to review */
    } else if (rc == 0) {
        /* a new lead keeps its first touch's source */
        for (size_t i = 0; i < sizeof touch_keys / sizeof touch_keys[0]; i++) {
            const char *field = touch_keys[i].field, *v = str_field(in, touch_keys[i].form);
            if (v && v[0] && !K->object_get(lead, field) &&
                (strcmp(field, "source") == 0 || strcmp(field, "medium") == 0 ||
                 strcmp(field, "campaign") == 0 || strcmp(field, "landing_page") == 0))
                K->object_set(lead, field, K->json_string(v));
        }
        K->object_set(lead, "origin", K->json_string("web form"));
        kith_record_t l = {.size = sizeof l};
        rc = K->entity_create(tx, "leads", lead, &l);
        if (rc == 0) {
            memcpy(f.id, l.id, sizeof f.id);
            K->json_decref(l.fields);
            created = 1;
        }
    }
    char at[KP_ISO_MAX];
    now_text(at);
    if (rc == 0) rc = add_touch(tx, f.id, "form", in, 1, req->key_id, at, lead);
    if (rc == 0 && created) {
        kith_json_t *ev = K->json_object();
        K->object_set(ev, "lead", K->json_string(f.id));
        rc = K->emit(tx, "lead.captured", ev);
        K->json_decref(ev);
    }
    K->json_decref(lead);
    K->json_decref(in);
    /* the same answer whether the lead was known or not (a public endpoint
     * must not tell which people are leads): no field names, no messages */
    if (rc == KITH_PLUGIN_EVALIDATION)
        return problem(res, 422, "validation",
                       "the form has a value that is not valid (an e-mail address, a phone "
                       "number, or a text that is too long)");
    if (rc) return rc;
    /* write-only: nothing about the lead goes back to the page */
    kith_json_t *out = K->json_object();
    K->object_set(out, "accepted", K->json_bool(1));
    K->respond(res, 202, out);
    K->json_decref(out);
    return 0;
}

/* ---- touches of a known lead ---- */

static int touch(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    const kith_json_t *b = req->json;
    if (!b || K->json_type(b) != KITH_JSON_OBJECT)
        return problem(res, 400, "invalid",
                       "send {\"kind\": \"email\"|\"visit\"|..., \"source\", \"medium\", "
                       "\"campaign\", \"landing_page\", \"at\"}");
    const char *kind = str_field(b, "kind"), *at = str_field(b, "at");
    char now[KP_ISO_MAX];
    int ok = 1;
    if (at) time_ms(at, &ok);
    if (!ok) return problem(res, 400, "invalid", "at: an RFC 3339 date-time");
    if (!at) {
        now_text(now);
        at = now;
    }
    kith_record_t l = {.size = sizeof l};
    int rc = K->entity_get(tx, "leads", req->params[0], &l); /* the caller's scope */
    if (rc == KITH_PLUGIN_ENOTFOUND) return problem(res, 404, "not-found", "no such lead");
    if (rc) return rc;
    K->json_decref(l.fields);
    rc = add_touch(tx, req->params[0], kind ? kind : "other", b, 0, NULL, at, NULL);
    if (rc) return rc;
    kith_json_t *out = K->json_object();
    K->object_set(out, "lead_id", K->json_string(req->params[0]));
    K->respond(res, 201, out);
    K->json_decref(out);
    return 0;
}

/* ---- conversion ---- */

/* Creates rec in coll, or if it duplicates a record (409 with its id),
 * links that one: its id in out. */
static int create_or_link(kith_txn_t *tx, const char *coll, kith_json_t *rec,
                          char out[KITH_ID_LEN + 1], int *linked)
{
    kith_record_t r = {.size = sizeof r};
    int rc = K->entity_create(tx, coll, rec, &r);
    if (rc == 0) {
        memcpy(out, r.id, KITH_ID_LEN + 1);
        K->json_decref(r.fields);
        *linked = 0;
        return 0;
    }
    const char *ex = rc == KITH_PLUGIN_EEXIST ? K->errexisting() : "";
    if (!ex[0]) return rc;
    snprintf(out, KITH_ID_LEN + 1, "%s", ex);
    *linked = 1;
    return 0;
}

static void copy_fields(kith_json_t *to, const kith_json_t *from, const char *const *names,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const kith_json_t *v = K->object_get(from, names[i]);
        if (v) K->object_set(to, names[i], K->json_deep_copy(v));
    }
}

static int convert(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    const kith_json_t *b = req->json;
    if (b && K->json_type(b) != KITH_JSON_OBJECT)
        return problem(res, 400, "invalid",
                       "send {\"contact_id\"?, \"company_id\"?, \"deal\": {...} | false}");
    const char *contact_id = str_field(b, "contact_id"), *company_id = str_field(b, "company_id");
    const kith_json_t *deal = K->object_get(b, "deal");
    int want_deal = !deal || K->json_type(deal) != KITH_JSON_FALSE;
    if (deal && want_deal && K->json_type(deal) != KITH_JSON_OBJECT)
        return problem(res, 400, "invalid", "deal: an object of deal fields, or false");
    kith_record_t l = {.size = sizeof l};
    /* in clear: its e-mail and phone are copied to the contact (entity_get
     * gives a role without unmask masked values, which would be written) */
    int rc = K->entity_get_clear(tx, "leads", req->params[0], &l);
    if (rc == KITH_PLUGIN_ENOTFOUND) return problem(res, 404, "not-found", "no such lead");
    if (rc) return rc;
    const kith_json_t *lf = l.fields;
    if (K->json_type(K->object_get(lf, "converted")) == KITH_JSON_TRUE) {
        K->json_decref(l.fields);
        return problem(res, 409, "conflict", "this lead was converted already");
    }
    char contact[KITH_ID_LEN + 1] = "", company[KITH_ID_LEN + 1] = "",
                               deal_id[KITH_ID_LEN + 1] = "";
    int contact_linked = 1, company_linked = 1;
    kith_json_t *out = K->json_object();

    /* the company: given, found by name, or made */
    if (company_id) {
        kith_record_t c = {.size = sizeof c};
        rc = K->entity_get(tx, "companies", company_id, &c);
        if (rc == 0) {
            snprintf(company, sizeof company, "%s", company_id);
            K->json_decref(c.fields);
        }
    } else if (str_field(lf, "company")) {
        kith_json_t *f = K->json_object();
        K->object_set(f, "name", K->json_string(str_field(lf, "company")));
        kith_query_t q = {.size = sizeof q, .collection = "companies", .filter = f, .limit = 1};
        found_t fc = {""};
        rc = K->entity_query(tx, &q, first_row, &fc, NULL);
        if (rc > 0) rc = 0; /* first_row stopped it: found */
        K->json_decref(f);
        if (rc == 0 && fc.id[0]) {
            memcpy(company, fc.id, sizeof company);
        } else if (rc == 0) {
            kith_json_t *c = K->json_object();
            K->object_set(c, "name", K->json_string(str_field(lf, "company")));
            static const char *const cf[] = {"industry", "country", "owner", "team"};
            copy_fields(c, lf, cf, sizeof cf / sizeof cf[0]);
            rc = create_or_link(tx, "companies", c, company, &company_linked);
            K->json_decref(c);
        }
    }
    /* the contact: given, or made (or the one it duplicates) */
    if (rc == 0 && contact_id) {
        kith_record_t c = {.size = sizeof c};
        rc = K->entity_get(tx, "contacts", contact_id, &c);
        if (rc == 0) {
            snprintf(contact, sizeof contact, "%s", contact_id);
            K->json_decref(c.fields);
        }
    } else if (rc == 0) {
        kith_json_t *c = K->json_object();
        static const char *const cf[] = {"name",  "first_name", "last_name", "email", "phone",
                                         "title", "company",    "owner",     "team",  "tags"};
        copy_fields(c, lf, cf, sizeof cf / sizeof cf[0]);
        if (company[0]) K->object_set(c, "company_id", K->json_string(company));
        K->object_set(c, "source",
                      K->json_string(str_field(lf, "source") ? str_field(lf, "source") : "lead"));
        K->object_set(c, "lifecycle_stage",
                      K->json_string(want_deal ? "opportunity" : "qualified"));
        rc = create_or_link(tx, "contacts", c, contact, &contact_linked);
        K->json_decref(c);
    }
    /* the deal */
    if (rc == 0 && want_deal) {
        kith_json_t *d = deal ? K->json_deep_copy(deal) : K->json_object();
        if (!K->object_get(d, "name")) {
            char name[300];
            const char *who =
                str_field(lf, "company") ? str_field(lf, "company") : str_field(lf, "name");
            snprintf(name, sizeof name, "%s", who ? who : "New deal");
            K->object_set(d, "name", K->json_string(name));
        }
        static const char *const df[] = {"owner", "team"};
        for (size_t i = 0; i < 2; i++)
            if (!K->object_get(d, df[i]) && K->object_get(lf, df[i]))
                K->object_set(d, df[i], K->json_deep_copy(K->object_get(lf, df[i])));
        K->object_set(d, "contact_id", K->json_string(contact));
        if (company[0]) K->object_set(d, "company_id", K->json_string(company));
        K->object_set(d, "lead_id", K->json_string(req->params[0]));
        kith_record_t r = {.size = sizeof r};
        rc = K->entity_create(tx, "deals", d, &r);
        K->json_decref(d);
        if (rc == 0) {
            memcpy(deal_id, r.id, sizeof deal_id);
            K->object_set(out, "deal", r.fields); /* steals */
        }
    }
    char at[KP_ISO_MAX];
    now_text(at);
    if (rc == 0) {
        kith_json_t *patch = K->json_object();
        K->object_set(patch, "converted", K->json_bool(1));
        K->object_set(patch, "converted_at", K->json_string(at));
        K->object_set(patch, "status", K->json_string("converted"));
        K->object_set(patch, "contact_id", K->json_string(contact));
        if (company[0]) K->object_set(patch, "company_id", K->json_string(company));
        if (deal_id[0]) K->object_set(patch, "deal_id", K->json_string(deal_id));
        rc = K->entity_update(tx, "leads", req->params[0], patch, 0, NULL);
        K->json_decref(patch);
    }
    if (rc == 0) {
        kith_json_t *ev = K->json_object();
        K->object_set(ev, "lead", K->json_string(req->params[0]));
        K->object_set(ev, "contact", K->json_string(contact));
        if (deal_id[0]) K->object_set(ev, "deal", K->json_string(deal_id));
        rc = K->emit(tx, "lead.converted", ev);
        K->json_decref(ev);
    }
    K->json_decref(l.fields);
    if (rc == 0) {
        K->object_set(out, "lead_id", K->json_string(req->params[0]));
        K->object_set(out, "contact_id", K->json_string(contact));
        K->object_set(out, "contact_linked", K->json_bool(contact_linked));
        if (company[0]) {
            K->object_set(out, "company_id", K->json_string(company));
            K->object_set(out, "company_linked", K->json_bool(company_linked));
        }
        if (deal_id[0]) K->object_set(out, "deal_id", K->json_string(deal_id));
        K->respond(res, 200, out);
    }
    K->json_decref(out);
    if (rc == KITH_PLUGIN_ENOTFOUND)
        return K->fail(KITH_PLUGIN_EVALIDATION,
                       "conversion needs the contacts, companies and deals collections (the "
                       "identity and pipeline plugins) and existing contact_id/company_id");
    return rc;
}

/* ---- revenue of won deals ---- */

static int deal_won(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    const char *deal = str_field(ev->payload, "deal");
    if (!deal) deal = str_field(ev->payload, "id");
    if (!deal) return 0;
    kith_record_t d = {.size = sizeof d};
    int rc = K->entity_get(tx, "deals", deal, &d);
    if (rc == KITH_PLUGIN_ENOTFOUND) return 0;
    if (rc) return rc;
    const char *lead = str_field(d.fields, "lead_id");
    const kith_json_t *amount = K->object_get(d.fields, "amount");
    kith_record_t l = {.size = sizeof l};
    if (lead && (rc = K->entity_get(tx, "leads", lead, &l)) == 0) {
        kith_json_t *patch = K->json_object();
        if (amount) K->object_set(patch, "revenue", K->json_deep_copy(amount));
        char at[KP_ISO_MAX];
        kp_iso_from_ms(ev->time_ms ? ev->time_ms : K->now_ms(), at);
        K->object_set(patch, "won_at", K->json_string(at));
        rc = K->entity_update(tx, "leads", lead, patch, 0, NULL);
        K->json_decref(patch);
        K->json_decref(l.fields);
    } else if (rc == KITH_PLUGIN_ENOTFOUND) {
        rc = 0;
    }
    K->json_decref(d.fields);
    return rc;
}

/* ---- assignment ---- */

#define REPS_MAX 1000

static const char *assign_default = "round_robin";

typedef struct rep {
    char id[KITH_ID_LEN + 1];
    char user[128], team[128];
    kith_json_t *territories, *industries; /* arrays, or NULL */
    int64_t last_ms;                       /* 0: never assigned */
    int64_t assigned;
} rep_t;

typedef struct reps {
    rep_t *v;
    size_t n;
    kith_json_t *rules; /* the assignment rules, by priority */
} reps_t;

static int rep_row(void *ud, const kith_record_t *rec)
{
    reps_t *r = ud;
    if (r->n == REPS_MAX) return 0;
    rep_t *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    memcpy(x->id, rec->id, sizeof x->id);
    snprintf(x->user, sizeof x->user, "%s", str_field(rec->fields, "user"));
    const char *t = str_field(rec->fields, "team");
    snprintf(x->team, sizeof x->team, "%s", t ? t : "");
    const kith_json_t *a = K->object_get(rec->fields, "territories"),
                      *b = K->object_get(rec->fields, "industries");
    x->territories = a ? K->json_deep_copy(a) : NULL;
    x->industries = b ? K->json_deep_copy(b) : NULL;
    int ok;
    const char *last = str_field(rec->fields, "last_assigned_at");
    x->last_ms = last ? time_ms(last, &ok) : 0;
    x->assigned = K->integer_value(K->object_get(rec->fields, "assigned"));
    return 0;
}

static int rule_row(void *ud, const kith_record_t *rec)
{
    K->array_append(((reps_t *)ud)->rules, K->json_deep_copy(rec->fields));
    return 0;
}

static void reps_free(reps_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].territories) K->json_decref(r->v[i].territories);
        if (r->v[i].industries) K->json_decref(r->v[i].industries);
    }
    free(r->v);
    if (r->rules) K->json_decref(r->rules);
}

static int in_list(const kith_json_t *a, const char *s)
{
    for (size_t i = 0; i < K->array_size(a); i++)
        if (kp_ieq(K->string_value(K->array_get(a, i)), s)) return 1;
    return 0;
}

/* Whether rule (a record of assignment_rules) applies to lead. */
static int rule_matches(const kith_json_t *rule, const kith_json_t *lead)
{
    const char *t = str_field(rule, "territory"), *i = str_field(rule, "industry");
    if (t && !kp_ieq(t, str_field(lead, "territory"))) return 0;
    if (i && !kp_ieq(i, str_field(lead, "industry"))) return 0;
    int64_t score = K->integer_value(K->object_get(lead, "score"));
    const kith_json_t *lo = K->object_get(rule, "score_min"),
                      *hi = K->object_get(rule, "score_max");
    if (lo && score < K->integer_value(lo)) return 0;
    if (hi && score > K->integer_value(hi)) return 0;
    return 1;
}

/* Whether rep may take lead under rule (NULL: any available rep). */
static int rep_fits(const rep_t *r, const kith_json_t *rule, const kith_json_t *lead)
{
    if (!rule) return 1;
    const char *team = str_field(rule, "team");
    if (team && strcmp(team, r->team) != 0) return 0;
    const kith_json_t *only = K->object_get(rule, "reps");
    if (only && !in_list(only, r->user)) return 0;
    if (K->json_type(K->object_get(rule, "match_rep")) == KITH_JSON_TRUE) {
        const char *t = str_field(lead, "territory"), *i = str_field(lead, "industry");
        /* the reps who cover the lead's territory and industry */
        if (t && !in_list(r->territories, t)) return 0;
        if (i && !in_list(r->industries, i)) return 0;
    }
    return 1;
}

static int count_row(void *ud, const kith_record_t *rec)
{
    (void)rec;
    return ++*(size_t *)ud >= 10000; /* enough to compare loads */
}

/* Open leads owned by user (at most 10,000 counted). */
static int open_leads(kith_txn_t *tx, const char *user, size_t *n)
{
    kith_json_t *f = K->json_object(), *in = K->json_object(), *st = K->json_array();
    static const char *const open[] = {"new", "working", "nurturing", "qualified"};
    for (size_t i = 0; i < 4; i++)
        K->array_append(st, K->json_string(open[i]));
    K->object_set(in, "in", st);
    K->object_set(f, "owner", K->json_string(user));
    K->object_set(f, "status", in);
    *n = 0;
    kith_query_t q = {.size = sizeof q, .collection = "leads", .filter = f};
    int rc = kp_query_all(K, tx, &q, count_row, n);
    K->json_decref(f);
    return rc < 0 ? rc : 0;
}

/* New leads without an owner get one: the first assignment rule (by
 * priority) that matches the lead and has an available rep that fits, else
 * every available rep with the default method. Round robin takes the rep
 * assigned longest ago; least loaded the one with the fewest open leads. */
static int assign(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    if (K->object_get(ev->record, "owner")) return 0;
    reps_t r = {.v = calloc(REPS_MAX, sizeof(rep_t)), .rules = K->json_array()};
    if (!r.v) return K->fail(KITH_PLUGIN_ELIMIT, "out of memory");
    kith_json_t *f = K->json_object();
    K->object_set(f, "available", K->json_bool(1));
    kith_query_t q = {.size = sizeof q, .collection = "sales_reps", .filter = f, .limit = 1000};
    int rc = K->entity_query(tx, &q, rep_row, &r, NULL);
    K->json_decref(f);
    kith_query_t qr = {
        .size = sizeof qr, .collection = "assignment_rules", .sort = "priority", .limit = 1000};
    if (rc == 0 && r.n) rc = K->entity_query(tx, &qr, rule_row, &r, NULL);
    if (rc < 0 || r.n == 0) {
        reps_free(&r);
        return rc < 0 ? rc : 0;
    }
    const kith_json_t *rule = NULL;
    const char *method = assign_default;
    size_t nr = K->array_size(r.rules);
    int fits[REPS_MAX];
    size_t nfit = 0;
    for (size_t k = 0; k <= nr && nfit == 0; k++) {
        rule = k < nr ? K->array_get(r.rules, k) : NULL;
        if (rule && !rule_matches(rule, ev->record)) continue;
        if (!rule && strcmp(assign_default, "none") == 0) break;
        method = rule ? str_field(rule, "method") : assign_default;
        for (size_t i = 0; i < r.n; i++)
            if (rep_fits(&r.v[i], rule, ev->record)) fits[nfit++] = (int)i;
    }
    rep_t *best = NULL;
    size_t best_load = 0;
    for (size_t k = 0; k < nfit && rc == 0; k++) {
        rep_t *x = &r.v[fits[k]];
        size_t load = 0;
        if (method && strcmp(method, "least_loaded") == 0) rc = open_leads(tx, x->user, &load);
        int better = !best || load < best_load ||
                     (load == best_load &&
                      (x->last_ms < best->last_ms ||
                       (x->last_ms == best->last_ms && strcmp(x->user, best->user) < 0)));
        if (better) {
            best = x;
            best_load = load;
        }
    }
    if (rc == 0 && best) {
        K->object_set(ev->record, "owner", K->json_string(best->user));
        if (best->team[0] && !K->object_get(ev->record, "team"))
            K->object_set(ev->record, "team", K->json_string(best->team));
        ev->amended = 1;
        char now[KP_ISO_MAX];
        /* strictly after every rep's last one: assignments within one
         * millisecond still rotate (a tie would fall back to name order) */
        int64_t t = K->now_ms();
        for (size_t i = 0; i < r.n; i++)
            if (t <= r.v[i].last_ms) t = r.v[i].last_ms + 1;
        kp_iso_from_ms(t, now);
        kith_json_t *patch = K->json_object();
        K->object_set(patch, "last_assigned_at", K->json_string(now));
        K->object_set(patch, "assigned", K->json_integer(best->assigned + 1));
        rc = K->entity_update(tx, "sales_reps", best->id, patch, 0, NULL);
        K->json_decref(patch);
    }
    reps_free(&r);
    return rc;
}

/* ---- scoring: threshold, explanation, rescoring ---- */

static const char *query_param(const char *q, const char *name, char *out, size_t cap);

/* After the scoring rules (a Lua script at the default priority): a lead
 * whose score reaches the threshold becomes hot once — tagged, lead.hot
 * emitted, a follow-up task for its owner due within follow_up_hours working
 * hours. hot_at is the "once": nothing is sent twice. */
static int hot_check(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    const kith_json_t *s = K->object_get(ev->record, "score");
    if (!s || K->integer_value(s) < threshold || K->object_get(ev->record, "hot_at")) return 0;
    int64_t now = K->now_ms();
    char at[KP_ISO_MAX], due[KP_ISO_MAX];
    kp_iso_from_ms(now, at);
    kp_iso_from_ms(work_hours_add(&work, now, follow_up_min), due);
    K->object_set(ev->record, "hot_at", K->json_string(at));
    const kith_json_t *tags = K->object_get(ev->record, "tags");
    int tagged = 0;
    for (size_t i = 0; i < K->array_size(tags) && !tagged; i++)
        tagged =
            strcmp(K->string_value(K->array_get(tags, i)) ? K->string_value(K->array_get(tags, i))
                                                          : "",
                   hot_tag) == 0;
    if (!tagged) {
        kith_json_t *nt = tags ? K->json_deep_copy(tags) : K->json_array();
        K->array_append(nt, K->json_string(hot_tag));
        K->object_set(ev->record, "tags", nt);
    }
    ev->amended = 1;
    const char *name = str_field(ev->record, "name"), *owner = str_field(ev->record, "owner");
    kith_json_t *p = K->json_object();
    K->object_set(p, "lead", K->json_string(ev->id));
    K->object_set(p, "score", K->json_integer(K->integer_value(s)));
    if (owner) K->object_set(p, "owner", K->json_string(owner));
    int rc = K->emit(tx, "lead.hot", p);
    K->json_decref(p);
    if (rc) return rc;
    kith_json_t *task = K->json_object();
    char subject[300];
    snprintf(subject, sizeof subject, "Follow up hot lead: %.200s",
             name                             ? name
             : str_field(ev->record, "email") ? str_field(ev->record, "email")
                                              : ev->id);
    K->object_set(task, "kind", K->json_string("task"));
    kith_json_t *sj = K->json_string(subject); /* NULL if the cut split a character */
    K->object_set(task, "subject", sj ? sj : K->json_string("Follow up hot lead"));
    K->object_set(task, "due_at", K->json_string(due));
    K->object_set(task, "done", K->json_bool(0));
    if (owner) K->object_set(task, "owner", K->json_string(owner));
    K->object_set(task, "lead_id", K->json_string(ev->id));
    rc = K->entity_create(tx, "activities", task, NULL);
    K->json_decref(task);
    return rc;
}

static int score_route(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_record_t l = {.size = sizeof l};
    int rc = K->entity_get(tx, "leads", req->params[0], &l);
    if (rc == KITH_PLUGIN_ENOTFOUND) return problem(res, 404, "not-found", "no such lead");
    if (rc) return rc;
    kith_json_t *out = K->json_object();
    const kith_json_t *s = K->object_get(l.fields, "score"),
                      *d = K->object_get(l.fields, "score_detail");
    K->object_set(out, "lead_id", K->json_string(req->params[0]));
    K->object_set(out, "score", K->json_integer(s ? K->integer_value(s) : 0));
    K->object_set(out, "threshold", K->json_integer(threshold));
    K->object_set(out, "hot", K->json_bool(K->object_get(l.fields, "hot_at") != NULL));
    if (K->object_get(l.fields, "hot_at"))
        K->object_set(out, "hot_at", K->json_deep_copy(K->object_get(l.fields, "hot_at")));
    K->object_set(out, "inactive_weeks",
                  K->json_integer(K->integer_value(K->object_get(l.fields, "inactive_weeks"))));
    K->object_set(out, "rules", d ? K->json_deep_copy(d) : K->json_array());
    K->respond(res, 200, out);
    K->json_decref(out);
    K->json_decref(l.fields);
    return 0;
}

typedef struct rescore {
    size_t n, cap;
    char (*id)[KITH_ID_LEN + 1];
} rescore_t;

static int rescore_row(void *ud, const kith_record_t *rec)
{
    rescore_t *r = ud;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        char(*id)[KITH_ID_LEN + 1] = realloc(r->id, cap * sizeof *id);
        if (!id) return 1;
        r->id = id;
        r->cap = cap;
    }
    memcpy(r->id[r->n++], rec->id, KITH_ID_LEN + 1);
    return 0;
}

/* Writes rescored_at on the leads inactive for a week or more (all: every
 * lead), so their inactivity and score are computed again. Returns the count
 * in *n. */
static int rescore(kith_txn_t *tx, int all, size_t *n)
{
    char now[KP_ISO_MAX], cut[KP_ISO_MAX];
    kp_iso_from_ms(K->now_ms(), now);
    kp_iso_from_ms(K->now_ms() - WEEK_MS, cut);
    kith_json_t *f = K->json_object();
    if (!all) {
        kith_json_t *lt = K->json_object();
        K->object_set(lt, "lte", K->json_string(cut));
        K->object_set(f, "active_at", lt);
    }
    rescore_t r = {0};
    kith_query_t q = {.size = sizeof q, .collection = "leads", .filter = f};
    int rc = kp_query_all(K, tx, &q, rescore_row, &r);
    K->json_decref(f);
    if (rc > 0) rc = K->fail(KITH_PLUGIN_ELIMIT, "out of memory");
    for (size_t i = 0; i < r.n && rc == 0; i++) {
        kith_json_t *patch = K->json_object();
        K->object_set(patch, "rescored_at", K->json_string(now));
        rc = K->entity_update(tx, "leads", r.id[i], patch, 0, NULL);
        K->json_decref(patch);
    }
    *n = r.n;
    free(r.id);
    return rc;
}

static int rescore_route(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    char all[8];
    const char *a = query_param(req->query, "all", all, sizeof all);
    size_t n = 0;
    int rc = rescore(tx, a && strcmp(a, "true") == 0, &n);
    if (rc) return rc;
    kith_json_t *out = K->json_object();
    K->object_set(out, "rescored", K->json_integer((int64_t)n));
    K->respond(res, 200, out);
    K->json_decref(out);
    return 0;
}

static int rescore_tick(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud, (void)ev;
    size_t n;
    return rescore(tx, 0, &n);
}

/* ---- attribution ---- */

#define SOURCES_MAX 1000

typedef struct credit {
    char source[128];
    double conversions, revenue;
} credit_t;

typedef struct report {
    kith_txn_t *tx;
    int model;
    credit_t *c;
    size_t n;
    size_t leads;
    int rc;
    /* the current lead's touches */
    int64_t *t;
    char (*src)[128];
    size_t nt, cap;
} report_t;

static credit_t *credit_of(report_t *r, const char *source)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->c[i].source, source) == 0) return &r->c[i];
    if (r->n == SOURCES_MAX) return &r->c[SOURCES_MAX]; /* the rest share "(other)" */
    credit_t *c = &r->c[r->n++];
    snprintf(c->source, sizeof c->source, "%s", source);
    return c;
}

static int touch_row(void *ud, const kith_record_t *rec)
{
    report_t *r = ud;
    if (r->nt == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int64_t *t = realloc(r->t, cap * sizeof *t);
        if (t) r->t = t;
        char(*s)[128] = realloc(r->src, cap * sizeof *s);
        if (s) r->src = s;
        if (!t || !s) return 1;
        r->cap = cap;
    }
    int ok;
    r->t[r->nt] = time_ms(str_field(rec->fields, "at"), &ok);
    const char *s = str_field(rec->fields, "source");
    snprintf(r->src[r->nt], 128, "%s", s && s[0] ? s : "(direct)");
    r->nt++;
    return 0;
}

static int lead_row(void *ud, const kith_record_t *rec)
{
    report_t *r = ud;
    int ok;
    int64_t conv = time_ms(str_field(rec->fields, "converted_at"), &ok);
    if (!ok) return 0;
    double revenue = 0;
    const char *rev = str_field(rec->fields, "revenue");
    if (rev) revenue = strtod(rev, NULL);
    r->leads++;
    /* the touches up to the conversion, oldest first */
    r->nt = 0;
    kith_json_t *f = K->json_object(), *lte = K->json_object();
    K->object_set(f, "lead_id", K->json_string(rec->id));
    K->object_set(lte, "lte", K->json_string(str_field(rec->fields, "converted_at")));
    K->object_set(f, "at", lte);
    kith_query_t q = {.size = sizeof q, .collection = "touches", .filter = f, .sort = "at"};
    int rc = kp_query_all(K, r->tx, &q, touch_row, r);
    K->json_decref(f);
    if (rc < 0) {
        r->rc = rc;
        return 1;
    }
    if (r->nt == 0) { /* no touch recorded: the lead's own source */
        const char *s = str_field(rec->fields, "source");
        credit_t *c = credit_of(r, s && s[0] ? s : "(none)");
        c->conversions += 1;
        c->revenue += revenue;
        return 0;
    }
    double *w = malloc(r->nt * sizeof *w);
    if (!w) return 1;
    attrib_credit(r->model, r->t, r->nt, conv, half_life_ms, w);
    for (size_t i = 0; i < r->nt; i++) {
        if (w[i] == 0) continue;
        credit_t *c = credit_of(r, r->src[i]);
        c->conversions += w[i];
        c->revenue += w[i] * revenue;
    }
    free(w);
    return 0;
}

static int cmp_credit(const void *a, const void *b)
{
    const credit_t *x = a, *y = b;
    if (x->conversions != y->conversions) return x->conversions < y->conversions ? 1 : -1;
    return strcmp(x->source, y->source);
}

/* The value of a query parameter (decoded into out), or NULL. */
static const char *query_param(const char *q, const char *name, char *out, size_t cap)
{
    return kp_query_param(q, name, out, cap) == 1 ? out : NULL;
}

static int attribution(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    char model_s[32], from[64], to[64];
    const char *m = query_param(req->query, "model", model_s, sizeof model_s);
    int model = attrib_model(m ? m : "last");
    if (model < 0) return problem(res, 400, "invalid", "model: first, last, linear or time_decay");
    const char *f = query_param(req->query, "from", from, sizeof from),
               *t = query_param(req->query, "to", to, sizeof to);
    int ok = 1, ok2 = 1;
    /* as UTC date-times; a date "to" takes in its whole day */
    char fs[KP_ISO_MAX], ts[KP_ISO_MAX];
    if (f) kp_iso_from_ms(time_ms(f, &ok), fs);
    if (t) {
        int64_t ms = time_ms(t, &ok2);
        kp_iso_from_ms(strlen(t) == 10 ? ms + 86400000 - 1 : ms, ts);
    }
    if (!ok || !ok2) return problem(res, 400, "invalid", "from, to: RFC 3339 dates or date-times");
    report_t r = {.tx = tx, .model = model};
    r.c = calloc(SOURCES_MAX + 1, sizeof *r.c);
    if (!r.c) return K->fail(KITH_PLUGIN_ELIMIT, "out of memory");
    snprintf(r.c[SOURCES_MAX].source, sizeof r.c[0].source, "(other)");
    kith_json_t *filter = K->json_object(), *range = K->json_object();
    K->object_set(filter, "converted", K->json_bool(1));
    if (f) K->object_set(range, "gte", K->json_string(fs));
    if (t) K->object_set(range, "lte", K->json_string(ts));
    if (K->object_size(range))
        K->object_set(filter, "converted_at", range);
    else
        K->json_decref(range);
    kith_query_t q = {.size = sizeof q, .collection = "leads", .filter = filter};
    int rc = kp_query_all(K, tx, &q, lead_row, &r); /* lead_row stops on a failure (r.rc) */
    K->json_decref(filter);
    if (rc == 0) rc = r.rc;
    if (rc == 0) {
        size_t n = r.n + (r.c[SOURCES_MAX].conversions > 0);
        if (n > r.n) r.c[r.n] = r.c[SOURCES_MAX];
        qsort(r.c, n, sizeof *r.c, cmp_credit);
        kith_json_t *out = K->json_object(), *rows = K->json_array();
        double tc = 0, tr = 0;
        for (size_t i = 0; i < n; i++) {
            kith_json_t *row = K->json_object();
            K->object_set(row, "source", K->json_string(r.c[i].source));
            K->object_set(row, "conversions", K->json_real(r.c[i].conversions));
            K->object_set(row, "revenue", K->json_real(r.c[i].revenue));
            K->array_append(rows, row);
            tc += r.c[i].conversions;
            tr += r.c[i].revenue;
        }
        static const char *const names[] = {"first", "last", "linear", "time_decay"};
        K->object_set(out, "model", K->json_string(names[model]));
        if (f) K->object_set(out, "from", K->json_string(f));
        if (t) K->object_set(out, "to", K->json_string(t));
        K->object_set(out, "sources", rows);
        K->object_set(out, "conversions", K->json_integer((int64_t)r.leads));
        K->object_set(out, "credited", K->json_real(tc));
        K->object_set(out, "revenue", K->json_real(tr));
        K->respond(res, 200, out);
        K->json_decref(out);
    }
    free(r.c);
    free(r.t);
    free(r.src);
    return rc;
}

/* ---- init ---- */

static int init(kith_plugin_t *p, const kith_api_t *api)
{
    K = api; /* level 2 (route flags, errexisting): min_api_level says so */
    const kith_json_t *conf = K->config(p);
    const char *cc = str_field(conf, "default_country_code");
    if (cc) {
        size_t n = strlen(cc);
        if (n > 3 || strspn(cc, "0123456789") != n)
            return K->fail(KITH_PLUGIN_EINVAL, "default_country_code: 1 to 3 digits, or \"\"");
        country_code = cc;
    }
    per_minute = K->integer_value(K->object_get(conf, "capture_per_minute"));
    if (per_minute < 1 || per_minute > 100000)
        return K->fail(KITH_PLUGIN_EINVAL, "capture_per_minute: 1 to 100000");
    double hl = K->number_value(K->object_get(conf, "attribution_half_life_days"));
    if (!(hl > 0 && hl <= 3650))
        return K->fail(KITH_PLUGIN_EINVAL, "attribution_half_life_days: more than 0, at most 3650");
    half_life_ms = hl * 86400000.0;
    threshold = K->integer_value(K->object_get(conf, "score_threshold"));
    hot_tag = str_field(conf, "hot_tag");
    if (!hot_tag || !hot_tag[0]) return K->fail(KITH_PLUGIN_EINVAL, "hot_tag: a tag");
    double fu = K->number_value(K->object_get(conf, "follow_up_hours"));
    if (!(fu >= 0 && fu <= 24 * 365))
        return K->fail(KITH_PLUGIN_EINVAL, "follow_up_hours: 0 to 8760");
    follow_up_min = (int64_t)(fu * 60);
    const kith_json_t *wh = K->object_get(conf, "work_hours"), *days = K->object_get(wh, "days");
    static const char *const dn[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    work.days = 0;
    for (size_t i = 0; i < K->array_size(days); i++) {
        const char *d = K->string_value(K->array_get(days, i));
        int k = 0;
        while (k < 7 && !(d && strcmp(d, dn[k]) == 0))
            k++;
        if (k == 7) return K->fail(KITH_PLUGIN_EINVAL, "work_hours.days: mon, tue, ... sun");
        work.days |= 1u << k;
    }
    work.start_h = (int)K->integer_value(K->object_get(wh, "start"));
    work.end_h = (int)K->integer_value(K->object_get(wh, "end"));
    work.tz_min = (int)K->integer_value(K->object_get(wh, "utc_offset_minutes"));
    if (!work.days || work.start_h < 0 || work.end_h > 24 || work.start_h >= work.end_h ||
        work.tz_min < -14 * 60 || work.tz_min > 14 * 60)
        return K->fail(KITH_PLUGIN_EINVAL,
                       "work_hours: {\"days\": [\"mon\", ...], \"start\": 9, \"end\": 18, "
                       "\"utc_offset_minutes\": 480}");
    const char *sched = str_field(conf, "rescore_schedule");
    assign_default = str_field(conf, "assignment");
    if (!assign_default ||
        (strcmp(assign_default, "round_robin") != 0 &&
         strcmp(assign_default, "least_loaded") != 0 && strcmp(assign_default, "none") != 0))
        return K->fail(KITH_PLUGIN_EINVAL, "assignment: round_robin, least_loaded or none");
    if (mtx_init(&bucket_lock, mtx_plain) != thrd_success)
        return K->fail(KITH_PLUGIN_EINVAL, "cannot make a lock");
    int rc;
    if ((rc = K->collection(p, leads_def)) || (rc = K->collection(p, touches_def)) ||
        (rc = K->collection(p, activities_def)) || (rc = K->collection(p, reps_def)) ||
        (rc = K->collection(p, rules_def)))
        return rc;
    if (sched && sched[0] && (rc = K->every_declare(p, "rescore", sched, "leads.rescore", NULL)))
        return rc;
    kith_hook_t hooks[] = {
        {.size = sizeof(kith_hook_t),
         .event = "leads.before_create",
         .name = "normalize_create",
         .priority = 10,
         .fn = lead_before},
        {.size = sizeof(kith_hook_t),
         .event = "leads.before_update",
         .name = "normalize_update",
         .priority = 10,
         .fn = lead_before},
        {.size = sizeof(kith_hook_t), .event = "deal.won", .name = "revenue", .fn = deal_won},
        /* after the scoring rules (a script, priority 100): score bands */
        {.size = sizeof(kith_hook_t),
         .event = "leads.before_create",
         .name = "assign",
         .priority = 500,
         .fn = assign},
        {.size = sizeof(kith_hook_t),
         .event = "leads.before_create",
         .name = "hot_create",
         .priority = 1000,
         .fn = hot_check},
        {.size = sizeof(kith_hook_t),
         .event = "leads.before_update",
         .name = "hot_update",
         .priority = 1000,
         .fn = hot_check},
        {.size = sizeof(kith_hook_t),
         .event = "leads.rescore",
         .name = "rescore",
         .fn = rescore_tick},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if ((rc = K->on(p, &hooks[i]))) return rc;
    kith_route_t routes[] = {
        {.size = sizeof(kith_route_t),
         .method = "POST",
         .pattern = "/v1/capture/{form_key}",
         .name = "capture",
         .action = "create",
         .collection = "leads",
         .flags = KITH_ROUTE_WRITE | KITH_ROUTE_KEY_IN_PATH | KITH_ROUTE_AS_SYSTEM,
         .fn = capture},
        {.size = sizeof(kith_route_t),
         .method = "POST",
         .pattern = "/v1/leads/{id}/touches",
         .name = "touch",
         .action = "update",
         .collection = "leads",
         .flags = KITH_ROUTE_WRITE,
         .fn = touch},
        {.size = sizeof(kith_route_t),
         .method = "POST",
         .pattern = "/v1/leads/{id}/convert",
         .name = "convert",
         .action = "update",
         .collection = "leads",
         .flags = KITH_ROUTE_WRITE,
         .fn = convert},
        {.size = sizeof(kith_route_t),
         .method = "GET",
         .pattern = "/v1/leads/{id}/score",
         .name = "score",
         .action = "read",
         .collection = "leads",
         .fn = score_route},
        {.size = sizeof(kith_route_t),
         .method = "POST",
         .pattern = "/v1/leads/rescore",
         .name = "rescore",
         .action = "update",
         .collection = "leads",
         .flags = KITH_ROUTE_WRITE,
         .fn = rescore_route},
        {.size = sizeof(kith_route_t),
         .method = "GET",
         .pattern = "/v1/reports/attribution",
         .name = "attribution",
         .action = "read",
         .collection = "leads",
         .fn = attribution},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((rc = K->route(p, &routes[i]))) return rc;
    return 0;
}

static void fini(kith_plugin_t *p)
{
    (void)p;
    mtx_destroy(&bucket_lock);
}

KITH_PLUGIN_DEFINE("leads", "1.0.0", 2, init, fini, config_schema);
