"""plugins/identity: POST /v1/contacts/{id}/merge (dry run, survivorship,
related records moved, merged ids redirect) and undoing a merge."""
import pytest

from kithserver import list_all, plugin_server, problem


@pytest.fixture
def srv(tmp_path, datadir):
    s = plugin_server(datadir, tmp_path, ["identity"])
    token = s.admin
    for coll in ("activities", "deals"):
        r = s.req("PUT", f"/v1/schema/{coll}", key=token, body={"fields": [
            {"name": "subject", "type": "string"},
            {"name": "contact_id", "type": "ref", "ref": "contacts", "indexed": True}]})
        assert r.status in (200, 201), r
    yield s
    s.stop()


def post(srv, path, body, key=None):
    return srv.req("POST", path, key=key or srv.admin, body=body)


def get(srv, path, key=None):
    return srv.req("GET", path, key=key or srv.admin)


def people(srv):
    a = post(srv, "/v1/contacts", {"name": "Ann Lee", "email": "ann@example.com", "owner": "u1",
                                   "tags": ["vip"]}).json
    b = post(srv, "/v1/contacts", {"name": "Ann", "phone": "138 1234 5678", "title": "CTO",
                                   "tags": ["cn", "vip"], "owner": "u2"}).json
    # b is the newer record now
    b = srv.req("PATCH", f"/v1/contacts/{b['id']}", key=srv.admin,
                body={"company": "Acme", "name": "Ann Lee-Wang"}).json
    acts = [post(srv, "/v1/activities", {"subject": s, "contact_id": who["id"]}).json["id"]
            for s, who in (("call", b), ("note", b), ("mail", a))]
    deal = post(srv, "/v1/deals", {"subject": "deal", "contact_id": b["id"]}).json["id"]
    return a, b, acts, deal


def field(res, name):
    [f] = [f for f in res["fields"] if f["field"] == name]
    return f


def test_dry_run_shows_the_survivor_and_changes_nothing(srv):
    a, b, acts, deal = people(srv)
    r = post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]], "dry_run": True})
    assert r.status == 200, r
    m = r.json
    assert m["dry_run"] is True and "merge_id" not in m
    rec = m["record"]
    assert rec["email"] == "ann@example.com" and rec["phone"] == "+8613812345678"
    assert rec["name"] == "Ann Lee-Wang"  # newest non-empty value
    assert rec["owner"] == "u1"           # the survivor's, by the default rule
    assert rec["tags"] == ["vip", "cn"]   # arrays are united
    assert field(m, "name") == {"field": "name", "value": "Ann Lee-Wang", "from": b["id"],
                                "rule": "newest"}
    assert field(m, "owner")["rule"] == "survivor" and field(m, "owner")["from"] == a["id"]
    assert field(m, "email")["from"] == a["id"]
    assert m["moves"] == {"activities": 2, "deals": 1, "tickets": 0, "leads": 0}
    # a rule in the request wins
    r = post(srv, f"/v1/contacts/{a['id']}/merge",
             {"ids": [b["id"]], "dry_run": True, "rules": {"name": "survivor", "owner": "newest"}})
    assert r.json["record"]["name"] == "Ann Lee" and r.json["record"]["owner"] == "u2"
    # nothing was written
    assert "merged_into" not in get(srv, f"/v1/contacts/{b['id']}").json
    assert get(srv, f"/v1/activities/{acts[0]}").json["contact_id"] == b["id"]
    assert len(list_all(srv, srv.admin, "contact_merges")) == 0


def test_merge_moves_redirects_and_undoes(srv):
    a, b, acts, deal = people(srv)
    r = post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]]})
    assert r.status == 200, r
    m = r.json
    assert m["record"]["phone"] == "+8613812345678" and m["record"]["title"] == "CTO"
    assert m["record"]["quality"] == 95  # all but lifecycle_stage
    # the survivor, the related records, the merged id redirecting
    survivor = get(srv, f"/v1/contacts/{a['id']}").json
    assert survivor["tags"] == ["vip", "cn"] and survivor["company"] == "Acme"
    for x in acts:
        assert get(srv, f"/v1/activities/{x}").json["contact_id"] == a["id"]
    assert get(srv, f"/v1/deals/{deal}").json["contact_id"] == a["id"]
    r = get(srv, f"/v1/contacts/{b['id']}")
    assert r.status == 308 and r.headers["location"] == f"/v1/contacts/{a['id']}", r
    assert r.json["id"] == a["id"]
    # B's phone now identifies A
    p = problem(post(srv, "/v1/contacts", {"name": "x", "phone": "+86 138 1234 5678"}), 409,
                "conflict")
    assert p["existing_id"] == a["id"]
    # the merge is a record, in the change log; it cannot run twice
    [mr] = list_all(srv, srv.admin, "contact_merges")
    assert mr["id"] == m["merge_id"] and mr["merged"] == [b["id"]] and len(mr["moved"]) == 3
    problem(post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]]}), 409, "conflict")

    # undo: everything as it was
    r = post(srv, f"/v1/contacts/merges/{m['merge_id']}/undo", None)
    assert r.status == 200, r
    assert r.json["moved_back"] == 3 and r.json["restored"] == [b["id"]]
    rb = get(srv, f"/v1/contacts/{b['id']}")
    assert rb.status == 200 and rb.json["phone"] == "+8613812345678"
    assert "merged_into" not in rb.json and rb.json["name"] == "Ann Lee-Wang"
    ra = get(srv, f"/v1/contacts/{a['id']}").json
    assert "phone" not in ra and ra["tags"] == ["vip"] and ra["name"] == "Ann Lee"
    assert [get(srv, f"/v1/activities/{x}").json["contact_id"] for x in acts] == [
        b["id"], b["id"], a["id"]]
    assert get(srv, f"/v1/deals/{deal}").json["contact_id"] == b["id"]
    problem(post(srv, f"/v1/contacts/merges/{m['merge_id']}/undo", None), 409, "conflict")
    # the change log has the merge, its undo and every write between
    r = get(srv, "/v1/changes?after=0&limit=1000")
    colls = [c["collection"] for c in r.json["changes"] if c.get("collection")]
    assert colls.count("contact_merges") == 2


def test_undo_refuses_to_lose_a_later_change(srv):
    a, b, acts, deal = people(srv)
    m = post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]]}).json
    srv.req("PATCH", f"/v1/contacts/{a['id']}", key=srv.admin, body={"title": "CEO"})
    p = problem(post(srv, f"/v1/contacts/merges/{m['merge_id']}/undo", None), 409, "conflict")
    assert "changed after the merge" in p["detail"]
    assert get(srv, f"/v1/contacts/{b['id']}").status == 308


def test_bad_merges(srv):
    a, b, acts, deal = people(srv)
    url = f"/v1/contacts/{a['id']}/merge"
    problem(post(srv, url, {"ids": []}), 400, "invalid")
    problem(post(srv, url, {"ids": [a["id"]]}), 400, "invalid")
    problem(post(srv, url, {"ids": [b["id"], b["id"]]}), 400, "invalid")
    problem(post(srv, url, {"ids": [b["id"]], "rules": {"name": "longest"}}), 400, "invalid")
    problem(post(srv, url, {"ids": [b["id"]], "dry_run": "yes"}), 400, "invalid")
    problem(post(srv, url, "[1]"), 400, "invalid")
    problem(post(srv, url, {"ids": ["01JD0000000000000000000000"]}), 404, "not-found")
    problem(post(srv, "/v1/contacts/merges/01JD0000000000000000000000/undo", None), 404,
            "not-found")
    # a rep merges only what is theirs: the other rep's contact is not found
    u1 = srv.key("sales", user="u1")
    problem(post(srv, url, {"ids": [b["id"]]}, key=u1), 404, "not-found")
    readonly = srv.key("readonly")
    problem(post(srv, url, {"ids": [b["id"]]}, key=readonly), 403, "forbidden")
    assert "merged_into" not in get(srv, f"/v1/contacts/{b['id']}").json


def test_a_role_that_sees_masked_values_merges_the_real_ones(srv):
    s1 = srv.key("sales", user="s1", team="t1")
    a = post(srv, "/v1/contacts", {"name": "Ann", "email": "ann@example.com"}, key=s1).json
    b = post(srv, "/v1/contacts", {"name": "Ann L", "phone": "13812345678"}, key=s1).json
    assert a["email"] == "a***@example.com"  # what s1 sees
    r = post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]], "dry_run": True}, key=s1)
    assert r.status == 200, r
    assert r.json["record"]["phone"] == "+86 138****5678"  # the answer stays masked
    r = post(srv, f"/v1/contacts/{a['id']}/merge", {"ids": [b["id"]]}, key=s1)
    assert r.status == 200, r
    assert r.json["record"]["email"] == "a***@example.com"
    # what was written is the real values, not their masks
    got = get(srv, f"/v1/contacts/{a['id']}").json
    assert got["email"] == "ann@example.com" and got["phone"] == "+8613812345678"
    # and undo restores them
    r = post(srv, f"/v1/contacts/merges/{r.json['merge_id']}/undo", None, key=s1)
    assert r.status == 200, r
    assert get(srv, f"/v1/contacts/{b['id']}").json["phone"] == "+8613812345678"
    # the merge record keeps clear values: masked for such a role
    [m] = list_all(srv, s1, "contact_merges")
    assert m["before"] == "***"


def test_merged_into_is_the_merges_own(srv):
    a = post(srv, "/v1/contacts", {"name": "A", "email": "a@example.com"}).json
    b = post(srv, "/v1/contacts", {"name": "B", "email": "b@example.com"}).json
    # a client cannot set it (a duplicate could hide behind it, or a record
    # redirect to itself), on create or update
    p = problem(post(srv, "/v1/contacts", {"name": "C", "email": "a@example.com",
                                           "merged_into": a["id"]}), 422, "validation")
    assert p["errors"][0]["field"] == "merged_into"
    for target in (a["id"], b["id"]):
        problem(srv.req("PATCH", f"/v1/contacts/{b['id']}", key=srv.admin,
                        body={"merged_into": target}), 422, "validation")
    assert get(srv, f"/v1/contacts/{b['id']}").status == 200
