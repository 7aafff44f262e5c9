"""plugins/identity: contacts and companies with one identity ("One ID").

The plugin is built like any third party's, against sdk/include only, into
<build>/lib/kith/plugins; each test copies it into its own directory (the
loader refuses files others can write) and names it in kith.json.
"""
import json
import urllib.parse

import pytest

from kithserver import KithServer, enable_plugins, list_all, plugin_server, problem

ANN = "+8613812345678"


def enable(datadir, tmp_path, config=None):
    enable_plugins(datadir, tmp_path, ["identity"],
                   {"identity": config} if config is not None else None)


@pytest.fixture
def srv(tmp_path, datadir):
    s = plugin_server(datadir, tmp_path, ["identity"])
    yield s
    s.stop()


def create(srv, coll, body, key=None, query=""):
    return srv.req("POST", f"/v1/{coll}{query}", key=key or srv.admin, body=body)


def test_collections_are_declared(srv):
    r = srv.req("GET", "/v1/schema", key=srv.admin)
    assert r.status == 200
    colls = {c["name"]: c for c in r.json["collections"]}
    fields = {f["name"]: f for f in colls["contacts"]["fields"]}
    for f in ("name", "email", "phone", "owner", "team", "tags", "lifecycle_stage", "quality",
              "merged_into", "company_id"):
        assert f in fields, f
    assert fields["lifecycle_stage"]["values"] == [
        "subscriber", "lead", "qualified", "opportunity", "customer", "evangelist", "churned"]
    assert "domain" in {f["name"] for f in colls["companies"]["fields"]}
    r = srv.req("GET", "/v1/plugins", key=srv.admin)
    assert [p["state"] for p in r.json["plugins"] if p["name"] == "identity"] == ["loaded"]


def test_a_contact_is_normalised_and_scored(srv):
    r = create(srv, "contacts", {"first_name": "Ann", "last_name": "Lee",
                                 "email": "  Ann.Lee@Example.COM ", "phone": "138-1234-5678"})
    assert r.status == 201, r
    c = r.json
    assert c["email"] == "ann.lee@example.com"
    assert c["phone"] == ANN
    assert c["name"] == "Ann Lee"
    assert c["quality"] == 70  # name 25 + e-mail 25 + phone 20 of 100
    # an update that fills in more raises it; the stored record agrees
    r = srv.req("PATCH", f"/v1/contacts/{c['id']}", key=srv.admin,
                body={"company": "Acme", "title": "CTO"})
    assert r.status == 200, r
    assert r.json["quality"] == 90
    assert srv.req("GET", f"/v1/contacts/{c['id']}", key=srv.admin).json["quality"] == 90
    # a phone that cannot be read is refused with the field named
    p = problem(create(srv, "contacts", {"name": "X", "phone": "12345"}), 422, "validation")
    assert p["errors"][0]["field"] == "phone" and "8 to 15 digits" in p["errors"][0]["detail"]
    p = problem(create(srv, "contacts", {"name": "X", "phone": "+86 138 1234 567"}), 422,
                "validation")
    assert "Chinese mobile" in p["errors"][0]["detail"]


def test_a_duplicate_answers_409_with_the_existing_id(srv):
    first = create(srv, "contacts", {"name": "Ann", "email": "ann@example.com",
                                     "phone": "+86 138 1234 5678"}).json
    # the same e-mail in another case, the same phone written in full-width
    for body, field in (({"name": "A", "email": "ANN@Example.com "}, "email"),
                        ({"name": "A", "phone": "\uff11\uff13\uff18\uff11\uff12\uff13\uff14"
                                                "\uff15\uff16\uff17\uff18"}, "phone")):
        p = problem(create(srv, "contacts", body), 409, "conflict")
        assert p["existing_id"] == first["id"], p
        assert p["errors"][0]["field"] == field
        assert first["id"] not in p["detail"]
    assert len(list_all(srv, srv.admin, "contacts")) == 1
    # a contact's own values are not a duplicate of itself
    r = srv.req("PATCH", f"/v1/contacts/{first['id']}", key=srv.admin,
                body={"email": "Ann@EXAMPLE.com", "title": "CEO"})
    assert r.status == 200 and r.json["email"] == "ann@example.com"
    # an update onto another contact's phone is refused too
    other = create(srv, "contacts", {"name": "Bob", "email": "bob@example.com"}).json
    p = problem(srv.req("PATCH", f"/v1/contacts/{other['id']}", key=srv.admin,
                        body={"phone": "0086 138 1234 5678"}), 409, "conflict")
    assert p["existing_id"] == first["id"]


def test_upsert_updates_the_record_it_duplicates(srv):
    first = create(srv, "contacts", {"name": "Ann", "email": "ann@example.com"}).json
    r = create(srv, "contacts", {"email": " ANN@example.com", "title": "CTO"},
               query="?upsert=true")
    assert r.status == 200, r
    assert r.json["id"] == first["id"] and r.json["title"] == "CTO"
    assert r.json["name"] == "Ann" and r.json["version"] == 2
    # no conflict: a create
    r = create(srv, "contacts", {"name": "Cy", "email": "cy@example.com"}, query="?upsert=true")
    assert r.status == 201 and r.json["id"] != first["id"]
    assert len(list_all(srv, srv.admin, "contacts")) == 2


FIVE_WAYS = (
    "First Name,Last Name,Email,Phone,Title\r\n"
    "Wei,Zhang,wei.zhang@example.cn,138-1234-5678,\r\n"
    "Wei,Zhang, Wei.Zhang@Example.CN ,+86 138 1234 5678,Engineer\r\n"
    "Wei,Zhang,WEI.ZHANG@EXAMPLE.CN,,\r\n"
    ",,,\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18,\r\n"
    "Wei,Zhang,mailto:wei.zhang@example.cn,0086 138 1234 5678,Lead engineer\r\n"
)
MAP = urllib.parse.quote(
    "First Name:first_name,Last Name:last_name,Email:email,Phone:phone,Title:title", safe="")


def test_the_same_person_written_five_ways_is_one_contact(srv):
    # without upsert: the first row is created, the others are reported as
    # duplicates of it, row by row
    r = srv.req("POST", f"/v1/contacts/import?map={MAP}", key=srv.admin,
                body=FIVE_WAYS.encode(), ctype="text/csv")
    assert r.status == 200, r
    rep = r.json
    assert rep["created"] == 1 and rep["failed"] == 4, rep
    [c] = list_all(srv, srv.admin, "contacts")
    assert {e["status"] for e in rep["errors"]} == {409}
    assert {e["existing_id"] for e in rep["errors"]} == {c["id"]}
    assert [e["row"] for e in rep["errors"]] == [3, 4, 5, 6]
    # with upsert=true every row lands on that contact
    r = srv.req("POST", f"/v1/contacts/import?map={MAP}&upsert=true", key=srv.admin,
                body=FIVE_WAYS.encode(), ctype="text/csv")
    rep = r.json
    assert rep["failed"] == 0 and rep["created"] == 0, rep
    [c] = list_all(srv, srv.admin, "contacts")
    assert c["email"] == "wei.zhang@example.cn" and c["phone"] == ANN
    assert c["name"] == "Wei Zhang" and c["title"] == "Lead engineer"


def test_existing_id_only_for_callers_who_may_read_it(srv):
    # reps who see their own contacts, in clear
    r = srv.req("PUT", "/v1/roles/rep", key=srv.admin, body={
        "collections": {"contacts": {"actions": ["read", "create", "update"], "scope": "own"}},
        "capabilities": ["unmask"]})
    assert r.status == 201, r
    u1 = srv.key("rep", user="u1")
    u2 = srv.key("rep", user="u2")
    mine = create(srv, "contacts", {"name": "Ann", "email": "ann@example.com"}, key=u1).json
    p = problem(create(srv, "contacts", {"name": "A", "email": "ann@example.com"}, key=u2), 409,
                "conflict")
    assert "existing_id" not in p and mine["id"] not in json.dumps(p)
    # nor can u2 upsert onto it: the conflict stands, still without the id
    p = problem(create(srv, "contacts", {"email": "ann@example.com", "title": "x"}, key=u2,
                       query="?upsert=true"), 409, "conflict")
    assert "existing_id" not in p
    assert srv.req("GET", f"/v1/contacts/{mine['id']}", key=u1).json.get("title") is None
    # its owner sees the id
    p = problem(create(srv, "contacts", {"name": "A", "email": "ann@example.com"}, key=u1), 409,
                "conflict")
    assert p["existing_id"] == mine["id"]
    # a role that sees e-mail masked is not told which record has this one,
    # even its own (that would unmask it), and may not upsert on it
    s1 = srv.key("sales", user="s1")
    theirs = create(srv, "contacts", {"name": "Bo", "email": "bo@example.com"}, key=s1).json
    assert theirs["email"] == "b***@example.com"
    p = problem(create(srv, "contacts", {"name": "B", "email": "bo@example.com"}, key=s1), 409,
                "conflict")
    assert "existing_id" not in p
    p = problem(create(srv, "contacts", {"email": "bo@example.com"}, key=s1,
                       query="?upsert=true"), 403, "forbidden")
    assert "masked" in p["detail"]
    # a role that may create but not read: no id, no upsert
    r = srv.req("PUT", "/v1/roles/intake", key=srv.admin, body={
        "collections": {"contacts": {"actions": ["create", "update"]}},
        "capabilities": ["unmask"]})
    intake = srv.key("intake")
    p = problem(create(srv, "contacts", {"name": "A", "email": "ann@example.com"}, key=intake),
                409, "conflict")
    assert "existing_id" not in p
    problem(create(srv, "contacts", {"email": "ann@example.com"}, key=intake,
                   query="?upsert=email"), 403, "forbidden")


def test_companies_match_on_their_domain(srv):
    r = create(srv, "companies", {"name": "Acme", "domain": "https://www.Acme.com/about",
                                  "industry": "Software"})
    assert r.status == 201 and r.json["domain"] == "acme.com", r
    assert r.json["quality"] == 70  # name 30 + domain 25 + industry 15
    p = problem(create(srv, "companies", {"name": "ACME Inc", "domain": "acme.com."}), 409,
                "conflict")
    assert p["existing_id"] == r.json["id"]


def test_configuration(tmp_path, datadir):
    d, token = datadir
    enable(d, tmp_path, {"default_country_code": "44", "match_on": ["email"],
                         "quality_weights": {"contacts": {"email": 1}, "companies": {}}})
    with KithServer(d) as s:
        a = create(s, "contacts", {"name": "A", "email": "a@example.com", "phone": "020 7946 0958"},
                   key=token)
        assert a.status == 201 and a.json["phone"] == "+442079460958" and a.json["quality"] == 100
        # phones no longer identify a contact
        b = create(s, "contacts", {"name": "B", "phone": "+44 20 7946 0958"}, key=token)
        assert b.status == 201 and b.json["quality"] == 0
    # a bad setting refuses the plugin with a reason, and the server starts
    enable(d, tmp_path, {"match_on": ["fax"]})
    with KithServer(d) as s:
        r = s.req("GET", "/v1/plugins", key=token)
        [p] = [p for p in r.json["plugins"] if p["name"] == "identity"]
        assert p["state"] == "refused" and "match_on" in p["reason"], p


def test_a_collection_that_fails_does_not_stop_the_others(tmp_path, datadir):
    # pipeline first: its deals refer to identity's contacts, which do not
    # exist yet, so deals cannot be made; identity's own collections still are
    d, token = datadir
    enable_plugins(d, tmp_path, ["pipeline", "identity"])
    with KithServer(d) as s:
        names = {c["name"] for c in s.req("GET", "/v1/schema", key=token).json["collections"]}
        assert {"contacts", "companies", "pipelines"} <= names and "deals" not in names, names
    log = s.log()
    assert "plugin pipeline: collection deals" in log and "contacts" in log, log[-2000:]
    # in the right order, on the next start, deals is made
    enable_plugins(d, tmp_path, ["identity", "pipeline"])
    with KithServer(d) as s:
        names = {c["name"] for c in s.req("GET", "/v1/schema", key=token).json["collections"]}
        assert "deals" in names and "activities" in names
