"""Kith's shipped Lua over HTTPS: GET /v1/scripts/shipped lists scripts/ (rules
and the modules require() serves), POST /v1/scripts/{name}/enable makes a
shipped rule an ordinary, audited, versioned script of one workspace (the
others are unaffected), which acts on writes and can be edited, deleted and
enabled again; unknown names are 404, roles without the scripts capability
get 403, and a data directory's own scripts_dir (kith.json) replaces the
shipped directory (a rule that fails its check is 422).
"""
import hashlib
import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone

import kithserver as ks
from conftest import BIN, ROOT
from kithserver import PROBLEM, KithServer, problem, schema

SCRIPTS = ROOT / "scripts"
RULES = ("normalize_contacts", "require_owner", "stamp_stage_changes", "ticket_due_dates")

CONTACTS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "first_name", "type": "string"},
    {"name": "company", "type": "string"},
    {"name": "email", "type": "email"},
    {"name": "note", "type": "string"},
]
DEALS = [
    {"name": "title", "type": "string"},
    {"name": "owner", "type": "string"},
    {"name": "stage", "type": "enum", "values": ["lead", "proposal", "won", "lost"]},
    {"name": "stage_changed_at", "type": "datetime"},
    {"name": "amount", "type": "int"},
]
TICKETS = [
    {"name": "subject", "type": "string"},
    {"name": "priority", "type": "enum", "values": ["low", "normal", "high", "urgent"]},
    {"name": "due_at", "type": "datetime"},
]




def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped(srv, key):
    r = srv.req("GET", "/v1/scripts/shipped", key=key)
    assert r.status == 200, r
    return r.json


def entry(listing, name):
    return next(s for s in listing["scripts"] if s["name"] == name)


def enable(srv, key, name):
    return srv.req("POST", f"/v1/scripts/{name}/enable", key=key)


def create(srv, key, coll, body, status=201):
    r = srv.req("POST", f"/v1/{coll}", key=key, body=body)
    assert r.status == status, r
    return r.json


def patch(srv, key, coll, rid, body, status=200):
    r = srv.req("PATCH", f"/v1/{coll}/{rid}", key=key, body=body)
    assert r.status == status, r
    return r.json


def script_names(srv, key):
    return [s["name"] for s in srv.req("GET", "/v1/scripts", key=key).json["scripts"]]


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- listing

def test_list_shipped(server):
    k = server.admin
    got = shipped(server, k)
    names = [s["name"] for s in got["scripts"]]
    assert names == sorted(names), names
    for name in RULES:
        s = entry(got, name)
        assert s["sha256"] == sha(SCRIPTS / f"{name}.lua"), s
        assert s["bytes"] == (SCRIPTS / f"{name}.lua").stat().st_size, s
        assert len(s["description"]) > 20 and "\n" not in s["description"], s
        assert s["enabled"] is False and "version" not in s, s
    # the description is the header comment's first paragraph
    first = (SCRIPTS / "require_owner.lua").read_text().split("\n--\n")[0]
    assert entry(got, "require_owner")["description"] == \
        " ".join(line.lstrip("-").strip() for line in first.splitlines())
    mods = {m["name"]: m for m in got["modules"]}
    assert {"fields", "dates"} <= set(mods), got["modules"]
    assert mods["fields"]["sha256"] == sha(SCRIPTS / "lib" / "fields.lua")
    # 'shipped' is the listing's path, never a script's name
    problem(server.req("PUT", "/v1/scripts/shipped", key=k, body="local x = 1\n",
                       ctype="text/x-lua"), 400, "invalid")
    assert "shipped" not in script_names(server, k)


# ---------------------------------------------------------------- enabling

def test_enable_in_one_workspace_edit_and_reenable(server):
    a = server.admin
    ks.workspace_create(server, "b")
    b = server.key("admin", "b")
    for key in (a, b):
        schema(server, key, "contacts", CONTACTS)
    who = ks.me(server, a)
    mark = ks.audit_all(server, a)[-1]["seq"]
    digest = sha(SCRIPTS / "normalize_contacts.lua")

    en = enable(server, a, "normalize_contacts")
    assert en.status == 201, en
    assert en.json == {"name": "normalize_contacts", "version": 1, "origin": "shipped",
                       "shipped_sha256": digest}, en.json
    messy = {"name": "  Ada   Lovelace ", "first_name": "\u00a0Ada", "company": " Analytical  Engines ",
             "email": "  Ada@Example.COM "}
    c = create(server, a, "contacts", messy)
    assert (c["name"], c["first_name"], c["company"], c["email"]) == \
        ("Ada Lovelace", "Ada", "Analytical Engines", "ada@example.com"), c
    c = patch(server, a, "contacts", c["id"], {"email": "BOB@X.ORG", "note": "x"})
    assert c["email"] == "bob@x.org", c
    # a blank name is removed by the rule, so the schema says it is missing
    r = server.req("POST", "/v1/contacts", key=a, body={"name": "   "})
    assert r.status == 422 and "name" in r.body.decode(), r

    # the other workspace is unaffected
    cb = create(server, b, "contacts", messy)
    assert cb["name"] == "  Ada   Lovelace " and cb["email"] == "Ada@Example.COM", cb
    assert script_names(server, b) == []
    assert entry(shipped(server, b), "normalize_contacts")["enabled"] is False
    problem(server.req("GET", "/v1/scripts/normalize_contacts", key=b), 404, "not-found")

    # an ordinary script of workspace a: listed, versioned, sourced, audited
    s = entry(shipped(server, a), "normalize_contacts")
    assert (s["enabled"], s["version"], s["modified"]) == (True, 1, False), s
    assert {"name": "normalize_contacts", "version": 1, "versions": 1, "origin": "shipped"} in \
        server.req("GET", "/v1/scripts", key=a).json["scripts"]
    one = server.req("GET", "/v1/scripts/normalize_contacts", key=a).json
    assert one["source"] == (SCRIPTS / "normalize_contacts.lua").read_text(), one
    assert one["origin"] == "shipped" and one["shipped_sha256"] == digest, one
    assert one["versions"][0]["origin"] == "shipped", one
    assert one["versions"][0]["by"] in (who["user"], who["key_id"]), one
    hooks = server.req("GET", "/v1/hooks", key=a).json["hooks"]
    assert {h["key"] for h in hooks if h["owner"] == "script:normalize_contacts"} == \
        {"script:normalize_contacts/normalize-create", "script:normalize_contacts/normalize-update"}
    audited = [e for e in ks.audit_all(server, a, after=mark) if e["collection"] == "_scripts"]
    assert [e["request"] for e in audited] == [en.headers["x-request-id"]], audited
    assert audited[0]["actor"] == who["key_id"], audited

    # enabling what is live already stores nothing
    again = enable(server, a, "normalize_contacts")
    assert again.status == 200 and again.json["version"] == 1, again

    # edited afterwards like any script: company is no longer touched
    edited = one["source"].replace('"last_name", "company"}', '"last_name"}')
    assert edited != one["source"]
    r = server.req("PUT", "/v1/scripts/normalize_contacts", key=a, body=edited,
                   ctype="text/x-lua")
    assert r.status == 200 and r.json == {"name": "normalize_contacts", "version": 2}, r
    c = create(server, a, "contacts", messy)
    assert c["company"] == " Analytical  Engines " and c["name"] == "Ada Lovelace", c
    one = server.req("GET", "/v1/scripts/normalize_contacts", key=a).json
    assert "origin" not in one and one["source"] == edited, one
    assert [v.get("origin") for v in one["versions"]] == ["shipped", None], one
    s = entry(shipped(server, a), "normalize_contacts")
    assert (s["enabled"], s["version"], s["modified"]) == (True, 2, True), s

    # enabling again restores the shipped source as a new version
    r = enable(server, a, "normalize_contacts")
    assert r.status == 200 and r.json["version"] == 3 and r.json["origin"] == "shipped", r
    assert create(server, a, "contacts", messy)["company"] == "Analytical Engines"
    # deleted like any script, then enabled again
    assert server.req("DELETE", "/v1/scripts/normalize_contacts", key=a).status == 204
    assert entry(shipped(server, a), "normalize_contacts")["enabled"] is False
    assert create(server, a, "contacts", messy)["company"] == " Analytical  Engines "
    r = enable(server, a, "normalize_contacts")
    assert r.status == 200 and r.json["version"] == 5, r
    assert create(server, a, "contacts", messy)["company"] == "Analytical Engines"


def test_shipped_rules_act_on_writes(server):
    k = server.admin
    schema(server, k, "deals", DEALS)
    schema(server, k, "tickets", TICKETS)
    for name in ("require_owner", "stamp_stage_changes", "ticket_due_dates"):
        r = enable(server, k, name)
        assert r.status == 201, r

    # require_owner: a deal needs an owner, on create and on update
    p = problem(server.req("POST", "/v1/deals", key=k, body={"title": "no owner"}), 422,
                "vetoed")
    assert "a deal needs an owner" in p["detail"], p
    problem(server.req("POST", "/v1/deals", key=k, body={"title": "t", "owner": "  "}), 422,
            "vetoed")
    d = create(server, k, "deals", {"title": "t", "owner": "ada", "stage": "lead"})
    problem(server.req("PATCH", f"/v1/deals/{d['id']}", key=k, body={"owner": ""}), 422,
            "vetoed")

    # stamp_stage_changes: set at create, moved only by a stage change
    first = d["stage_changed_at"]
    assert abs((ts(first) - ts(d["created_at"])).total_seconds()) < 5, d
    time.sleep(0.01)
    d2 = patch(server, k, "deals", d["id"], {"amount": 5})
    assert d2["stage_changed_at"] == first, d2
    d3 = patch(server, k, "deals", d["id"], {"stage": "lead", "amount": 6})
    assert d3["stage_changed_at"] == first, d3
    d4 = patch(server, k, "deals", d["id"], {"stage": "won"})
    assert ts(d4["stage_changed_at"]) > ts(first), d4
    nostage = create(server, k, "deals", {"title": "t", "owner": "ada"})
    assert "stage_changed_at" not in nostage, nostage

    # ticket_due_dates: working hours from the priority, unless given
    t = create(server, k, "tickets", {"subject": "down", "priority": "urgent"})
    due, made = ts(t["due_at"]), ts(t["created_at"])
    assert (due - made).total_seconds() >= 4 * 3600 - 5, t
    assert due.weekday() < 5 and (9 <= due.hour < 17 or (due.hour, due.minute) == (17, 0)), t
    low = create(server, k, "tickets", {"subject": "later", "priority": "low"})
    assert ts(low["due_at"]) > due, low
    given = create(server, k, "tickets", {"subject": "s", "due_at": "2030-01-01T00:00:00Z"})
    assert given["due_at"].startswith("2030-01-01T00:00:00"), given


# ---------------------------------------------------------------- refusals

def test_unknown_names_are_404(server):
    k = server.admin
    for name in ("nope", "shipped", "Bad%20Name", "fields", "lib", "..%2Fscripts", "a" * 65):
        r = enable(server, k, name)
        assert r.status in (404, 400), (name, r)
        if r.status == 404:
            problem(r, 404, "not-found")
    problem(enable(server, k, "nope"), 404, "not-found")
    assert script_names(server, k) == []


def test_roles_without_the_scripts_capability_get_403(server):
    schema(server, server.admin, "contacts", CONTACTS)
    for role in ("manager", "sales", "support", "readonly"):
        key = server.key(role)
        for method, path in (("GET", "/v1/scripts/shipped"),
                             ("POST", "/v1/scripts/normalize_contacts/enable")):
            r = server.req(method, path, key=key)
            assert ks.is_forbidden(r), (role, method, path, r)
    assert script_names(server, server.admin) == []
    c = create(server, server.admin, "contacts", {"name": "  x  "})
    assert c["name"] == "  x  "


# ---------------------------------------------------------------- scripts_dir

BROKEN = "-- A rule that does not compile.\nkith.on('contacts.created', function(ev)\n"
GOOD = ('-- Marks contacts with the helper module.\n'
        'local h = require("helper")\n'
        'kith.on("contacts.before_create", function(ev) ev.record.note = h.mark() end)\n')
HELPER = '-- A helper.\nlocal M = {}\nfunction M.mark() return "from helper" end\nreturn M\n'


def test_scripts_dir_from_config(datadir, tmp_path):
    d, token = datadir
    mine = d / "myscripts"
    (mine / "lib").mkdir(parents=True)
    (mine / "broken.lua").write_text(BROKEN)
    (mine / "good.lua").write_text(GOOD)
    (mine / "lib" / "helper.lua").write_text(HELPER)
    cfg = json.loads((d / "kith.json").read_text())
    cfg["scripts_dir"] = "myscripts"
    (d / "kith.json").write_text(json.dumps(cfg))

    srv = KithServer(d).start()
    try:
        k = token
        schema(srv, k, "contacts", CONTACTS)
        got = shipped(srv, k)
        assert [s["name"] for s in got["scripts"]] == ["broken", "good"], got
        assert [m["name"] for m in got["modules"]] == ["helper"], got
        assert entry(got, "good")["description"] == "Marks contacts with the helper module."
        p = problem(enable(srv, k, "broken"), 422, "invalid-script")
        assert re.search(r"broken:\d+:", p["detail"]), p
        assert script_names(srv, k) == []
        assert enable(srv, k, "good").status == 201
        assert create(srv, k, "contacts", {"name": "x"})["note"] == "from helper"
        # the shipped directory is replaced, not added to
        problem(enable(srv, k, "normalize_contacts"), 404, "not-found")
        # a script deployed with PUT requires the same modules
        r = srv.req("PUT", "/v1/scripts/own", key=k, ctype="text/x-lua",
                    body='assert(require("helper").mark() == "from helper")\n'
                         'assert(not pcall(require, "fields"))\n')
        assert r.status == 201, r
    finally:
        srv.stop()

    # a scripts_dir that is not a directory stops the server with the key named
    cfg["scripts_dir"] = "missing"
    (d / "kith.json").write_text(json.dumps(cfg))
    p = subprocess.run([str(BIN / "kith"), "serve", "--data", str(d), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, KITH_LOG="warn"))
    assert p.returncode != 0 and "scripts_dir" in p.stderr, p


def test_reserved_and_bad_names_are_404_whatever_came_before(server):
    """The answer for a name that cannot be shipped does not depend on the
    error an earlier request left on the thread (it used to be a 500)."""
    k = server.admin
    r = server.req("PUT", "/v1/scripts/broken", key=k, body="this is not lua",
                   ctype="text/x-lua")
    problem(r, 422, "invalid-script")
    for name in ("shipped", "a" * 65):
        problem(enable(server, k, name), 404, "not-found")
