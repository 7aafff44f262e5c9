/*
 * hello: a small Kith plugin that shows every part of the SDK.
 *
 * Build it out of tree:
 *   cc $(pkg-config --cflags kith-plugin) -shared -fPIC -o hello.so hello.c
 * and load it: put hello.so in a plugin directory and name it in
 * <data>/kith.json: {"plugins": {"dirs": ["/path/to/dir"], "load": ["hello"],
 * "config": {"hello": {"greeting": "Hi"}}}}. `kith plugins --data DIR` checks.
 *
 * What it does:
 * - declares the collection hello_visits (name, greeting, phone: sensitive);
 * - hello_visits.before_create stamps the configured greeting on the record
 *   and refuses the name "nobody" (a veto: HTTP 422);
 * - hello_visits.created counts visits (kith_plugin_hello_visits_total) and
 *   emits hello.greeted;
 * - POST /v1/hello/{name} records a visit (a write route: create on
 *   hello_visits), GET /v1/hello/{name} greets and counts the visits (a read
 *   route: read on hello_visits; the caller's masking applies);
 * - a recurring timer fires hello.tick every hour.
 */
#include <kith/plugin.h>

#include <stdio.h>
#include <string.h>

static const kith_api_t *K;
static kith_counter_t *visits;
static const char *greeting = "Hello";

static int stamp(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud, (void)tx;
    const char *name = K->string_value(K->object_get(ev->record, "name"));
    if (name && strcmp(name, "nobody") == 0)
        return K->fail(KITH_PLUGIN_EVETO, "hello: nobody cannot visit");
    K->object_set(ev->record, "greeting", K->json_string(greeting));
    ev->amended = 1;
    return 0;
}

static int created(void *ud, kith_txn_t *tx, kith_event_t *ev)
{
    (void)ud;
    K->counter_add(visits, 1);
    kith_json_t *p = K->json_object();
    K->object_set(p, "visit", K->json_string(ev->id));
    int rc = K->emit(tx, "hello.greeted", p);
    K->json_decref(p);
    return rc;
}

static int visit(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_json_t *f = K->json_object();
    K->object_set(f, "name", K->json_string(req->params[0]));
    const kith_json_t *phone = req->json ? K->object_get(req->json, "phone") : NULL;
    if (phone) K->object_set(f, "phone", K->json_deep_copy(phone));
    kith_record_t rec = {.size = sizeof rec};
    int rc = K->entity_create(tx, "hello_visits", f, &rec);
    K->json_decref(f);
    if (rc) return rc; /* a veto becomes 422, a validation error 422, ... */
    kith_json_t *out = K->json_object();
    K->object_set(out, "id", K->json_string(rec.id));
    K->object_set(out, "record", rec.fields); /* steals */
    K->respond(res, 201, out);
    K->json_decref(out);
    return 0;
}

typedef struct tally {
    size_t n;
    kith_json_t *phones;
} tally_t;

static int count_row(void *ud, const kith_record_t *rec)
{
    tally_t *t = ud;
    t->n++;
    const kith_json_t *phone = K->object_get(rec->fields, "phone");
    if (phone) K->array_append(t->phones, K->json_deep_copy(phone));
    return 0;
}

static int greet(void *ud, kith_txn_t *tx, const kith_request_t *req, kith_response_t *res)
{
    (void)ud;
    kith_json_t *filter = K->json_object();
    K->object_set(filter, "name", K->json_string(req->params[0]));
    tally_t t = {0, K->json_array()};
    kith_query_t q = {
        .size = sizeof q, .collection = "hello_visits", .filter = filter, .limit = 1000};
    int rc = K->entity_query(tx, &q, count_row, &t, NULL);
    K->json_decref(filter);
    if (rc) {
        K->json_decref(t.phones);
        return rc;
    }
    char text[300];
    snprintf(text, sizeof text, "%s, %s", greeting, req->params[0]);
    kith_json_t *out = K->json_object();
    K->object_set(out, "greeting", K->json_string(text));
    K->object_set(out, "visits", K->json_integer((int64_t)t.n));
    K->object_set(out, "phones", t.phones);
    K->object_set(out, "workspace", K->json_string(K->txn_workspace(tx)));
    K->respond(res, 200, out);
    K->json_decref(out);
    return 0;
}

static int init(kith_plugin_t *p, const kith_api_t *api)
{
    K = api;
    const char *g = K->string_value(K->object_get(K->config(p), "greeting"));
    if (g) greeting = g; /* the config object lives as long as the plugin */
    int rc = K->collection(p, "{\"name\": \"hello_visits\", \"fields\": ["
                              "{\"name\": \"name\", \"type\": \"string\", \"required\": true,"
                              " \"indexed\": true},"
                              "{\"name\": \"greeting\", \"type\": \"string\"},"
                              "{\"name\": \"phone\", \"type\": \"phone\", \"sensitive\": true}]}");
    if (rc) return rc;
    kith_hook_t before = {
        .size = sizeof before, .event = "hello_visits.before_create", .name = "stamp", .fn = stamp};
    kith_hook_t after = {
        .size = sizeof after, .event = "hello_visits.created", .name = "count", .fn = created};
    if ((rc = K->on(p, &before)) || (rc = K->on(p, &after))) return rc;
    kith_route_t post = {.size = sizeof post,
                         .method = "POST",
                         .pattern = "/v1/hello/{name}",
                         .name = "visit",
                         .action = "create",
                         .collection = "hello_visits",
                         .flags = KITH_ROUTE_WRITE,
                         .fn = visit};
    kith_route_t get = {.size = sizeof get,
                        .method = "GET",
                        .pattern = "/v1/hello/{name}",
                        .name = "greet",
                        .action = "read",
                        .collection = "hello_visits",
                        .fn = greet};
    if ((rc = K->route(p, &post)) || (rc = K->route(p, &get))) return rc;
    if ((rc = K->every_declare(p, "tick", "1h", "hello.tick", NULL))) return rc;
    visits = K->counter(p, "visits", "Visits recorded by the hello plugin.");
    if (!visits) return KITH_PLUGIN_EINVAL;
    K->log(p, KITH_LOG_INFO, "greeting with \"%s\"", greeting);
    return 0;
}

static void fini(kith_plugin_t *p)
{
    K->log(p, KITH_LOG_INFO, "bye");
}

KITH_PLUGIN_DEFINE("hello", "1.0.0", 1, init, fini,
                   "{\"greeting\": {\"type\": \"string\", \"default\": \"Hello\"}}");
