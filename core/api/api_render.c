/*
 * api_render: records as a caller may see them — within its scope, with
 * sensitive fields masked unless its role may unmask, and only the fields it
 * asked for (fields=a,b). The fast path (nothing to mask or select) splices
 * the stored JSON without parsing it.
 */
#include "api/api_render.h"

#include "base/json.h"
#include "base/mem.h"
#include "base/timeutil.h"

#include <stdio.h>
#include <string.h>

int api_fields_parse(http_req_t *r, const store_coll_t *c, const char *list, api_fields_t *out)
{
    memset(out, 0, sizeof *out);
    if (!list || !*list) return 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char name[STORE_NAME_MAX];
        if (n == 0 || n >= sizeof name || out->n >= API_FIELDS_MAX) {
            http_respond_problem(r, 400, "invalid", "fields: a comma-separated list of field names",
                                 NULL);
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        const store_field_t *f = store_coll_field_or_pseudo(c, name);
        if (!f) {
            char d[160];
            snprintf(d, sizeof d, "fields: no field '%s' in %s", name, c->name);
            http_respond_problem(r, 400, "invalid", d, NULL);
            return -1;
        }
        if (!f->pseudo) snprintf(out->names[out->n++], STORE_NAME_MAX, "%s", name);
        out->on = 1;
        p += n + (e ? 1 : 0);
    }
    return 0;
}

static int selected(const api_fields_t *sel, const char *name)
{
    if (!sel || !sel->on) return 1;
    for (size_t i = 0; i < sel->n; i++)
        if (strcmp(sel->names[i], name) == 0) return 1;
    return 0;
}

int api_render_record(const api_view_t *v, const store_coll_t *c, const store_record_t *rec,
                      const json_t *parsed, buf_t *out, json_t *revealed)
{
    int sensitive = auth_coll_has_sensitive(c);
    int need_parse = (v->scope != SCOPE_ALL) || (sensitive && !v->unmask) ||
                     (v->sel && v->sel->on) || (sensitive && v->unmask && revealed);
    json_t *own = NULL;
    const json_t *fields = parsed;
    if (need_parse && !fields) {
        own = store_record_fields(rec);
        if (!own) return err_set(KITH_ECORRUPT, "%s: stored record is not JSON", c->name);
        fields = own;
    }
    if (v->scope != SCOPE_ALL && !auth_scope_covers(v->scope, c, fields, &v->who)) {
        if (own) json_decref(own);
        return 1; /* outside the caller's scope: as if absent */
    }
    if (revealed && sensitive && v->unmask) {
        for (size_t i = 0; i < c->nfields; i++) {
            const char *name = c->fields[i].name;
            if (!(c->fields[i].flags & SF_SENSITIVE) || !json_object_get(fields, name) ||
                !selected(v->sel, name))
                continue;
            size_t k;
            for (k = 0; k < json_array_size(revealed); k++)
                if (strcmp(json_string_value(json_array_get(revealed, k)), name) == 0) break;
            if (k == json_array_size(revealed)) json_array_append_new(revealed, json_string(name));
        }
    }
    if (!(sensitive && !v->unmask) && !(v->sel && v->sel->on)) {
        store_record_render(out, rec);
        if (own) json_decref(own);
        return 0;
    }
    /* the slow path: masked and/or selected fields */
    char ids[ID_TEXT_LEN + 1], ts[40];
    id_encode(&rec->id, ids);
    buf_addf(out, "{\"id\":\"%s\",\"version\":%llu,\"created_at\":\"", ids,
             (unsigned long long)rec->version);
    buf_add(out, ts, time_fmt_rfc3339(rec->created_us, ts, sizeof ts, 6));
    buf_adds(out, "\",\"updated_at\":\"");
    buf_add(out, ts, time_fmt_rfc3339(rec->updated_us, ts, sizeof ts, 6));
    buf_addc(out, '"');
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)fields, k, x)
    {
        if (!selected(v->sel, k)) continue;
        const store_field_t *f = store_coll_field(c, k);
        buf_addc(out, ',');
        json_write_cstr(out, k);
        buf_addc(out, ':');
        if (f && (f->flags & SF_SENSITIVE) && !v->unmask) {
            json_t *m = auth_mask_value(f, x);
            json_write_value(out, m);
            json_decref(m);
        } else {
            json_write_value(out, x);
        }
    }
    buf_addc(out, '}');
    if (own) json_decref(own);
    return 0;
}

api_view_t api_view(http_req_t *r, int scope, const api_fields_t *sel)
{
    api_view_t v = {.scope = scope, .unmask = api_unmask(r), .who = api_who(r), .sel = sel};
    return v;
}
