/*
 * pipeline: deals, activities and sales pipelines (issue #5), built on the
 * plugin SDK alone. README.md describes what it does; this file holds the
 * collections, the configuration, init and the pipeline lookups the other
 * files share (pipeline_int.h).
 *
 * - pipeline_deals.c: the hooks — a deal's pipeline and stage checked, its
 *   probability, closed state, stage history and stall timer kept; deal.won,
 *   deal.lost, deal.stalled; pipelines and products checked.
 * - pipeline_routes.c: GET /v1/me/tasks and GET /v1/reports/pipeline.
 * - pipeline_util.c: plain C (money, product keys, unknown query parameters;
 *   dates and query values: plugins/common/kp_util.c).
 *
 * Configuration (plugins.config.pipeline), all optional:
 *   default_pipeline  {"name": "default", "stages": [...]}   see README.md
 *   contact_refs      true: contact_id, company_id are refs to identity's
 *                     contacts and companies (load identity first)
 *   history_max       100: entries kept in a deal's stage_history
 */
#include "pipeline_int.h"

#include <stdio.h>
#include <string.h>

const kith_api_t *K;
const kith_json_t *pl_builtin;
size_t pl_history_max = 100;

static const char config_schema[] =
    "{\"default_pipeline\": {\"type\": \"object\", \"default\": {\"name\": \"default\","
    "   \"stages\": ["
    "     {\"name\": \"prospecting\", \"probability\": 10, \"limit_hours\": 48},"
    "     {\"name\": \"qualification\", \"probability\": 20, \"limit_hours\": 48},"
    "     {\"name\": \"needs analysis\", \"probability\": 40, \"limit_hours\": 48},"
    "     {\"name\": \"proposal\", \"probability\": 60, \"limit_hours\": 48},"
    "     {\"name\": \"negotiation\", \"probability\": 80, \"limit_hours\": 48},"
    "     {\"name\": \"won\", \"probability\": 100, \"outcome\": \"won\"},"
    "     {\"name\": \"lost\", \"probability\": 0, \"outcome\": \"lost\"}]}},"
    " \"contact_refs\": {\"type\": \"boolean\", \"default\": true},"
    " \"history_max\": {\"type\": \"integer\", \"default\": 100}}";

/* No owner or team: every role that may read records sees them. */
static const char pipelines_def[] =
    "{\"name\": \"pipelines\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"required\": true, \"unique\": true},"
    "{\"name\": \"stages\", \"type\": \"array\", \"items\": \"object\", \"required\": true},"
    "{\"name\": \"default\", \"type\": \"bool\", \"indexed\": true},"
    "{\"name\": \"description\", \"type\": \"string\"}]}";

static const char products_def[] =
    "{\"name\": \"products\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"required\": true, \"indexed\": true},"
    "{\"name\": \"key\", \"type\": \"string\", \"indexed\": true,"
    " \"description\": \"set by the pipeline plugin: the name lower-cased, letters and digits"
    " only\"},"
    "{\"name\": \"series\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"price\", \"type\": \"money\"},"
    "{\"name\": \"description\", \"type\": \"string\"}]}";

/* %1$s: the contact_id and company_id type attributes */
static const char deals_fmt[] =
    "{\"name\": \"deals\", \"fields\": ["
    "{\"name\": \"name\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"amount\", \"type\": \"money\", \"indexed\": true},"
    "{\"name\": \"pipeline\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"stage\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"probability\", \"type\": \"int\", \"indexed\": true},"
    "{\"name\": \"closed\", \"type\": \"enum\", \"values\": [\"won\", \"lost\"],"
    " \"indexed\": true},"
    "{\"name\": \"contact_id\", %s, \"indexed\": true},"
    "{\"name\": \"company_id\", %s, \"indexed\": true},"
    "{\"name\": \"lead_id\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"product\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"engage_date\", \"type\": \"date\", \"indexed\": true},"
    "{\"name\": \"close_date\", \"type\": \"date\", \"indexed\": true},"
    "{\"name\": \"stage_changed_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"stage_history\", \"type\": \"array\", \"items\": \"object\"},"
    "{\"name\": \"lost_reason\", \"type\": \"string\"},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"cs_owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"tags\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true}]}";

static const char activities_fmt[] =
    "{\"name\": \"activities\", \"fields\": ["
    "{\"name\": \"kind\", \"type\": \"enum\", \"required\": true, \"indexed\": true,"
    " \"values\": [\"call\", \"meeting\", \"note\", \"email\", \"task\"]},"
    "{\"name\": \"subject\", \"type\": \"string\"},"
    "{\"name\": \"body\", \"type\": \"text\"},"
    "{\"name\": \"due_at\", \"type\": \"datetime\", \"indexed\": true},"
    "{\"name\": \"done\", \"type\": \"bool\", \"indexed\": true},"
    "{\"name\": \"done_at\", \"type\": \"datetime\"},"
    "{\"name\": \"owner\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"team\", \"type\": \"string\", \"indexed\": true},"
    "{\"name\": \"tags\", \"type\": \"array\", \"items\": \"string\", \"indexed\": true},"
    "{\"name\": \"contact_id\", %s, \"indexed\": true},"
    "{\"name\": \"deal_id\", \"type\": \"ref\", \"ref\": \"deals\", \"indexed\": true},"
    "{\"name\": \"company_id\", %s, \"indexed\": true}]}";

/* ---- shared helpers ---- */

const char *pl_str(const kith_json_t *o, const char *key)
{
    return o ? K->string_value(K->object_get(o, key)) : NULL;
}

int pl_changed(const kith_event_t *ev, const char *field)
{
    if (ev->op == KITH_OP_CREATE) return K->object_get(ev->record, field) != NULL;
    for (size_t i = 0; i < ev->nchanged; i++)
        if (strcmp(ev->changed[i], field) == 0) return 1;
    return 0;
}

int pl_problem(kith_response_t *res, int status, const char *type, const char *detail)
{
    return kp_problem(K, res, status, type, detail);
}

const char *pl_stage_name(const kith_json_t *stage)
{
    return pl_str(stage, "name");
}

const char *pl_stage_outcome(const kith_json_t *stage)
{
    const char *o = pl_str(stage, "outcome");
    return o && (strcmp(o, "won") == 0 || strcmp(o, "lost") == 0) ? o : NULL;
}

const kith_json_t *pl_stage_find(const pl_pipeline_t *p, const char *name, size_t *index)
{
    if (!name) return NULL;
    for (size_t i = 0; i < K->array_size(p->stages); i++) {
        const kith_json_t *s = K->array_get(p->stages, i);
        const char *n = pl_stage_name(s);
        if (n && kp_ieq(n, name)) {
            if (index) *index = i;
            return s;
        }
    }
    return NULL;
}

const char *pl_stages_check(const kith_json_t *stages, char *buf, size_t cap)
{
    size_t n = stages && K->json_type(stages) == KITH_JSON_ARRAY ? K->array_size(stages) : 0;
    if (n < 1 || n > PL_STAGES_MAX)
        return "a list of 1 to 50 stages: {\"name\", \"probability\", \"limit_hours\", "
               "\"outcome\"}";
    size_t open = 0;
    for (size_t i = 0; i < n; i++) {
        kith_json_t *s = K->array_get(stages, i);
        if (K->json_type(s) != KITH_JSON_OBJECT) {
            snprintf(buf, cap, "stage %zu is not an object", i + 1);
            return buf;
        }
        for (void *it = K->object_iter(s); it; it = K->object_next(s, it)) {
            const char *k = K->iter_key(it);
            if (strcmp(k, "name") && strcmp(k, "probability") && strcmp(k, "limit_hours") &&
                strcmp(k, "outcome")) {
                snprintf(buf, cap,
                         "stage %zu: unknown key '%.40s' (name, probability, limit_hours, "
                         "outcome)",
                         i + 1, k);
                return buf;
            }
        }
        const char *name = pl_stage_name(s);
        if (!name || !name[strspn(name, " \t")] || strlen(name) > PL_NAME_MAX) {
            snprintf(buf, cap, "stage %zu: a name of 1 to %d bytes", i + 1, PL_NAME_MAX);
            return buf;
        }
        for (size_t j = 0; j < i; j++)
            if (kp_ieq(pl_stage_name(K->array_get(stages, j)), name)) {
                snprintf(buf, cap, "stage %zu: '%.60s' is there twice", i + 1, name);
                return buf;
            }
        const kith_json_t *pr = K->object_get(s, "probability");
        if (pr && K->json_type(pr) != KITH_JSON_NULL &&
            (!kp_is_number(K, pr) || K->number_value(pr) < 0 || K->number_value(pr) > 100)) {
            snprintf(buf, cap, "stage '%.60s': probability is a number from 0 to 100", name);
            return buf;
        }
        const kith_json_t *lh = K->object_get(s, "limit_hours");
        if (lh && K->json_type(lh) != KITH_JSON_NULL &&
            (!kp_is_number(K, lh) || K->number_value(lh) <= 0 || K->number_value(lh) > 87600)) {
            snprintf(buf, cap,
                     "stage '%.60s': limit_hours is a number of hours above 0 (fractions "
                     "allowed) up to 87600, or null for no limit",
                     name);
            return buf;
        }
        const kith_json_t *oc = K->object_get(s, "outcome");
        if (oc && K->json_type(oc) != KITH_JSON_NULL && !pl_stage_outcome(s)) {
            snprintf(buf, cap, "stage '%.60s': outcome is \"won\", \"lost\" or null", name);
            return buf;
        }
        if (!pl_stage_outcome(s)) open++;
    }
    if (!open) return "a pipeline needs at least one open stage (outcome null)";
    return NULL;
}

/* ---- pipeline lookup ---- */

typedef struct first {
    kith_json_t *fields;
    char id[KITH_ID_LEN + 1];
} first_t;

static int first_row(void *ud, const kith_record_t *rec)
{
    first_t *f = ud;
    f->fields = K->json_deep_copy(rec->fields);
    memcpy(f->id, rec->id, sizeof f->id);
    return 1;
}

static int find_record(kith_txn_t *tx, const char *field, kith_json_t *value, first_t *f)
{
    kith_json_t *filter = K->json_object();
    K->object_set(filter, field, value);
    kith_query_t q = {.size = sizeof q, .collection = "pipelines", .filter = filter, .limit = 1};
    int rc = K->entity_query(tx, &q, first_row, f, NULL);
    K->json_decref(filter);
    return rc < 0 ? rc : 0;
}

int pl_pipeline_find(kith_txn_t *tx, const char *name, pl_pipeline_t *out)
{
    memset(out, 0, sizeof *out);
    first_t f = {0};
    int rc = name ? find_record(tx, "name", K->json_string(name), &f)
                  : find_record(tx, "default", K->json_bool(1), &f);
    if (rc) return rc;
    if (f.fields) {
        out->def = f.fields;
        memcpy(out->id, f.id, sizeof out->id);
    } else if (!name || strcmp(name, pl_str(pl_builtin, "name")) == 0) {
        out->def = NULL; /* the built-in one: shared, never reference-counted here */
    } else {
        return K->fail(KITH_PLUGIN_ENOTFOUND, "no pipeline is called '%.100s'", name);
    }
    const kith_json_t *d = out->def ? out->def : pl_builtin;
    out->name = pl_str(d, "name");
    out->stages = K->object_get(d, "stages");
    char why[200];
    /* a record may predate the plugin's checks; the built-in one was checked
     * at init and does not change */
    const char *bad = !out->name ? "no name"
                      : out->def ? pl_stages_check(out->stages, why, sizeof why)
                                 : NULL;
    if (bad) { /* written before the plugin checked pipelines */
        rc = K->fail(KITH_PLUGIN_ECONFLICT, "pipeline %.100s is not well-formed: %s",
                     name ? name : "(default)", bad);
        pl_pipeline_close(out);
        return rc;
    }
    return 0;
}

void pl_pipeline_close(pl_pipeline_t *p)
{
    if (p->def) K->json_decref(p->def);
    p->def = NULL;
}

/* ---- init ---- */

static int init(kith_plugin_t *p, const kith_api_t *api)
{
    K = api; /* level 2 (fail_field): min_api_level says so */
    const kith_json_t *conf = K->config(p);
    pl_builtin = K->object_get(conf, "default_pipeline");
    char why[200];
    const char *bad = pl_stages_check(K->object_get(pl_builtin, "stages"), why, sizeof why);
    const char *bname = pl_str(pl_builtin, "name");
    if (!bname || !bname[0] || strlen(bname) > PL_NAME_MAX)
        return K->fail(KITH_PLUGIN_EINVAL,
                       "default_pipeline: {\"name\": 1 to %d bytes, "
                       "\"stages\": [...]}",
                       PL_NAME_MAX);
    if (bad) return K->fail(KITH_PLUGIN_EINVAL, "default_pipeline.stages: %s", bad);
    int64_t hm = K->integer_value(K->object_get(conf, "history_max"));
    if (hm < 1 || hm > 10000)
        return K->fail(KITH_PLUGIN_EINVAL, "history_max: from 1 to 10000 (100)");
    pl_history_max = (size_t)hm;

    int refs = K->json_type(K->object_get(conf, "contact_refs")) != KITH_JSON_FALSE;
    const char *contact =
        refs ? "\"type\": \"ref\", \"ref\": \"contacts\"" : "\"type\": \"string\"";
    const char *company =
        refs ? "\"type\": \"ref\", \"ref\": \"companies\"" : "\"type\": \"string\"";
    char deals_def[sizeof deals_fmt + 128], activities_def[sizeof activities_fmt + 128];
    snprintf(deals_def, sizeof deals_def, deals_fmt, contact, company);
    snprintf(activities_def, sizeof activities_def, activities_fmt, contact, company);

    int rc;
    if ((rc = K->collection(p, pipelines_def)) || (rc = K->collection(p, products_def)) ||
        (rc = K->collection(p, deals_def)) || (rc = K->collection(p, activities_def)))
        return rc;
    if ((rc = pl_deals_register(p)) || (rc = pl_routes_register(p))) return rc;
    return 0;
}

KITH_PLUGIN_DEFINE("pipeline", "1.0.0", 2, init, NULL, config_schema);
