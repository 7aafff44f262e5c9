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

#else
#error "define one FIXTURE_<CASE>"
#endif
