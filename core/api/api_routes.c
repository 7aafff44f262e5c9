/*
 * api_routes: the route table. Literal paths come before parameterised ones
 * (the router takes the first match). `action` is what a key's role must
 * allow: a record action on the {collection} of the path (read, create,
 * update, delete, export, import), a capability (schema, keys, audit,
 * scripts), or "any" (any valid key). GET /v1/routes serves this table, so
 * the permission tests cover every route, including new ones, by themselves.
 */
#include "api/api_int.h"

#include "base/mem.h"

#include <string.h>

/* The table gives each route's first seven members; coll and udata are for
 * routes an extension adds. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define GET    HTTP_M_GET
#define POST   HTTP_M_POST
#define PUT    HTTP_M_PUT
#define PATCH  HTTP_M_PATCH
#define DELETE HTTP_M_DELETE

static const http_route_t routes[] = {
    {GET, "/healthz", "health", api_h_health, NULL, HTTP_PUBLIC, "public"},
    {GET, "/metrics", "metrics", api_h_metrics, NULL, HTTP_PUBLIC, "public"},
    {GET, "/v1/routes", "routes", api_h_routes, NULL, 0, "any"},
    {GET, "/v1/me", "me", api_h_me, NULL, 0, "any"},
    {GET, "/v1/openapi.json", "openapi", api_h_openapi, NULL, 0, "any"},
    {GET, "/v1/schema", "schema.get", api_h_schema_get, NULL, 0, "any"},
    {PUT, "/v1/schema/{collection}", "schema.put", api_h_schema_put, NULL, 0, "schema"},
    {PUT, "/v1/schema/{collection}/fields/{name}", "schema.field", api_h_schema_field, NULL, 0,
     "schema"},
    {GET, "/v1/changes", "changes.list", api_h_changes, NULL, 0, "any"},
    {GET, "/v1/changes/stream", "changes.stream", api_h_changes_stream, NULL, 0, "any"},
    {GET, "/v1/audit", "audit.list", api_h_audit, NULL, 0, "audit"},
    {GET, "/v1/roles", "roles.list", api_h_roles_list, NULL, 0, "any"},
    {GET, "/v1/roles/{name}", "roles.get", api_h_roles_get, NULL, 0, "any"},
    {PUT, "/v1/roles/{name}", "roles.put", api_h_roles_put, NULL, 0, "keys"},
    {DELETE, "/v1/roles/{name}", "roles.delete", api_h_roles_delete, NULL, 0, "keys"},
    {GET, "/v1/hooks", "hooks.list", api_h_hooks, NULL, 0, "scripts"},
    {GET, "/v1/plugins", "plugins.list", api_h_plugins, NULL, 0, "scripts"},
    {GET, "/v1/timers", "timers.list", api_h_timers, NULL, 0, "scripts"},
    {GET, "/v1/scripts", "scripts.list", api_h_scripts_list, NULL, 0, "scripts"},
    {GET, "/v1/scripts/shipped", "scripts.shipped", api_h_scripts_shipped, NULL, 0, "scripts"},
    {GET, "/v1/scripts/{name}", "scripts.get", api_h_scripts_get, NULL, 0, "scripts"},
    {PUT, "/v1/scripts/{name}", "scripts.put", api_h_scripts_put, NULL, 0, "scripts"},
    {DELETE, "/v1/scripts/{name}", "scripts.delete", api_h_scripts_delete, NULL, 0, "scripts"},
    {POST, "/v1/scripts/{name}/enable", "scripts.enable", api_h_scripts_enable, NULL, 0, "scripts"},
    {GET, "/v1/keys", "keys.list", api_h_keys_list, NULL, 0, "keys"},
    {POST, "/v1/keys", "keys.create", api_h_keys_create, NULL, 0, "keys"},
    {DELETE, "/v1/keys/{id}", "keys.delete", api_h_keys_delete, NULL, 0, "keys"},
    {POST, "/v1/{collection}/query", "records.query", api_h_records_query, NULL, 0, "read"},
    {POST, "/v1/{collection}/bulk", "records.bulk", api_h_bulk, api_h_bulk_body, HTTP_STREAM_BODY,
     "create"},
    {POST, "/v1/{collection}/import", "records.import", api_h_import, api_h_import_body,
     HTTP_STREAM_BODY, "import"},
    {GET, "/v1/{collection}/export", "records.export", api_h_export, NULL, 0, "export"},
    {GET, "/v1/{collection}", "records.list", api_h_records_list, NULL, 0, "read"},
    {POST, "/v1/{collection}", "records.create", api_h_records_create, NULL, 0, "create"},
    {GET, "/v1/{collection}/{id}", "records.get", api_h_records_get, NULL, 0, "read"},
    {PATCH, "/v1/{collection}/{id}", "records.update", api_h_records_update, NULL, 0, "update"},
    {PUT, "/v1/{collection}/{id}", "records.replace", api_h_records_replace, NULL, 0, "update"},
    {DELETE, "/v1/{collection}/{id}", "records.delete", api_h_records_delete, NULL, 0, "delete"},
};

const http_route_t *api_routes(size_t *n)
{
    *n = sizeof routes / sizeof *routes;
    return routes;
}

static int literal_segments(const char *pattern)
{
    int n = 0;
    for (const char *s = pattern; *s; s++)
        if (*s == '/' && s[1] && s[1] != '{') n++;
    return n;
}

/* Segments of a pattern ("/v1/a/{b}": 3). */
static int segments(const char *pattern)
{
    int n = 0;
    for (const char *s = pattern; *s; s++)
        n += *s == '/';
    return n;
}

const http_route_t *api_route_claim(const http_route_t *ext, size_t next, const char *coll)
{
    size_t cl = strlen(coll), ncore = sizeof routes / sizeof *routes;
    for (size_t e = 0; e < next; e++) {
        const char *p = ext[e].pattern, *rest = p + 4 + cl;
        if (strncmp(p, "/v1/", 4) != 0 || strncmp(p + 4, coll, cl) != 0 ||
            (*rest && *rest != '/'))
            continue;
        /* after the name only parameters: a literal (/v1/reports/pipeline)
         * is no record's path, since ids are never such words */
        if (strstr(rest, "/") && literal_segments(rest) > 0) continue;
        for (size_t i = 0; i < ncore; i++)
            if (routes[i].method == ext[e].method && literal_segments(routes[i].pattern) == 1 &&
                strncmp(routes[i].pattern, "/v1/{collection}", 16) == 0 &&
                segments(routes[i].pattern) == segments(p))
                return &ext[e];
    }
    return NULL;
}

/* The core's literal routes; then its parameterised ones, each extension
 * route placed before the first of them with fewer literal segments (the
 * router takes the first match: on a path both match, more literal segments
 * win, a tie goes to the core). A new table; the entries are copied. */
http_route_t *api_routes_merge(const http_route_t *ext, size_t next, size_t *n)
{
    size_t ncore = sizeof routes / sizeof *routes;
    http_route_t *t = xcalloc(ncore + next + 1, sizeof *t);
    char *placed = xcalloc(next + 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < ncore; i++)
        if (!strchr(routes[i].pattern, '{')) t[k++] = routes[i];
    for (size_t i = 0; i < ncore; i++) {
        if (!strchr(routes[i].pattern, '{')) continue;
        int lit = literal_segments(routes[i].pattern);
        for (size_t e = 0; e < next; e++)
            if (!placed[e] && literal_segments(ext[e].pattern) > lit) {
                t[k++] = ext[e];
                placed[e] = 1;
            }
        t[k++] = routes[i];
    }
    for (size_t e = 0; e < next; e++)
        if (!placed[e]) t[k++] = ext[e];
    free(placed);
    *n = k;
    return t;
}

void api_h_routes(http_req_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->srv->nroutes; i++) {
        const http_route_t *rt = &r->srv->routes[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b}", "method", http_method_name(rt->method),
                              "path", rt->pattern, "name", rt->name, "action", rt->action,
                              "streams_body", (rt->flags & HTTP_STREAM_BODY) != 0);
        if (rt->coll) json_object_set_new(o, "collection", json_string(rt->coll));
        json_array_append_new(a, o);
    }
    json_t *o = json_pack("{s:o}", "routes", a);
    http_respond_json(r, 200, o, NULL);
    json_decref(o);
}
