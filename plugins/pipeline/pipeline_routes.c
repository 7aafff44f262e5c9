/*
 * pipeline_routes: GET /v1/me/tasks (the calling rep's open tasks) and GET
 * /v1/reports/pipeline (deals, value, conversion, win rate and sales cycle
 * of one pipeline). Both are read routes: they run on an I/O thread in a
 * snapshot and act as the caller (its role's scope and masking apply).
 */
#include "pipeline_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS    86400000LL
#define PARAM_MAX 256

/* A record as the API shows it: its fields and the pseudo-fields (times to
 * the millisecond). New. */
static kith_json_t *record_json(const kith_record_t *rec)
{
    kith_json_t *o = K->json_deep_copy(rec->fields);
    char t[KP_ISO_MAX];
    K->object_set(o, "id", K->json_string(rec->id));
    K->object_set(o, "version", K->json_integer((int64_t)rec->version));
    K->object_set(o, "created_at", K->json_string(kp_iso_from_ms(rec->created_ms, t)));
    K->object_set(o, "updated_at", K->json_string(kp_iso_from_ms(rec->updated_ms, t)));
    return o;
}

/* Refuses parameters other than allowed: 1 after answering 400. */
static int bad_params(const kith_request_t *req, kith_response_t *res, const char *const *allowed,
                      const char *list)
{
    char bad[64], msg[200];
    if (!pl_query_unknown(req->query, allowed, bad, sizeof bad)) return 0;
    snprintf(msg, sizeof msg, "unknown parameter '%s' (%s)", bad, list);
    pl_problem(res, 400, "invalid", msg);
    return 1;
}

/* A parameter: 1 (in out), 0 (absent or empty), or -1 after answering 400. */
static int param(const kith_request_t *req, kith_response_t *res, const char *name, char *out,
                 size_t cap)
{
    int r = kp_query_param(req->query, name, out, cap);
    if (r < 0) {
        char msg[120];
        snprintf(msg, sizeof msg, "%s: not a well-formed value of at most %zu bytes", name,
                 cap - 1);
        pl_problem(res, 400, "invalid", msg);
        return -1;
    }
    return r == 1 && out[0];
}

static int int_param(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* ---- GET /v1/me/tasks ---- */

typedef struct rows {
    kith_json_t *data;
} rows_t;

static int task_row(void *ud, const kith_record_t *rec)
{
    rows_t *r = ud;
    K->array_append(r->data, record_json(rec));
    return 0;
}

static int my_tasks(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    static const char *const allowed[] = {"due", "offset", "limit", "cursor", NULL};
    if (bad_params(req, res, allowed, "due, offset, limit, cursor")) return 0;
    char due[32] = "all", off_s[16], lim_s[16], cursor[1024];
    int r;
    if ((r = param(req, res, "due", due, sizeof due)) < 0) return 0;
    if (!r) strcpy(due, "all");
    long offset = 0, limit = 100;
    if ((r = param(req, res, "offset", off_s, sizeof off_s)) < 0) return 0;
    if (r && int_param(off_s, -840, 840, &offset))
        return pl_problem(res, 400, "invalid",
                          "offset: minutes east of UTC, from -840 to 840 (480 for UTC+8)");
    if ((r = param(req, res, "limit", lim_s, sizeof lim_s)) < 0) return 0;
    if (r && int_param(lim_s, 1, 1000, &limit))
        return pl_problem(res, 400, "invalid", "limit: from 1 to 1000 (100)");
    int has_cursor = param(req, res, "cursor", cursor, sizeof cursor);
    if (has_cursor < 0) return 0;

    int64_t now = K->now_ms(), off_ms = (int64_t)offset * 60000;
    int64_t local = now + off_ms;
    int64_t day0 = (local >= 0 ? local / DAY_MS : (local - DAY_MS + 1) / DAY_MS) * DAY_MS - off_ms;
    int64_t from = 0, to = 0; /* 0: open */
    if (strcmp(due, "today") == 0) {
        from = day0, to = day0 + DAY_MS;
    } else if (strcmp(due, "week") == 0) {
        from = day0, to = day0 + 7 * DAY_MS;
    } else if (strcmp(due, "overdue") == 0) {
        to = now;
    } else if (strcmp(due, "all") != 0) {
        return pl_problem(res, 400, "invalid",
                          "due: today, week (today and the 6 days after), overdue or all");
    }
    kith_json_t *filter = K->json_object(), *ne = K->json_object();
    K->object_set(filter, "kind", K->json_string("task"));
    K->object_set(filter, "owner", K->json_string(req->user ? req->user : ""));
    K->object_set(ne, "ne", K->json_bool(1));
    K->object_set(filter, "done", ne);
    char t[KP_ISO_MAX];
    if (from || to) {
        kith_json_t *range = K->json_object();
        if (from) K->object_set(range, "gte", K->json_string(kp_iso_from_ms(from, t)));
        if (to) K->object_set(range, "lt", K->json_string(kp_iso_from_ms(to, t)));
        K->object_set(filter, "due_at", range);
    }
    rows_t rows = {.data = K->json_array()};
    char *next = NULL;
    kith_query_t q = {.size = sizeof q,
                      .collection = "activities",
                      .filter = filter,
                      .sort = "due_at",
                      .limit = (size_t)limit,
                      .cursor = has_cursor ? cursor : NULL};
    int rc = K->entity_query(tx, &q, task_row, &rows, &next);
    if (rc == 0) {
        kith_json_t *out = K->json_object();
        K->object_set(out, "data", rows.data);
        K->object_set(out, "next_cursor", next ? K->json_string(next) : K->json_null());
        K->object_set(out, "due", K->json_string(due));
        if (from) K->object_set(out, "from", K->json_string(kp_iso_from_ms(from, t)));
        if (to) K->object_set(out, "to", K->json_string(kp_iso_from_ms(to, t)));
        K->respond(res, 200, out);
        K->json_decref(out);
    } else {
        K->json_decref(rows.data);
        if (rc == KITH_PLUGIN_EINVAL) { /* a stale or foreign cursor */
            char msg[300];
            snprintf(msg, sizeof msg, "%s", K->errmsg());
            rc = pl_problem(res, 400, "invalid", msg);
        }
    }
    if (next) K->free(next);
    K->json_decref(filter);
    return rc;
}

/* ---- GET /v1/reports/pipeline ---- */

typedef struct product_tally {
    char *name;
    size_t deals, won;
    int64_t won_value;
} product_tally_t;

typedef struct tally {
    const pl_pipeline_t *pl;
    size_t n; /* stages */
    int open_pos[PL_STAGES_MAX];
    size_t nopen;
    size_t deals[PL_STAGES_MAX], reached[PL_STAGES_MAX];
    int64_t value[PL_STAGES_MAX], weighted[PL_STAGES_MAX];
    size_t total, other;
    int64_t total_value, other_value;
    size_t won, lost;
    int64_t won_value, lost_value;
    double cycle_days;
    size_t cycle_n;
    product_tally_t *products;
    size_t nproducts, cap;
    int oom;
} tally_t;

static product_tally_t *product_slot(tally_t *t, const char *name)
{
    for (size_t i = 0; i < t->nproducts; i++)
        if (strcmp(t->products[i].name, name) == 0) return &t->products[i];
    if (t->nproducts == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        product_tally_t *p = realloc(t->products, cap * sizeof *p);
        if (!p) return NULL;
        t->products = p, t->cap = cap;
    }
    size_t len = strlen(name);
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, name, len + 1);
    product_tally_t *s = &t->products[t->nproducts++];
    *s = (product_tally_t){.name = copy};
    return s;
}

static int64_t money_of(const kith_json_t *fields, const char *field)
{
    int64_t v = 0;
    const kith_json_t *j = K->object_get(fields, field);
    if (K->json_type(j) == KITH_JSON_STRING) {
        if (pl_money_parse(K->string_value(j), &v)) v = 0;
    } else if (K->json_type(j) == KITH_JSON_INTEGER) {
        v = K->integer_value(j) * PL_MONEY_SCALE;
    }
    return v;
}

static int deal_row(void *ud, const kith_record_t *rec)
{
    tally_t *t = ud;
    const kith_json_t *f = rec->fields;
    int64_t amount = money_of(f, "amount");
    t->total++;
    t->total_value += amount;
    size_t si;
    const kith_json_t *st = pl_stage_find(t->pl, pl_str(f, "stage"), &si);
    if (!st) {
        t->other++;
        t->other_value += amount;
        return 0;
    }
    const char *outcome = pl_stage_outcome(st);
    t->deals[si]++;
    t->value[si] += amount;
    const kith_json_t *prob = K->object_get(f, "probability");
    if (prob) {
        int64_t pr = K->integer_value(prob);
        t->weighted[si] += amount / 100 * pr + amount % 100 * pr / 100;
    }

    /* the furthest open stage it reached: a won deal passed them all */
    int furthest = -1;
    if (outcome && strcmp(outcome, "won") == 0) {
        furthest = (int)t->nopen - 1;
    } else {
        if (!outcome) furthest = t->open_pos[si];
        const kith_json_t *h = K->object_get(f, "stage_history");
        for (size_t i = 0; i < K->array_size(h); i++) {
            size_t hi;
            if (pl_stage_find(t->pl, pl_str(K->array_get(h, i), "stage"), &hi) &&
                t->open_pos[hi] > furthest)
                furthest = t->open_pos[hi];
        }
        if (furthest < 0) furthest = 0; /* lost without a recorded open stage */
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->open_pos[i] >= 0 && t->open_pos[i] <= furthest) t->reached[i]++;
    if (outcome) t->reached[si]++;

    const char *product = pl_str(f, "product");
    product_tally_t *pt = product ? product_slot(t, product) : NULL;
    if (product && !pt) t->oom = 1;
    if (pt) pt->deals++;
    if (outcome && strcmp(outcome, "won") == 0) {
        t->won++;
        t->won_value += amount;
        if (pt) pt->won++, pt->won_value += amount;
        int64_t end, start;
        if (kp_date_parse(pl_str(f, "close_date"), &end) == 0) {
            if (kp_date_parse(pl_str(f, "engage_date"), &start) != 0)
                start = rec->created_ms / DAY_MS;
            t->cycle_days += (double)(end - start);
            t->cycle_n++;
        }
    } else if (outcome) {
        t->lost++;
        t->lost_value += amount;
    }
    return t->oom;
}

static kith_json_t *money(int64_t units)
{
    char buf[PL_MONEY_MAX];
    return K->json_string(pl_money_format(units, buf));
}

/* x rounded to `places` decimals (no libm). */
static double round_to(double x, int places)
{
    double s = 1;
    for (int i = 0; i < places; i++)
        s *= 10;
    double y = x * s;
    return (double)(int64_t)(y < 0 ? y - 0.5 : y + 0.5) / s;
}

static kith_json_t *ratio(size_t a, size_t b, double scale, int places)
{
    return b ? K->json_real(round_to((double)a * scale / (double)b, places)) : K->json_null();
}

static int by_won_value(const void *a, const void *b)
{
    const product_tally_t *x = a, *y = b;
    if (x->won_value != y->won_value) return x->won_value > y->won_value ? -1 : 1;
    return strcmp(x->name, y->name);
}

static kith_json_t *report_json(const tally_t *t)
{
    const pl_pipeline_t *pl = t->pl;
    kith_json_t *out = K->json_object(), *stages = K->json_array(), *conv = K->json_array();
    kith_json_t *p = K->json_object();
    K->object_set(p, "name", K->json_string(pl->name));
    K->object_set(p, "id", pl->id[0] ? K->json_string(pl->id) : K->json_null());
    K->object_set(p, "builtin", K->json_bool(!pl->id[0]));
    K->object_set(p, "stages", K->json_deep_copy(pl->stages));
    K->object_set(out, "pipeline", p);
    K->object_set(out, "deals", K->json_integer((int64_t)t->total));
    K->object_set(out, "value", money(t->total_value));
    int64_t open_value = 0, open_weighted = 0;
    size_t open_deals = 0, won_reached = 0;
    for (size_t i = 0; i < t->n; i++) {
        const kith_json_t *st = K->array_get(pl->stages, i);
        const char *outcome = pl_stage_outcome(st);
        kith_json_t *s = K->json_object();
        K->object_set(s, "name", K->json_string(pl_stage_name(st)));
        K->object_set(s, "outcome", outcome ? K->json_string(outcome) : K->json_null());
        K->object_set(s, "deals", K->json_integer((int64_t)t->deals[i]));
        K->object_set(s, "value", money(t->value[i]));
        K->object_set(s, "weighted_value", money(t->weighted[i]));
        K->object_set(s, "reached", K->json_integer((int64_t)t->reached[i]));
        K->array_append(stages, s);
        if (!outcome) {
            open_deals += t->deals[i];
            open_value += t->value[i];
            open_weighted += t->weighted[i];
        } else if (strcmp(outcome, "won") == 0) {
            won_reached += t->reached[i];
        }
    }
    K->object_set(out, "stages", stages);
    if (t->other) {
        kith_json_t *o = K->json_object();
        K->object_set(o, "deals", K->json_integer((int64_t)t->other));
        K->object_set(o, "value", money(t->other_value));
        K->object_set(out, "other_stages", o);
    }
    /* open stages in order, then the last one into won */
    int prev = -1;
    for (size_t i = 0; i <= t->n; i++) {
        int is_won = i == t->n;
        if (!is_won && t->open_pos[i] < 0) continue;
        if (prev >= 0) {
            size_t a = t->reached[prev], b = is_won ? won_reached : t->reached[i];
            kith_json_t *c = K->json_object();
            K->object_set(c, "from",
                          K->json_string(pl_stage_name(K->array_get(pl->stages, (size_t)prev))));
            K->object_set(
                c, "to",
                K->json_string(is_won ? "won" : pl_stage_name(K->array_get(pl->stages, i))));
            K->object_set(c, "from_deals", K->json_integer((int64_t)a));
            K->object_set(c, "to_deals", K->json_integer((int64_t)b));
            K->object_set(c, "rate", ratio(b, a, 100, 2));
            K->array_append(conv, c);
        }
        if (!is_won) prev = (int)i;
    }
    K->object_set(out, "conversion", conv);
    kith_json_t *o = K->json_object(), *w = K->json_object(), *l = K->json_object();
    K->object_set(o, "deals", K->json_integer((int64_t)open_deals));
    K->object_set(o, "value", money(open_value));
    K->object_set(o, "weighted_value", money(open_weighted));
    K->object_set(w, "deals", K->json_integer((int64_t)t->won));
    K->object_set(w, "value", money(t->won_value));
    K->object_set(l, "deals", K->json_integer((int64_t)t->lost));
    K->object_set(l, "value", money(t->lost_value));
    K->object_set(out, "open", o);
    K->object_set(out, "won", w);
    K->object_set(out, "lost", l);
    K->object_set(out, "win_rate", ratio(t->won, t->won + t->lost, 100, 2));
    K->object_set(out, "average_sales_cycle_days",
                  t->cycle_n ? K->json_real(round_to(t->cycle_days / (double)t->cycle_n, 2))
                             : K->json_null());
    K->object_set(out, "sales_cycle_deals", K->json_integer((int64_t)t->cycle_n));
    kith_json_t *prods = K->json_array();
    if (t->nproducts) qsort(t->products, t->nproducts, sizeof *t->products, by_won_value);
    for (size_t i = 0; i < t->nproducts; i++) {
        kith_json_t *e = K->json_object();
        K->object_set(e, "product", K->json_string(t->products[i].name));
        K->object_set(e, "deals", K->json_integer((int64_t)t->products[i].deals));
        K->object_set(e, "won_deals", K->json_integer((int64_t)t->products[i].won));
        K->object_set(e, "won_value", money(t->products[i].won_value));
        K->array_append(prods, e);
    }
    K->object_set(out, "products", prods);
    return out;
}

/* The catalog's spelling of a product name, when it has one (new), else a
 * copy of name. */
static kith_json_t *product_canon(kith_txn_t *tx, const char *name)
{
    char key[PL_NAME_MAX + 1];
    kith_json_t *found = NULL;
    if (pl_product_key(name, key, sizeof key)) {
        kith_json_t *f = K->json_object();
        K->object_set(f, "key", K->json_string(key));
        kith_query_t q = {.size = sizeof q, .collection = "products", .filter = f, .limit = 1};
        rows_t r = {.data = K->json_array()};
        if (K->entity_query(tx, &q, task_row, &r, NULL) == 0 && K->array_size(r.data))
            found = K->json_deep_copy(K->object_get(K->array_get(r.data, 0), "name"));
        K->json_decref(r.data);
        K->json_decref(f);
    }
    return found ? found : K->json_string(name);
}

static int report(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    static const char *const allowed[] = {"pipeline", "from", "to", "product", NULL};
    if (bad_params(req, res, allowed, "pipeline, from, to, product")) return 0;
    char name[PARAM_MAX], from[PARAM_MAX], to[PARAM_MAX], product[PARAM_MAX];
    int has_name, has_from, has_to, has_product;
    if ((has_name = param(req, res, "pipeline", name, sizeof name)) < 0 ||
        (has_from = param(req, res, "from", from, sizeof from)) < 0 ||
        (has_to = param(req, res, "to", to, sizeof to)) < 0 ||
        (has_product = param(req, res, "product", product, sizeof product)) < 0)
        return 0;
    int64_t d0, d1;
    if ((has_from && (kp_date_parse(from, &d0) || from[10])) ||
        (has_to && (kp_date_parse(to, &d1) || to[10])))
        return pl_problem(res, 400, "invalid", "from, to: dates, YYYY-MM-DD (on close_date)");
    if (has_from && has_to && d1 < d0) return pl_problem(res, 400, "invalid", "from is after to");

    pl_pipeline_t pl;
    int rc = pl_pipeline_find(tx, has_name ? name : NULL, &pl);
    if (rc == KITH_PLUGIN_ENOTFOUND) {
        char msg[PARAM_MAX + 60];
        snprintf(msg, sizeof msg, "no pipeline is called '%s'", name);
        return pl_problem(res, 404, "not-found", msg);
    }
    if (rc) return rc;
    kith_json_t *filter = K->json_object();
    if (has_name) {
        K->object_set(filter, "pipeline", K->json_string(pl.name));
    } else { /* the default one also has deals written before there were pipelines */
        kith_json_t *any = K->json_array(), *a = K->json_object(), *b = K->json_object(),
                    *ex = K->json_object();
        K->object_set(a, "pipeline", K->json_string(pl.name));
        K->object_set(ex, "exists", K->json_bool(0));
        K->object_set(b, "pipeline", ex);
        K->array_append(any, a);
        K->array_append(any, b);
        K->object_set(filter, "or", any);
    }
    if (has_product) K->object_set(filter, "product", product_canon(tx, product));
    if (has_from || has_to) {
        kith_json_t *range = K->json_object();
        if (has_from) K->object_set(range, "gte", K->json_string(from));
        if (has_to) K->object_set(range, "lte", K->json_string(to));
        K->object_set(filter, "close_date", range);
    }

    tally_t *t = calloc(1, sizeof *t);
    if (!t) {
        K->json_decref(filter);
        pl_pipeline_close(&pl);
        return K->fail(KITH_PLUGIN_ELIMIT, "out of memory");
    }
    t->pl = &pl;
    t->n = K->array_size(pl.stages);
    for (size_t i = 0; i < t->n; i++)
        t->open_pos[i] = pl_stage_outcome(K->array_get(pl.stages, i)) ? -1 : (int)t->nopen++;
    kith_query_t q = {.size = sizeof q, .collection = "deals", .filter = filter};
    rc = kp_query_all(K, tx, &q, deal_row, t);
    if (t->oom) rc = K->fail(KITH_PLUGIN_ELIMIT, "out of memory"); /* deal_row stopped */
    if (rc == 0) {
        kith_json_t *out = report_json(t);
        kith_json_t *flt = K->json_object();
        if (has_from) K->object_set(flt, "from", K->json_string(from));
        if (has_to) K->object_set(flt, "to", K->json_string(to));
        if (has_product)
            K->object_set(flt, "product", K->json_deep_copy(K->object_get(filter, "product")));
        K->object_set(out, "filters", flt);
        K->respond(res, 200, out);
        K->json_decref(out);
    }
    for (size_t i = 0; i < t->nproducts; i++)
        free(t->products[i].name);
    free(t->products);
    free(t);
    K->json_decref(filter);
    pl_pipeline_close(&pl);
    return rc;
}

int pl_routes_register(kith_plugin_t *p)
{
    kith_route_t routes[] = {{.size = sizeof(kith_route_t),
                              .method = "GET",
                              .pattern = "/v1/me/tasks",
                              .name = "me_tasks",
                              .action = "read",
                              .collection = "activities",
                              .fn = my_tasks},
                             {.size = sizeof(kith_route_t),
                              .method = "GET",
                              .pattern = "/v1/reports/pipeline",
                              .name = "report_pipeline",
                              .action = "read",
                              .collection = "deals",
                              .fn = report}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int rc = K->route(p, &routes[i]);
        if (rc) return rc;
    }
    return 0;
}
