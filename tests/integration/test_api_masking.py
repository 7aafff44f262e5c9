"""Sensitive fields over HTTPS: masking in every output, no filtering or
sorting by a masked field, and the audit log of writes, exports and unmasked
reads.

Roles without the unmask capability (sales, support, readonly) see a phone
13812345678 as 138****5678, an e-mail alice@example.com as a***@example.com
and other text as its first character and ***; admin and manager see clear
values, and every response that shows them in clear is audited.
"""
import csv
import io
import json
import re
import urllib.parse

import pytest

from conftest import kith
import kithserver as ks
from kithserver import schema

CONTACTS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "owner", "type": "string", "indexed": True},
    {"name": "team", "type": "string", "indexed": True},
    {"name": "email", "type": "email", "unique": True, "sensitive": True},
    {"name": "phone", "type": "phone", "indexed": True, "sensitive": True},
    {"name": "note", "type": "text", "sensitive": True},
    {"name": "city", "type": "string", "indexed": True},
]
SENSITIVE = ("email", "phone", "note")

# label -> record; the masked forms are what the issue specifies
PEOPLE = {
    "alpha": {"name": "c-alpha", "owner": "u1", "team": "t1", "email": "alice@example.com",
              "phone": "13812345678", "note": "Confidential memo", "city": "Paris"},
    "bravo": {"name": "c-bravo", "owner": "u2", "team": "t1", "email": "bob.smith@example.org",
              "phone": "13987654321", "note": "Private remark", "city": "Lyon"},
    "charlie": {"name": "c-charlie", "owner": "u3", "team": "t2", "email": "carol@example.net",
                "phone": "13611112222", "note": "Hush hush", "city": "Nice"},
}
MASKED = {
    "alpha": {"email": "a***@example.com", "phone": "138****5678", "note": "C***"},
    "bravo": {"email": "b***@example.org", "phone": "139****4321", "note": "P***"},
    "charlie": {"email": "c***@example.net", "phone": "136****2222", "note": "H***"},
}
# values only ever written during the tests (never seeded)
NEW = {"email": "zed.newman@example.com", "phone": "13755556666", "note": "Top secret plan"}

MASKED_ROLES = ("sales", "support", "readonly")
UNMASK_ROLES = ("admin", "manager")
IDENT = {"sales": ("u1", "t1"), "support": ("s1", "t2")}


def fragments(values):
    """Pieces of raw sensitive values that no masked output may contain."""
    out = set()
    for v in values:
        out.add(v)
        if "@" in v:
            out.add(v.split("@")[0][1:] + "@")           # the hidden local part
        elif v.isdigit():
            out.add(v[2:9])                               # the hidden middle digits
        else:
            out.add(v[1:])                                # all but the first character
    return out


RAW = fragments([p[f] for p in PEOPLE.values() for f in SENSITIVE] + list(NEW.values()))


def leaks(data):
    """The RAW fragments found in data (case-insensitively: e-mails are)."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    text = text.lower()
    return sorted(f for f in RAW if f.lower() in text)


def mask_of(field, value):
    """The masking rule of the issue, for values this file writes."""
    if field == "email":
        local, domain = value.split("@")
        return local[0] + "***@" + domain
    if field == "phone":
        return value[:3] + "*" * (len(value) - 7) + value[-4:]
    return value[0] + "***"


def check_masked(rec, label=None, where=""):
    """rec shows every sensitive field it carries masked (as MASKED[label])."""
    for f in SENSITIVE:
        if f not in rec:
            continue
        want = MASKED[label][f] if label else None
        if want is not None:
            assert rec[f] == want, (where, f, rec)
        assert not leaks(json.dumps(rec)), (where, rec)


def check_clear(rec, label, where=""):
    for f in SENSITIVE:
        if f in rec:
            assert rec[f] == PEOPLE[label][f], (where, f, rec)


class World:
    def __init__(self, srv):
        self.srv = srv
        self.keys = {}
        self.ids = {}      # label -> id
        self.key_ids = {}  # role -> key id


def seed(srv):
    w = World(srv)
    a = srv.admin
    schema(srv, a, "contacts", CONTACTS)
    w.keys["admin"] = a
    for role in ("manager", "sales", "support", "readonly"):
        user, team = IDENT.get(role, (None, None))
        w.keys[role] = srv.key(role, "default", user, team)
    # a custom role that may import (and read) but not unmask
    r = srv.req("PUT", "/v1/roles/importer", key=a, body={
        "collections": {"contacts": {"actions": ["read", "create", "import", "export"]}},
        "capabilities": []})
    assert r.status == 201, r
    w.keys["importer"] = srv.key("importer", "default")
    for role, k in w.keys.items():
        w.key_ids[role] = ks.me(srv, k)["key_id"]
    for label, body in PEOPLE.items():
        r = srv.req("POST", "/v1/contacts", key=a, body=body)
        assert r.status == 201, r
        w.ids[label] = r.json["id"]
    w.label = {v: k for k, v in w.ids.items()}
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    srv = ks.start_server(tmp_path_factory.mktemp("mask"))
    w = seed(srv)
    yield w
    srv.stop()


def visible_labels(role):
    if role in ("sales", "support"):
        user, team = IDENT[role]
        return {l for l, p in PEOPLE.items() if p["owner"] == user or p["team"] == team}
    return set(PEOPLE)


def export_rows(r):
    assert r.status == 200, r
    text = r.body.decode()
    if r.headers["content-type"].startswith("text/csv"):
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(x) for x in text.splitlines() if x.strip()]


# ---------------------------------------------------------------- masking

@pytest.mark.parametrize("role", MASKED_ROLES + UNMASK_ROLES)
def test_reads_mask_for_roles_without_unmask(world, role):
    srv, key = world.srv, world.keys[role]
    masked = role in MASKED_ROLES
    labels = visible_labels(role)
    assert labels

    def check(rec, where):
        label = world.label.get(rec["id"])
        if label is None:  # written by another test: no raw value when masked
            assert not (masked and leaks(json.dumps(rec))), (where, rec)
            return
        assert label in labels, (where, rec)
        if masked:
            check_masked(rec, label, where)
        else:
            check_clear(rec, label, where)

    bodies = []
    for label in labels:
        for q in ("", "?fields=email,phone,note", "?fields=note", "?fields=name,email"):
            r = srv.req("GET", f"/v1/contacts/{world.ids[label]}{q}", key=key)
            assert r.status == 200, r
            check(r.json, f"GET one{q}")
            assert set(SENSITIVE) & set(r.json), r  # the sparse ones still carry some
            bodies.append(r.body)
    for q in ("", "&fields=email,phone,note", "&fields=phone", "&sort=-city", "&city=Paris"):
        r = srv.req("GET", f"/v1/contacts?limit=100{q}", key=key)
        assert r.status == 200, r
        for rec in r.json["data"]:
            check(rec, f"list{q}")
        bodies.append(r.body)
    for body in ({}, {"fields": ["email", "phone", "note"]}, {"filter": {"city": {"in":
                 ["Paris", "Lyon", "Nice"]}}, "sort": "city"}, {"fields": ["note"], "limit": 1}):
        r = srv.req("POST", "/v1/contacts/query", key=key, body=body)
        assert r.status == 200, r
        assert r.json["data"], (body, r)
        for rec in r.json["data"]:
            check(rec, f"query {body}")
        bodies.append(r.body)
    all_listed = {x["id"] for x in ks.list_all(srv, key, "contacts")}
    assert all_listed & set(world.label) == {world.ids[l] for l in labels}
    if masked:
        for b in bodies:
            assert not leaks(b), b


@pytest.mark.parametrize("role", ("sales", "importer", "admin", "manager"))
def test_exports_mask(world, role):
    srv, key = world.srv, world.keys[role]
    masked = role not in UNMASK_ROLES
    labels = visible_labels(role)
    for fmt in ("csv", "ndjson"):
        for fields in ("", "&fields=email,phone,note", "&fields=name,note"):
            r = srv.req("GET", f"/v1/contacts/export?format={fmt}{fields}", key=key)
            rows = export_rows(r)
            assert {world.label[x["id"]] for x in rows if x["id"] in world.label} == labels
            for rec in [x for x in rows if x["id"] in world.label]:
                label = world.label[rec["id"]]
                rec = {k: v for k, v in rec.items() if v not in ("", None)}
                assert set(SENSITIVE) & set(rec), (fmt, fields, rec)
                if masked:
                    check_masked(rec, label, f"export {fmt}{fields}")
                else:
                    check_clear(rec, label, f"export {fmt}{fields}")
            if masked:
                assert not leaks(r.body), r.body


def test_export_defaults_to_ndjson(world):
    r = world.srv.req("GET", "/v1/contacts/export", key=world.keys["sales"])
    assert r.status == 200, r
    rows = export_rows(r)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    for rec in rows:
        check_masked(rec, world.label[rec["id"]], "export default")


@pytest.mark.parametrize("role", ("sales", "support", "admin"))
def test_write_responses_mask(world, role):
    """The record echoed by POST (201), PATCH and PUT; bulk results."""
    srv, key = world.srv, world.keys[role]
    masked = role != "admin"
    tag = role
    vals = {"email": f"{tag}.{NEW['email']}", "phone": NEW["phone"], "note": NEW["note"]}
    RAW.update(fragments(vals.values()))
    r = srv.req("POST", "/v1/contacts", key=key, body={"name": f"w-{tag}", **vals})
    assert r.status == 201, r
    rec = r.json
    rid = rec["id"]
    for f in SENSITIVE:
        assert rec[f] == (mask_of(f, vals[f]) if masked else vals[f]), (f, rec)
    if masked:
        assert not leaks(r.body), r.body
    # PATCH a non-sensitive field: the sensitive ones come back as the role may see them
    r = srv.req("PATCH", f"/v1/contacts/{rid}", key=key, body={"city": "Rome"})
    assert r.status == 200, r
    for f in SENSITIVE:
        assert r.json[f] == (mask_of(f, vals[f]) if masked else vals[f]), (f, r.json)
    if masked:
        assert not leaks(r.body), r.body
    vals2 = {"email": f"{tag}.2.{NEW['email']}", "phone": "13700001111", "note": "Quiet words"}
    RAW.update(fragments(vals2.values()))
    body = {"name": f"w-{tag}", **vals2}
    if role in IDENT:
        body["owner"], body["team"] = IDENT[role]
    r = srv.req("PUT", f"/v1/contacts/{rid}", key=key, body=body)
    assert r.status == 200, r
    for f in SENSITIVE:
        assert r.json[f] == (mask_of(f, vals2[f]) if masked else vals2[f]), (f, r.json)
    if masked:
        assert not leaks(r.body), r.body
    # bulk: results name ids and statuses only
    lines = [{"name": f"b-{tag}", "email": f"bulk.{tag}.{NEW['email']}", "phone": NEW["phone"],
              "note": NEW["note"], **dict(zip(("owner", "team"), IDENT.get(role, ())))},
             {"op": "update", "id": rid, "data": {"note": "Bulk secret text"}}]
    RAW.update(fragments([lines[0]["email"], "Bulk secret text"]))
    r = ks.send_whole(srv, "POST", "/v1/contacts/bulk", key=key, ctype="application/x-ndjson",
                      body="".join(json.dumps(x) + "\n" for x in lines))
    assert r.status == 200, r
    res = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x.get("status") for x in res[:2]] == [201, 200], res
    assert not leaks(r.body), r.body


def test_errors_do_not_echo_sensitive_values(world):
    srv = world.srv
    sales, importer = world.keys["sales"], world.keys["importer"]
    bodies = []
    # unique violation on the sensitive e-mail, through every write path
    dup = {"name": "dup", "email": PEOPLE["alpha"]["email"]}
    r = srv.req("POST", "/v1/contacts", key=sales, body=dup)
    assert r.status == 409 and r.json["errors"][0]["field"] == "email", r
    bodies.append(r.body)
    mine = srv.req("POST", "/v1/contacts", key=sales, body={"name": "mine"}).json["id"]
    r = srv.req("PATCH", f"/v1/contacts/{mine}", key=sales,
                body={"email": PEOPLE["bravo"]["email"].upper()})
    assert r.status == 409, r
    bodies.append(r.body)
    r = srv.req("PUT", f"/v1/contacts/{mine}", key=sales,
                body={"name": "mine", "email": PEOPLE["bravo"]["email"]})
    assert r.status == 409, r
    bodies.append(r.body)
    r = ks.send_whole(srv, "POST", "/v1/contacts/bulk", key=sales, ctype="application/x-ndjson",
                      body=json.dumps({**dup, "owner": "u1", "team": "t1"}) + "\n" + json.dumps(
                          {"op": "update", "id": mine, "data": {"phone": "13812345678x"}})
                      + "\n")
    res = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x.get("status") for x in res[:2]] == [409, 422], res
    bodies.append(r.body)
    r = ks.send_whole(srv, "POST", "/v1/contacts/import", key=importer, ctype="text/csv",
                      body="name,email,phone,note\r\n"
                           f"imp,{PEOPLE['charlie']['email']},{PEOPLE['charlie']['phone']},"
                           f"{PEOPLE['charlie']['note']}\r\n")
    assert r.status == 200 and r.json["failed"] == 1 and r.json["errors"][0]["status"] == 409, r
    bodies.append(r.body)
    # invalid values (close to real ones) and refused filters
    for body in ({"name": "x", "phone": PEOPLE["alpha"]["phone"] + "x"},
                 {"name": "x", "email": PEOPLE["alpha"]["email"].replace("@", "@@")}):
        r = srv.req("POST", "/v1/contacts", key=sales, body=body)
        assert r.status == 422, r
        bodies.append(r.body)
    for f in ({"email": PEOPLE["alpha"]["email"]}, {"phone": {"prefix": "1381234"}},
              {"note": {"gt": PEOPLE["alpha"]["note"]}}):
        r = srv.req("POST", "/v1/contacts/query", key=sales, body={"filter": f})
        assert ks.is_forbidden(r), r
        bodies.append(r.body)
    q = urllib.parse.quote(PEOPLE["alpha"]["email"])
    r = srv.req("GET", f"/v1/contacts?email={q}", key=sales)
    assert ks.is_forbidden(r), r
    bodies.append(r.body)
    for b in bodies:
        assert not leaks(b), b
        assert b"alice" not in b and b"13812345678" not in b, b


def test_change_log_and_stream_carry_field_names_only(world):
    srv, a = world.srv, world.keys["admin"]
    last = srv.req("GET", "/v1/changes?limit=1", key=a).json["last_seq"]
    streams = {role: ks.sse(srv, f"/v1/changes/stream?after={last}", key=world.keys[role])
               for role in ("readonly", "admin", "manager")}
    try:
        for s in streams.values():
            assert s.status == 200
        vals = {"email": "stream.person@example.com", "phone": "13566667777",
                "note": "Streamed secret"}
        RAW.update(fragments(vals.values()))
        r = srv.req("POST", "/v1/contacts", key=a, body={"name": "s", **vals})
        assert r.status == 201, r
        rid = r.json["id"]
        vals2 = {"email": "stream.other@example.com", "phone": "13577778888"}
        RAW.update(fragments(vals2.values()))
        assert srv.req("PATCH", f"/v1/contacts/{rid}", key=a, body=vals2).status == 200
        assert srv.req("DELETE", f"/v1/contacts/{rid}", key=a).status == 204

        def done(ev):
            return any(e.get("data", {}).get("id") == rid and e["data"]["op"] == "delete"
                       for e in ev if isinstance(e.get("data"), dict))
        for role, s in streams.items():
            ev = s.events(until=done)
            mine = [e["data"] for e in ev if e["data"]["id"] == rid]
            assert [e["op"] for e in mine] == ["create", "update", "delete"], (role, ev)
            assert set(mine[0]["changed"]) == {"name", *vals}, mine
            assert set(mine[1]["changed"]) == set(vals2), mine
            assert not leaks(s.raw), (role, s.raw)
        for role in ("readonly", "admin", "manager", "sales"):
            log = ks.changes_all(srv, world.keys[role], after=last)
            body = json.dumps(log)
            assert not leaks(body), (role, body)
            ours = [c for c in log if c["id"] == rid]
            if role == "sales":
                assert not ours
            else:
                assert [c["op"] for c in ours] == ["create", "update", "delete"], (role, log)
                assert set(ours[1]["changed"]) == set(vals2)
        # the whole change log, for a reader of everything
        assert not leaks(json.dumps(ks.changes_all(srv, world.keys["readonly"])))
    finally:
        for s in streams.values():
            s.close()


# ---------------------------------------------------------------- filters and sorts

FILTERS = [
    {"email": PEOPLE["alpha"]["email"]},
    {"email": {"eq": PEOPLE["alpha"]["email"]}},
    {"email": {"prefix": "ali"}},
    {"email": {"prefix": "zzz"}},
    {"phone": {"prefix": "138"}},
    {"phone": {"in": [PEOPLE["alpha"]["phone"]]}},
    {"note": {"gt": "A"}},
    {"note": {"exists": True}},
    {"email": {"ne": "x@example.com"}},
    {"not": {"email": PEOPLE["alpha"]["email"]}},
    {"or": [{"city": "Nowhere"}, {"phone": {"prefix": "1381"}}]},
    {"and": [{"city": "Paris"}, {"note": {"prefix": "Conf"}}]},
]
SORTS = ["email", "-email", "phone", "-phone", "note"]


@pytest.mark.parametrize("role", MASKED_ROLES + ("importer",))
def test_masked_roles_cannot_filter_or_sort_by_sensitive_fields(world, role):
    srv, key = world.srv, world.keys[role]
    answers = set()
    for f in FILTERS:
        r = srv.req("POST", "/v1/contacts/query", key=key, body={"filter": f})
        assert ks.is_forbidden(r), (f, r)
        answers.add((r.status, r.json["type"]))
    # no prefix oracle: a matching and a non-matching prefix answer alike
    hit = srv.req("POST", "/v1/contacts/query", key=key,
                  body={"filter": {"email": {"prefix": "a"}}})
    miss = srv.req("POST", "/v1/contacts/query", key=key,
                   body={"filter": {"email": {"prefix": "q"}}})
    assert (hit.status, hit.json["detail"]) == (miss.status, miss.json["detail"])
    for s in SORTS:
        r = srv.req("POST", "/v1/contacts/query", key=key, body={"sort": s})
        assert ks.is_forbidden(r), (s, r)
        r = srv.req("GET", f"/v1/contacts?sort={urllib.parse.quote(s)}", key=key)
        assert ks.is_forbidden(r), (s, r)
    for q in (f"email={urllib.parse.quote(PEOPLE['alpha']['email'])}",
              f"phone={PEOPLE['alpha']['phone']}", "note=Hush%20hush",
              "email=nobody%40example.com"):
        r = srv.req("GET", f"/v1/contacts?{q}", key=key)
        assert ks.is_forbidden(r), (q, r)
    can_export = role in ("sales", "importer")
    for f in FILTERS[:4]:
        flt = urllib.parse.quote(json.dumps(f))
        r = srv.req("GET", f"/v1/contacts/export?format=ndjson&filter={flt}", key=key)
        assert ks.is_forbidden(r), (f, r)
        if can_export:
            assert "sensitive" in r.json["detail"], r
    assert len(answers) == 1


@pytest.mark.parametrize("role", UNMASK_ROLES)
def test_unmask_roles_filter_and_sort_by_sensitive_fields(world, role):
    srv, key = world.srv, world.keys[role]
    ids = world.ids

    def q(body):
        r = srv.req("POST", "/v1/contacts/query", key=key, body=body)
        assert r.status == 200, (body, r)
        return [x["id"] for x in r.json["data"]]
    seeded = {"id": {"in": list(ids.values())}}
    assert q({"filter": {"email": PEOPLE["alpha"]["email"]}}) == [ids["alpha"]]
    assert q({"filter": {"and": [seeded, {"email": {"prefix": "ali"}}]}}) == [ids["alpha"]]
    assert q({"filter": {"email": {"prefix": "zzz"}}}) == []
    assert q({"filter": {"and": [seeded, {"phone": {"prefix": "139"}}]}}) == [ids["bravo"]]
    assert q({"filter": {"and": [seeded, {"note": {"prefix": "Hush"}}]}}) == [ids["charlie"]]
    got = q({"filter": seeded, "sort": "email"})
    assert got == [ids["alpha"], ids["bravo"], ids["charlie"]]
    got = q({"filter": seeded, "sort": "-phone"})
    assert got == [ids["bravo"], ids["alpha"], ids["charlie"]]
    r = srv.req("GET", f"/v1/contacts?email={urllib.parse.quote(PEOPLE['bravo']['email'])}",
                key=key)
    assert r.status == 200 and [x["id"] for x in r.json["data"]] == [ids["bravo"]], r
    check_clear(r.json["data"][0], "bravo")
    r = srv.req("GET", "/v1/contacts?sort=-email&phone=13611112222", key=key)
    assert r.status == 200 and [x["id"] for x in r.json["data"]] == [ids["charlie"]], r
    flt = urllib.parse.quote(json.dumps({"email": {"prefix": "car"}}))
    rows = export_rows(srv.req("GET", f"/v1/contacts/export?format=csv&filter={flt}", key=key))
    assert [x["id"] for x in rows] == [ids["charlie"]]
    check_clear(rows[0], "charlie")


# ---------------------------------------------------------------- audit

def entries_for(entries, request_id):
    return [e for e in entries if e["request"] == request_id]


def test_audit_needs_the_audit_capability(world):
    srv = world.srv
    for role in ("sales", "support", "readonly", "importer"):
        r = srv.req("GET", "/v1/audit", key=world.keys[role])
        assert ks.is_forbidden(r), (role, r)
    for role in UNMASK_ROLES:
        r = srv.req("GET", "/v1/audit?limit=5", key=world.keys[role])
        assert r.status == 200 and r.json["entries"], (role, r)


def test_audit_records_writes(world):
    srv = world.srv
    a, sales, mgr = world.keys["admin"], world.keys["sales"], world.keys["manager"]
    mark = ks.audit_all(srv, a)[-1]["seq"]
    done = []  # (response, key role, action, ids or None, fields)

    r = srv.req("POST", "/v1/contacts", key=a, body={"name": "aud", "email": "aud1@example.com",
                                                      "city": "Oslo"})
    assert r.status == 201, r
    rid = r.json["id"]
    done.append((r, "admin", "create", [rid], {"name", "email", "city"}))
    r = srv.req("PATCH", f"/v1/contacts/{rid}", key=a, body={"phone": "13500001111"})
    done.append((r, "admin", "update", [rid], {"phone"}))
    r = srv.req("PUT", f"/v1/contacts/{rid}", key=a, body={"name": "aud2", "note": "Replaced"})
    done.append((r, "admin", "replace", [rid], {"name", "note"}))
    r = srv.req("DELETE", f"/v1/contacts/{rid}", key=a)
    assert r.status == 204, r
    done.append((r, "admin", "delete", [rid], set()))
    r = srv.req("POST", "/v1/contacts", key=sales, body={"name": "aud-s", "phone": "13500002222"})
    assert r.status == 201, r
    sid = r.json["id"]
    done.append((r, "sales", "create", [sid], {"name", "phone", "owner", "team"}))
    r = srv.req("PATCH", f"/v1/contacts/{sid}", key=sales, body={"note": "Sales note"})
    done.append((r, "sales", "update", [sid], {"note"}))
    RAW.update(fragments(["aud1@example.com", "13500001111", "13500002222", "Sales note",
                          "Replaced"]))
    for resp, role, action, ids, fields in done:
        assert resp.status in (200, 201, 204), resp
    # bulk: one entry per line, all with the bulk request's id
    bulk = ks.send_whole(srv, "POST", "/v1/contacts/bulk", key=mgr, ctype="application/x-ndjson",
                         body=json.dumps({"name": "bulk-1", "city": "Bern"}) + "\n" +
                         json.dumps({"op": "update", "id": sid, "data": {"city": "Genf"}}) + "\n")
    assert bulk.status == 200, bulk
    bres = [json.loads(x) for x in bulk.body.decode().splitlines()]
    bid = bres[0]["id"]
    # import: the rows a batch committed share one entry (ids in order)
    imp = ks.send_whole(srv, "POST", "/v1/contacts/import", key=mgr, ctype="text/csv",
                        body="name,city\r\nimp-1,Graz\r\nimp-2,Linz\r\n")
    assert imp.status == 200 and imp.json["created"] == 2, imp

    entries = ks.audit_all(srv, a, after=mark)
    for resp, role, action, ids, fields in done:
        es = entries_for(entries, resp.headers["x-request-id"])
        es = [e for e in es if e["action"] != "read"]
        assert len(es) == 1, (action, es)
        e = es[0]
        assert e["actor"] == world.key_ids[role], e
        assert e["action"] == action and e["collection"] == "contacts", e
        assert e["ids"] == ids, e
        assert set(e["fields"]) == fields, e
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"]), e
    es = entries_for(entries, bulk.headers["x-request-id"])
    got = sorted((e["action"], tuple(e["ids"]), tuple(sorted(e["fields"]))) for e in es)
    assert got == [("create", (bid,), ("city", "name")), ("update", (sid,), ("city",))], es
    assert all(e["actor"] == world.key_ids["manager"] for e in es)
    es = entries_for(entries, imp.headers["x-request-id"])
    assert es and all(e["action"] == "create" and set(e["fields"]) == {"name", "city"}
                      and e["actor"] == world.key_ids["manager"] for e in es), es
    made = [srv.req("GET", f"/v1/contacts?name={n}", key=a).json["data"] for n in ("imp-1", "imp-2")]
    assert [len(m) for m in made] == [1, 1], made
    assert [i for e in es for i in e["ids"]] == [m[0]["id"] for m in made], es
    # refused writes leave no entry
    r = srv.req("DELETE", f"/v1/contacts/{sid}", key=sales)
    assert ks.is_forbidden(r)
    assert not entries_for(ks.audit_all(srv, a, after=mark), r.headers["x-request-id"])
    assert not leaks(json.dumps(ks.audit_all(srv, a)))


def test_audit_records_exports_and_unmasked_reads_only(world):
    srv = world.srv
    a = world.keys["admin"]
    mark = ks.audit_all(srv, a)[-1]["seq"]
    seeded = sorted(world.ids.values())
    audited, silent = [], []  # (response, role, action, ids or None)

    # every export, masked or not
    for role in ("sales", "admin", "importer", "manager"):
        for fmt in ("csv", "ndjson"):
            r = srv.req("GET", f"/v1/contacts/export?format={fmt}", key=world.keys[role])
            assert r.status == 200, r
            audited.append((r, role, "export", None))
    r = srv.req("GET", "/v1/contacts/export?format=csv&fields=name,city", key=a)
    audited.append((r, "admin", "export", None))
    # reads that reveal sensitive data in clear
    for role in UNMASK_ROLES:
        key = world.keys[role]
        r = srv.req("GET", f"/v1/contacts/{world.ids['alpha']}", key=key)
        audited.append((r, role, "read", [world.ids["alpha"]]))
        r = srv.req("GET", f"/v1/contacts/{world.ids['bravo']}?fields=name,phone", key=key)
        audited.append((r, role, "read", [world.ids["bravo"]]))
        r = srv.req("GET", "/v1/contacts?city=Paris&city=Lyon&city=Nice", key=key)
        audited.append((r, role, "read", seeded))
        r = srv.req("POST", "/v1/contacts/query", key=key,
                    body={"filter": {"id": {"in": seeded}}, "fields": ["note"]})
        audited.append((r, role, "read", seeded))
        # reads that show no sensitive field, even to an unmask role: not audited
        r = srv.req("GET", f"/v1/contacts/{world.ids['alpha']}?fields=name,city", key=key)
        silent.append((r, role))
        r = srv.req("POST", "/v1/contacts/query", key=key,
                    body={"filter": {"id": {"in": seeded}}, "fields": ["name", "city"]})
        silent.append((r, role))
    # masked reads: not audited
    for role in MASKED_ROLES:
        key = world.keys[role]
        lab = sorted(visible_labels(role))[0]
        for path in (f"/v1/contacts/{world.ids[lab]}", "/v1/contacts?limit=100",
                     f"/v1/contacts/{world.ids[lab]}?fields=email,phone,note"):
            silent.append((srv.req("GET", path, key=key), role))
        silent.append((srv.req("POST", "/v1/contacts/query", key=key, body={}), role))
    for r, *_ in audited + silent:
        assert r.status == 200, r

    entries = ks.audit_all(srv, a, after=mark)
    for r, role, action, ids in audited:
        es = entries_for(entries, r.headers["x-request-id"])
        assert len(es) == 1, (action, role, r, es)
        e = es[0]
        assert e["actor"] == world.key_ids[role] and e["action"] == action, e
        assert e["collection"] == "contacts", e
        if ids is not None:
            assert sorted(e["ids"]) == sorted(ids), e
    for r, role in silent:
        assert not entries_for(entries, r.headers["x-request-id"]), (role, r)
    masked_ids = {world.key_ids[r] for r in MASKED_ROLES}
    assert not [e for e in entries if e["action"] == "read" and e["actor"] in masked_ids]
    # the chain: dense sequence, each entry naming its predecessor's hash
    full = ks.audit_all(srv, a)
    assert [e["seq"] for e in full] == list(range(1, len(full) + 1))
    assert full[0]["prev"] == "0" * 64
    for prev, e in zip(full, full[1:]):
        assert e["prev"] == prev["hash"], (prev, e)
    assert not leaks(json.dumps(full))


def test_read_audit_names_the_revealed_fields(world):
    srv, a = world.srv, world.keys["admin"]
    mark = ks.audit_all(srv, a)[-1]["seq"]
    r1 = srv.req("GET", f"/v1/contacts/{world.ids['alpha']}", key=a)
    r2 = srv.req("GET", f"/v1/contacts/{world.ids['bravo']}?fields=name,phone", key=a)
    entries = ks.audit_all(srv, a, after=mark)
    (e1,) = entries_for(entries, r1.headers["x-request-id"])
    (e2,) = entries_for(entries, r2.headers["x-request-id"])
    assert set(SENSITIVE) <= set(e1["fields"]), e1
    assert "phone" in e2["fields"] and not {"email", "note"} & set(e2["fields"]), e2


def test_every_clear_response_is_audited(world):
    """An unmask role's PATCH {} (nothing changes) answers the record with its
    sensitive fields in clear: that reveal must be in the audit log."""
    srv, a = world.srv, world.keys["admin"]
    mark = ks.audit_all(srv, a)[-1]["seq"]
    r = srv.req("PATCH", f"/v1/contacts/{world.ids['charlie']}", key=a, body={})
    assert r.status == 200, r
    assert r.json["email"] == PEOPLE["charlie"]["email"]  # revealed in clear
    es = entries_for(ks.audit_all(srv, a, after=mark), r.headers["x-request-id"])
    assert es and world.ids["charlie"] in es[0]["ids"], es


# ---------------------------------------------------------------- logs and kith check

def test_server_log_never_holds_sensitive_values_and_check_passes(datadir):
    """A fresh server (logging everything, requests included) taken through
    every output, masked and not, including errors; then stopped: its log
    holds no raw sensitive value, and `kith check` (which verifies the audit
    hash chain) passes."""
    d, token = datadir
    srv = ks.KithServer(d, env={"KITH_LOG": "debug"}).start()
    srv.admin = token
    try:
        exercise_and_check(srv)
    finally:
        srv.stop()


def exercise_and_check(srv):
    w = seed(srv)
    a, sales, ro = w.keys["admin"], w.keys["sales"], w.keys["readonly"]
    ida = w.ids["alpha"]
    q = urllib.parse.quote
    for key in (a, sales, ro, w.keys["manager"]):
        srv.req("GET", f"/v1/contacts/{ida}", key=key)
        srv.req("GET", "/v1/contacts?fields=email,phone,note", key=key)
        srv.req("POST", "/v1/contacts/query", key=key,
                body={"filter": {"email": {"prefix": "ali"}}, "sort": "phone"})
        srv.req("GET", f"/v1/contacts?email={q(PEOPLE['alpha']['email'])}&phone=13812345678",
                key=key)
        srv.req("GET", f"/v1/contacts/export?format=csv&filter="
                       f"{q(json.dumps({'email': PEOPLE['alpha']['email']}))}", key=key)
        srv.req("GET", "/v1/contacts/export?format=ndjson", key=key)
        srv.req("GET", "/v1/changes", key=key)
    srv.req("POST", "/v1/contacts", key=sales,
            body={"name": "d", "email": PEOPLE["alpha"]["email"]})
    srv.req("POST", "/v1/contacts", key=sales, body={"name": "d", "phone": "13812345678zz"})
    srv.req("PATCH", f"/v1/contacts/{ida}", key=a, body={"note": "Confidential memo v2"})
    srv.req("PATCH", f"/v1/contacts/{ida}", key=a, body={"note": PEOPLE["alpha"]["note"]})
    srv.req("POST", "/v1/contacts", key=a, body='{"email": "alice@example.com", ')
    ks.send_whole(srv, "POST", "/v1/contacts/bulk", key=sales, ctype="application/x-ndjson",
                  body=json.dumps({"name": "b", "email": PEOPLE["alpha"]["email"]}) + "\n")
    ks.send_whole(srv, "POST", "/v1/contacts/import", key=w.keys["importer"], ctype="text/csv",
                  body=f"name,email,phone\r\ni,{PEOPLE['alpha']['email']},13812345678\r\n")
    with ks.sse(srv, "/v1/changes/stream?after=0", key=ro) as st:
        st.events(until=lambda ev: len(ev) >= 3)
    assert srv.req("GET", "/v1/audit", key=a).status == 200
    srv.stop()
    log = srv.log()
    assert "route=records.get" in log and "route=records.export" in log  # requests were logged
    found = leaks(log)
    assert not found, f"raw sensitive values in the server log: {found}"
    p = kith("check", "--data", srv.datadir)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"workspace default: .*?(\d+) audit entries, \d+ timers: ok", p.stdout)
    assert m and int(m.group(1)) > 10, p.stdout
