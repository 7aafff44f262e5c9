/*
 * api_import: the CSV import engine (see api_import.h).
 */
#include "api/api_import.h"

#include "base/csv.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api_import {
    store_t *st;
    store_schema_t *schema;
    const store_coll_t *c;
    api_import_opts_t o;
    json_t *map;
    char *upsert;
    json_t *audit;
    json_t *defaults;
    void *guard_ctx;
    loop_inbox_t *inbox;
    api_import_done_fn done;
    api_import_resume_fn resume;
    void *ctx;
    csv_parser_t *csv;
    /* header */
    int have_header;
    size_t ncols;
    const store_field_t **col_field; /* NULL: ignored column */
    json_t *ignored;
    /* progress */
    size_t rows, created, updated, unchanged, failed, inflight;
    int finished, stopped, done_called, status;
    json_t *errors;
    size_t errors_dropped;
    err_diag_t stop_diag;
};

#define GUARD_MAX 512

/* op->udata of a row: the guard finds its context at the start of udata. */
typedef struct row_op {
    _Alignas(max_align_t) unsigned char guard[GUARD_MAX];
    size_t row;
    api_import_t *imp;
} row_op_t;

static void maybe_done(api_import_t *imp)
{
    if (imp->done_called || imp->inflight || !(imp->finished || imp->stopped)) return;
    imp->done_called = 1;
    imp->done(imp, imp->ctx);
}

static void add_error(api_import_t *imp, size_t row, int status, const char *detail,
                      const err_diag_t *d)
{
    imp->failed++;
    if (json_array_size(imp->errors) >= imp->o.errors_max) {
        imp->errors_dropped++;
        return;
    }
    json_t *e =
        json_pack("{s:I,s:i,s:s}", "row", (json_int_t)row, "status", status, "detail", detail);
    err_diag_t hidden;
    if (d && d->existing[0] && imp->o.hide_existing) {
        hidden = *d;
        hidden.existing[0] = '\0';
        d = &hidden;
    }
    json_t *m = api_problem_members(d);
    if (m) {
        json_object_update(e, m);
        json_decref(m);
    }
    json_array_append_new(imp->errors, e);
}

static void row_done(store_op_t *op, void *ctx)
{
    api_import_t *imp = ctx;
    row_op_t *ro = op->udata;
    if (op->status) {
        const char *msg = op->diag ? op->diag->msg : "failed", *type, *shown;
        int status = api_status(op->status, msg, &type, &shown);
        if (shown != msg) log_error("api", "import row %zu: %s", ro->row, msg);
        add_error(imp, ro->row, status, shown, op->diag);
    } else if (op->nochange) {
        imp->unchanged++;
    } else if (op->kind == STORE_OP_UPSERT && op->upserted == 2) {
        imp->updated++;
    } else {
        imp->created++;
    }
    free(ro);
    store_op_free(op);
    int was_paused = api_import_paused(imp);
    imp->inflight--;
    if (was_paused && !api_import_paused(imp) && !imp->stopped && imp->resume)
        imp->resume(imp->ctx);
    maybe_done(imp);
}

static void norm_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c == ' ' || c == '-') c = '_';
        out[o++] = c;
    }
    out[o] = '\0';
}

static int read_header(api_import_t *imp, const char *const *f, const size_t *lens, size_t n)
{
    imp->ncols = n;
    imp->col_field = xcalloc(n ? n : 1, sizeof *imp->col_field);
    imp->ignored = json_array();
    for (size_t i = 0; i < n; i++) {
        const store_field_t *fd = NULL;
        if (imp->map) {
            json_t *target = json_object_get(imp->map, f[i]);
            if (target) {
                fd = store_coll_field(imp->c, json_string_value(target));
                if (!fd)
                    return err_set(KITH_EINVAL,
                                   "map: column '%s' goes to '%s', which is not a field of %s",
                                   f[i], json_string_value(target), imp->c->name);
            }
        } else {
            char name[STORE_NAME_MAX + 8];
            norm_name(f[i], lens[i], name, sizeof name);
            fd = store_coll_field(imp->c, name);
        }
        for (size_t k = 0; fd && k < i; k++)
            if (imp->col_field[k] == fd)
                return err_set(KITH_EINVAL, "header: two columns map to field '%s'", fd->name);
        imp->col_field[i] = fd;
        if (!fd) json_array_append_new(imp->ignored, json_string(f[i]));
    }
    if (imp->map) {
        const char *k;
        json_t *v;
        json_object_foreach(imp->map, k, v)
        {
            int seen = 0;
            for (size_t i = 0; i < n; i++)
                if (strcmp(f[i], k) == 0) seen = 1;
            if (!seen) return err_set(KITH_EINVAL, "map: the file has no column '%s'", k);
        }
    }
    if (imp->upsert && imp->upsert[0]) {
        int mapped = 0;
        for (size_t i = 0; i < n; i++)
            if (imp->col_field[i] && strcmp(imp->col_field[i]->name, imp->upsert) == 0) mapped = 1;
        if (!mapped)
            return err_set(KITH_EINVAL, "upsert: no column maps to the match field '%s'",
                           imp->upsert);
    }
    imp->have_header = 1;
    return 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* One cell as a JSON value of type (NULL with *why when it does not convert). */
static json_t *convert(int type, const char *s, size_t n, const char **why)
{
    while (n && is_ws(*s))
        s++, n--;
    while (n && is_ws(s[n - 1]))
        n--;
    char tmp[64];
    switch (type) {
    case ST_INT: {
        if (n == 0 || n >= sizeof tmp) break;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        char *end;
        errno = 0;
        long long v = strtoll(tmp, &end, 10);
        if (errno || *end) break;
        return json_integer(v);
    }
    case ST_NUMBER: {
        if (n == 0 || n >= sizeof tmp) break;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        char *end;
        double d = strtod(tmp, &end);
        if (*end || end == tmp) break;
        return json_real(d);
    }
    case ST_BOOL:
        if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 3 && !strncasecmp(s, "yes", 3)) ||
            (n == 1 && s[0] == '1'))
            return json_true();
        if ((n == 5 && !strncasecmp(s, "false", 5)) || (n == 2 && !strncasecmp(s, "no", 2)) ||
            (n == 1 && s[0] == '0'))
            return json_false();
        break;
    case ST_OBJECT: {
        json_t *j = json_parse(s, n);
        if (json_is_object(j)) return j;
        if (j) json_decref(j);
        *why = "expected a JSON object";
        return NULL;
    }
    case ST_DATETIME:
        /* "2010-12-01 08:26:00" (no zone): read as UTC */
        if ((n == 19 || (n > 20 && s[19] == '.')) && s[10] == ' ' && n < sizeof tmp - 2 &&
            !memchr(s + 19, 'Z', n - 19) && !memchr(s + 19, '+', n - 19) &&
            !memchr(s + 19, '-', n - 19)) {
            memcpy(tmp, s, n);
            tmp[n] = 'Z';
            return json_stringn(tmp, n + 1);
        }
        return json_stringn(s, n);
    default:
        return json_stringn(s, n);
    }
    static char msg[64];
    snprintf(msg, sizeof msg, "'%.20s' is not a valid %s", n ? s : "", store_type_name(type));
    *why = msg;
    return NULL;
}

static json_t *convert_field(const store_field_t *f, const char *s, size_t n, const char **why)
{
    if (f->type != ST_ARRAY) return convert(f->type, s, n, why);
    while (n && is_ws(*s))
        s++, n--;
    if (n && s[0] == '[') {
        json_t *j = json_parse(s, n);
        if (json_is_array(j)) return j;
        if (j) json_decref(j);
        *why = "expected a JSON array or items separated by ;";
        return NULL;
    }
    json_t *a = json_array();
    const char *p = s, *end = s + n;
    while (p <= end) {
        const char *q = memchr(p, ';', (size_t)(end - p));
        if (!q) q = end;
        size_t l = (size_t)(q - p);
        const char *t = p;
        while (l && is_ws(*t))
            t++, l--;
        while (l && is_ws(t[l - 1]))
            l--;
        if (l) {
            json_t *v = convert(f->item_type, t, l, why);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        p = q + 1;
    }
    return a;
}

static int on_row(void *ctx, size_t row, const char *const *f, const size_t *lens, size_t n)
{
    api_import_t *imp = ctx;
    if (imp->stopped) return KITH_ESHUTDOWN;
    if (!imp->have_header) return read_header(imp, f, lens, n);
    imp->rows++;
    if (n == 1 && lens[0] == 0) {
        imp->rows--; /* an empty line */
        return 0;
    }
    if (n != imp->ncols) {
        char d[128];
        snprintf(d, sizeof d, "the row has %zu cells; the header has %zu", n, imp->ncols);
        add_error(imp, row, 400, d, NULL);
        return 0;
    }
    json_t *rec = json_object();
    err_diag_t d;
    memset(&d, 0, sizeof d);
    for (size_t i = 0; i < n; i++) {
        const store_field_t *fd = imp->col_field[i];
        if (!fd || lens[i] == 0) continue;
        const char *why = "invalid";
        json_t *v = convert_field(fd, f[i], lens[i], &why);
        if (!v) {
            if (d.nfields < ERR_FIELDS_MAX) {
                snprintf(d.fields[d.nfields].name, sizeof d.fields[0].name, "%s", fd->name);
                snprintf(d.fields[d.nfields].msg, sizeof d.fields[0].msg, "%s", why);
                d.nfields++;
            }
            continue;
        }
        json_object_set_new(rec, fd->name, v);
    }
    if (d.nfields) {
        json_decref(rec);
        add_error(imp, row, 422, "cells do not convert to their fields' types", &d);
        return 0;
    }
    if (imp->defaults) {
        const char *k;
        json_t *v;
        json_object_foreach(imp->defaults, k, v)
        {
            if (!json_object_get(rec, k)) json_object_set(rec, k, v);
        }
    }
    store_op_t *op = imp->upsert ? store_op_upsert(imp->c->name, imp->upsert, rec)
                                 : store_op_create(imp->c->name, rec);
    json_decref(rec);
    row_op_t *ro = xcalloc(1, sizeof *ro);
    ro->row = row;
    ro->imp = imp;
    if (imp->o.guard_size) memcpy(ro->guard, imp->o.guard_ctx, imp->o.guard_size);
    op->udata = ro; /* the guard reads its context at the start of udata */
    op->no_record = 1; /* the report needs each row's outcome only */
    op->guard = imp->o.guard;
    if (imp->audit) store_op_set_audit(op, imp->audit);
    imp->inflight++;
    store_submit(imp->st, op, imp->inbox, row_done, imp);
    return 0;
}

api_import_t *api_import_new(store_t *st, const api_import_opts_t *o, loop_inbox_t *inbox,
                             api_import_done_fn done, api_import_resume_fn resume, void *ctx)
{
    store_rtxn_t *rt;
    if (store_read_begin(st, &rt)) return NULL;
    const store_coll_t *c =
        o->coll[0] == '_' ? NULL : store_schema_coll(store_read_schema(rt), o->coll);
    if (!c) {
        store_read_end(rt);
        err_set(KITH_ENOTFOUND, "no collection '%s'", o->coll);
        return NULL;
    }
    if (o->guard_size > GUARD_MAX) {
        store_read_end(rt);
        err_set(KITH_EINTERNAL, "import: guard context too large");
        return NULL;
    }
    if (o->upsert && strcmp(o->upsert, "true") != 0) {
        const store_field_t *f = store_coll_field(c, o->upsert);
        if (!f || !(f->flags & SF_UNIQUE)) {
            store_read_end(rt);
            err_set(KITH_EINVAL, "upsert: '%s' is not a unique field of %s", o->upsert, o->coll);
            return NULL;
        }
    }
    if (o->map) {
        const char *k;
        json_t *v;
        if (!json_is_object(o->map)) {
            store_read_end(rt);
            err_set(KITH_EINVAL, "map: an object of \"column\": \"field\"");
            return NULL;
        }
        json_object_foreach((json_t *)o->map, k, v)
        {
            if (!json_is_string(v) || !store_coll_field(c, json_string_value(v))) {
                store_read_end(rt);
                err_set(KITH_EINVAL, "map: '%s' must name a field of %s", k, o->coll);
                return NULL;
            }
        }
    }
    api_import_t *imp = xcalloc(1, sizeof *imp);
    imp->st = st;
    imp->schema = (store_schema_t *)store_read_schema(rt);
    store_schema_ref(imp->schema);
    imp->c = c;
    store_read_end(rt);
    imp->o = *o;
    if (!imp->o.window) imp->o.window = 4096;
    if (!imp->o.errors_max) imp->o.errors_max = 1000;
    imp->map = o->map ? json_deep_copy(o->map) : NULL;
    /* "": on conflict (store_op_upsert) */
    imp->upsert = o->upsert ? xstrdup(strcmp(o->upsert, "true") == 0 ? "" : o->upsert) : NULL;
    imp->audit = o->audit ? json_incref(o->audit) : NULL;
    imp->defaults = o->defaults ? json_deep_copy(o->defaults) : NULL;
    imp->o.coll = imp->c->name;
    imp->o.map = imp->map;
    imp->o.upsert = imp->upsert;
    imp->inbox = inbox;
    imp->done = done;
    imp->resume = resume;
    imp->ctx = ctx;
    imp->errors = json_array();
    /* no record can exceed the store's limit: refuse bigger ones early */
    csv_opts_t co = {.delimiter = o->delimiter ? o->delimiter : ',',
                     .max_field_bytes = STORE_RECORD_MAX,
                     .max_fields = 1024,
                     .max_record_bytes = STORE_RECORD_MAX + 1024 * 8};
    imp->csv = csv_new(on_row, imp, &co);
    return imp;
}

int api_import_feed(api_import_t *imp, const char *data, size_t n)
{
    if (imp->stopped) return imp->status ? imp->status : KITH_ESHUTDOWN;
    int rc = csv_feed(imp->csv, data, n);
    if (rc && !imp->stopped) {
        err_save(&imp->stop_diag);
        api_import_abort(imp, rc);
    }
    return rc;
}

int api_import_paused(const api_import_t *imp)
{
    return imp->inflight >= imp->o.window;
}

void api_import_finish(api_import_t *imp)
{
    if (!imp->stopped) {
        int rc = csv_finish(imp->csv);
        if (rc) {
            err_save(&imp->stop_diag);
            api_import_abort(imp, rc);
        } else if (!imp->have_header) {
            err_set(KITH_EINVAL, "the file is empty: it needs a header row");
            err_save(&imp->stop_diag);
            api_import_abort(imp, KITH_EINVAL);
        }
    }
    imp->finished = 1;
    maybe_done(imp);
}

void api_import_abort(api_import_t *imp, int code)
{
    if (!imp->stopped) {
        imp->stopped = 1;
        imp->status = code;
        if (imp->stop_diag.code != code) err_save(&imp->stop_diag);
    }
    maybe_done(imp);
}

json_t *api_import_report(const api_import_t *imp, int *status)
{
    *status = imp->status;
    json_t *r =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:o,s:O,s:b}", "rows", (json_int_t)imp->rows, "created",
                  (json_int_t)imp->created, "updated", (json_int_t)imp->updated, "unchanged",
                  (json_int_t)imp->unchanged, "failed", (json_int_t)imp->failed, "ignored_columns",
                  imp->ignored ? json_incref(imp->ignored) : json_array(), "errors", imp->errors,
                  "errors_truncated", imp->errors_dropped > 0);
    if (imp->status) {
        json_object_set_new(r, "stopped", json_string(imp->stop_diag.msg));
    }
    return r;
}

void api_import_free(api_import_t *imp)
{
    if (!imp) return;
    csv_free(imp->csv);
    store_schema_unref(imp->schema);
    if (imp->map) json_decref(imp->map);
    if (imp->audit) json_decref(imp->audit);
    if (imp->defaults) json_decref(imp->defaults);
    if (imp->ignored) json_decref(imp->ignored);
    json_decref(imp->errors);
    free(imp->upsert);
    free(imp->col_field);
    free(imp);
}
