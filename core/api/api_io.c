/*
 * api_io: streams of records — CSV import, CSV/NDJSON export, NDJSON bulk.
 *
 * Bodies arrive in chunks (HTTP_STREAM_BODY) and are turned into store ops
 * with a bounded number in flight; when the bound is reached, reading the
 * socket pauses until commits catch up. Exports stream one page (one short
 * read snapshot) at a time and wait for the client when its output backs up.
 */
#include "api/api_import.h"
#include "api/api_render.h"

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EXPORT_PAGE      1000
#define EXPORT_HIGH_MARK (256 * 1024) /* bytes queued for the client before we wait */
#define BULK_WINDOW      256
#define BULK_LINE_MAX    (1024 * 1024)

static int ctype_is(http_req_t *r, const char *const *types)
{
    size_t n;
    const char *v = http_req_header(r, "content-type", &n);
    if (!v) return 0;
    for (size_t i = 0; types[i]; i++) {
        size_t l = strlen(types[i]);
        if (n >= l && strncasecmp(v, types[i], l) == 0 && (n == l || v[l] == ';' || v[l] == ' '))
            return 1;
    }
    return 0;
}

/* ---- import ---- */

typedef struct import_req {
    http_req_t *r;
    api_import_t *imp;
    api_guard_ctx_t guard;
} import_req_t;

static void import_state_free(void *p)
{
    import_req_t *ir = p;
    api_import_free(ir->imp);
    free(ir);
}

static void import_done(api_import_t *imp, void *ctx)
{
    import_req_t *ir = ctx;
    http_req_t *r = ir->r;
    int status;
    json_t *rep = api_import_report(imp, &status);
    if (status == 0) {
        http_respond_json(r, 200, rep, NULL);
    } else {
        json_t *extra = json_pack("{s:O}", "report", rep);
        const char *why = json_string_value(json_object_get(rep, "stopped"));
        http_respond_problem(r, status == KITH_ELIMIT ? 413 : 400,
                             status == KITH_ELIMIT ? "limit" : "malformed-csv",
                             why ? why : "the import stopped", extra);
        json_decref(extra);
    }
    json_decref(rep);
}

static void import_resume(void *ctx)
{
    import_req_t *ir = ctx;
    http_req_resume_body(ir->r);
}

/* Creates the import on the first chunk (or at the end of an empty body). */
static import_req_t *import_start(http_req_t *r)
{
    api_req_t *q = api_req(r);
    if (q->state) return q->state;
    static const char *const csv_types[] = {"text/csv", "application/csv", NULL};
    if (!ctype_is(r, csv_types)) {
        http_respond_problem(r, 415, "unsupported-media-type",
                             "send the file as Content-Type: text/csv", NULL);
        return NULL;
    }
    char map_s[8192] = "", upsert[STORE_NAME_MAX] = "", delim[8] = "";
    http_req_query(r, "map", map_s, sizeof map_s);
    http_req_query(r, "upsert", upsert, sizeof upsert);
    http_req_query(r, "delimiter", delim, sizeof delim);
    json_t *map = NULL;
    if (map_s[0] == '{') {
        map = json_parse(map_s, strlen(map_s));
        if (!map) {
            http_respond_problem(r, 400, "invalid", "map: malformed JSON", NULL);
            return NULL;
        }
    } else if (map_s[0]) {
        /* column:field,column:field */
        map = json_object();
        for (char *tok = strtok(map_s, ","); tok; tok = strtok(NULL, ",")) {
            char *colon = strrchr(tok, ':');
            if (!colon || colon == tok || !colon[1]) {
                json_decref(map);
                http_respond_problem(
                    r, 400, "invalid",
                    "map: column:field pairs separated by commas, or a JSON object", NULL);
                return NULL;
            }
            *colon = '\0';
            json_object_set_new(map, tok, json_string(colon + 1));
        }
    }
    char d = ',';
    if (delim[0]) {
        if (strcmp(delim, "\\t") == 0 || strcmp(delim, "tab") == 0)
            d = '\t';
        else if (strlen(delim) == 1 && delim[0] != '"' && delim[0] != '\n' && delim[0] != '\r')
            d = delim[0];
        else {
            if (map) json_decref(map);
            http_respond_problem(r, 400, "invalid", "delimiter: one character (or tab)", NULL);
            return NULL;
        }
    }
    import_req_t *ir = xcalloc(1, sizeof *ir);
    ir->r = r;
    api_guard_ctx_init(r, q->scope, &ir->guard);
    json_t *defaults = NULL;
    store_rtxn_t *rt = api_read(r);
    if (!rt) {
        if (map) json_decref(map);
        free(ir);
        return NULL;
    }
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), r->params[0]);
    /* upsert needs read and update, and no matching on masked values */
    int refused = c && upsert[0] && api_upsert_refused(r, c, upsert);
    /* a row's duplicate is named only to callers who could read it in clear */
    int hide_existing = !c || auth_role_scope(q->role, c->name, ACT_READ) == SCOPE_NONE ||
                        (!api_unmask(r) && auth_coll_has_sensitive(c));
    if (c && q->scope != SCOPE_ALL) {
        /* a scoped caller's rows are its own, as with POST */
        defaults = json_object();
        if (store_coll_field(c, "owner"))
            json_object_set_new(defaults, "owner", json_string(q->who.user));
        if (q->who.team[0] && store_coll_field(c, "team"))
            json_object_set_new(defaults, "team", json_string(q->who.team));
    }
    store_read_end(rt);
    if (refused) {
        if (map) json_decref(map);
        if (defaults) json_decref(defaults);
        free(ir);
        return NULL;
    }
    json_t *who = api_audit_who(r);
    api_import_opts_t o = {.coll = r->params[0],
                           .map = map,
                           .upsert = upsert[0] ? upsert : NULL,
                           .delimiter = d,
                           .audit = who,
                           .guard = q->scope == SCOPE_ALL ? NULL : api_scope_guard,
                           .guard_ctx = &ir->guard,
                           .guard_size = sizeof ir->guard,
                           .defaults = defaults,
                           .hide_existing = hide_existing};
    ir->imp = api_import_new(q->ws->st, &o, api_inbox(r), import_done, import_resume, ir);
    json_decref(who);
    if (defaults) json_decref(defaults);
    if (map) json_decref(map);
    if (!ir->imp) {
        free(ir);
        api_fail(r, err_last()->code);
        return NULL;
    }
    q->state = ir;
    q->state_free = import_state_free;
    return ir;
}

int api_h_import_body(http_req_t *r, const char *data, size_t n)
{
    import_req_t *ir = import_start(r);
    if (!ir) return 0; /* answered: the rest of the body is read and dropped */
    api_import_feed(ir->imp, data, n);
    /* a stopped import may have answered already, which freed ir */
    if (!r->responded && api_import_paused(ir->imp)) http_req_pause_body(r);
    return 0;
}

void api_h_import(http_req_t *r)
{
    import_req_t *ir = import_start(r);
    if (ir) api_import_finish(ir->imp);
}

/* ---- export ---- */

typedef struct export_req {
    http_req_t *r;
    api_export_t x;
    api_fields_t sel;
} export_req_t;

static void export_state_free(void *p)
{
    export_req_t *e = p;
    if (e->x.filter) json_decref(e->x.filter);
    free(e->x.cursor);
    free(e);
}

static void csv_cell(buf_t *b, const char *s, size_t n)
{
    int quote = n == 0 ? 0
                       : (memchr(s, ',', n) || memchr(s, '"', n) || memchr(s, '\n', n) ||
                          memchr(s, '\r', n) || s[0] == ' ' || s[n - 1] == ' ');
    if (!quote) {
        buf_add(b, s, n);
        return;
    }
    buf_addc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') buf_addc(b, '"');
        buf_addc(b, s[i]);
    }
    buf_addc(b, '"');
}

static void csv_value(buf_t *b, const json_t *v)
{
    if (!v) return;
    if (json_is_string(v)) {
        csv_cell(b, json_string_value(v), json_string_length(v));
        return;
    }
    buf_t t = BUF_INIT;
    json_write_value(&t, v);
    csv_cell(b, t.p, t.len);
    buf_free(&t);
}

typedef struct export_page {
    const api_export_t *x;
    const store_coll_t *c;
    buf_t *out;
    uint64_t rows;
} export_page_t;

static int export_selected(const api_fields_t *sel, const char *name)
{
    if (!sel || !sel->on) return 1;
    for (size_t i = 0; i < sel->n; i++)
        if (strcmp(sel->names[i], name) == 0) return 1;
    return 0;
}

static int export_row(void *ctx, const store_record_t *rec)
{
    export_page_t *p = ctx;
    const api_export_t *x = p->x;
    if (!x->csv) {
        int rc = api_render_record(&x->view, p->c, rec, NULL, p->out, NULL);
        if (rc < 0) return rc;
        if (rc == 0) {
            buf_addc(p->out, '\n');
            p->rows++;
        }
        return 0;
    }
    json_t *f = store_record_fields(rec);
    if (!f) return KITH_ECORRUPT;
    if (x->view.scope != SCOPE_ALL && !auth_scope_covers(x->view.scope, p->c, f, &x->view.who)) {
        json_decref(f);
        return 0;
    }
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(&rec->id, ids);
    buf_addf(p->out, "%s,%llu,", ids, (unsigned long long)rec->version);
    buf_add(p->out, ts, time_fmt_rfc3339(rec->created_us, ts, sizeof ts, 6));
    buf_addc(p->out, ',');
    buf_add(p->out, ts, time_fmt_rfc3339(rec->updated_us, ts, sizeof ts, 6));
    for (size_t i = 0; i < p->c->nfields; i++) {
        const store_field_t *fd = &p->c->fields[i];
        if (!export_selected(x->view.sel, fd->name)) continue;
        buf_addc(p->out, ',');
        json_t *v = json_object_get(f, fd->name);
        if (v && (fd->flags & SF_SENSITIVE) && !x->view.unmask) {
            json_t *m = auth_mask_value(fd, v);
            csv_value(p->out, m);
            json_decref(m);
        } else {
            csv_value(p->out, v);
        }
    }
    buf_add(p->out, "\r\n", 2);
    p->rows++;
    json_decref(f);
    return 0;
}

int api_export_page(store_t *st, api_export_t *x, buf_t *out)
{
    store_rtxn_t *rt;
    int rc = store_read_begin(st, &rt);
    if (rc) return rc;
    const store_coll_t *c = store_schema_coll(store_read_schema(rt), x->coll);
    if (!c) {
        store_read_end(rt);
        return err_set(KITH_ENOTFOUND, "the collection '%s' is gone", x->coll);
    }
    if (!x->started) {
        x->started = 1;
        if (x->csv) {
            buf_adds(out, "id,version,created_at,updated_at");
            for (size_t i = 0; i < c->nfields; i++)
                if (export_selected(x->view.sel, c->fields[i].name))
                    buf_addf(out, ",%s", c->fields[i].name);
            buf_add(out, "\r\n", 2);
        }
    }
    json_t *scoped = auth_scope_filter(x->view.scope, c, &x->view.who);
    json_t *f = x->filter;
    if (scoped && f)
        f = json_pack("{s:[O,o]}", "and", x->filter, scoped);
    else if (scoped)
        f = scoped;
    export_page_t p = {.x = x, .c = c, .out = out};
    char *next = NULL;
    store_query_t sq = {.coll = c->name,
                        .filter = f,
                        .limit = EXPORT_PAGE,
                        .cursor = x->cursor,
                        .examine_max = EXPORT_PAGE * 20};
    rc = store_query(rt, &sq, export_row, &p, &next);
    store_read_end(rt);
    if (f != x->filter) json_decref(f);
    x->rows += p.rows;
    if (rc) {
        free(next);
        return rc;
    }
    free(x->cursor);
    x->cursor = next;
    if (!next) x->done = 1;
    return 0;
}

static void export_pump(http_req_t *r)
{
    api_req_t *q = api_req(r);
    export_req_t *e = q->state;
    while (!e->x.done && !http_req_gone(r) && http_stream_pending(r) < EXPORT_HIGH_MARK) {
        buf_t out = BUF_INIT;
        if (api_export_page(q->ws->st, &e->x, &out) != 0) {
            /* the headers are out: all we can do is end the stream early */
            e->x.done = 1;
            log_error("api", "request %s: export ended early: %s", r->id, err_last()->msg);
        }
        http_stream_write(r, out.p, out.len);
        buf_free(&out);
    }
    if (e->x.done || http_req_gone(r)) {
        r->on_drain = NULL;
        http_stream_end(r);
    }
}

static void export_audited(store_op_t *op, void *ctx)
{
    http_req_t *r = ctx;
    export_req_t *e = api_req(r)->state;
    if (op->status) {
        store_op_free(op);
        http_respond_problem(r, 503, "unavailable", "the export could not be audited", NULL);
        return;
    }
    store_op_free(op);
    char hdr[256];
    snprintf(hdr, sizeof hdr, "Content-Disposition: attachment; filename=\"%s.%s\"\r\n", e->x.coll,
             e->x.csv ? "csv" : "ndjson");
    http_stream_begin(r, 200, e->x.csv ? "text/csv; charset=utf-8" : "application/x-ndjson", hdr);
    r->on_drain = export_pump;
    export_pump(r);
}

void api_h_export(http_req_t *r)
{
    api_req_t *q = api_req(r);
    char format[16] = "", filter_s[8192] = "", fields[1024] = "";
    if (!http_req_query(r, "format", format, sizeof format)) strcpy(format, "ndjson");
    http_req_query(r, "filter", filter_s, sizeof filter_s);
    http_req_query(r, "fields", fields, sizeof fields);
    if (strcmp(format, "csv") && strcmp(format, "ndjson")) {
        http_respond_problem(r, 400, "invalid", "format: csv or ndjson", NULL);
        return;
    }
    json_t *filter = NULL;
    if (filter_s[0] && !(filter = json_parse(filter_s, strlen(filter_s)))) {
        http_respond_problem(r, 400, "invalid", "filter: malformed JSON", NULL);
        return;
    }
    store_rtxn_t *rt = api_read(r);
    const store_coll_t *c = rt ? api_coll(r, rt, r->params[0]) : NULL;
    export_req_t *e = xcalloc(1, sizeof *e);
    int bad =
        !c || api_fields_parse(r, c, fields, &e->sel) || api_check_sensitive(r, c, filter, NULL);
    if (!bad && filter) {
        /* compile once now, so a bad filter is a 400 before anything streams */
        store_query_t probe = {.coll = c->name, .filter = filter, .limit = 1};
        buf_t plan = BUF_INIT;
        int rc = store_query_plan(rt, &probe, &plan);
        buf_free(&plan);
        if (rc) {
            api_fail(r, rc);
            bad = 1;
        }
    }
    if (!bad) memcpy(e->x.coll, c->name, sizeof e->x.coll); /* c is valid until read_end */
    if (rt) store_read_end(rt);
    if (bad) {
        if (filter) json_decref(filter);
        free(e);
        return;
    }
    e->r = r;
    e->x.filter = filter;
    e->x.csv = strcmp(format, "csv") == 0;
    e->x.view = api_view(r, q->scope, &e->sel);
    q->state = e;
    q->state_free = export_state_free;
    /* Every export is audited, and committed before a byte goes out. */
    json_t *entry = api_audit_who(r);
    json_object_set_new(entry, "action", json_string("export"));
    json_object_set_new(entry, "collection", json_string(e->x.coll));
    json_object_set_new(entry, "ids", json_array());
    json_t *fl = json_array();
    for (size_t i = 0; i < e->sel.n; i++)
        json_array_append_new(fl, json_string(e->sel.names[i]));
    json_object_set_new(entry, "fields", fl);
    store_op_t *op = store_op_audit(entry);
    json_decref(entry);
    store_submit(q->ws->st, op, api_inbox(r), export_audited, r);
}

/* ---- bulk (NDJSON) ---- */

typedef struct bulk_req {
    http_req_t *r;
    int has_owner, has_team; /* the collection's scope fields */
    buf_t line;
    size_t lineno;
    char **results; /* one JSON line per input line, in order */
    size_t nresults, cap;
    size_t inflight, ok, failed;
    int body_done, answered, paused, too_long;
    api_guard_ctx_t guard[4]; /* per action: create, update, delete */
} bulk_req_t;

typedef struct bulk_op {
    api_guard_ctx_t guard; /* first: the guard reads it */
    bulk_req_t *b;
    size_t line;
} bulk_op_t;

static void bulk_state_free(void *p)
{
    bulk_req_t *b = p;
    for (size_t i = 0; i < b->nresults; i++)
        free(b->results[i]);
    free(b->results);
    buf_free(&b->line);
    free(b);
}

static void bulk_result(bulk_req_t *b, size_t line, char *json)
{
    while (b->cap < line) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->results = xrealloc(b->results, b->cap * sizeof *b->results);
    }
    while (b->nresults < line)
        b->results[b->nresults++] = NULL;
    free(b->results[line - 1]);
    b->results[line - 1] = json;
}

static char *result_error(size_t line, int status, const char *detail, const err_diag_t *d)
{
    json_t *o =
        json_pack("{s:I,s:i,s:s}", "line", (json_int_t)line, "status", status, "detail", detail);
    if (d && d->nfields) {
        err_diag_t fields_only = *d; /* a line's result names no existing record */
        fields_only.existing[0] = '\0';
        json_t *m = api_problem_members(&fields_only);
        json_object_update(o, m);
        json_decref(m);
    }
    char *s = json_to_str(o, NULL);
    json_decref(o);
    return s;
}

static void bulk_finish(bulk_req_t *b)
{
    if (b->answered || !b->body_done || b->inflight) return;
    b->answered = 1;
    buf_t out = BUF_INIT;
    for (size_t i = 0; i < b->nresults; i++)
        if (b->results[i]) {
            buf_adds(&out, b->results[i]);
            buf_addc(&out, '\n');
        }
    buf_addf(&out, "{\"summary\":{\"lines\":%zu,\"ok\":%zu,\"failed\":%zu}}\n", b->lineno, b->ok,
             b->failed);
    http_respond(b->r, 200, "application/x-ndjson", out.p, out.len, NULL);
    buf_free(&out);
}

static void bulk_done(store_op_t *op, void *ctx)
{
    bulk_op_t *bo = ctx;
    bulk_req_t *b = bo->b;
    if (op->status) {
        b->failed++;
        const char *msg = op->diag ? op->diag->msg : "failed", *type, *shown;
        int status = api_status(op->status, msg, &type, &shown);
        if (shown != msg) log_error("api", "request %s, line %zu: %s", b->r->id, bo->line, msg);
        bulk_result(b, bo->line, result_error(bo->line, status, shown, op->diag));
    } else {
        b->ok++;
        char ids[ID_TEXT_LEN + 1];
        id_encode(&op->rid, ids);
        int st = op->kind == STORE_OP_CREATE ? 201 : op->kind == STORE_OP_DELETE ? 204 : 200;
        json_t *o = json_pack("{s:I,s:i,s:s,s:I}", "line", (json_int_t)bo->line, "status", st, "id",
                              ids, "version", (json_int_t)op->version);
        bulk_result(b, bo->line, json_to_str(o, NULL));
        json_decref(o);
    }
    free(bo);
    store_op_free(op);
    b->inflight--;
    if (b->paused && b->inflight < BULK_WINDOW / 2) {
        b->paused = 0;
        http_req_resume_body(b->r);
    }
    bulk_finish(b);
}

static void bulk_line(bulk_req_t *b, const char *s, size_t n)
{
    http_req_t *r = b->r;
    api_req_t *q = api_req(r);
    size_t line = ++b->lineno;
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0) { /* blank lines are skipped, but keep their number */
        b->lineno--;
        return;
    }
    json_t *j = json_parse(s, n);
    const char *why = NULL;
    if (!j) {
        why = err_last()->msg;
    } else if (!json_is_object(j)) {
        why = "each line is a JSON object";
    }
    if (why) {
        b->failed++;
        bulk_result(b, line, result_error(line, 400, why, NULL));
        if (j) json_decref(j);
        return;
    }
    /* {"op": "...", "id": "...", "data": {...}, "if_version": N} or a bare record */
    json_t *opn = json_object_get(j, "op");
    const char *opname = json_is_string(opn) ? json_string_value(opn) : NULL;
    int kind = STORE_OP_CREATE, action = ACT_CREATE;
    json_t *data = j;
    kith_id_t id;
    uint64_t ifv = 0;
    if (opn) {
        data = json_object_get(j, "data");
        if (!opname)
            why = "op: create, update, replace or delete";
        else if (!strcmp(opname, "create"))
            kind = STORE_OP_CREATE, action = ACT_CREATE;
        else if (!strcmp(opname, "update"))
            kind = STORE_OP_UPDATE, action = ACT_UPDATE;
        else if (!strcmp(opname, "replace"))
            kind = STORE_OP_REPLACE, action = ACT_UPDATE;
        else if (!strcmp(opname, "delete"))
            kind = STORE_OP_DELETE, action = ACT_DELETE;
        else
            why = "op: create, update, replace or delete";
        json_t *idj = json_object_get(j, "id"), *iv = json_object_get(j, "if_version");
        if (!why && kind != STORE_OP_CREATE &&
            (!json_is_string(idj) ||
             id_decode(json_string_value(idj), json_string_length(idj), &id)))
            why = "id: the record's id";
        if (!why && kind != STORE_OP_DELETE && !json_is_object(data)) why = "data: a JSON object";
        if (!why && iv && (!json_is_integer(iv) || json_integer_value(iv) < 1))
            why = "if_version: a positive integer";
        if (iv) ifv = (uint64_t)json_integer_value(iv);
    }
    int scope = why ? SCOPE_NONE : auth_role_scope(q->role, r->params[0], action);
    if (!why && scope == SCOPE_NONE) {
        b->failed++;
        char d[128];
        snprintf(d, sizeof d, "role %s may not %s here", q->role->name, auth_action_name(action));
        bulk_result(b, line, result_error(line, 403, d, NULL));
        json_decref(j);
        return;
    }
    if (why) {
        b->failed++;
        bulk_result(b, line, result_error(line, 400, why, NULL));
        json_decref(j);
        return;
    }
    /* a scoped caller's new records are its own, as with POST */
    if ((kind == STORE_OP_CREATE || kind == STORE_OP_REPLACE) && scope != SCOPE_ALL) {
        if (b->has_owner && !json_object_get(data, "owner"))
            json_object_set_new(data, "owner", json_string(q->who.user));
        if (b->has_team && q->who.team[0] && !json_object_get(data, "team"))
            json_object_set_new(data, "team", json_string(q->who.team));
    }
    store_op_t *op = kind == STORE_OP_CREATE    ? store_op_create(r->params[0], data)
                     : kind == STORE_OP_UPDATE  ? store_op_update(r->params[0], &id, data, ifv)
                     : kind == STORE_OP_REPLACE ? store_op_replace(r->params[0], &id, data, ifv)
                                                : store_op_delete(r->params[0], &id, ifv);
    json_decref(j);
    bulk_op_t *bo = xmalloc(sizeof *bo);
    api_guard_ctx_init(r, scope, &bo->guard);
    bo->b = b;
    bo->line = line;
    op->udata = bo;
    op->guard = api_scope_guard;
    json_t *who = api_audit_who(r);
    store_op_set_audit(op, who);
    json_decref(who);
    b->inflight++;
    bulk_result(b, line, NULL);
    store_submit(q->ws->st, op, api_inbox(r), bulk_done, bo);
}

static bulk_req_t *bulk_start(http_req_t *r)
{
    api_req_t *q = api_req(r);
    if (q->state) return q->state;
    static const char *const nd[] = {"application/x-ndjson", "application/ndjson",
                                     "application/jsonl", NULL};
    if (!ctype_is(r, nd)) {
        http_respond_problem(r, 415, "unsupported-media-type",
                             "send one JSON object per line as Content-Type: application/x-ndjson",
                             NULL);
        return NULL;
    }
    store_rtxn_t *rt = api_read(r);
    const store_coll_t *c = rt ? api_coll(r, rt, r->params[0]) : NULL;
    if (!c) {
        if (rt) store_read_end(rt);
        return NULL;
    }
    bulk_req_t *b = xcalloc(1, sizeof *b);
    b->r = r;
    b->has_owner = store_coll_field(c, "owner") != NULL;
    b->has_team = store_coll_field(c, "team") != NULL;
    store_read_end(rt);
    q->state = b;
    q->state_free = bulk_state_free;
    return b;
}

int api_h_bulk_body(http_req_t *r, const char *data, size_t n)
{
    bulk_req_t *b = bulk_start(r);
    if (!b) return 0;
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (!b->too_long) {
            if (b->line.len + take > BULK_LINE_MAX) {
                b->too_long = 1;
                buf_reset(&b->line);
            } else {
                buf_add(&b->line, data, take);
            }
        }
        if (!nl) break;
        if (b->too_long) {
            size_t line = ++b->lineno;
            b->failed++;
            bulk_result(b, line, result_error(line, 413, "line longer than 1 MiB", NULL));
            b->too_long = 0;
        } else {
            bulk_line(b, b->line.p ? b->line.p : "", b->line.len);
        }
        buf_reset(&b->line);
        data += take + 1;
        n -= take + 1;
    }
    if (b->inflight >= BULK_WINDOW && !b->paused) {
        b->paused = 1;
        http_req_pause_body(r);
    }
    return 0;
}

void api_h_bulk(http_req_t *r)
{
    bulk_req_t *b = bulk_start(r);
    if (!b) return;
    if (b->too_long) {
        size_t line = ++b->lineno;
        b->failed++;
        bulk_result(b, line, result_error(line, 413, "line longer than 1 MiB", NULL));
    } else if (b->line.len) {
        bulk_line(b, b->line.p, b->line.len);
    }
    buf_reset(&b->line);
    b->body_done = 1;
    bulk_finish(b);
}
