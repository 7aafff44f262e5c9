/*
 * Broken plugins, one per bad case, each refused cleanly while the server
 * keeps serving (tests/integration/test_plugins.py). One source, compiled
 * once per case with -DFIXTURE_<CASE> (CMakeLists.txt); "not an ELF" and
 * "truncated" are made from files at build time.
 */
#include <kith/plugin.h>

#include <stddef.h>

__attribute__((unused)) static int noop_init(kith_plugin_t *p, const kith_api_t *api)
{
    (void)p, (void)api;
    return 0;
}

#define DESC(name, abi, sig, level, init)                                                          \
    KITH_PLUGIN_EXPORT const kith_plugin_desc_t kith_plugin = {                                    \
        sizeof(kith_plugin_desc_t), abi, sig, name, "0.0.1", level, init, NULL, NULL}

#if defined(FIXTURE_WRONG_ABI)
DESC("wrong_abi", KITH_PLUGIN_ABI + 98, KITH_PLUGIN_SIGNATURE, 1, noop_init);

#elif defined(FIXTURE_WRONG_SIGNATURE)
DESC("wrong_signature", KITH_PLUGIN_ABI, "kith-abi1/p4/l4/o4321", 1, noop_init);

#elif defined(FIXTURE_API_TOO_NEW)
DESC("api_too_new", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, KITH_PLUGIN_API_LEVEL + 1, noop_init);

#elif defined(FIXTURE_NO_DESCRIPTOR)
KITH_PLUGIN_EXPORT int kith_plugin_typo = 1;

#elif defined(FIXTURE_DUPLICATE_NAME)
/* a second plugin calling itself "hello" */
DESC("hello", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, noop_init);

#elif defined(FIXTURE_UNRESOLVED)
extern int kith_fixture_no_such_symbol(void); /* defined nowhere: RTLD_NOW fails */
static int unresolved_init(kith_plugin_t *p, const kith_api_t *api)
{
    (void)p, (void)api;
    return kith_fixture_no_such_symbol();
}
DESC("unresolved", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, unresolved_init);

#elif defined(FIXTURE_BAD_INIT)
/* registers a hook, a route, a collection and a timer, then fails: none of
 * them may remain */
static int veto_all(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud, (void)tx, (void)ev;
    return KITH_PLUGIN_EVETO;
}
static int never(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud, (void)tx, (void)req, (void)res;
    return KITH_PLUGIN_EHANDLER;
}
static int bad_init(kith_plugin_t *p, const kith_api_t *api)
{
    kith_hook_t h = {
        .size = sizeof h, .event = "notes.before_create", .name = "veto", .fn = veto_all};
    kith_route_t r = {.size = sizeof r,
                      .method = "GET",
                      .pattern = "/v1/bad-init/probe",
                      .name = "probe",
                      .action = "any",
                      .fn = never};
    int rc = api->on(p, &h);
    if (rc == 0) rc = api->route(p, &r);
    if (rc == 0) rc = api->collection(p, "{\"name\": \"bad_init_things\"}");
    if (rc == 0) rc = api->every_declare(p, "tick", "1m", "bad_init.tick", NULL);
    if (rc) return rc;
    return api->fail(KITH_PLUGIN_EINVAL, "bad_init: the database is unreachable");
}
DESC("bad_init", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, bad_init);

#elif defined(FIXTURE_ROUTE_CLASH)
/* a route with the shape of the core's GET /v1/{collection}/{id} */
static int never(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud, (void)tx, (void)req, (void)res;
    return KITH_PLUGIN_EHANDLER;
}
static int clash_init(kith_plugin_t *p, const kith_api_t *api)
{
    kith_route_t r = {.size = sizeof r,
                      .method = "GET",
                      .pattern = "/v1/{a}/{b}",
                      .name = "clash",
                      .action = "any",
                      .fn = never};
    return api->route(p, &r);
}
DESC("route_clash", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, clash_init);

#elif defined(FIXTURE_ROUTE_TAKEOVER)
/* more specific than the core's POST /v1/{collection}/query: it would take
 * the contacts' queries */
static int never(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud, (void)tx, (void)req, (void)res;
    return KITH_PLUGIN_EHANDLER;
}
static int takeover_init(kith_plugin_t *p, const kith_api_t *api)
{
    kith_route_t r = {.size = sizeof r,
                      .method = "POST",
                      .pattern = "/v1/contacts/query",
                      .name = "takeover",
                      .action = "any",
                      .fn = never};
    return api->route(p, &r);
}
DESC("route_takeover", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, takeover_init);

#elif defined(FIXTURE_PROBE)
/* A good plugin whose routes misbehave in the ways a route's contract
 * covers: an answer followed by a failure, an error answer after a write, a
 * return code the core uses internally. */
static const kith_api_t *K;

static int make_note(kith_txn_t *tx, kith_record_t *out)
{
    kith_json_t *f = K->json_object();
    K->object_set(f, "text", K->json_string("probe"));
    K->object_set(f, "phone", K->json_string("13812345678"));
    int rc = K->entity_create(tx, "probe_notes", f, out);
    K->json_decref(f);
    return rc;
}

/* GET /v1/probe/{id}/leak: reads a sensitive field, answers 200, then fails */
static int leak(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_record_t rec = {.size = sizeof rec};
    int rc = K->entity_get(tx, "probe_notes", req->params[0], &rec);
    if (rc) return rc;
    K->respond(res, 200, rec.fields);
    K->json_decref(rec.fields);
    return K->fail(KITH_PLUGIN_EHANDLER, "probe: failed after answering");
}

/* POST /v1/probe/refuse: writes, then answers 409 with code 0 */
static int refuse_after_write(void *ud, kith_txn_t *tx, const kith_request_t *req,
                              kith_response_t *res)
{
    (void)ud, (void)req;
    kith_record_t rec = {.size = sizeof rec};
    int rc = make_note(tx, &rec);
    if (rc) return rc;
    K->json_decref(rec.fields);
    return K->respond_problem(res, 409, "conflict", "probe: refused after writing");
}

/* POST /v1/probe/internal: writes, then returns a code the writer uses internally */
static int internal_code(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud, (void)req, (void)res;
    kith_record_t rec = {.size = sizeof rec};
    if (make_note(tx, &rec) == 0) K->json_decref(rec.fields);
    return -1000;
}

/* POST /v1/probe/note: an ordinary write route */
static int note(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud, (void)req;
    kith_record_t rec = {.size = sizeof rec};
    int rc = make_note(tx, &rec);
    if (rc) return rc;
    kith_json_t *o = K->json_object();
    K->object_set(o, "id", K->json_string(rec.id));
    K->json_decref(rec.fields);
    K->respond(res, 201, o);
    K->json_decref(o);
    return 0;
}

static int count_row(void *ud, const kith_record_t *rec)
{
    (void)rec;
    ++*(int64_t *)ud;
    return 0;
}

/* GET /v1/probe-phone/{phone}: counts notes with that phone (a filter on
 * a sensitive field, refused for callers who see it masked) */
static int by_phone(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_json_t *f = K->json_object();
    K->object_set(f, "phone", K->json_string(req->params[0]));
    kith_query_t q = {.size = sizeof q, .collection = "probe_notes", .filter = f};
    int64_t n = 0;
    int rc = K->entity_query(tx, &q, count_row, &n, NULL);
    K->json_decref(f);
    if (rc) return rc;
    kith_json_t *o = K->json_object();
    K->object_set(o, "count", K->json_integer(n));
    K->respond(res, 200, o);
    K->json_decref(o);
    return 0;
}

static int probe_init(kith_plugin_t *p, const kith_api_t *api)
{
    K = api;
    int rc = api->collection(p, "{\"name\": \"probe_notes\", \"fields\": ["
                                "{\"name\": \"text\", \"type\": \"string\"},"
                                "{\"name\": \"phone\", \"type\": \"phone\","
                                " \"sensitive\": true}]}");
    kith_route_t r[] = {
        {sizeof(kith_route_t), "GET", "/v1/probe/{id}/leak", "leak", "read", "probe_notes", 0, leak,
         NULL},
        {sizeof(kith_route_t), "POST", "/v1/probe/refuse", "refuse", "create", "probe_notes",
         KITH_ROUTE_WRITE, refuse_after_write, NULL},
        {sizeof(kith_route_t), "POST", "/v1/probe/internal", "internal", "create", "probe_notes",
         KITH_ROUTE_WRITE, internal_code, NULL},
        {sizeof(kith_route_t), "POST", "/v1/probe/note", "note", "create", "probe_notes",
         KITH_ROUTE_WRITE, note, NULL},
        {sizeof(kith_route_t), "GET", "/v1/probe-phone/{phone}", "by_phone", "read",
         "probe_notes", 0, by_phone, NULL},
    };
    for (size_t i = 0; rc == 0 && i < sizeof r / sizeof *r; i++)
        rc = api->route(p, &r[i]);
    return rc;
}
DESC("probe", KITH_PLUGIN_ABI, KITH_PLUGIN_SIGNATURE, 1, probe_init);

#else
#error "define one FIXTURE_<CASE>"
#endif
