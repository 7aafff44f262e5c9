/*
 * api_query: GET /v1/{collection} (equality parameters) and POST
 * /v1/{collection}/query (the store's filter grammar), one page at a time.
 *
 * A role that may not unmask cannot filter or sort by a sensitive field (no
 * prefix oracle); a scoped role's filter is ANDed with its scope.
 */
#include "api/api_render.h"

#include "base/json.h"
#include "base/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_EXAMINE_MAX 20000 /* records looked at for one page at most */
#define REVEAL_IDS_MAX   1000

typedef struct page {
    http_req_t *r;
    const store_coll_t *c;
    api_view_t view;
    buf_t out;
    size_t n;
    int err;
    json_t *revealed;        /* ids shown with sensitive data in clear */
    json_t *revealed_fields; /* and which sensitive fields */
} page_t;

static int page_row(void *ctx, const store_record_t *rec)
{
    page_t *p = ctx;
    size_t mark = p->out.len;
    if (p->n) buf_addc(&p->out, ',');
    json_t *mine = p->view.unmask ? json_array() : NULL;
    int rc = api_render_record(&p->view, p->c, rec, NULL, &p->out, mine);
    int revealed = mine && json_array_size(mine) > 0;
    for (size_t i = 0; mine && i < json_array_size(mine); i++) {
        const char *f = json_string_value(json_array_get(mine, i));
        size_t k;
        for (k = 0; k < json_array_size(p->revealed_fields); k++)
            if (strcmp(json_string_value(json_array_get(p->revealed_fields, k)), f) == 0) break;
        if (k == json_array_size(p->revealed_fields))
            json_array_append_new(p->revealed_fields, json_string(f));
    }
    if (mine) json_decref(mine);
    if (rc < 0) return rc;
    if (rc == 1) { /* outside scope (the scope filter makes this rare) */
        p->out.len = mark;
        return 0;
    }
    p->n++;
    if (revealed && json_array_size(p->revealed) < REVEAL_IDS_MAX) {
        char s[ID_TEXT_LEN + 1];
        id_encode(&rec->id, s);
        json_array_append_new(p->revealed, json_string(s));
    }
    return 0;
}

/* Refuses filters and sorts on sensitive fields for roles that see them masked. */
int api_check_sensitive(http_req_t *r, const store_coll_t *c, const json_t *filter,
                        const char *sort)
{
    if (api_unmask(r)) return 0;
    int rc = auth_masked_use(c, filter, sort);
    if (rc == KITH_EPERM)
        http_respond_problem(r, 403, "forbidden", err_last()->msg, NULL);
    else if (rc)
        api_fail(r, rc);
    return rc ? -1 : 0;
}

static void run_query(http_req_t *r, store_rtxn_t *rt, const store_coll_t *c, json_t *filter,
                      const char *sort, long long limit, const char *cursor, const char *fields)
{
    api_req_t *q = api_req(r);
    api_fields_t sel;
    if (api_fields_parse(r, c, fields, &sel) || api_check_sensitive(r, c, filter, sort)) {
        store_read_end(rt);
        return;
    }
    size_t max = q->srv->cfg.page_max;
    if (limit < 1 || (size_t)limit > max) {
        store_read_end(rt);
        char d[96];
        snprintf(d, sizeof d, "limit: 1 to %zu", max);
        http_respond_problem(r, 400, "invalid", d, NULL);
        return;
    }
    auth_who_t who = api_who(r);
    json_t *scoped = auth_scope_filter(q->scope, c, &who);
    json_t *f = filter;
    if (scoped && filter)
        f = json_pack("{s:[O,o]}", "and", filter, scoped);
    else if (scoped)
        f = scoped;
    page_t p = {.r = r, .c = c, .view = api_view(r, q->scope, &sel)};
    p.revealed = json_array();
    p.revealed_fields = json_array();
    buf_reserve(&p.out, 4096);
    buf_adds(&p.out, "{\"data\":[");
    char *next = NULL;
    store_query_t sq = {.coll = c->name,
                        .filter = f,
                        .sort = sort && *sort ? sort : NULL,
                        .limit = (size_t)limit,
                        .cursor = cursor && *cursor ? cursor : NULL,
                        .examine_max = PAGE_EXAMINE_MAX};
    int rc = store_query(rt, &sq, page_row, &p, &next);
    char coll[STORE_NAME_MAX];
    snprintf(coll, sizeof coll, "%s", c->name);
    store_read_end(rt);
    if (f != filter) json_decref(f);
    if (rc) {
        free(next);
        buf_free(&p.out);
        json_decref(p.revealed);
        json_decref(p.revealed_fields);
        api_fail(r, rc);
        return;
    }
    buf_adds(&p.out, "],\"next_cursor\":");
    if (next)
        json_write_cstr(&p.out, next);
    else
        buf_adds(&p.out, "null");
    buf_addc(&p.out, '}');
    free(next);
    api_respond_revealing(r, coll, json_array_size(p.revealed) ? p.revealed : NULL,
                          p.revealed_fields, &p.out, NULL);
    json_decref(p.revealed);
    json_decref(p.revealed_fields);
}

/* A query-string value as a JSON value of the field's type. */
static json_t *param_value(const store_field_t *f, const char *s)
{
    int type = f->type == ST_ARRAY ? f->item_type : f->type;
    char *end;
    switch (type) {
    case ST_INT: {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || end == s) return NULL;
        return json_integer(v);
    }
    case ST_NUMBER: {
        double d = strtod(s, &end);
        if (*end || end == s) return NULL;
        return json_real(d);
    }
    case ST_BOOL:
        if (strcmp(s, "true") == 0) return json_true();
        if (strcmp(s, "false") == 0) return json_false();
        return NULL;
    default:
        return json_string(s);
    }
}

void api_h_records_list(http_req_t *r)
{
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    const store_coll_t *c = api_coll(r, rt, r->params[0]);
    if (!c) {
        store_read_end(rt);
        return;
    }
    json_t *filter = json_object();
    char sort[128] = "", cursor[1024] = "", fields[1024] = "", limit_s[32] = "";
    char name[128], val[4096];
    size_t pos = 0;
    int rc, bad = 0;
    char d[256] = "";
    while (!bad && (rc = http_req_query_next(r, &pos, name, sizeof name, val, sizeof val)) != 0) {
        if (rc < 0) {
            snprintf(d, sizeof d, "malformed query string");
            bad = 1;
        } else if (strcmp(name, "sort") == 0 || strcmp(name, "cursor") == 0 ||
                   strcmp(name, "fields") == 0 || strcmp(name, "limit") == 0) {
            char *dst = name[0] == 's'   ? sort
                        : name[0] == 'c' ? cursor
                        : name[0] == 'f' ? fields
                                         : limit_s;
            size_t cap = name[0] == 's'   ? sizeof sort
                         : name[0] == 'c' ? sizeof cursor
                         : name[0] == 'f' ? sizeof fields
                                          : sizeof limit_s;
            size_t vl = strlen(val);
            if (vl >= cap) {
                snprintf(d, sizeof d, "%s: too long", name);
                bad = 1;
            } else {
                memcpy(dst, val, vl + 1);
            }
        } else {
            const store_field_t *f = store_coll_field_or_pseudo(c, name);
            json_t *v = f ? param_value(f, val) : NULL;
            if (!f)
                snprintf(d, sizeof d, "unknown parameter or field '%s'", name), bad = 1;
            else if (!v)
                snprintf(d, sizeof d, "%s: expected a %s", name, store_type_name(f->type)), bad = 1;
            else {
                /* a repeated parameter means any of its values */
                json_t *prev = json_object_get(filter, name);
                if (!prev) {
                    json_object_set_new(filter, name, v);
                } else {
                    json_t *in = json_object_get(prev, "in");
                    if (!in) {
                        in = json_pack("[O]", prev);
                        json_object_set_new(filter, name, json_pack("{s:o}", "in", in));
                    }
                    json_array_append_new(in, v);
                }
            }
        }
    }
    long long limit = 50;
    if (!bad && limit_s[0]) {
        char *end;
        limit = strtoll(limit_s, &end, 10);
        if (*end) snprintf(d, sizeof d, "limit: expected a number"), bad = 1;
    }
    if (bad) {
        store_read_end(rt);
        json_decref(filter);
        http_respond_problem(r, 400, "invalid", d, NULL);
        return;
    }
    run_query(r, rt, c, json_object_size(filter) ? filter : NULL, sort, limit, cursor, fields);
    json_decref(filter);
}

void api_h_records_query(http_req_t *r)
{
    json_t *body = api_body_json(r);
    if (!body) return;
    const char *k;
    json_t *v;
    char d[160] = "";
    if (!json_is_object(body)) snprintf(d, sizeof d, "the body is a JSON object");
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "filter") && strcmp(k, "sort") && strcmp(k, "limit") && strcmp(k, "cursor") &&
            strcmp(k, "fields"))
            snprintf(d, sizeof d, "unknown key '%s' (filter, sort, limit, cursor, fields)", k);
    }
    json_t *filter = json_object_get(body, "filter"), *sort = json_object_get(body, "sort"),
           *limit = json_object_get(body, "limit"), *cursor = json_object_get(body, "cursor"),
           *fields = json_object_get(body, "fields");
    if (!d[0] && filter && !json_is_object(filter)) snprintf(d, sizeof d, "filter: an object");
    if (!d[0] && sort && !json_is_string(sort)) snprintf(d, sizeof d, "sort: a field name");
    if (!d[0] && limit && !json_is_integer(limit)) snprintf(d, sizeof d, "limit: an integer");
    if (!d[0] && cursor && !json_is_string(cursor) && !json_is_null(cursor))
        snprintf(d, sizeof d, "cursor: a string");
    buf_t fl = BUF_INIT;
    if (!d[0] && fields) {
        if (!json_is_array(fields)) snprintf(d, sizeof d, "fields: an array of names");
        for (size_t i = 0; !d[0] && i < json_array_size(fields); i++) {
            json_t *x = json_array_get(fields, i);
            if (!json_is_string(x)) snprintf(d, sizeof d, "fields: an array of names");
            if (i) buf_addc(&fl, ',');
            if (json_is_string(x)) buf_adds(&fl, json_string_value(x));
        }
    }
    if (d[0]) {
        buf_free(&fl);
        json_decref(body);
        http_respond_problem(r, 400, "invalid", d, NULL);
        return;
    }
    store_rtxn_t *rt = api_read(r);
    const store_coll_t *c = rt ? api_coll(r, rt, r->params[0]) : NULL;
    if (!c) {
        if (rt) store_read_end(rt);
    } else {
        run_query(r, rt, c, filter, json_string_value(sort), limit ? json_integer_value(limit) : 50,
                  json_string_value(cursor), fl.p);
    }
    buf_free(&fl);
    json_decref(body);
}
