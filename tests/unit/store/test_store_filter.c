/* Tests core/store/store_filter.c: every operator of the filter grammar over
 * every field type, run once on a collection whose fields are indexed and once
 * on an identical one without indexes. Both must return exactly the expected
 * records (results never depend on the plan). Also the error messages, which
 * name the offending path, and the depth and size limits. */
#include "testutil.h"

#include "base/mem.h"
#include "base/timeutil.h"
#include "store/store_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NREC 8

static const char *people_def =
    "{\"name\":\"people\",\"fields\":[{\"name\":\"name\",\"type\":\"string\"}]}";

/* %s: collection name; %s: "indexed" attribute list for indexable fields. */
static const char *deals_fields =
    "[{\"name\":\"label\",\"type\":\"string\"},"
    "{\"name\":\"n\",\"type\":\"int\"%s},"
    "{\"name\":\"x\",\"type\":\"number\"%s},"
    "{\"name\":\"amt\",\"type\":\"money\"%s},"
    "{\"name\":\"at\",\"type\":\"datetime\"%s},"
    "{\"name\":\"day\",\"type\":\"date\"%s},"
    "{\"name\":\"mail\",\"type\":\"email\"%s},"
    "{\"name\":\"name\",\"type\":\"string\"%s%s},"
    "{\"name\":\"flag\",\"type\":\"bool\"%s},"
    "{\"name\":\"stage\",\"type\":\"enum\",\"values\":[\"lead\",\"customer\",\"churned\"]%s%s},"
    "{\"name\":\"owner\",\"type\":\"ref\",\"ref\":\"people\"%s},"
    "{\"name\":\"tags\",\"type\":\"array\",\"items\":\"string\"%s},"
    "{\"name\":\"nums\",\"type\":\"array\",\"items\":\"int\"%s},"
    "{\"name\":\"meta\",\"type\":\"object\"}]";

/* The data set: one line per record, "$name" tokens substituted (see subst). */
static const char *records[NREC] = {
    "{\"label\":\"r1\",\"n\":-5,\"x\":-1.5,\"amt\":\"19.9\",\"at\":\"2026-01-01T10:00:00+02:00\","
    "\"day\":\"2026-01-01\",\"mail\":\"Ada@Example.com\",\"name\":\"Ada Lovelace\",\"flag\":true,"
    "\"stage\":\"lead\",\"owner\":\"$P1\",\"tags\":[\"vip\",\"emea\"],\"nums\":[1,2,3],"
    "\"meta\":{\"a\":1}}",
    "{\"label\":\"r2\",\"n\":0,\"x\":-0.0,\"amt\":\"0\",\"at\":\"2026-01-01T08:00:00Z\","
    "\"day\":\"2026-01-02\",\"mail\":\"bob@example.com\",\"name\":\"bob\",\"flag\":false,"
    "\"stage\":\"customer\",\"owner\":\"$P2\",\"tags\":[\"apac\"],\"nums\":[10]}",
    /* r3 is created as a lead and updated to churned (version 2) */
    "{\"label\":\"r3\",\"n\":7,\"x\":0.0,\"amt\":\"100.0001\","
    "\"at\":\"2025-12-31T23:59:59.5-01:00\","
    "\"day\":\"2025-12-31\",\"mail\":\"ADA@example.org\",\"name\":\"adam\",\"flag\":true,"
    "\"stage\":\"lead\",\"owner\":\"$q1\",\"tags\":[\"vip\"],\"nums\":[],\"meta\":{}}",
    "{\"label\":\"r4\",\"n\":9223372036854775807,\"x\":1e300,\"amt\":\"-42.5\","
    "\"at\":\"1969-12-31T23:59:59Z\",\"day\":\"1969-07-20\",\"mail\":\"zed@z.io\","
    "\"name\":\"\xc3\x89mile\",\"flag\":false,\"stage\":\"lead\",\"tags\":[\"emea\",\"emea\"],"
    "\"nums\":[-3,5]}",
    "{\"label\":\"r5\"}",
    "{\"label\":\"r6\",\"n\":-9223372036854775808,\"x\":2.5,\"amt\":\"19.90\","
    "\"at\":\"2026-01-01T08:00:00.000001Z\",\"day\":\"2026-01-01\",\"mail\":\"carol@Example.COM\","
    "\"name\":\"Carol\",\"stage\":\"customer\",\"owner\":\"$P2\",\"tags\":[\"z\",\"a\"],"
    "\"nums\":[0]}",
    "{\"label\":\"r7\",\"name\":\"$La\",\"n\":7,\"x\":-2}",
    "{\"label\":\"r8\",\"name\":\"$Lb\",\"n\":8,\"x\":-1e-300,\"amt\":\"-0.01\"}",
};

enum { C_IDX = 0, C_PLAIN = 1 };
static const char *const coll_names[2] = {"idx", "plain"};

typedef struct fx {
    store_t *st;
    char *dir;
    char people[3][ID_TEXT_LEN + 1];
    char ids[2][NREC][ID_TEXT_LEN + 1];
    kith_id_t rid[2][NREC];
    int64_t created[2][NREC];
    int64_t updated[2][NREC];
} fx_t;

/* ---- "$token" substitution ---- */

static void long_name(buf_t *b, char fill, size_t n, const char *tail)
{
    for (size_t i = 0; i < n; i++)
        buf_addc(b, fill);
    buf_adds(b, tail);
}

static void fmt_time(buf_t *b, int64_t us)
{
    char t[40];
    time_fmt_rfc3339(us, t, sizeof t, 6);
    buf_adds(b, t);
}

/* Expands $P1..$P3 (people ids), $q1 (P1 in lower case), $r1..$r8 (record ids
 * in collection k), $c1..$c8 / $u1..$u8 (their created/updated times),
 * $La / $Lb / $LB (410 'L' + a / b / B), $L400 (400 'L') and $ll (405 'l'). */
static char *subst(const fx_t *f, int k, const char *text)
{
    buf_t b = BUF_INIT;
    for (const char *p = text; *p;) {
        if (*p != '$') {
            buf_addc(&b, *p++);
            continue;
        }
        char tok[8] = {0};
        size_t n = 0;
        for (p++; n < sizeof tok - 1 && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                                         (*p >= '0' && *p <= '9'));
             p++)
            tok[n++] = *p;
        int i = tok[1] ? atoi(tok + 1) : 0;
        if (tok[0] == 'P' && i >= 1 && i <= 3) {
            buf_adds(&b, f->people[i - 1]);
        } else if (strcmp(tok, "q1") == 0) {
            for (const char *s = f->people[0]; *s; s++)
                buf_addc(&b, (*s >= 'A' && *s <= 'Z') ? (char)(*s + 32) : *s);
        } else if (tok[0] == 'r' && i >= 1 && i <= NREC) {
            buf_adds(&b, f->ids[k][i - 1]);
        } else if (tok[0] == 'c' && i >= 1 && i <= NREC) {
            fmt_time(&b, f->created[k][i - 1]);
        } else if (tok[0] == 'u' && i >= 1 && i <= NREC) {
            fmt_time(&b, f->updated[k][i - 1]);
        } else if (strcmp(tok, "La") == 0) {
            long_name(&b, 'L', 410, "a");
        } else if (strcmp(tok, "Lb") == 0) {
            long_name(&b, 'L', 410, "b");
        } else if (strcmp(tok, "LB") == 0) {
            long_name(&b, 'L', 410, "B");
        } else if (strcmp(tok, "ll") == 0) {
            long_name(&b, 'l', 405, "");
        } else if (strcmp(tok, "L400") == 0) {
            long_name(&b, 'L', 400, "");
        } else {
            fail_msg("unknown token $%s in %s", tok, text);
        }
    }
    size_t len;
    return buf_steal(&b, &len);
}

/* ---- fixture ---- */

static void create_coll(store_t *st, const char *name, int indexed)
{
    const char *ix = indexed ? ",\"indexed\":true" : "";
    const char *sr = indexed ? ",\"searchable\":true" : "";
    char fields[2048];
    snprintf(fields, sizeof fields, deals_fields, ix, ix, ix, ix, ix, ix, ix, sr, ix, ix, sr, ix,
             ix, ix);
    char def[2300];
    snprintf(def, sizeof def, "{\"name\":\"%s\",\"fields\":%s}", name, fields);
    tu_schema(st, def);
}

static int setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof *f);
    f->st = tu_store_open(&f->dir, 0, 0);
    tu_schema(f->st, people_def);
    for (int i = 0; i < 3; i++) {
        kith_id_t id;
        assert_ok(tu_create(f->st, "people", "{\"name\":\"p\"}", &id));
        id_encode(&id, f->people[i]);
    }
    create_coll(f->st, coll_names[C_IDX], 1);
    create_coll(f->st, coll_names[C_PLAIN], 0);
    /* One record per batch, in order: created_at strictly increases. */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NREC; i++) {
            char *text = subst(f, k, records[i]);
            json_t *j = tu_json(text);
            free(text);
            store_op_t *op = store_op_create(coll_names[k], j);
            json_decref(j);
            assert_ok(store_exec(f->st, op));
            f->rid[k][i] = op->rid;
            id_encode(&op->rid, f->ids[k][i]);
            f->created[k][i] = op->created_us;
            f->updated[k][i] = op->updated_us;
            store_op_free(op);
        }
    for (int k = 0; k < 2; k++) {
        json_t *patch = tu_json("{\"stage\":\"churned\"}");
        store_op_t *op = store_op_update(coll_names[k], &f->rid[k][2], patch, 1);
        json_decref(patch);
        assert_ok(store_exec(f->st, op));
        assert_int_equal(op->version, 2);
        f->updated[k][2] = op->updated_us;
        store_op_free(op);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tu_store_close(f->st, f->dir);
    free(f);
    return 0;
}

/* ---- running a filter on both collections ---- */

typedef struct labels {
    int seen[NREC + 1];
    int dup;
} labels_t;

static int collect_label(void *ctx, const store_record_t *rec)
{
    labels_t *l = ctx;
    json_t *j = store_record_fields(rec);
    const char *s = json_string_value(json_object_get(j, "label"));
    int i = s && s[0] == 'r' ? atoi(s + 1) : 0;
    if (i < 1 || i > NREC) fail_msg("a record without a known label");
    if (l->seen[i]++) l->dup = 1;
    json_decref(j);
    return 0;
}

/* Runs the filter text (substituted for collection k) with small pages and
 * returns the labels found, "r1 r3 ...", in label order. rc: the query status. */
static char *run_labels(fx_t *f, int k, const char *text, size_t limit, int *rc)
{
    json_t *flt = tu_json(text);
    labels_t l = {0};
    char *cursor = NULL;
    *rc = 0;
    int pages = 0;
    do {
        store_rtxn_t *rt;
        assert_ok(store_read_begin(f->st, &rt));
        store_query_t q = {.coll = coll_names[k], .filter = flt, .limit = limit, .cursor = cursor};
        char *next = NULL;
        *rc = store_query(rt, &q, collect_label, &l, &next);
        store_read_end(rt);
        free(cursor);
        cursor = next;
        if (++pages > 100) fail_msg("%s: pagination does not end", text);
    } while (*rc == 0 && cursor);
    free(cursor);
    json_decref(flt);
    if (l.dup) fail_msg("%s on %s: a record was returned twice", text, coll_names[k]);
    buf_t b = BUF_INIT;
    for (int i = 1; i <= NREC; i++)
        if (l.seen[i]) buf_addf(&b, "%sr%d", b.len ? " " : "", i);
    size_t len;
    return buf_steal(&b, &len);
}

/* The filter must give exactly want on both collections, page by page; on the
 * indexed collection the plan must be idx_plan (NULL: any). */
static void check(fx_t *f, const char *filter, const char *want, const char *idx_plan)
{
    for (int k = 0; k < 2; k++) {
        char *text = subst(f, k, filter);
        for (size_t limit = 2; limit <= 1000; limit += 998) {
            int rc;
            char *got = run_labels(f, k, text, limit, &rc);
            if (rc) fail_msg("%s on %s: %s", filter, coll_names[k], err_last()->msg);
            if (strcmp(got, want) != 0)
                fail_msg("%s on %s (limit %zu): got [%s], want [%s]", filter, coll_names[k], limit,
                         got, want);
            free(got);
        }
        char *plan = tu_plan(f->st, coll_names[k], text, NULL);
        if (k == C_IDX && idx_plan && strcmp(plan, idx_plan) != 0)
            fail_msg("%s: plan on the indexed collection is '%s', want '%s'", filter, plan,
                     idx_plan);
        if (k == C_PLAIN && strcmp(plan, "scan") != 0 && strcmp(plan, "ids") != 0)
            fail_msg("%s: plan without indexes is '%s'", filter, plan);
        free(plan);
        free(text);
    }
}

/* The filter must fail with code on both collections, the message naming path. */
static void check_error(fx_t *f, const char *filter, int code, const char *path)
{
    for (int k = 0; k < 2; k++) {
        char *text = subst(f, k, filter);
        int rc;
        char *got = run_labels(f, k, text, 10, &rc);
        free(got);
        if (rc != code)
            fail_msg("%.200s on %s: status %d (%s), want %d", filter, coll_names[k], rc,
                     err_name(rc), code);
        if (!strstr(err_last()->msg, path))
            fail_msg("%.200s: message '%s' does not name '%s'", filter, err_last()->msg, path);
        /* store_query_plan compiles the same way */
        json_t *j = tu_json(text);
        store_rtxn_t *rt;
        assert_ok(store_read_begin(f->st, &rt));
        store_query_t q = {.coll = coll_names[k], .filter = j};
        buf_t b = BUF_INIT;
        assert_int_equal(store_query_plan(rt, &q, &b), code);
        store_read_end(rt);
        buf_free(&b);
        json_decref(j);
        free(text);
    }
}

/* ---- the tests ---- */

#define ALL "r1 r2 r3 r4 r5 r6 r7 r8"

static void int_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"n\":7}", "r3 r7", "eq n");
    check(f, "{\"n\":{\"eq\":7}}", "r3 r7", "eq n");
    check(f, "{\"n\":{\"ne\":7}}", "r1 r2 r4 r5 r6 r8", "scan");
    check(f, "{\"n\":{\"in\":[0,8,99]}}", "r2 r8", "in n");
    check(f, "{\"n\":{\"lt\":0}}", "r1 r6", "range n");
    check(f, "{\"n\":{\"lte\":0}}", "r1 r2 r6", "range n");
    check(f, "{\"n\":{\"gt\":7}}", "r4 r8", "range n");
    check(f, "{\"n\":{\"gte\":7}}", "r3 r4 r7 r8", "range n");
    check(f, "{\"n\":{\"gt\":-6,\"lt\":8}}", "r1 r2 r3 r7", "range n");
    check(f, "{\"n\":{\"gt\":0,\"ne\":7}}", "r4 r8", "range n");
    check(f, "{\"n\":{\"lte\":-9223372036854775808}}", "r6", "range n");
    check(f, "{\"n\":{\"gte\":9223372036854775807}}", "r4", "range n");
    check(f, "{\"n\":{\"gt\":5,\"lt\":5}}", "", "range n");
    check(f, "{\"n\":{\"exists\":false}}", "r5", "scan");
    check(f, "{\"n\":{\"exists\":true}}", "r1 r2 r3 r4 r6 r7 r8", "scan");
}

static void number_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"x\":0}", "r2 r3", "eq x"); /* -0.0 equals 0.0 */
    check(f, "{\"x\":-0.0}", "r2 r3", "eq x");
    check(f, "{\"x\":{\"lt\":0}}", "r1 r7 r8", "range x");
    check(f, "{\"x\":{\"gte\":-1.5}}", "r1 r2 r3 r4 r6 r8", "range x");
    check(f, "{\"x\":{\"gt\":-1.5,\"lt\":0}}", "r8", "range x");
    check(f, "{\"x\":{\"lte\":-2}}", "r7", "range x");
    check(f, "{\"x\":{\"in\":[2.5,1e300]}}", "r4 r6", "in x");
    check(f, "{\"x\":{\"ne\":0}}", "r1 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"x\":2}", "", "eq x");
}

static void money_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"amt\":\"19.9\"}", "r1 r6", "eq amt");
    check(f, "{\"amt\":19.9}", "r1 r6", "eq amt");
    check(f, "{\"amt\":{\"eq\":\"19.90000\"}}", "r1 r6", "eq amt");
    check(f, "{\"amt\":{\"gt\":\"19.9\"}}", "r3", "range amt");
    check(f, "{\"amt\":{\"lt\":0}}", "r4 r8", "range amt");
    check(f, "{\"amt\":{\"gte\":\"-0.01\",\"lte\":\"0\"}}", "r2 r8", "range amt");
    check(f, "{\"amt\":{\"in\":[\"100.0001\",\"-42.5\"]}}", "r3 r4", "in amt");
    check(f, "{\"amt\":{\"ne\":\"0.00\"}}", "r1 r3 r4 r5 r6 r7 r8", "scan");
}

static void datetime_and_date_operators(void **state)
{
    fx_t *f = *state;
    /* offsets are compared in UTC: r1 (10:00+02:00) and r2 (08:00Z) are one instant */
    check(f, "{\"at\":\"2026-01-01T10:00:00+02:00\"}", "r1 r2", "eq at");
    check(f, "{\"at\":\"2026-01-01T07:00:00-01:00\"}", "r1 r2", "eq at");
    check(f, "{\"at\":{\"gt\":\"2026-01-01T08:00:00Z\"}}", "r6", "range at");
    check(f, "{\"at\":{\"lt\":\"2026-01-01T01:00:00+00:00\"}}", "r3 r4", "range at");
    check(f,
          "{\"at\":{\"gte\":\"2025-12-31T23:59:59.5-01:00\","
          "\"lt\":\"2026-01-01T09:00:00+01:00\"}}",
          "r3", "range at");
    check(f, "{\"at\":{\"lt\":\"1970-01-01T00:00:00Z\"}}", "r4", "range at");
    check(f, "{\"at\":{\"in\":[\"2026-01-01T08:00:00.000001Z\",\"1970-01-01T00:59:59+01:00\"]}}",
          "r4 r6", "in at");
    check(f, "{\"at\":{\"ne\":\"2026-01-01T08:00:00Z\"}}", "r3 r4 r5 r6 r7 r8", "scan");

    check(f, "{\"day\":\"2026-01-01\"}", "r1 r6", "eq day");
    check(f, "{\"day\":{\"lt\":\"2026-01-01\"}}", "r3 r4", "range day");
    check(f, "{\"day\":{\"gte\":\"2026-01-01\"}}", "r1 r2 r6", "range day");
    check(f, "{\"day\":{\"gt\":\"1969-01-01\",\"lte\":\"2025-12-31\"}}", "r3 r4", "range day");
}

static void email_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"mail\":\"ADA@EXAMPLE.COM\"}", "r1", "eq mail");
    check(f, "{\"mail\":\"  ada@example.com \"}", "r1", "eq mail");
    check(f, "{\"mail\":{\"in\":[\"Bob@Example.com\",\"Carol@example.com\"]}}", "r2 r6", "in mail");
    check(f, "{\"mail\":{\"prefix\":\"ADA@\"}}", "r1 r3", "range mail");
    check(f, "{\"mail\":{\"lt\":\"b@b.b\"}}", "r1 r3", "range mail");
    check(f, "{\"mail\":{\"gte\":\"Carol@example.com\"}}", "r4 r6", "range mail");
    check(f, "{\"mail\":{\"ne\":\"bob@EXAMPLE.com\"}}", "r1 r3 r4 r5 r6 r7 r8", "scan");
}

static void string_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"name\":\"bob\"}", "r2", "eq name");
    check(f, "{\"name\":\"Bob\"}", "", "eq name"); /* eq is case-sensitive */
    check(f, "{\"name\":{\"prefix\":\"ad\"}}", "r1 r3", "range prefix:name");
    check(f, "{\"name\":{\"prefix\":\"AD\"}}", "r1 r3", "range prefix:name");
    check(f, "{\"name\":{\"prefix\":\"Ada \"}}", "r1", "range prefix:name");
    /* prefix folds ASCII only */
    check(f, "{\"name\":{\"prefix\":\"\xc3\x89\"}}", "r4", "range prefix:name");
    check(f, "{\"name\":{\"prefix\":\"\xc3\xa9\"}}", "", "range prefix:name");
    /* UTF-8 byte order: 'A' < 'C' < 'L' < 'a' < 'b' < U+00C9 */
    check(f, "{\"name\":{\"lt\":\"a\"}}", "r1 r6 r7 r8", "range name");
    check(f, "{\"name\":{\"gt\":\"bob\"}}", "r4", "range name");
    check(f, "{\"name\":{\"in\":[\"bob\",\"$Lb\"]}}", "r2 r8", "in name");
    check(f, "{\"name\":{\"ne\":\"bob\"}}", "r1 r3 r4 r5 r6 r7 r8", "scan");
    /* values longer than the 400 bytes an index key holds */
    check(f, "{\"name\":\"$La\"}", "r7", "eq name");
    /* exactly the 400 bytes a key keeps of r7 and r8: neither equals it */
    check(f, "{\"name\":\"$L400\"}", "", "eq name");
    check(f, "{\"name\":{\"in\":[\"$L400\",\"bob\"]}}", "r2", "in name");
    check(f, "{\"name\":{\"ne\":\"$L400\"}}", ALL, "scan");
    check(f, "{\"name\":{\"gt\":\"$La\"}}", "r2 r3 r4 r8", "range name");
    check(f, "{\"name\":{\"lte\":\"$La\"}}", "r1 r6 r7", "range name");
    check(f, "{\"name\":{\"prefix\":\"$ll\"}}", "r7 r8", "range prefix:name");
    check(f, "{\"name\":{\"prefix\":\"$LB\"}}", "r8", "range prefix:name");
}

static void bool_enum_ref_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"flag\":true}", "r1 r3", "eq flag");
    check(f, "{\"flag\":{\"ne\":true}}", "r2 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"flag\":{\"in\":[false]}}", "r2 r4", "in flag");
    check(f, "{\"flag\":{\"exists\":false}}", "r5 r6 r7 r8", "scan");

    check(f, "{\"stage\":\"lead\"}", "r1 r4", "eq stage");
    check(f, "{\"stage\":{\"in\":[\"customer\",\"churned\"]}}", "r2 r3 r6", "in stage");
    check(f, "{\"stage\":{\"prefix\":\"C\"}}", "r2 r3 r6", "range prefix:stage");
    check(f, "{\"stage\":{\"ne\":\"lead\"}}", "r2 r3 r5 r6 r7 r8", "scan");
    check(f, "{\"stage\":{\"lt\":\"customer\"}}", "r3", "range stage"); /* byte order */

    check(f, "{\"owner\":\"$P1\"}", "r1 r3", "eq owner");
    check(f, "{\"owner\":\"$q1\"}", "r1 r3", "eq owner"); /* ids are case-insensitive */
    check(f, "{\"owner\":{\"in\":[\"$P2\",\"$P3\"]}}", "r2 r6", "in owner");
    check(f, "{\"owner\":{\"ne\":\"$P1\"}}", "r2 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"owner\":{\"exists\":false}}", "r4 r5 r7 r8", "scan");
}

static void array_operators(void **state)
{
    fx_t *f = *state;
    check(f, "{\"tags\":\"vip\"}", "r1 r3", "eq tags");
    check(f, "{\"tags\":{\"ne\":\"vip\"}}", "r2 r4 r5 r6 r7 r8", "scan"); /* no element equals */
    check(f, "{\"tags\":{\"ne\":\"emea\"}}", "r2 r3 r5 r6 r7 r8", "scan");
    check(f, "{\"tags\":{\"in\":[\"apac\",\"emea\"]}}", "r1 r2 r4", "in tags");
    check(f, "{\"tags\":{\"gt\":\"y\"}}", "r6", "range tags");
    /* each operator may hold through a different element: r6 is ["z","a"] */
    check(f, "{\"tags\":{\"gt\":\"b\",\"lt\":\"f\"}}", "r1 r4 r6", "range tags");
    check(f, "{\"tags\":{\"prefix\":\"E\"}}", "r1 r4", "scan");
    check(f, "{\"tags\":{\"exists\":true}}", "r1 r2 r3 r4 r6", "scan");

    check(f, "{\"nums\":0}", "r6", "eq nums");
    check(f, "{\"nums\":{\"gte\":3}}", "r1 r2 r4", "range nums");
    check(f, "{\"nums\":{\"lt\":0}}", "r4", "range nums");
    check(f, "{\"nums\":{\"gt\":0,\"lt\":2}}", "r1 r4", "range nums"); /* r4 is [-3,5] */
    check(f, "{\"nums\":{\"ne\":10}}", "r1 r3 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"nums\":{\"exists\":true}}", "r1 r2 r3 r4 r6", "scan"); /* [] exists */
    check(f, "{\"nums\":{\"in\":[2,5,5]}}", "r1 r4", "in nums");
}

static void object_and_missing_fields(void **state)
{
    fx_t *f = *state;
    check(f, "{\"meta\":{\"exists\":true}}", "r1 r3", "scan");
    check(f, "{\"meta\":{\"exists\":false}}", "r2 r4 r5 r6 r7 r8", "scan");
    /* a record without any of the fields matches only ne and exists:false */
    check(f,
          "{\"label\":\"r5\",\"n\":{\"ne\":1},\"amt\":{\"ne\":\"1\"},\"tags\":{\"ne\":\"x\"},"
          "\"mail\":{\"exists\":false}}",
          "r5", NULL);
    const char *never[] = {
        "{\"label\":\"r5\",\"n\":{\"lt\":1}}",
        "{\"label\":\"r5\",\"n\":{\"gte\":-1}}",
        "{\"label\":\"r5\",\"tags\":{\"in\":[\"x\"]}}",
        "{\"label\":\"r5\",\"name\":{\"prefix\":\"a\"}}",
        "{\"label\":\"r5\",\"flag\":false}",
        "{\"label\":\"r5\",\"meta\":{\"exists\":true}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(never); i++)
        check(f, never[i], "", NULL);
}

static void boolean_combinations(void **state)
{
    fx_t *f = *state;
    check(f, "{}", ALL, "scan");
    check(f, "{\"and\":[{\"stage\":\"lead\"},{\"flag\":true}]}", "r1", "eq stage");
    check(f, "{\"or\":[{\"stage\":\"churned\"},{\"n\":{\"lt\":0}}]}", "r1 r3 r6", "scan");
    check(f, "{\"not\":{\"stage\":\"lead\"}}", "r2 r3 r5 r6 r7 r8", "scan");
    check(f, "{\"not\":{\"n\":{\"exists\":true}}}", "r5", "scan");
    check(f, "{\"stage\":\"lead\",\"not\":{\"flag\":true}}", "r4", "eq stage");
    check(f,
          "{\"or\":[{\"and\":[{\"n\":{\"gte\":0}},{\"not\":{\"tags\":\"vip\"}}]},"
          "{\"mail\":{\"prefix\":\"zed\"}}]}",
          "r2 r4 r7 r8", "scan");
    check(f, "{\"and\":[{\"n\":{\"gte\":0}},{\"n\":{\"lt\":8}}]}", "r2 r3 r7", "range n");
    check(f, "{\"not\":{\"not\":{\"tags\":\"vip\"}}}", "r1 r3", "scan");
    check(f, "{\"and\":[{}],\"or\":[{},{\"n\":1}]}", ALL, NULL);
}

static void pseudo_fields(void **state)
{
    fx_t *f = *state;
    check(f, "{\"id\":\"$r2\"}", "r2", "ids");
    check(f, "{\"id\":{\"in\":[\"$r2\",\"$r4\",\"$r2\"]}}", "r2 r4", "ids");
    check(f, "{\"id\":{\"in\":[\"$P1\"]}}", "", "ids"); /* another collection's record */
    check(f, "{\"id\":{\"ne\":\"$r2\"}}", "r1 r3 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"id\":{\"exists\":true}}", ALL, "scan");
    check(f, "{\"id\":{\"exists\":false}}", "", "scan");
    check(f, "{\"version\":2}", "r3", "scan");
    check(f, "{\"version\":{\"lt\":2}}", "r1 r2 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"created_at\":\"$c5\"}", "r5", "scan");
    check(f, "{\"created_at\":{\"gte\":\"$c3\"}}", "r3 r4 r5 r6 r7 r8", "scan");
    check(f, "{\"created_at\":{\"lt\":\"$c1\"}}", "", "scan");
    check(f, "{\"updated_at\":{\"gt\":\"$c8\"}}", "r3", "scan");
    check(f, "{\"updated_at\":\"$u3\",\"created_at\":\"$c3\"}", "r3", "scan");

    /* id order is the order of the 16 id bytes */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NREC; i++) {
            char flt[128];
            snprintf(flt, sizeof flt, "{\"id\":{\"gt\":\"%s\"}}", f->ids[k][i]);
            buf_t want = BUF_INIT;
            for (int j = 0; j < NREC; j++)
                if (memcmp(f->rid[k][j].b, f->rid[k][i].b, ID_LEN) > 0)
                    buf_addf(&want, "%sr%d", want.len ? " " : "", j + 1);
            int rc;
            char *got = run_labels(f, k, flt, 3, &rc);
            assert_ok(rc);
            assert_string_equal(got, want.len ? want.p : "");
            free(got);
            buf_free(&want);
        }
}

static void errors_name_the_path(void **state)
{
    fx_t *f = *state;
    check_error(f, "{\"nope\":1}", KITH_EINVAL, "filter.nope");
    check_error(f, "{\"amt\":{\"gt\":\"abc\"}}", KITH_EINVAL, "filter.amt.gt");
    check_error(f, "{\"amt\":{\"gt\":\"1.23456\"}}", KITH_EINVAL, "filter.amt.gt");
    check_error(f, "{\"n\":{\"foo\":1}}", KITH_EINVAL, "filter.n.foo");
    check_error(f, "{\"n\":{\"gt\":\"7\"}}", KITH_EINVAL, "filter.n.gt");
    check_error(f, "{\"n\":{\"gt\":7.5}}", KITH_EINVAL, "filter.n.gt");
    check_error(f, "{\"n\":{\"in\":[]}}", KITH_EINVAL, "filter.n.in");
    check_error(f, "{\"n\":{\"in\":7}}", KITH_EINVAL, "filter.n.in");
    check_error(f, "{\"n\":{\"in\":[1,null]}}", KITH_EINVAL, "filter.n.in");
    check_error(f, "{\"n\":null}", KITH_EINVAL, "filter.n: null");
    check_error(f, "{\"n\":{\"eq\":null}}", KITH_EINVAL, "filter.n.eq");
    check_error(f, "{\"n\":{\"ne\":null}}", KITH_EINVAL, "filter.n.ne");
    check_error(f, "{\"n\":{\"eq\":[7]}}", KITH_EINVAL, "filter.n.eq");
    check_error(f, "{\"n\":{}}", KITH_EINVAL, "filter.n");
    check_error(f, "{\"n\":{\"exists\":1}}", KITH_EINVAL, "filter.n.exists");
    check_error(f, "{\"n\":{\"prefix\":\"1\"}}", KITH_EINVAL, "filter.n.prefix");
    check_error(f, "{\"name\":{\"prefix\":\"\"}}", KITH_EINVAL, "filter.name.prefix");
    check_error(f, "{\"name\":{\"prefix\":1}}", KITH_EINVAL, "filter.name.prefix");
    check_error(f, "{\"flag\":{\"gt\":false}}", KITH_EINVAL, "filter.flag.gt");
    check_error(f, "{\"flag\":1}", KITH_EINVAL, "filter.flag");
    check_error(f, "{\"stage\":\"won\"}", KITH_EINVAL, "filter.stage");
    check_error(f, "{\"owner\":\"not-an-id\"}", KITH_EINVAL, "filter.owner");
    check_error(f, "{\"mail\":{\"eq\":\"nobody\"}}", KITH_EINVAL, "filter.mail.eq");
    check_error(f, "{\"at\":{\"gt\":\"2026-02-30T00:00:00Z\"}}", KITH_EINVAL, "filter.at.gt");
    check_error(f, "{\"at\":{\"gt\":\"2026-01-01T00:00:00\"}}", KITH_EINVAL, "filter.at.gt");
    check_error(f, "{\"day\":\"2026-1-1\"}", KITH_EINVAL, "filter.day");
    check_error(f, "{\"tags\":{\"eq\":[\"vip\"]}}", KITH_EINVAL, "filter.tags.eq");
    check_error(f, "{\"meta\":{\"a\":1}}", KITH_EINVAL, "filter.meta.a");
    check_error(f, "{\"meta\":{\"eq\":1}}", KITH_EINVAL, "filter.meta.eq");
    check_error(f, "{\"id\":{\"prefix\":\"0\"}}", KITH_EINVAL, "filter.id.prefix");
    check_error(f, "{\"version\":\"1\"}", KITH_EINVAL, "filter.version");
    check_error(f, "{\"and\":[]}", KITH_EINVAL, "filter.and");
    check_error(f, "{\"or\":{}}", KITH_EINVAL, "filter.or");
    check_error(f, "{\"not\":[]}", KITH_EINVAL, "filter.not");
    check_error(f, "{\"and\":[{\"n\":1},{\"x\":{\"gt\":\"a\"}}]}", KITH_EINVAL,
                "filter.and[1].x.gt");
    check_error(f, "{\"or\":[{\"n\":1},{\"not\":{\"zz\":1}}]}", KITH_EINVAL, "filter.or[1].not.zz");
    check_error(f, "[]", KITH_EINVAL, "filter");
}

/* n levels of {"<op>": ...} around {"n":7} ("not") or [{...}] ("and"). */
static char *nested(const char *op, int n)
{
    buf_t b = BUF_INIT;
    int list = strcmp(op, "not") != 0;
    for (int i = 0; i < n; i++)
        buf_addf(&b, "{\"%s\":%s", op, list ? "[" : "");
    buf_adds(&b, "{\"n\":7}");
    for (int i = 0; i < n; i++)
        buf_adds(&b, list ? "]}" : "}");
    size_t len;
    return buf_steal(&b, &len);
}

static void depth_and_size_limits(void **state)
{
    fx_t *f = *state;
    /* 16 levels are allowed, 17 are not */
    char *s = nested("not", 16);
    check(f, s, "r3 r7", NULL);
    free(s);
    s = nested("not", 17);
    check_error(f, s, KITH_ELIMIT, "filter.not.not.not");
    free(s);
    s = nested("and", 16);
    check(f, s, "r3 r7", "eq n");
    free(s);
    s = nested("or", 17);
    check_error(f, s, KITH_ELIMIT, "filter.or[0].or[0]");
    free(s);

    /* at most 256 terms */
    buf_t b = BUF_INIT;
    buf_adds(&b, "{\"or\":[");
    for (int i = 0; i < 300; i++)
        buf_addf(&b, "%s{\"n\":%d}", i ? "," : "", i);
    buf_adds(&b, "]}");
    check_error(f, b.p, KITH_ELIMIT, "256 terms");
    /* ...counting the operators of the last clause too */
    buf_reset(&b);
    buf_adds(&b, "{\"or\":[");
    for (int i = 0; i < 250; i++)
        buf_addf(&b, "{\"n\":%d},", i);
    const char *ops6 = "{\"eq\":1,\"ne\":2,\"lt\":3,\"lte\":4,\"gt\":5,\"gte\":6}";
    buf_addf(&b, "{\"n\":%s,\"x\":%s,\"amt\":%s}]}", ops6, ops6, ops6);
    check_error(f, b.p, KITH_ELIMIT, "256 terms");
    /* 1000 values in one "in" are one term; 1001 are refused */
    buf_reset(&b);
    buf_adds(&b, "{\"n\":{\"in\":[");
    for (int i = 0; i < 1000; i++)
        buf_addf(&b, "%s%d", i ? "," : "", i);
    buf_adds(&b, "]}}");
    check(f, b.p, "r2 r3 r7 r8", "scan"); /* too many keys to merge: a scan */
    b.len -= 3;
    buf_adds(&b, ",1000]}}");
    check_error(f, b.p, KITH_EINVAL, "filter.n.in");
    buf_free(&b);
}

/* An array's max_length counts items: it does not limit an operand's length. */
static void array_max_length_is_items(void **state)
{
    fx_t *f = *state;
    tu_schema(f->st,
              "{\"name\":\"few\",\"fields\":[{\"name\":\"tags\",\"type\":\"array\","
              "\"items\":\"string\",\"max_length\":2,\"indexed\":true},"
              "{\"name\":\"mails\",\"type\":\"array\",\"items\":\"email\",\"max_length\":1}]}");
    kith_id_t id;
    assert_ok(
        tu_create(f->st, "few", "{\"tags\":[\"longer\",\"x\"],\"mails\":[\"ab@cd.ef\"]}", &id));
    kith_id_t got[2];
    assert_int_equal(tu_query_ids(f->st, "few", "{\"tags\":\"longer\"}", NULL, got, 2), 1);
    assert_int_equal(
        tu_query_ids(f->st, "few", "{\"tags\":{\"in\":[\"x\",\"abc\"]}}", NULL, got, 2), 1);
    assert_int_equal(tu_query_ids(f->st, "few", "{\"mails\":\"AB@cd.ef\"}", NULL, got, 2), 1);
    assert_memory_equal(got[0].b, id.b, ID_LEN);
}

static void compile_api(void **state)
{
    fx_t *f = *state;
    store_rtxn_t *rt;
    assert_ok(store_read_begin(f->st, &rt));
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), "idx");
    assert_non_null(c);
    store_filter_t *flt;
    assert_ok(store_filter_compile(c, NULL, &flt));
    assert_true(store_filter_is_true(flt));
    store_filter_free(flt);
    json_t *j = tu_json("{}");
    assert_ok(store_filter_compile(c, j, &flt));
    assert_true(store_filter_is_true(flt));
    store_filter_free(flt);
    json_decref(j);

    j = tu_json("{\"n\":1,\"or\":[{\"tags\":\"a\"},{\"n\":{\"gt\":3}}],"
                "\"not\":{\"id\":{\"exists\":true}}}");
    assert_ok(store_filter_compile(c, j, &flt));
    assert_false(store_filter_is_true(flt));
    const store_field_t *fields[8];
    size_t n;
    store_filter_fields(flt, fields, &n, 8);
    assert_int_equal(n, 3);
    assert_string_equal(fields[0]->name, "n");
    assert_string_equal(fields[1]->name, "tags");
    assert_string_equal(fields[2]->name, "id");
    store_filter_fields(flt, fields, &n, 1);
    assert_int_equal(n, 1);

    /* matching a record directly, with and without pre-parsed fields */
    store_record_t rec;
    assert_ok(store_get(rt, "idx", &f->rid[C_IDX][0], &rec));
    json_t *g = tu_json("{\"stage\":\"lead\",\"tags\":\"emea\"}");
    store_filter_t *f2;
    assert_ok(store_filter_compile(c, g, &f2));
    assert_int_equal(store_filter_match(f2, &rec, NULL), 1);
    json_t *fields_j = store_record_fields(&rec);
    assert_int_equal(store_filter_match(f2, &rec, fields_j), 1);
    json_object_set_new(fields_j, "stage", json_string("customer"));
    assert_int_equal(store_filter_match(f2, &rec, fields_j), 0);
    /* r1 has n -5 (and an id), so flt fails */
    assert_int_equal(store_filter_match(flt, &rec, NULL), 0);
    json_decref(fields_j);
    store_filter_free(f2);
    json_decref(g);
    store_filter_free(flt);
    json_decref(j);
    store_read_end(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(int_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(number_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(money_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(datetime_and_date_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(email_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(string_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(bool_enum_ref_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(array_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(object_and_missing_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(boolean_combinations, setup, teardown),
        cmocka_unit_test_setup_teardown(pseudo_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_name_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(depth_and_size_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(array_max_length_is_items, setup, teardown),
        cmocka_unit_test_setup_teardown(compile_api, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
