"""Records over HTTPS: create, read, update, replace, delete, lists and
queries, ETag / If-Match, Idempotency-Key, validation problems."""
import json

from kithserver import schema

CONTACTS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "email", "type": "email", "unique": True},
    {"name": "age", "type": "int", "indexed": True},
    {"name": "stage", "type": "enum", "values": ["lead", "customer"], "indexed": True},
]


def test_crud_round_trip(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    r = server.req("POST", "/v1/contacts", key=k, body={"name": "Ada", "email": "ada@x.io", "age": 36})
    assert r.status == 201, r
    rec = r.json
    assert rec["version"] == 1 and rec["name"] == "Ada"
    assert r.headers["etag"] == '"1"'
    assert r.headers["location"] == f"/v1/contacts/{rec['id']}"
    assert r.headers["x-request-id"]
    g = server.req("GET", f"/v1/contacts/{rec['id']}", key=k)
    assert g.status == 200 and g.json == rec
    assert server.req("GET", f"/v1/contacts/{rec['id']}", key=k,
                      headers={"If-None-Match": '"1"'}).status == 304
    p = server.req("PATCH", f"/v1/contacts/{rec['id']}", key=k, body={"age": 37},
                   headers={"If-Match": '"1"'})
    assert p.status == 200 and p.json["age"] == 37 and p.json["version"] == 2
    stale = server.req("PATCH", f"/v1/contacts/{rec['id']}", key=k, body={"age": 38},
                       headers={"If-Match": '"1"'})
    assert stale.status == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json["type"].endswith("/precondition-failed")
    put = server.req("PUT", f"/v1/contacts/{rec['id']}", key=k, body={"name": "Ada L."})
    assert put.status == 200 and "age" not in put.json and put.json["version"] == 3
    d = server.req("DELETE", f"/v1/contacts/{rec['id']}", key=k, headers={"If-Match": '"3"'})
    assert d.status == 204 and d.body == b""
    assert server.req("GET", f"/v1/contacts/{rec['id']}", key=k).status == 404


def test_validation_problems_name_fields(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    r = server.req("POST", "/v1/contacts", key=k,
                   body={"email": "nope", "age": "x", "bogus": 1})
    assert r.status == 422
    p = r.json
    assert p["type"].endswith("/validation") and p["status"] == 422
    fields = {e["field"] for e in p["errors"]}
    assert fields == {"name", "email", "age", "bogus"}
    dup = server.req("POST", "/v1/contacts", key=k, body={"name": "A", "email": "a@x.io"})
    assert dup.status == 201
    again = server.req("POST", "/v1/contacts", key=k, body={"name": "B", "email": "A@X.IO"})
    assert again.status == 409 and again.json["errors"][0]["field"] == "email"


def test_bad_requests_are_4xx(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    assert server.req("POST", "/v1/contacts", key=k, body='{"name": "x"',).status == 400
    assert server.req("POST", "/v1/contacts", key=k, body='[1]').status == 400
    assert server.req("POST", "/v1/contacts", key=k, body='{"name":"x"}',
                      ctype="text/plain").status == 415
    assert server.req("POST", "/v1/nope", key=k, body={"a": 1}).status == 404
    assert server.req("GET", "/v1/contacts/not-an-id", key=k).status == 404
    assert server.req("GET", "/v1/contacts?limit=0", key=k).status == 400
    assert server.req("GET", "/v1/contacts?bogus=1", key=k).status == 400
    assert server.req("PATCH", "/v1/contacts", key=k, body={}).status == 405
    deep = "[" * 100 + "]" * 100
    assert server.req("POST", "/v1/contacts", key=k, body=deep).status == 400
    assert server.req("GET", "/v1/contacts").status == 401
    assert server.req("GET", "/v1/contacts", key="kith_" + "A" * 43).status == 401


def test_idempotency_key_replays_first_answer(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    h = {"Idempotency-Key": "order-42"}
    a = server.req("POST", "/v1/contacts", key=k, body={"name": "Idem"}, headers=h)
    b = server.req("POST", "/v1/contacts", key=k, body={"name": "Idem"}, headers=h)
    assert a.status == b.status == 201
    assert a.json == b.json
    assert b.headers.get("idempotent-replayed") == "true"
    lst = server.req("GET", "/v1/contacts?name=Idem", key=k).json["data"]
    assert len(lst) == 1
    other = server.req("POST", "/v1/contacts", key=k, body={"name": "Other"}, headers=h)
    assert other.status == 409


def test_list_query_and_cursor_pagination(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    for i in range(25):
        r = server.req("POST", "/v1/contacts", key=k,
                       body={"name": f"n{i}", "age": i, "stage": "lead" if i % 2 else "customer"})
        assert r.status == 201
    seen, cursor = [], None
    while True:
        q = {"filter": {"stage": "lead"}, "sort": "-age", "limit": 4}
        if cursor:
            q["cursor"] = cursor
        r = server.req("POST", "/v1/contacts/query", key=k, body=q)
        assert r.status == 200, r
        seen += [x["age"] for x in r.json["data"]]
        cursor = r.json["next_cursor"]
        if not cursor:
            break
    assert seen == sorted((i for i in range(25) if i % 2), reverse=True)
    r = server.req("GET", "/v1/contacts?age=3&age=5&fields=age", key=k)
    assert r.status == 200
    assert sorted(x["age"] for x in r.json["data"]) == [3, 5]
    assert set(r.json["data"][0]) == {"id", "version", "created_at", "updated_at", "age"}
    bad = server.req("POST", "/v1/contacts/query", key=k, body={"filter": {"age": {"gt": "x"}}})
    assert bad.status == 400 and "filter.age.gt" in bad.json["detail"]


def test_schema_and_openapi(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    f = server.req("PUT", "/v1/schema/contacts/fields/vip", key=k, body={"type": "bool"})
    assert f.status == 200 and f.json["version"] == 2
    s = server.req("GET", "/v1/schema", key=k).json
    c = [x for x in s["collections"] if x["name"] == "contacts"][0]
    assert [x["name"] for x in c["fields"]][-1] == "vip"
    o = server.req("GET", "/v1/openapi.json", key=k)
    assert o.status == 200
    doc = o.json
    assert doc["openapi"].startswith("3.1")
    assert "vip" in doc["components"]["schemas"]["contacts"]["properties"]
    assert "/v1/contacts/{id}" in doc["paths"]
    bad = server.req("PUT", "/v1/schema/contacts/fields/age", key=k, body={"type": "string"})
    assert bad.status == 422 and bad.json["errors"][0]["field"] == "age"


SCOPED = [
    {"name": "name", "type": "string", "required": True},
    {"name": "email", "type": "email", "unique": True, "sensitive": True},
    {"name": "owner", "type": "string", "indexed": True},
    {"name": "team", "type": "string", "indexed": True},
]


def test_unique_violation_does_not_name_the_other_record(server):
    """A 409 must not tell a caller which record holds the value (it may be one
    the caller cannot see)."""
    k = server.admin
    schema(server, k, "people", SCOPED)
    other = server.req("POST", "/v1/people", key=k,
                       body={"name": "O", "email": "o@x.io", "owner": "someone"}).json["id"]
    sales = server.key("sales", user="u1", team="t1")
    r = server.req("POST", "/v1/people", key=sales, body={"name": "S", "email": "o@x.io"})
    assert r.status == 409
    assert other not in r.body.decode() and "o@x.io" not in r.body.decode()


def test_bulk_and_import_default_owner_and_team_like_post(server):
    k = server.admin
    schema(server, k, "people", SCOPED)
    sales = server.key("sales", user="u1", team="t1")
    b = server.req("POST", "/v1/people/bulk", key=sales, body='{"name":"B"}\n',
                   ctype="application/x-ndjson")
    assert b.status == 200
    line = json.loads(b.body.decode().splitlines()[0])
    assert line["status"] == 201, line
    importer = server.key("manager")  # imports need the import action
    i = server.req("POST", "/v1/roles/ops", key=k, body=None)
    assert i.status in (404, 405)
    # a scoped role that may import: a custom role
    role = {"collections": {"people": {"actions": ["read", "create", "import"], "scope": "team"}}}
    assert server.req("PUT", "/v1/roles/importer", key=k, body=role).status == 201
    imp_key = server.key("importer", user="u2", team="t2")
    r = server.req("POST", "/v1/people/import", key=imp_key, body="name\nI\n", ctype="text/csv")
    assert r.status == 200 and r.json["created"] == 1, r
    recs = {x["name"]: x for x in server.req("GET", "/v1/people", key=k).json["data"]}
    assert recs["B"]["owner"] == "u1" and recs["B"]["team"] == "t1"
    assert recs["I"]["owner"] == "u2" and recs["I"]["team"] == "t2"
    # upserting on a sensitive field the role sees masked is refused (an oracle)
    up = server.req("POST", "/v1/people/import?upsert=email", key=imp_key,
                    body="name,email\nX,o@x.io\n", ctype="text/csv")
    assert up.status == 403
    del importer


def test_key_changes_are_audited(server):
    k = server.admin
    c = server.req("POST", "/v1/keys", key=k, body={"role": "readonly", "label": "bot"})
    assert c.status == 201
    kid = c.json["id"]
    assert server.req("DELETE", f"/v1/keys/{kid}", key=k).status == 204
    entries = server.req("GET", "/v1/audit?limit=1000", key=k).json["entries"]
    acts = [(e["action"], e["ids"]) for e in entries]
    assert ("key.create", [kid]) in acts and ("key.revoke", [kid]) in acts
    create = [e for e in entries if e["action"] == "key.create"][0]
    assert create["request"] == c.headers["x-request-id"]
    assert "token" not in json.dumps(create)
