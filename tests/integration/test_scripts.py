"""Admin scripts over HTTPS: deploying Lua (PUT/GET/DELETE /v1/scripts,
GET /v1/hooks), before-hooks that amend or veto a write, after-hooks and
domain events delivered after commit (in order, retried, never skipped),
hostile handlers that must fail their write without leaving partial writes or
stalling the server, workspace isolation, and scripts across restarts and a
SIGKILL.

After-hooks run asynchronously: their effects are awaited with poll() (at
most 5 s, 20 ms apart); nothing here asserts on how long anything took. The
guard timeouts on hostile writes only keep a stuck server from hanging the
suite.
"""
import http.client
import json
import re
import signal
import socket
import ssl
import time

import pytest

import kithserver as ks
from kithserver import PROBLEM, KithServer, problem, schema


CONTACTS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "stage", "type": "enum", "values": ["lead", "customer", "lost"]},
    {"name": "reason", "type": "string"},
    {"name": "note", "type": "string"},
    {"name": "hits", "type": "int"},
    {"name": "probe", "type": "string"},
]
MARKERS = [{"name": "contact", "type": "string"}, {"name": "tag", "type": "string"}]
FLAGS = [{"name": "name", "type": "string"}]


# ---------------------------------------------------------------- helpers

def deploy(srv, key, name, src, ctype="text/x-lua"):
    """PUT /v1/scripts/{name} with the source as the raw body."""
    return srv.req("PUT", f"/v1/scripts/{name}", key=key, body=src, ctype=ctype)


def deploy_ok(srv, key, name, src):
    r = deploy(srv, key, name, src)
    assert r.status in (200, 201), r
    return r.json




def poll(fn, timeout=5.0):
    """Calls fn until it returns something truthy or the bound passes; returns
    its last value."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(0.02)


def create(srv, key, coll, body):
    r = srv.req("POST", f"/v1/{coll}", key=key, body=body)
    assert r.status == 201, r
    return r.json


def get(srv, key, coll, rid):
    r = srv.req("GET", f"/v1/{coll}/{rid}", key=key)
    assert r.status == 200, r
    return r.json


def hooks(srv, key, script=None):
    """GET /v1/hooks (in run order), optionally only one script's handlers."""
    r = srv.req("GET", "/v1/hooks", key=key)
    assert r.status == 200, r
    hs = r.json["hooks"]
    return [h for h in hs if script is None or h["owner"] == f"script:{script}"]


def hook(srv, key, hkey):
    """The handler whose key is hkey, or None."""
    return next((h for h in hooks(srv, key) if h["key"] == hkey), None)


def metric(srv, name, workspace="default"):
    """A counter of GET /metrics for one workspace, or None if not exported."""
    text = srv.req("GET", "/metrics").body.decode()
    m = re.search(rf'^{re.escape(name)}{{workspace="{re.escape(workspace)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def log_has(srv, needle, timeout=5.0):
    return poll(lambda: needle in srv.log(), timeout)


def failure_log(srv, request_id):
    """The message the server logged for a failed write (`request ID: msg`)."""
    def find():
        m = re.search(rf"request {re.escape(request_id)}: ([^\n\"]+)", srv.log())
        return m and m.group(1)
    return poll(find)


def post_guarded(srv, key, path, body, guard=10.0):
    """POST on a fresh connection; None if no answer comes within the guard
    (which only keeps a stuck server from hanging the suite)."""
    conn = srv.connection()
    conn.timeout = guard
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": f"Bearer {key}",
                              "Content-Type": "application/json"})
        r = conn.getresponse()
        return ks.Response(r.status, r.getheaders(), r.read())
    except (socket.timeout, TimeoutError, ssl.SSLError, http.client.HTTPException, OSError):
        return None
    finally:
        conn.close()


def restart(srv, sig=signal.SIGTERM):
    """Stops srv (SIGTERM, or SIGKILL) and starts a new server on its data."""
    srv.stop(sig=sig)
    if sig == signal.SIGKILL:
        assert srv.proc.returncode == -signal.SIGKILL
    new = KithServer(srv.datadir).start()
    new.admin = srv.admin
    return new


# ---------------------------------------------------------------- 1. deploy lifecycle

AMEND_V1 = 'kith.on("contacts.before_create", function(ev) ev.record.note = "v1" end)\n'
AMEND_V2 = ('kith.on("contacts.before_create", {name = "amend"}, function(ev)\n'
            '  ev.record.note = "v2"\nend)\n'
            'kith.on("contacts.created", {name = "after"}, function(ev) end)\n')


def test_deploy_lifecycle(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    who = ks.me(server, k)
    mark = ks.audit_all(server, k)[-1]["seq"]

    r1 = deploy(server, k, "lifecycle", AMEND_V1)
    assert r1.status == 201 and r1.json == {"name": "lifecycle", "version": 1}, r1
    assert create(server, k, "contacts", {"name": "a"})["note"] == "v1"
    r2 = deploy(server, k, "lifecycle", AMEND_V2)
    assert r2.status == 200 and r2.json == {"name": "lifecycle", "version": 2}, r2
    assert create(server, k, "contacts", {"name": "b"})["note"] == "v2"

    ls = server.req("GET", "/v1/scripts", key=k)
    assert ls.status == 200, ls
    assert [s for s in ls.json["scripts"] if s["name"] == "lifecycle"] == \
        [{"name": "lifecycle", "version": 2, "versions": 2}], ls.json

    one = server.req("GET", "/v1/scripts/lifecycle", key=k)
    assert one.status == 200, one
    s = one.json
    assert s["name"] == "lifecycle" and s["version"] == 2 and s["source"] == AMEND_V2, s
    assert [v["version"] for v in s["versions"]] == [1, 2], s
    for v in s["versions"]:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", v["deployed_at"]), v
        assert v["by"] in (who["user"], who["key_id"]), v
        assert v["deleted"] is False, v

    hs = hooks(server, k, "lifecycle")
    assert sorted(h["key"] for h in hs) == ["script:lifecycle/after", "script:lifecycle/amend"], hs

    d = server.req("DELETE", "/v1/scripts/lifecycle", key=k)
    assert d.status == 204 and d.body == b"", d
    ls = server.req("GET", "/v1/scripts", key=k).json
    assert "lifecycle" not in [s["name"] for s in ls["scripts"]], ls
    assert hooks(server, k, "lifecycle") == []
    # its handler no longer runs
    assert "note" not in create(server, k, "contacts", {"name": "c"})
    # the history may stay readable, but then it says deleted
    g = server.req("GET", "/v1/scripts/lifecycle", key=k)
    if g.status == 200:
        assert g.json["deleted"] is True and g.json["version"] == 3, g.json
        assert [v["deleted"] for v in g.json["versions"]] == [False, False, True], g.json
    else:
        problem(g, 404, "not-found")
    problem(server.req("DELETE", "/v1/scripts/lifecycle", key=k), 404, "not-found")
    problem(server.req("DELETE", "/v1/scripts/never-was", key=k), 404, "not-found")

    # every deploy (and the delete) is audited as a write of _scripts
    entries = [e for e in ks.audit_all(server, k, after=mark) if e["collection"] == "_scripts"]
    rids = [r1.headers["x-request-id"], r2.headers["x-request-id"], d.headers["x-request-id"]]
    assert [e["request"] for e in entries] == rids, entries
    assert all(e["actor"] == who["key_id"] for e in entries), entries

    # deploying again after the delete brings it back
    r4 = deploy(server, k, "lifecycle", AMEND_V1)
    assert r4.status in (200, 201) and r4.json["version"] == 4, r4
    assert create(server, k, "contacts", {"name": "d"})["note"] == "v1"
    assert [s["version"] for s in server.req("GET", "/v1/scripts", key=k).json["scripts"]
            if s["name"] == "lifecycle"] == [4]


# ---------------------------------------------------------------- 2. refusals

def test_refused_scripts_are_not_stored(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    deploy_ok(server, k, "keep", AMEND_V1)

    def refused(name, src, status=422, kind="invalid-script", ctype="text/x-lua"):
        return problem(deploy(server, k, name, src, ctype=ctype), status, kind)

    # a compile error names the script and the line
    p = refused("keep", "local a = 1\nlocal b = 2\nlocal c = = 3\nreturn a\n")
    assert "keep:3:" in p["detail"], p
    p = refused("fresh", "-- one\n-- two\n-- three\n-- four\nlocal x = (\n")
    assert re.search(r"fresh:\d+:", p["detail"]), p
    # a runtime error at the top level
    p = refused("keep", "local t = {}\n\n\nerror('top level boom')\n")
    assert "keep:4:" in p["detail"] and "top level boom" in p["detail"], p
    refused("fresh", "local x = nil\nreturn x.field\n")
    # kith.on with a bad event name, a missing handler, or outside a handler's reach
    for ev in ("Contacts.created", "contacts", "x.before_crate", "contacts.before_updated",
               "contacts..created", ".created", "contacts.created.", ""):
        p = refused("fresh", f'kith.on({json.dumps(ev)}, function(ev) end)\n')
        assert "fresh:1:" in p["detail"], (ev, p)
    refused("fresh", 'kith.on("contacts.created", "not a function")\n')
    refused("fresh", 'kith.on("contacts.created", {priority = 0}, function() end)\n')
    refused("fresh", 'local r = kith.entity.get("contacts", "x")\n')
    refused("fresh", 'kith.emit("lead.hot", {})\n')
    # a top-level loop runs out of its budget
    refused("fresh", "while true do end\n")
    # wrong content type, bad names
    refused("fresh", AMEND_V1, 415, "unsupported-media-type", ctype="application/json")
    refused("keep", AMEND_V1, 415, "unsupported-media-type", ctype="application/octet-stream")
    for bad in ("Bad%20Name", "UPPER", "a" * 65, "dots.in.name", "%C3%A9t%C3%A9"):
        refused(bad, AMEND_V1, 400, "invalid")
    # not UTF-8, or a NUL byte
    refused("fresh", b"-- caf\xe9\nlocal x = 1\n")
    refused("keep", b"local s = '\xff\xfe'\n")
    refused("fresh", b"local x = 1\x00\n")
    # too large: over 256 KiB (exactly 256 KiB is fine)
    big = b"--" + b"x" * (256 * 1024 - 3) + b"\n"
    assert len(big) == 256 * 1024
    r = deploy(server, k, "fresh", big + b"\n")
    assert r.status in (413, 422), r
    r = deploy(server, k, "keep", big + b"-- more\n")
    assert r.status in (413, 422), r
    assert deploy(server, k, "boundary", big).status == 201

    # nothing refused was stored; keep is still at version 1 and still runs
    problem(server.req("GET", "/v1/scripts/fresh", key=k), 404, "not-found")
    s = server.req("GET", "/v1/scripts/keep", key=k).json
    assert s["version"] == 1 and len(s["versions"]) == 1 and s["source"] == AMEND_V1, s
    names = sorted(s["name"] for s in server.req("GET", "/v1/scripts", key=k).json["scripts"])
    assert names == ["boundary", "keep"], names
    assert [h["owner"] for h in hooks(server, k)] == ["script:keep"]
    assert create(server, k, "contacts", {"name": "still"})["note"] == "v1"


# ---------------------------------------------------------------- 3. before-hooks

RULES = r'''
kith.on("contacts.before_create", {priority = 10, name = "vet"}, function(ev)
  if ev.record.name == "Mallory" then return false, "no Mallory here" end
  ev.record.note = "checked:" .. ev.record.name
end)
kith.on("contacts.before_update", {fields = {"stage"}, name = "stage-counter"}, function(ev)
  if ev.record.stage == "lost" and not ev.record.reason then
    return false, "a lost contact needs a reason"
  end
  ev.record.hits = (ev.before.hits or 0) + 1
end)
kith.on("contacts.before_delete", {name = "keep-customers"}, function(ev)
  if ev.before.stage == "customer" then return false, "customers stay" end
end)
'''


def test_before_hooks_amend_veto_and_filter_fields(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    deploy_ok(server, k, "rules", RULES)
    # run order: priority 10 first
    hs = hooks(server, k, "rules")
    assert [h["key"] for h in hs] == ["script:rules/vet", "script:rules/stage-counter",
                                      "script:rules/keep-customers"], hs
    assert [h["priority"] for h in hs] == [10, 100, 100] and {h["phase"] for h in hs} == {"before"}
    assert hs[1]["fields"] == ["stage"], hs

    # amend on create: the stored record carries the hook's field
    ada = create(server, k, "contacts", {"name": "Ada", "stage": "lead"})
    assert ada["note"] == "checked:Ada" and "hits" not in ada, ada
    assert get(server, k, "contacts", ada["id"])["note"] == "checked:Ada"
    ch = [c for c in ks.changes_all(server, k) if c["id"] == ada["id"]]
    assert ch and "note" in ch[0]["changed"], ch

    # veto: 422 vetoed with the hook's message, nothing stored
    p = problem(server.req("POST", "/v1/contacts", key=k, body={"name": "Mallory"}), 422, "vetoed")
    assert "no Mallory here" in p["detail"], p
    assert [c["name"] for c in ks.list_all(server, k, "contacts")] == ["Ada"]

    # the field filter: only a change of stage runs stage-counter
    def patch(body, status=200):
        r = server.req("PATCH", f"/v1/contacts/{ada['id']}", key=k, body=body)
        assert r.status == status, r
        return r
    assert "hits" not in patch({"note": "edited"}).json
    assert patch({"stage": "customer"}).json["hits"] == 1
    assert patch({"note": "edited again"}).json["hits"] == 1
    assert patch({"stage": "customer"}).json["hits"] == 1          # no change, no run
    r = patch({"stage": "lost"}, 422)
    assert "needs a reason" in problem(r, 422, "vetoed")["detail"]
    cur = get(server, k, "contacts", ada["id"])
    assert cur["stage"] == "customer" and cur["hits"] == 1 and cur["version"] == 4, cur
    assert patch({"stage": "lead", "note": "back"}).json["hits"] == 2
    assert patch({"stage": "lost", "reason": "moved"}).json["hits"] == 3

    # a vetoed delete leaves the record; an allowed one goes
    bob = create(server, k, "contacts", {"name": "Bob", "stage": "customer"})
    p = problem(server.req("DELETE", f"/v1/contacts/{bob['id']}", key=k), 422, "vetoed")
    assert "customers stay" in p["detail"], p
    assert get(server, k, "contacts", bob["id"])["name"] == "Bob"
    assert server.req("DELETE", f"/v1/contacts/{ada['id']}", key=k).status == 204
    assert metric(server, "kith_hook_vetoes_total") == 3
    assert metric(server, "kith_hook_errors_total") == 0


def test_before_hook_amendment_is_validated(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    deploy_ok(server, k, "sloppy", r'''
kith.on("contacts.before_create", function(ev)
  if ev.record.name == "bad-type" then ev.record.hits = "many" end
  if ev.record.name == "unknown" then ev.record.bogus = 1 end
  if ev.record.name == "not-json" then ev.record.note = function() end end
  if ev.record.name == "clear" then ev.record.note = kith.json.null end
end)
''')
    # an amendment that breaks the schema is the hook's mistake, and refused
    for name, field in (("bad-type", "hits"), ("unknown", "bogus")):
        p = problem(server.req("POST", "/v1/contacts", key=k, body={"name": name}), 422,
                    "validation")
        assert "before-hook" in p["detail"] and [e["field"] for e in p["errors"]] == [field], p
    problem(server.req("POST", "/v1/contacts", key=k, body={"name": "not-json"}), 500,
            "handler-failed")
    assert ks.list_all(server, k, "contacts") == []
    # kith.json.null drops a field
    c = create(server, k, "contacts", {"name": "clear", "note": "x"})
    assert "note" not in c and "note" not in get(server, k, "contacts", c["id"]), c


# ---------------------------------------------------------------- 4, 5. after-hooks

CHAIN = r'''
kith.on("contacts.created", {name = "welcome"}, function(ev)
  kith.emit("contact.welcome", {id = ev.id, name = ev.record.name})
end)
kith.on("contact.welcome", {name = "greet"}, function(ev)
  local rec, err = kith.entity.update("contacts", ev.payload.id,
                                      {note = "welcomed " .. ev.payload.name})
  if not rec then error(err.code .. ": " .. err.message) end
end)
'''


def test_after_hook_chain_through_a_domain_event(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    deploy_ok(server, k, "chain", CHAIN)
    hs = hooks(server, k, "chain")
    assert [(h["event"], h["phase"]) for h in hs] == [("contacts.created", "after"),
                                                    ("contact.welcome", "after")], hs
    last = server.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
    names = ["ann", "ben", "cat"]
    ids = [create(server, k, "contacts", {"name": n})["id"] for n in names]

    def welcomed():
        recs = [get(server, k, "contacts", i) for i in ids]
        return recs if all(r.get("note") for r in recs) else None
    recs = poll(welcomed)
    assert recs, [get(server, k, "contacts", i) for i in ids]
    assert [r["note"] for r in recs] == [f"welcomed {n}" for n in names]
    assert all(r["version"] == 2 for r in recs), recs

    ch = [c for c in ks.changes_all(server, k, after=last) if c["collection"] == "contacts"]
    creates = [c for c in ch if c["op"] == "create"]
    updates = [c for c in ch if c["op"] == "update"]
    assert [c["id"] for c in creates] == ids, ch
    # each update follows its create, and they come in commit order
    assert [c["id"] for c in updates] == ids, ch
    assert all(c["changed"] == ["note"] and c["version"] == 2 for c in updates), ch
    seqs = [c["seq"] for c in ch]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), ch
    for i in ids:
        own = [c for c in ch if c["id"] == i]
        assert [c["op"] for c in own] == ["create", "update"], own
    # no loop: the greeting's own update does not run anything further
    assert all(get(server, k, "contacts", i)["version"] == 2 for i in ids)


PINGPONG = r'''
kith.on("pings.created", {name = "ping"}, function(ev)
  kith.entity.create("pongs", {n = ev.record.n + 1})
end)
kith.on("pongs.created", {name = "pong"}, function(ev)
  kith.entity.create("pings", {n = ev.record.n + 1})
end)
'''


def test_after_hook_cascade_stops(server):
    k = server.admin
    schema(server, k, "pings", [{"name": "n", "type": "int"}])
    schema(server, k, "pongs", [{"name": "n", "type": "int"}])
    deploy_ok(server, k, "pingpong", PINGPONG)
    create(server, k, "pings", {"n": 0})
    assert log_has(server, "cascade stopped"), server.log()[-2000:]
    last = server.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
    for name in ("ping", "pong"):
        assert poll(lambda: hook(server, k, f"script:pingpong/{name}")["cursor"] >= last)
    pings = sorted(r["n"] for r in ks.list_all(server, k, "pings"))
    pongs = sorted(r["n"] for r in ks.list_all(server, k, "pongs"))
    # the client's write is depth 0; a change at depth 8 is not delivered
    assert pings == [0, 2, 4, 6, 8] and pongs == [1, 3, 5, 7], (pings, pongs)
    assert metric(server, "kith_hook_cascade_stops_total") == 1
    assert ks.alive(server)


RETRY = r'''
kith.on("contacts.created", {name = "mark"}, function(ev)
  local flags = kith.entity.query("flags", {name = "go"})
  if #flags == 0 then error("flag not set yet") end
  local m, err = kith.entity.create("markers", {contact = ev.id})
  if not m then error(err.message) end
end)
'''


def test_failing_after_hook_is_retried_never_skipped(server):
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    schema(server, k, "markers", MARKERS)
    schema(server, k, "flags", FLAGS)
    deploy_ok(server, k, "retry", RETRY)
    key = "script:retry/mark"
    ids = [create(server, k, "contacts", {"name": f"c{i}"})["id"] for i in range(5)]

    h = poll(lambda: (lambda h: h if h and h["failures"] > 0 and "retry_at" in h else None)(
        hook(server, k, key)))
    assert h, hook(server, k, key)
    assert log_has(server, "flag not set yet")
    assert ks.list_all(server, k, "markers") == []          # a failed run leaves nothing
    create(server, k, "flags", {"name": "go"})
    ids += [create(server, k, "contacts", {"name": f"d{i}"})["id"] for i in range(3)]
    last = server.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]

    def caught_up():
        h = hook(server, k, key)
        return h if h and h["failures"] == 0 and h["cursor"] >= last else None
    assert poll(caught_up), hook(server, k, key)
    markers = ks.list_all(server, k, "markers")
    # exactly once each, in commit order
    got = [m["contact"] for m in sorted(markers, key=lambda m: m["id"])]
    assert got == ids, (got, ids)
    # /metrics counts the failed runs and the deliveries
    assert metric(server, "kith_hook_errors_total") >= h["failures"] > 0
    assert metric(server, "kith_lua_errors_total") >= h["failures"]
    assert metric(server, "kith_hook_delivered_total") >= len(ids)


def test_failing_after_hook_is_fixed_by_a_redeploy(server):
    k = server.admin
    schema(server, k, "victims", [{"name": "tag", "type": "string"}])
    schema(server, k, "sidefx", [{"name": "tag", "type": "string"}])
    broken = ('kith.on("victims.created", {name = "h"}, function(ev)\n'
              '  kith.entity.create("sidefx", {tag = ev.record.tag})\n'
              '  while true do end\n'
              'end)\n')
    deploy_ok(server, k, "after", broken)
    for t in ("v1", "v2"):
        create(server, k, "victims", {"tag": t})
    h = poll(lambda: (lambda h: h if h and h["failures"] >= 2 else None)(
        hook(server, k, "script:after/h")))
    assert h, hook(server, k, "script:after/h")
    assert log_has(server, "time budget")
    assert metric(server, "kith_lua_timeouts_total") >= 2
    # the server goes on; the failed runs wrote nothing
    assert ks.alive(server)
    create(server, k, "victims", {"tag": "v3"})
    assert ks.list_all(server, k, "sidefx") == []
    # the fixed handler (same name) resumes where the broken one stopped
    deploy_ok(server, k, "after", broken.replace("  while true do end\n", ""))
    side = poll(lambda: (lambda s: s if len(s) >= 3 else None)(ks.list_all(server, k, "sidefx")))
    assert side, ks.list_all(server, k, "sidefx")
    last = server.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
    assert poll(lambda: hook(server, k, "script:after/h")["cursor"] >= last)
    assert sorted(s["tag"] for s in ks.list_all(server, k, "sidefx")) == ["v1", "v2", "v3"]


# ---------------------------------------------------------------- 6. hostile handlers

HOSTILE = [
    # time
    ("loop", "while true do end"),
    ("loop_in_pcall", "while true do pcall(function() while true do end end) end"),
    ("error_in_pcall", "while true do pcall(error, 'x') end"),
    ("loop_in_coroutine", "local co = coroutine.wrap(function() while true do end end) co()"),
    ("coroutine_swallow",
     "while true do coroutine.resume(coroutine.create(function() while true do end end)) end"),
    ("coroutine_pingpong",
     "local co = coroutine.wrap(function() while true do coroutine.yield() end end)\n"
     "while true do co() end"),
    ("loop_in_sort_comparator",
     "local t = {} for i = 1, 100 do t[i] = i end\n"
     "table.sort(t, function(a, b) while true do end end)"),
    ("loop_in_xpcall_handler",
     "xpcall(function() while true do end end, function() while true do end end)"),
    ("loop_in_metamethod",
     "local t = setmetatable({}, {__index = function() while true do end end}) return t.x"),
    ("loop_in_gsub_callback",
     "string.gsub(string.rep('a', 100), 'a', function() while true do end end)"),
    ("deep_recursion", "local function f() return 1 + f() end f()"),
    ("c_stack_recursion",
     "local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x"),
    # strings and patterns
    ("string_rep_huge", 'local s = string.rep("x", 1e12)'),
    ("string_rep_method", 'local s = ("x"):rep(1e7):rep(1e7)'),
    ("pattern_bomb", 'string.find(string.rep("a", 100000), ".-.-.-.-.-.-.-b")'),
    ("pattern_backref_bomb", 'string.match(string.rep("ab", 50000), "(.+)%1%1%1c")'),
    ("pattern_optional_bomb",
     'string.find(string.rep("a", 40), string.rep("a?", 40) .. string.rep("a", 40))'),
    ("gsub_amplification",
     'string.gsub(string.rep("x", 1000000), "x", string.rep("y", 1000000))'),
    ("format_amplification",
     'local s = string.rep("x", 1e6)\n'
     'local args = setmetatable({}, {__index = function() return s end})\n'
     'string.format(string.rep("%s", 20000), table.unpack(args, 1, 20000))'),
    # memory
    ("memory_table",
     'local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep("x", 1000) .. i end'),
    ("memory_doubling", 'local s = "x" while true do s = s .. s end'),
    ("memory_in_pcall",
     'local keep = {} while true do pcall(function() local s = "x" '
     'while true do s = s .. s end end) keep[#keep + 1] = string.rep("y", 1e6) end'),
    ("json_encode_dag",
     "local t = {} for i = 1, 40 do t = {a = t, b = t} end kith.json.encode(t)"),
    ("json_encode_cycle", "local t = {} t.self = t kith.json.encode(t)"),
    # escapes: each must raise
    ("io", 'io.open("/etc/passwd")'),
    ("os", 'os.execute("true")'),
    ("require", 'require("os")'),
    ("load", 'load("return 1")()'),
    ("loadstring", 'loadstring("return 1")()'),
    ("dofile", 'dofile("/etc/passwd")'),
    ("loadfile", 'loadfile("/etc/passwd")'),
    ("debug", "debug.getinfo(1)"),
    ("package", 'package.loadlib("libc.so.6", "system")'),
    ("string_dump", "string.dump(function() end)"),
    ("string_metatable", 'local i = getmetatable("").__index'),
    ("rawset", 'rawset(kith, "x", 1)'),
    ("replace_kith_entity", "kith.entity = nil"),
    ("replace_kith_entity_get", "kith.entity.get = function() end"),
    ("replace_string_lib", "string.upper = nil"),
    ("setmetatable_kith", "setmetatable(kith, {})"),
    ("gc_finalizer", "setmetatable({}, {__gc = function() while true do end end})"),
    ("collectgarbage", 'collectgarbage("stop")'),
    ("print", 'print("hi")'),
    ("global_table", "_G.x = 1"),
    ("system_collection", 'assert(kith.entity.query("_scripts"))'),
]


def hostile_script(body):
    # The side write runs a Lua before-hook of its own first (a nested call
    # in the same state), which must not reset the hostile handler's budget.
    return ("local function hostile()\n" + body + "\nend\n"
            'kith.on("sidefx.before_create", function(ev) end)\n'
            'kith.on("victims.before_create", function(ev)\n'
            '  kith.entity.create("sidefx", {tag = ev.record.tag})\n'
            '  if ev.record.tag ~= "control" then hostile() end\n'
            "end)\n")


@pytest.mark.parametrize("case,body", [c if hasattr(c, "marks") else pytest.param(*c, id=c[0])
                                       for c in HOSTILE])
def test_hostile_before_hook_fails_its_write(server, case, body):
    k = server.admin
    schema(server, k, "victims", [{"name": "tag", "type": "string"}])
    schema(server, k, "sidefx", [{"name": "tag", "type": "string"}])
    deploy_ok(server, k, "hostile", hostile_script(body))
    r = post_guarded(server, k, "/v1/victims", {"tag": case})
    if r is None:
        server.stop(sig=signal.SIGKILL)  # a stuck writer would not drain
        pytest.fail(f"{case}: no answer: the handler ran past its budget")
    p = problem(r, 500, "handler-failed")
    # the log has the script's error, the caller only the request id
    msg = failure_log(server, r.headers["x-request-id"])
    assert msg, f"no log line for request {r.headers['x-request-id']}"
    assert msg not in p["detail"] and "hostile" not in p["detail"], (msg, p)
    assert ks.alive(server)
    # no partial write: neither the victim nor the hook's side record
    assert ks.list_all(server, k, "victims") == []
    assert ks.list_all(server, k, "sidefx") == []
    # and the script still works for the next write
    ok = post_guarded(server, k, "/v1/victims", {"tag": "control"})
    assert ok is not None and ok.status == 201, ok
    assert [s["tag"] for s in ks.list_all(server, k, "sidefx")] == ["control"]


def test_domain_event_names_may_contain_collection_words(server):
    """Only `<coll>.created|updated|deleted|before_*` are collection events:
    a domain event such as deal.created_late can be emitted and handled."""
    k = server.admin
    schema(server, k, "deals", [{"name": "name", "type": "string"}])
    schema(server, k, "late", [{"name": "deal", "type": "string"}])
    deploy_ok(server, k, "late", r'''
kith.on("deals.created", function(ev)
  local ok, err = kith.emit("deal.created_late", {id = ev.id})
  assert(ok, err and err.message)
end)
kith.on("deal.created_late", function(ev)
  kith.entity.create("late", {deal = ev.payload.id})
end)
''')
    d = create(server, k, "deals", {"name": "big"})
    got = poll(lambda: ks.list_all(server, k, "late"))
    assert [x["deal"] for x in got] == [d["id"]], got


def test_bulk_and_import_rows_hide_a_handlers_message(server):
    """Per-row reports map codes like whole answers: a failing rule is a 500
    handler-failed whose text stays in the log."""
    k = server.admin
    schema(server, k, "rows", [{"name": "tag", "type": "string"}])
    deploy_ok(server, k, "rowrule", r'''
kith.on("rows.before_create", function(ev)
  if ev.record.tag == "boom" then error("secret-" .. ev.record.tag) end
end)
''')
    body = json.dumps({"tag": "ok"}) + "\n" + json.dumps({"tag": "boom"}) + "\n"
    r = server.req("POST", "/v1/rows/bulk", key=k, body=body, ctype="application/x-ndjson")
    assert r.status == 200, r
    out = [json.loads(x) for x in r.body.decode().splitlines()]
    assert out[0]["status"] == 201
    assert out[1]["status"] == 500, out[1]
    assert "secret" not in r.body.decode()
    r = server.req("POST", "/v1/rows/import", key=k, body="tag\nok\nboom\n", ctype="text/csv")
    assert r.status == 200, r
    rep = r.json
    assert rep["failed"] == 1, rep
    assert rep["errors"][0]["status"] == 500, rep
    assert "secret" not in r.body.decode()
    assert log_has(server, "secret-boom")


# ---------------------------------------------------------------- 7. workspaces

PROBE = r'''
kith.on("contacts.before_create", {name = "probe"}, function(ev)
  if ev.record.probe then
    local rec, err = kith.entity.get("contacts", ev.record.probe)
    ev.record.note = rec and ("found:" .. rec.name) or ("err:" .. err.code)
  else
    local all = kith.entity.query("contacts", nil, {limit = 1000})
    ev.record.hits = #all
  end
end)
'''
STAMP = r'''
kith.on("contacts.before_create", {name = "stamp"}, function(ev) ev.record.reason = "A ran" end)
kith.on("contacts.created", {name = "mark"}, function(ev)
  kith.entity.create("markers", {contact = ev.id, tag = "A"})
end)
'''


def test_scripts_are_isolated_by_workspace(server):
    a = server.admin
    ks.workspace_create(server, "b")
    b = server.key("admin", "b")
    assert ks.me(server, b)["workspace"] == "b"
    for key in (a, b):
        schema(server, key, "contacts", CONTACTS)
        schema(server, key, "markers", MARKERS)
    deploy_ok(server, a, "stamp", STAMP)
    secret = create(server, a, "contacts", {"name": "secret-a"})
    assert secret["reason"] == "A ran"
    assert poll(lambda: ks.list_all(server, a, "markers"))

    deploy_ok(server, b, "probe", PROBE)
    # B sees only its own scripts and handlers
    assert [s["name"] for s in server.req("GET", "/v1/scripts", key=b).json["scripts"]] == ["probe"]
    assert {h["owner"] for h in hooks(server, b)} == {"script:probe"}
    assert {h["owner"] for h in hooks(server, a)} == {"script:stamp"}
    problem(server.req("GET", "/v1/scripts/stamp", key=b), 404, "not-found")
    problem(server.req("DELETE", "/v1/scripts/stamp", key=b), 404, "not-found")

    own = create(server, b, "contacts", {"name": "own-b"})
    assert own["hits"] == 0 and "reason" not in own, own       # A's records are not B's
    found = create(server, b, "contacts", {"name": "p1", "probe": own["id"]})
    assert found["note"] == "found:own-b", found                # control
    r = create(server, b, "contacts", {"name": "p2", "probe": secret["id"]})
    assert r["note"] == "err:not_found", r
    assert "reason" not in r
    # A's after-hook never ran for B's writes; B's before-hook never ran for A's
    last = server.req("GET", "/v1/changes?limit=1", key=a).json["last_seq"]
    a2 = create(server, a, "contacts", {"name": "a2"})
    assert "note" not in a2 and "hits" not in a2, a2
    assert poll(lambda: len(ks.list_all(server, a, "markers")) == 2)
    assert poll(lambda: hook(server, a, "script:stamp/mark")["cursor"] >= last + 1)
    assert sorted(m["contact"] for m in ks.list_all(server, a, "markers")) == \
        sorted([secret["id"], a2["id"]])
    assert ks.list_all(server, b, "markers") == []


# ---------------------------------------------------------------- 8. restarts

LATE = r'''
kith.on("orders.created", {name = "late"}, function(ev)
  local flags = kith.entity.query("flags", {name = "go"})
  if #flags == 0 then error("flag not set yet") end
  kith.entity.create("markers", {contact = ev.id, tag = "late"})
end)
'''


def test_scripts_survive_restart_and_sigkill(datadir):
    d, token = datadir
    srv = KithServer(d).start()
    srv.admin = token
    try:
        k = token
        schema(srv, k, "contacts", CONTACTS)
        schema(srv, k, "orders", [{"name": "n", "type": "int"}])
        schema(srv, k, "markers", MARKERS)
        schema(srv, k, "flags", FLAGS)
        deploy_ok(srv, k, "keep", AMEND_V1)
        deploy_ok(srv, k, "late", LATE)
        before = sorted(h["key"] for h in hooks(srv, k))
        assert before == ["script:keep/contacts.before_create#1", "script:late/late"], before

        srv = restart(srv)
        assert sorted(h["key"] for h in hooks(srv, k)) == before
        assert create(srv, k, "contacts", {"name": "after-restart"})["note"] == "v1"
        assert sorted(s["name"] for s in srv.req("GET", "/v1/scripts", key=k).json["scripts"]) \
            == ["keep", "late"]

        # orders commit while the after-hook fails; then the server is killed
        ids = [create(srv, k, "orders", {"n": i})["id"] for i in range(4)]
        h = poll(lambda: (lambda h: h if h and h["failures"] > 0 else None)(
            hook(srv, k, "script:late/late")))
        assert h, hook(srv, k, "script:late/late")
        create(srv, k, "contacts", {"name": "sync"})  # a later commit: the delivery round is durable
        srv = restart(srv, signal.SIGKILL)
        assert sorted(h["key"] for h in hooks(srv, k)) == before
        assert ks.list_all(srv, k, "markers") == []
        create(srv, k, "flags", {"name": "go"})
        last = srv.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
        assert poll(lambda: (lambda h: h and h["failures"] == 0 and h["cursor"] >= last)(
            hook(srv, k, "script:late/late"))), hook(srv, k, "script:late/late")
        got = sorted(m["contact"] for m in ks.list_all(srv, k, "markers"))
        assert got == sorted(ids), (got, ids)

        # delivered ones are not delivered again after another kill
        more = [create(srv, k, "orders", {"n": 10 + i})["id"] for i in range(3)]
        last = srv.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
        assert poll(lambda: hook(srv, k, "script:late/late")["cursor"] >= last)
        srv = restart(srv, signal.SIGKILL)
        create(srv, k, "orders", {"n": 99})
        assert poll(lambda: len(ks.list_all(srv, k, "markers")) >= len(ids) + len(more) + 1)
        last = srv.req("GET", "/v1/changes?limit=1", key=k).json["last_seq"]
        assert poll(lambda: hook(srv, k, "script:late/late")["cursor"] >= last)
        got = [m["contact"] for m in ks.list_all(srv, k, "markers")]
        assert len(got) == len(set(got)) == len(ids) + len(more) + 1, got
        assert create(srv, k, "contacts", {"name": "last"})["note"] == "v1"
    finally:
        srv.stop()


DEDUP = """
kith.on('contacts.before_create', function(ev)
  local name = ev.record.name
  if name == 'bad code' then return false, {code = 'teapot'} end
  if name == 'no probe' then
    return false, {code = 'validation', message = 'a probe is needed', field = 'probe'}
  end
  if name == 'locked' then return false, {code = 'forbidden', message = 'closed today'} end
  if not ev.record.probe then return end
  local same = assert(kith.entity.query('contacts', {probe = ev.record.probe}, {limit = 1}))
  if same[1] then
    return false, {code = 'exists', message = 'that probe is taken', field = 'probe',
                   existing = same[1].id}
  end
end)
"""


def test_before_hooks_refuse_with_a_code(server):
    """A Lua before-hook refuses like a plugin's: 409 with existing_id (and
    upsert updates that record), 422 naming the field, 403; an unknown code
    is the script's error."""
    k = server.admin
    schema(server, k, "contacts", CONTACTS)
    deploy_ok(server, k, "dedup", DEDUP)
    first = create(server, k, "contacts", {"name": "Ada", "probe": "p1"})
    p = problem(server.req("POST", "/v1/contacts", key=k, body={"name": "Bo", "probe": "p1"}),
                409, "conflict")
    assert p["existing_id"] == first["id"] and p["detail"] == "that probe is taken", p
    assert p["errors"] == [{"field": "probe", "detail": "that probe is taken"}], p
    r = server.req("POST", "/v1/contacts?upsert=true", key=k, body={"name": "Bo", "probe": "p1"})
    assert r.status == 200 and r.json["id"] == first["id"] and r.json["name"] == "Bo", r
    p = problem(server.req("POST", "/v1/contacts", key=k, body={"name": "no probe"}), 422,
                "validation")
    assert p["errors"][0]["field"] == "probe", p
    problem(server.req("POST", "/v1/contacts", key=k, body={"name": "locked"}), 403, "forbidden")
    problem(server.req("POST", "/v1/contacts", key=k, body={"name": "bad code"}), 500,
            "handler-failed")
    assert [c["name"] for c in ks.list_all(server, k, "contacts")] == ["Bo"]
