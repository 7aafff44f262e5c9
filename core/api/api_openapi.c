/*
 * api_openapi: GET /v1/openapi.json — an OpenAPI 3.1 document generated from
 * the live schemas of the caller's workspace, so custom fields appear as soon
 * as they are added. Every collection gets a component schema for records as
 * read (<Name>) and as written (<Name>Input), and its paths.
 */
#include "api/api_int.h"

#include "base/json.h"
#include "base/mem.h"

#include <stdio.h>
#include <string.h>

#define ULID_PATTERN "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"

static json_t *type_schema(const store_field_t *f, int type)
{
    switch (type) {
    case ST_STRING:
    case ST_TEXT:
        return json_pack("{s:s,s:I}", "type", "string", "maxLength", (json_int_t)f->max_length);
    case ST_INT:
        return json_pack("{s:s,s:s}", "type", "integer", "format", "int64");
    case ST_NUMBER:
        return json_pack("{s:s,s:s}", "type", "number", "format", "double");
    case ST_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case ST_DATETIME:
        return json_pack("{s:s,s:s}", "type", "string", "format", "date-time");
    case ST_DATE:
        return json_pack("{s:s,s:s}", "type", "string", "format", "date");
    case ST_EMAIL:
        return json_pack("{s:s,s:s}", "type", "string", "format", "email");
    case ST_PHONE:
        return json_pack("{s:s,s:s}", "type", "string", "x-kith-type", "phone");
    case ST_MONEY:
        return json_pack("{s:s,s:s,s:s}", "type", "string", "pattern",
                         "^-?[0-9]{1,15}(\\.[0-9]{1,4})?$", "x-kith-type", "money");
    case ST_REF:
        return json_pack("{s:s,s:s,s:s}", "type", "string", "pattern", ULID_PATTERN, "x-kith-ref",
                         f->ref);
    case ST_OBJECT:
        return json_pack("{s:s}", "type", "object");
    case ST_ENUM: {
        json_t *vals = json_array();
        for (size_t i = 0; i < f->nvalues; i++)
            json_array_append_new(vals, json_string(f->values[i]));
        return json_pack("{s:s,s:o}", "type", "string", "enum", vals);
    }
    default:
        return json_object();
    }
}

static json_t *field_schema(const store_field_t *f)
{
    json_t *s;
    if (f->type == ST_ARRAY)
        s = json_pack("{s:s,s:o,s:I}", "type", "array", "items", type_schema(f, f->item_type),
                      "maxItems", (json_int_t)f->max_length);
    else
        s = type_schema(f, f->type);
    if (f->description) json_object_set_new(s, "description", json_string(f->description));
    if (f->dflt) json_object_set(s, "default", f->dflt);
    if (f->flags & SF_SENSITIVE) {
        json_object_set_new(s, "x-kith-sensitive", json_true());
        const char *d = "Sensitive: masked (e.g. 138****5678) for roles without the unmask "
                        "capability.";
        json_t *old = json_object_get(s, "description");
        if (old) {
            char buf[1200];
            snprintf(buf, sizeof buf, "%s %s", json_string_value(old), d);
            json_object_set_new(s, "description", json_string(buf));
        } else {
            json_object_set_new(s, "description", json_string(d));
        }
    }
    if (f->flags & SF_UNIQUE) json_object_set_new(s, "x-kith-unique", json_true());
    if (f->flags & (SF_INDEXED | SF_UNIQUE)) json_object_set_new(s, "x-kith-indexed", json_true());
    return s;
}

static json_t *ref(const char *name)
{
    char p[160];
    snprintf(p, sizeof p, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", p);
}

static json_t *problem_responses(const char *const *codes)
{
    json_t *r = json_object();
    for (size_t i = 0; codes[i]; i++)
        json_object_set_new(r, codes[i],
                            json_pack("{s:s,s:{s:{s:o}}}", "description", "a problem (RFC 9457)",
                                      "content", "application/problem+json", "schema",
                                      ref("Problem")));
    return r;
}

static json_t *json_body(json_t *schema)
{
    return json_pack("{s:b,s:{s:{s:o}}}", "required", 1, "content", "application/json", "schema",
                     schema);
}

static json_t *ok(const char *code, const char *desc, json_t *schema, json_t *more)
{
    json_t *r = more ? more : json_object();
    json_object_set_new(r, code,
                        schema ? json_pack("{s:s,s:{s:{s:o}}}", "description", desc, "content",
                                           "application/json", "schema", schema)
                               : json_pack("{s:s}", "description", desc));
    return r;
}

static json_t *param(const char *name, const char *in, int required, json_t *schema,
                     const char *desc)
{
    return json_pack("{s:s,s:s,s:b,s:o,s:s}", "name", name, "in", in, "required", required,
                     "schema", schema, "description", desc);
}

static void add_collection(json_t *paths, json_t *schemas, const store_coll_t *c)
{
    char name[STORE_NAME_MAX + 8], input[STORE_NAME_MAX + 16], page[STORE_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s", c->name);
    snprintf(input, sizeof input, "%sInput", c->name);
    snprintf(page, sizeof page, "%sPage", c->name);
    json_t *props = json_object(), *iprops = json_object(), *req = json_array();
    json_object_set_new(
        props, "id",
        json_pack("{s:s,s:s,s:b}", "type", "string", "pattern", ULID_PATTERN, "readOnly", 1));
    json_object_set_new(props, "version", json_pack("{s:s,s:b}", "type", "integer", "readOnly", 1));
    json_object_set_new(
        props, "created_at",
        json_pack("{s:s,s:s,s:b}", "type", "string", "format", "date-time", "readOnly", 1));
    json_object_set_new(
        props, "updated_at",
        json_pack("{s:s,s:s,s:b}", "type", "string", "format", "date-time", "readOnly", 1));
    for (size_t i = 0; i < c->nfields; i++) {
        const store_field_t *f = &c->fields[i];
        json_object_set_new(props, f->name, field_schema(f));
        json_object_set_new(iprops, f->name, field_schema(f));
        if (f->flags & SF_REQUIRED) json_array_append_new(req, json_string(f->name));
    }
    json_object_set_new(schemas, name,
                        json_pack("{s:s,s:o,s:b}", "type", "object", "properties", props,
                                  "additionalProperties", 0));
    json_object_set_new(schemas, input,
                        json_pack("{s:s,s:o,s:O,s:b}", "type", "object", "properties", iprops,
                                  "required", req, "additionalProperties", 0));
    json_decref(req);
    json_object_set_new(schemas, page,
                        json_pack("{s:s,s:{s:{s:s,s:o},s:{s:[s,s]}},s:[s,s]}", "type", "object",
                                  "properties", "data", "type", "array", "items", ref(name),
                                  "next_cursor", "type", "string", "null", "required", "data",
                                  "next_cursor"));
    static const char *const e_read[] = {"400", "401", "403", "404", NULL};
    static const char *const e_write[] = {"400", "401", "403", "404", "409",
                                          "412", "415", "422", NULL};
    char p[STORE_NAME_MAX + 32];
    /* /v1/{c}: list and create */
    json_t *list_params = json_array();
    json_array_append_new(list_params,
                          param("sort", "query", 0, json_pack("{s:s}", "type", "string"),
                                "field or -field (id, created_at or an indexed field)"));
    json_array_append_new(list_params, param("limit", "query", 0,
                                             json_pack("{s:s,s:i,s:i}", "type", "integer",
                                                       "minimum", 1, "maximum", 1000),
                                             "page size (default 50)"));
    json_array_append_new(list_params,
                          param("cursor", "query", 0, json_pack("{s:s}", "type", "string"),
                                "next_cursor of the previous page"));
    json_array_append_new(list_params,
                          param("fields", "query", 0, json_pack("{s:s}", "type", "string"),
                                "comma-separated fields to return"));
    for (size_t i = 0; i < c->nfields; i++)
        if (c->fields[i].type != ST_OBJECT && c->fields[i].type != ST_TEXT)
            json_array_append_new(list_params,
                                  param(c->fields[i].name, "query", 0, field_schema(&c->fields[i]),
                                        "equals (repeat for any of several values)"));
    char opid[96];
    snprintf(p, sizeof p, "/v1/%s", c->name);
    json_t *coll_item = json_object();
    snprintf(opid, sizeof opid, "list_%s", c->name);
    json_object_set_new(coll_item, "get",
                        json_pack("{s:s,s:s,s:o,s:o}", "operationId", opid, "summary",
                                  "list records", "parameters", list_params, "responses",
                                  ok("200", "a page", ref(page), problem_responses(e_read))));
    snprintf(opid, sizeof opid, "create_%s", c->name);
    json_t *idem = param("Idempotency-Key", "header", 0,
                         json_pack("{s:s,s:i}", "type", "string", "maxLength", 200),
                         "a retry with the same key returns the first answer");
    json_t *upsert = param("upsert", "query", 0, json_pack("{s:s}", "type", "string"),
                           "true: if the record exists (a unique value, or a rule's duplicate "
                           "check), update it instead (200); a unique field's name: update the "
                           "record with the same value of it");
    json_t *created = ok("201", "created", ref(name), problem_responses(e_write));
    created = ok("200", "updated (upsert)", ref(name), created);
    json_object_set_new(coll_item, "post",
                        json_pack("{s:s,s:s,s:[o,o],s:o,s:o}", "operationId", opid, "summary",
                                  "create a record", "parameters", idem, upsert, "requestBody",
                                  json_body(ref(input)), "responses", created));
    json_object_set_new(paths, p, coll_item);
    /* /v1/{c}/{id} */
    snprintf(p, sizeof p, "/v1/%s/{id}", c->name);
    json_t *idp =
        json_pack("[o]", param("id", "path", 1,
                               json_pack("{s:s,s:s}", "type", "string", "pattern", ULID_PATTERN),
                               "record id"));
    json_t *ifm = param("If-Match", "header", 0, json_pack("{s:s}", "type", "string"),
                        "the ETag read before (412 when the record changed since)");
    json_t *item = json_object();
    json_object_set_new(item, "parameters", idp);
    snprintf(opid, sizeof opid, "get_%s", c->name);
    json_object_set_new(item, "get",
                        json_pack("{s:s,s:o}", "operationId", opid, "responses",
                                  ok("200", "the record", ref(name), problem_responses(e_read))));
    snprintf(opid, sizeof opid, "update_%s", c->name);
    json_object_set_new(item, "patch",
                        json_pack("{s:s,s:s,s:[O],s:o,s:o}", "operationId", opid, "summary",
                                  "JSON merge patch (RFC 7396)", "parameters", ifm, "requestBody",
                                  json_body(json_pack("{s:s}", "type", "object")), "responses",
                                  ok("200", "the record", ref(name), problem_responses(e_write))));
    snprintf(opid, sizeof opid, "replace_%s", c->name);
    json_object_set_new(item, "put",
                        json_pack("{s:s,s:[O],s:o,s:o}", "operationId", opid, "parameters", ifm,
                                  "requestBody", json_body(ref(input)), "responses",
                                  ok("200", "the record", ref(name), problem_responses(e_write))));
    snprintf(opid, sizeof opid, "delete_%s", c->name);
    json_object_set_new(item, "delete",
                        json_pack("{s:s,s:[O],s:o}", "operationId", opid, "parameters", ifm,
                                  "responses",
                                  ok("204", "deleted", NULL, problem_responses(e_write))));
    json_decref(ifm);
    json_object_set_new(paths, p, item);
    /* query, bulk, import, export */
    snprintf(p, sizeof p, "/v1/%s/query", c->name);
    snprintf(opid, sizeof opid, "query_%s", c->name);
    json_object_set_new(
        paths, p,
        json_pack(
            "{s:{s:s,s:s,s:o,s:o}}", "post", "operationId", opid, "summary",
            "filter with the JSON filter grammar", "requestBody",
            json_body(json_pack("{s:s,s:{s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s,s:{s:s}}}}", "type",
                                "object", "properties", "filter", "type", "object", "sort", "type",
                                "string", "limit", "type", "integer", "cursor", "type", "string",
                                "fields", "type", "array", "items", "type", "string")),
            "responses", ok("200", "a page", ref(page), problem_responses(e_read))));
    snprintf(p, sizeof p, "/v1/%s/bulk", c->name);
    snprintf(opid, sizeof opid, "bulk_%s", c->name);
    json_object_set_new(
        paths, p,
        json_pack("{s:{s:s,s:s,s:{s:b,s:{s:{s:{s:s}}}},s:{s:{s:s,s:{s:{s:{s:s}}}}}}}", "post",
                  "operationId", opid, "summary",
                  "NDJSON: one record or {op, id, data, if_version} per line; one result per line",
                  "requestBody", "required", 1, "content", "application/x-ndjson", "schema", "type",
                  "string", "responses", "200", "description", "results", "content",
                  "application/x-ndjson", "schema", "type", "string"));
    snprintf(p, sizeof p, "/v1/%s/import", c->name);
    snprintf(opid, sizeof opid, "import_%s", c->name);
    json_object_set_new(
        paths, p,
        json_pack("{s:{s:s,s:s,s:[o,o,o],s:{s:b,s:{s:{s:{s:s}}}},s:o}}", "post", "operationId",
                  opid, "summary", "RFC 4180 CSV with a header row; per-row report", "parameters",
                  param("map", "query", 0, json_pack("{s:s}", "type", "string"),
                        "{\"column\":\"field\"} or column:field,..."),
                  param("upsert", "query", 0, json_pack("{s:s}", "type", "string"),
                        "a unique field to match existing records on"),
                  param("delimiter", "query", 0, json_pack("{s:s}", "type", "string"), "default ,"),
                  "requestBody", "required", 1, "content", "text/csv", "schema", "type", "string",
                  "responses",
                  ok("200", "the report", json_pack("{s:s}", "type", "object"), NULL)));
    snprintf(p, sizeof p, "/v1/%s/export", c->name);
    snprintf(opid, sizeof opid, "export_%s", c->name);
    json_object_set_new(
        paths, p,
        json_pack(
            "{s:{s:s,s:[o,o,o],s:{s:{s:s,s:{s:{},s:{}}}}}}", "get", "operationId", opid,
            "parameters",
            param("format", "query", 0,
                  json_pack("{s:s,s:[s,s]}", "type", "string", "enum", "csv", "ndjson"),
                  "csv or ndjson (default)"),
            param("filter", "query", 0, json_pack("{s:s}", "type", "string"), "a filter (JSON)"),
            param("fields", "query", 0, json_pack("{s:s}", "type", "string"),
                  "comma-separated fields"),
            "responses", "200", "description", "the records, streamed", "content", "text/csv",
            "application/x-ndjson"));
}

void api_h_openapi(http_req_t *r)
{
    store_rtxn_t *rt = api_read(r);
    if (!rt) return;
    const store_schema_t *s = store_read_schema(rt);
    json_t *paths = json_object(), *schemas = json_object();
    json_object_set_new(
        schemas, "Problem",
        json_pack("{s:s,s:{s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s,s:{s:s}},"
                  "s:{s:s,s:s}}}",
                  "type", "object", "properties", "type", "type", "string", "title", "type",
                  "string", "status", "type", "integer", "detail", "type", "string", "instance",
                  "type", "string", "request_id", "type", "string", "errors", "type", "array",
                  "items", "type", "object", "existing_id", "type", "string", "description",
                  "409: the record this one duplicates, when the caller may read it"));
    for (size_t i = 0; i < s->ncolls; i++)
        if (s->colls[i]->name[0] != '_') add_collection(paths, schemas, s->colls[i]);
    store_read_end(rt);
    static const struct {
        const char *path, *method, *summary;
    } fixed[] = {
        {"/v1/schema", "get", "collections and fields"},
        {"/v1/schema/{collection}", "put", "create or change a collection"},
        {"/v1/schema/{collection}/fields/{name}", "put", "add or change a field"},
        {"/v1/changes", "get", "the change log after a sequence (?after, ?limit)"},
        {"/v1/changes/stream", "get", "the change log as Server-Sent Events (Last-Event-ID)"},
        {"/v1/audit", "get", "the hash-chained audit log"},
        {"/v1/roles", "get", "roles"},
        {"/v1/keys", "get", "API keys of the workspace"},
        {"/v1/keys", "post", "create an API key"},
        {"/v1/me", "get", "the caller's key, role and rights"},
        {"/healthz", "get", "liveness"},
        {"/metrics", "get", "Prometheus metrics"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        json_t *item = json_object_get(paths, fixed[i].path);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, fixed[i].path, item);
        }
        json_object_set_new(item, fixed[i].method,
                            json_pack("{s:s,s:{s:{s:s}}}", "summary", fixed[i].summary, "responses",
                                      "200", "description", "ok"));
    }
    json_t *doc =
        json_pack("{s:s,s:{s:s,s:s,s:s},s:[{s:s}],s:[{s:[]}],s:o,s:{s:o,s:{s:{s:s,s:s}}}}",
                  "openapi", "3.1.0", "info", "title", "Kith API", "version", KITH_VERSION,
                  "description", "Generated from this workspace's live schemas.", "servers", "url",
                  "/", "security", "bearer", "paths", paths, "components", "schemas", schemas,
                  "securitySchemes", "bearer", "type", "http", "scheme", "bearer");
    http_respond_json(r, 200, doc, NULL);
    json_decref(doc);
}
