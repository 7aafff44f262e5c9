"""Durable timers for Lua scripts: kith.after, kith.at, kith.every and
kith.cancel inside handlers, kith.every declared at a script's top level
(kept across reloads, removed with the declaration or the script), per-script
timer ids, refusals of bad calls, and timers across a SIGKILL and downtime.

Every effect is observed through records: the handler of a fired event
creates a note, and the test polls GET /v1/notes. A fired event also takes one
sequence number of the change log (GET /v1/changes hides `_event` entries,
so events are counted as the sequence numbers no visible change took, or as
visible entries of op "event" should they ever be shown).

Timing: a due timer fires within about a second, but nothing here asserts
a tight bound. Polls wait up to 10 s; the lower bounds compare the server's
own created_at stamps (a timer never fires before it is due); the upper
bounds are loose. "No (further) fire" is checked by waiting until every
after-hook caught up with the change log and then seeing last_seq stay put
for longer than the timer's period.
"""
import datetime
import json
import math
import re
import signal
import time

import kithserver as ks
from kithserver import KithServer, schema
from test_scripts import deploy, deploy_ok, hooks, metric, poll, problem

NOTES = [
    {"name": "text", "type": "string"},
    {"name": "tag", "type": "string"},
    {"name": "ret", "type": "string"},
    {"name": "body", "type": "string"},
    {"name": "n", "type": "int"},
]
POKES = [{"name": "cmd", "type": "string"}, {"name": "arg", "type": "string"}]

# every script writes its observations with this (a failed write fails the handler)
NOTE_FN = r'''
local function note(t)
  local r, err = kith.entity.create("notes", t)
  assert(r, err and err.message)
end
'''

WAIT = 10.0  # the longest any poll waits


# ---------------------------------------------------------------- helpers

def prepare(srv, key=None):
    k = key or srv.admin
    schema(srv, k, "notes", NOTES)
    schema(srv, k, "pokes", POKES)
    return k


def poke(srv, k, cmd, arg=None):
    body = {"cmd": cmd}
    if arg is not None:
        body["arg"] = str(arg)
    r = srv.req("POST", "/v1/pokes", key=k, body=body)
    assert r.status == 201, r
    return r.json


def ts(rec):
    """created_at of a record as seconds since the epoch (the server's clock)."""
    return datetime.datetime.fromisoformat(rec["created_at"].replace("Z", "+00:00")).timestamp()


def notes(srv, k, text=None, tag=None):
    """The notes (optionally of one text / tag), oldest first."""
    out = [n for n in ks.list_all(srv, k, "notes")
           if (text is None or n.get("text") == text) and (tag is None or n.get("tag") == tag)]
    return sorted(out, key=ts)


def wait_notes(srv, k, count, text=None, tag=None, timeout=WAIT):
    """Polls until at least count notes match; returns them (asserts it got them)."""
    got = poll(lambda: (lambda ns: ns if len(ns) >= count else None)(
        notes(srv, k, text, tag)), timeout)
    assert got, f"fewer than {count} notes text={text} tag={tag} within {timeout}s: " \
                f"{notes(srv, k)}"
    return got


def last_seq(srv, k):
    r = srv.req("GET", "/v1/changes?limit=1", key=k)
    assert r.status == 200, r
    return r.json["last_seq"]


def events_since(srv, k, mark):
    """How many domain events the change log took after seq mark: the
    sequence numbers no visible entry took, plus visible op "event" entries
    (only notes and pokes are written meanwhile, and both are visible)."""
    end = last_seq(srv, k)
    visible = [c for c in ks.changes_all(srv, k, after=mark) if c["seq"] <= end]
    return (end - mark) - sum(1 for c in visible if c["op"] != "event")


def quiesce(srv, k):
    """Waits until every after-hook has caught up with the change log (what
    fired is delivered and its note written); returns last_seq then."""
    def caught_up():
        last = last_seq(srv, k)
        hs = [h for h in hooks(srv, k) if h["phase"] == "after"]
        return last if all(h["cursor"] >= last for h in hs) else None
    last = poll(caught_up, WAIT)
    assert last, hooks(srv, k)
    return last


def assert_quiet(srv, k, wait, what):
    """Nothing fires any more: after the handlers caught up, the change log
    does not grow for wait seconds (a removed one-off would fire again at
    once; a recurring timer of period p is watched for more than p)."""
    last = quiesce(srv, k)
    time.sleep(wait)
    now = last_seq(srv, k)
    assert now == last, f"{what}: the change log grew from {last} to {now}: " \
                        f"{ks.changes_all(srv, k, after=last)}"


def rfc3339(t, offset_h=0, frac=False):
    tz = datetime.timezone(datetime.timedelta(hours=offset_h))
    d = datetime.datetime.fromtimestamp(t, tz)
    s = d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{d.microsecond // 1000:03d}" if frac else "")
    return s + ("Z" if offset_h == 0 else d.strftime("%z")[:3] + ":" + d.strftime("%z")[3:])


# ---------------------------------------------------------------- kith.after

AFTER = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  local p = ev.record
  local id
  if p.cmd == "named" then
    id = kith.after(1, "followup.due",
                    {who = p.arg, n = 7, nested = {list = {1, 2, 3}, flag = true, s = "x y"}},
                    {id = "call-" .. p.arg})
  else
    id = kith.after("1s", "followup.due", {who = p.arg})
  end
  note({text = "scheduled", tag = p.arg, ret = id})
end)
kith.on("followup.due", function(ev)
  note({text = "fired", tag = ev.payload.who, body = kith.json.encode(ev.payload)})
end)
'''


def test_after_fires_once_with_its_payload(server):
    k = prepare(server)
    deploy_ok(server, k, "remind", AFTER)
    mark = last_seq(server, k)
    poke(server, k, "named", "ann")
    poke(server, k, "plain", "bob")
    sched = {n["tag"]: n for n in wait_notes(server, k, 2, "scheduled")}
    # the id: opts.id as given, or a generated one
    assert sched["ann"]["ret"] == "call-ann", sched
    assert re.fullmatch(r"[0-9A-Za-z]{10,40}", sched["bob"]["ret"]), sched

    fired = {n["tag"]: n for n in wait_notes(server, k, 2, "fired")}
    assert sorted(fired) == ["ann", "bob"], fired
    for who in ("ann", "bob"):
        delay = ts(fired[who]) - ts(sched[who])
        assert 0.99 <= delay < 6, (who, delay)      # never early, not very late
    # the payload arrives as the table that was scheduled
    assert json.loads(fired["ann"]["body"]) == \
        {"who": "ann", "n": 7, "nested": {"list": [1, 2, 3], "flag": True, "s": "x y"}}
    assert json.loads(fired["bob"]["body"]) == {"who": "bob"}

    # one-off: removed once fired (no second fire), each event logged once
    assert_quiet(server, k, 1.2, "one-off timers")
    assert len(notes(server, k, "fired")) == 2, notes(server, k, "fired")
    assert events_since(server, k, mark) == 2


# ---------------------------------------------------------------- kith.at

AT = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  local p = ev.record
  local when = p.arg
  if p.cmd == "ms" then when = kith.time.now() + tonumber(p.arg) end
  local id = kith.at(when, "meeting.due", {kind = p.cmd}, {id = "m-" .. p.cmd})
  note({text = "scheduled", tag = p.cmd, ret = id})
end)
kith.on("meeting.due", function(ev) note({text = "fired", tag = ev.payload.kind}) end)
'''


def test_at_fires_at_an_rfc3339_time_or_milliseconds(server):
    k = prepare(server)
    deploy_ok(server, k, "meet", AT)
    due = math.ceil(time.time()) + 2                 # a whole second, 2-3 s ahead
    whens = {
        "utc": (rfc3339(due), due),
        # the same kind of instant written with an offset and a fraction
        "offset": (rfc3339(due + 0.5, offset_h=2, frac=True), due + 0.5),
        "past": ("2001-02-03T04:05:06Z", None),          # already due: fires at once
    }
    assert whens["offset"][0].endswith(".500+02:00"), whens
    for cmd, (when, _) in whens.items():
        poke(server, k, cmd, when)
    poke(server, k, "ms", 1500)
    sched = {n["tag"]: n for n in wait_notes(server, k, 4, "scheduled")}
    assert {t: n["ret"] for t, n in sched.items()} == \
        {"utc": "m-utc", "offset": "m-offset", "past": "m-past", "ms": "m-ms"}, sched

    fired = {n["tag"]: n for n in wait_notes(server, k, 4, "fired")}
    assert sorted(fired) == ["ms", "offset", "past", "utc"], fired
    for cmd in ("utc", "offset"):
        at = whens[cmd][1]
        assert at <= ts(fired[cmd]) < at + 5, (cmd, whens[cmd], fired[cmd])
    assert 1.49 <= ts(fired["ms"]) - ts(sched["ms"]) < 6.5, (sched["ms"], fired["ms"])
    assert ts(fired["past"]) - ts(sched["past"]) < 5, (sched["past"], fired["past"])
    assert_quiet(server, k, 1.2, "kith.at timers")
    assert len(notes(server, k, "fired")) == 4, notes(server, k, "fired")


# ---------------------------------------------------------------- replace, cancel

REPLACE = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  local p = ev.record
  if p.cmd == "double" then
    -- twice in one handler: the second replaces the first
    kith.after(1, "renew.due", {v = "double-a"}, {id = "dbl"})
    kith.after(1, "renew.due", {v = "double-b"}, {id = "dbl"})
  else
    kith.after(tonumber(p.arg), "renew.due", {v = p.cmd}, {id = "renewal"})
  end
  note({text = "scheduled", tag = p.cmd})
end)
kith.on("renew.due", function(ev) note({text = "fired", tag = ev.payload.v}) end)
'''


def test_rescheduling_an_id_replaces_the_timer(server):
    k = prepare(server)
    deploy_ok(server, k, "renew", REPLACE)
    mark = last_seq(server, k)
    poke(server, k, "first", 3)
    poke(server, k, "double")
    first = wait_notes(server, k, 1, "scheduled", "first")[0]
    poke(server, k, "second", 1)                      # same id, sooner: replaces "first"
    second = wait_notes(server, k, 1, "scheduled", "second")[0]
    assert ts(second) - ts(first) < 2.5, "the replacement came too late to test anything"
    wait_notes(server, k, 1, "fired", "second")
    wait_notes(server, k, 1, "fired", "double-b")
    # past the replaced timer's due time (first + 3 s), and then some
    time.sleep(max(0.0, ts(first) + 3.6 - time.time()))
    assert_quiet(server, k, 0.8, "replaced timers")
    assert sorted(n["tag"] for n in notes(server, k, "fired")) == ["double-b", "second"], \
        notes(server, k, "fired")
    assert events_since(server, k, mark) == 2


CANCEL = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  local p = ev.record
  if p.cmd == "schedule" then
    kith.after(2, "cancel.due", {v = "doomed"}, {id = "doomed"})
    kith.after(2, "cancel.due", {v = "control"}, {id = "control"})
    note({text = "scheduled"})
  elseif p.cmd == "cancel" then
    local a = kith.cancel("doomed")
    local b = kith.cancel("doomed")
    local c = kith.cancel("never-was")
    note({text = "cancelled", body = tostring(a) .. "," .. tostring(b) .. "," .. tostring(c)})
  elseif p.cmd == "cancel-fired" then
    note({text = "cancelled-fired", body = tostring(kith.cancel("control"))})
  end
end)
kith.on("cancel.due", function(ev) note({text = "fired", tag = ev.payload.v}) end)
'''


def test_cancel_before_due_prevents_the_fire(server):
    k = prepare(server)
    deploy_ok(server, k, "canceller", CANCEL)
    poke(server, k, "schedule")
    sched = wait_notes(server, k, 1, "scheduled")[0]
    poke(server, k, "cancel")
    c = wait_notes(server, k, 1, "cancelled")[0]
    assert ts(c) - ts(sched) < 1.8, "the cancel came too late to test anything"
    # removed: true; nothing left to remove: false
    assert c["body"] == "true,false,false", c
    # the control timer of the same handler fires; the cancelled one does not
    wait_notes(server, k, 1, "fired", "control")
    assert_quiet(server, k, 1.2, "a cancelled timer")
    assert [n["tag"] for n in notes(server, k, "fired")] == ["control"], notes(server, k)
    # a fired one-off is gone: cancelling it removes nothing
    poke(server, k, "cancel-fired")
    assert wait_notes(server, k, 1, "cancelled-fired")[0]["body"] == "false"


ALPHA = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  if ev.record.cmd == "go" then
    local id = kith.after(2, "shared.due", {by = "alpha"}, {id = "shared"})
    note({text = "alpha-scheduled", ret = id})
  end
end)
kith.on("shared.due", function(ev) note({text = "fired", tag = ev.payload.by}) end)
'''
BETA = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  if ev.record.cmd == "meddle" then
    -- alpha's "shared" is not beta's: nothing to cancel, and a new one besides it
    local r = kith.cancel("shared")
    kith.after(1, "shared.due", {by = "beta"}, {id = "shared"})
    note({text = "beta-cancelled", body = tostring(r)})
  end
end)
'''


def test_timer_ids_are_per_script(server):
    k = prepare(server)
    deploy_ok(server, k, "alpha", ALPHA)
    deploy_ok(server, k, "beta", BETA)
    mark = last_seq(server, k)
    poke(server, k, "go")
    a = wait_notes(server, k, 1, "alpha-scheduled")[0]
    assert a["ret"] == "shared", a
    poke(server, k, "meddle")
    b = wait_notes(server, k, 1, "beta-cancelled")[0]
    assert ts(b) - ts(a) < 1.8, "beta came too late to test anything"
    assert b["body"] == "false", b
    wait_notes(server, k, 2, "fired")
    assert_quiet(server, k, 1.2, "per-script timers")
    assert sorted(n["tag"] for n in notes(server, k, "fired")) == ["alpha", "beta"], \
        notes(server, k, "fired")
    assert events_since(server, k, mark) == 2


# ---------------------------------------------------------------- kith.every

PULSE = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  if ev.record.cmd == "start" then
    note({text = "started", ret = kith.every("1s", "pulse.due", {k = "p"}, {id = "pulse"})})
  elseif ev.record.cmd == "stop" then
    note({text = "stopped", body = tostring(kith.cancel("pulse"))})
  end
end)
kith.on("pulse.due", function(ev) note({text = "fired", tag = ev.payload.k}) end)
'''


def test_every_from_a_handler_repeats_until_cancelled(server):
    k = prepare(server)
    deploy_ok(server, k, "pulse", PULSE)
    poke(server, k, "start")
    started = wait_notes(server, k, 1, "started")[0]
    assert started["ret"] == "pulse", started
    fired = wait_notes(server, k, 3, "fired")
    assert all(n["tag"] == "p" for n in fired), fired
    assert ts(fired[0]) - ts(started) >= 0.99, (started, fired[0])
    # one timer at its rate: no burst of fires at the same moment
    gaps = [ts(b) - ts(a) for a, b in zip(fired, fired[1:])]
    assert all(g >= 0.5 for g in gaps), gaps
    poke(server, k, "stop")
    assert wait_notes(server, k, 1, "stopped")[0]["body"] == "true"
    assert_quiet(server, k, 1.7, "a cancelled recurring timer")


HEARTBEAT = NOTE_FN + r'''
kith.every("1s", "heart.beat", {n = 1})
kith.on("heart.beat", function(ev) note({text = "beat", n = ev.payload.n}) end)
'''
HEARTBEAT_OFF = NOTE_FN + r'''
kith.on("heart.beat", function(ev) note({text = "beat", n = ev.payload.n}) end)
'''


def test_declared_every_survives_redeploys_and_stops_when_undeclared(server):
    k = prepare(server)
    deploy_ok(server, k, "heart", HEARTBEAT)
    beats = wait_notes(server, k, 1, "beat")
    assert beats[0]["n"] == 1, beats
    # re-deploying it (and another script: every deploy reloads all) more
    # often than it fires keeps its due time: it goes on firing at its rate
    w0 = time.time()
    versions = []
    while time.time() - w0 < 3.0:
        versions.append(deploy_ok(server, k, "heart", HEARTBEAT)["version"])
        deploy_ok(server, k, "bystander", 'kith.on("x.y", function() end)\n')
        time.sleep(0.25)
    w1 = time.time()
    assert versions == list(range(2, len(versions) + 2)), versions
    quiesce(server, k)
    inside = [b for b in notes(server, k, "beat") if w0 <= ts(b) <= w1]
    assert len(inside) >= 2, ("re-deploys postponed the declared timer", inside)
    assert len(inside) <= (w1 - w0) / 1.0 + 1, ("a re-deploy added a second timer", inside)
    gaps = [ts(b) - ts(a) for a, b in zip(inside, inside[1:])]
    assert all(g >= 0.5 for g in gaps), gaps
    # a version that no longer declares it removes it (the handler stays)
    deploy_ok(server, k, "heart", HEARTBEAT_OFF)
    assert_quiet(server, k, 1.7, "an undeclared timer")
    assert [h["event"] for h in hooks(server, k, "heart")] == ["heart.beat"]


HEARTBEAT_MULTI = NOTE_FN + r'''
kith.every("2s", "heart.multi", {a = 1, b = 2, c = 3, d = 4, e = 5, f = 6})
kith.on("heart.multi", function(ev) note({text = "multi", n = ev.payload.f}) end)
'''


def test_declared_every_with_a_table_payload_survives_redeploys(server):
    """Declared the same way means the same payload; the key order of a Lua
    table is no part of it."""
    k = prepare(server)
    deploy_ok(server, k, "multi", HEARTBEAT_MULTI)
    w0 = time.time()
    while time.time() - w0 < 3.0:
        deploy_ok(server, k, "multi", HEARTBEAT_MULTI)
        time.sleep(0.25)
    w1 = time.time()
    quiesce(server, k)
    inside = [b for b in notes(server, k, "multi") if w0 <= ts(b) <= w1]
    assert len(inside) >= 1, "re-deploying the same script kept postponing its timer"
    assert all(b["n"] == 6 for b in inside), inside


OWNER = NOTE_FN + r'''
kith.every("1s", "owned.tick", {from = "declared"})
kith.on("pokes.created", function(ev)
  if ev.record.cmd == "go" then
    kith.every("1s", "owned.tick", {from = "handler"}, {id = "loop"})
    kith.after(3, "owned.tick", {from = "once"}, {id = "once"})
    note({text = "owner-scheduled"})
  end
end)
'''
WATCH = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  if ev.record.cmd == "go" then
    kith.after(3, "owned.tick", {from = "control"}, {id = "once"})
  end
end)
kith.on("owned.tick", function(ev) note({text = "tick", tag = ev.payload.from}) end)
'''


def test_deleting_a_script_removes_its_timers(server):
    k = prepare(server)
    deploy_ok(server, k, "watch", WATCH)
    deploy_ok(server, k, "owner", OWNER)
    poke(server, k, "go")
    sched = wait_notes(server, k, 1, "owner-scheduled")[0]
    # another script's handler sees the owner's events (declared and handler-made)
    wait_notes(server, k, 1, "tick", "declared")
    wait_notes(server, k, 1, "tick", "handler")
    d = server.req("DELETE", "/v1/scripts/owner", key=k)
    assert d.status == 204, d
    assert time.time() - ts(sched) < 2.8, "the delete came too late to test anything"
    quiesce(server, k)                      # what fired before the delete is delivered
    seen = {n["id"] for n in notes(server, k, "tick")}
    # the watcher's own timer (same id "once", its own script) still fires
    ctl = wait_notes(server, k, 1, "tick", "control")
    assert ts(ctl[0]) - ts(sched) >= 2.9, ctl
    assert_quiet(server, k, 1.7, "a deleted script's timers")
    late = [n for n in notes(server, k, "tick") if n["id"] not in seen and n["tag"] != "control"]
    assert late == [], late
    assert notes(server, k, "tick", "once") == []


# ---------------------------------------------------------------- refusals

def test_timer_calls_at_top_level_are_refused(server):
    k = prepare(server)
    refused = {
        'kith.after(5, "followup.due")\n': "kith.after",
        'kith.after("90s", "followup.due", {a = 1}, {id = "x"})\n': "kith.after",
        'kith.at("2030-01-01T00:00:00Z", "followup.due")\n': "kith.at",
        'kith.at(kith.time.now() + 5000, "followup.due")\n': "kith.at",
        'kith.cancel("x")\n': "kith.cancel",
        # declarations that cannot work
        'kith.every("0s", "tick.due")\n': "kith.every",
        'kith.every(0.5, "tick.due")\n': "kith.every",
        'kith.every("61 * * * *", "tick.due")\n': "kith.every",
        'kith.every("0 0 30 2 *", "tick.due")\n': "kith.every",
        'kith.every("* * * *", "tick.due")\n': "kith.every",
        'kith.every("sometimes", "tick.due")\n': "kith.every",
        'for i = 1, 257 do kith.every("1h", "tick.due", nil, {id = "t" .. i}) end\n':
            "kith.every",
        'kith.every("1m", "contacts.created")\n': "kith.every",
        'kith.every("1m", "Tick.Due")\n': "kith.every",
        'kith.every("1m", "tick.due", function() end)\n': "kith.every",
    }
    for i, (src, fn) in enumerate(refused.items()):
        name = f"top{i}"
        r = deploy(server, k, name, "local x = 1\n" + src)
        assert 400 <= r.status < 500, (src, r)
        p = problem(r, 422, "invalid-script")
        assert f"{name}:2:" in p["detail"] and fn in p["detail"], (src, p)
        problem(server.req("GET", f"/v1/scripts/{name}", key=k), 404, "not-found")
    # what is allowed at the top level is: a declaration (interval, cron line)
    ok = deploy_ok(server, k, "fine", 'kith.every("15m", "tick.due")\n'
                                      'kith.every("0 9 * * 1-5", "digest.due", {x = 1})\n'
                                      'kith.every("0 0 29 2 *", "leap.due", nil, {id = "leap"})\n')
    assert ok["version"] == 1
    names = [s["name"] for s in server.req("GET", "/v1/scripts", key=k).json["scripts"]]
    assert names == ["fine"], names


def test_declarations_that_cannot_load_are_refused_at_put(server):
    """What the PUT accepts must load: a top-level kith.every with a bad id,
    or two with the same id, are refused instead of leaving a script stored
    whose handlers silently never run."""
    k = prepare(server)
    for name, src in (
            ("badid", 'kith.every("5m", "tick.due", nil, {id = "has space"})\n'),
            ("twice", 'kith.every("5m", "tick.due")\nkith.every("7m", "tick.due")\n')):
        r = deploy(server, k, name, src + NOTE_FN +
                   'kith.on("pokes.created", function(ev) note({text = "ran"}) end)\n')
        if r.status in (200, 201):
            # accepted: then it must really be loaded and run
            assert [h["event"] for h in hooks(server, k, name)] == ["pokes.created"], \
                (name, "stored but not loaded", hooks(server, k))
        else:
            problem(r, 422, "invalid-script")
            problem(server.req("GET", f"/v1/scripts/{name}", key=k), 404, "not-found")


STRICT = NOTE_FN + r'''
local bad = {
  after_0s = function() return kith.after("0s", "x.due") end,
  after_0 = function() return kith.after(0, "x.due") end,
  after_half = function() return kith.after(0.5, "x.due") end,
  after_unit = function() return kith.after("5x", "x.due") end,
  after_negative = function() return kith.after("-3s", "x.due") end,
  after_empty = function() return kith.after("", "x.due") end,
  after_crud_event = function() return kith.after(60, "contacts.created") end,
  after_before_event = function() return kith.after(60, "contacts.before_create") end,
  after_bad_event = function() return kith.after(60, "NotAnEvent") end,
  after_bad_id = function() return kith.after(60, "x.due", nil, {id = "has space"}) end,
  after_long_id = function() return kith.after(60, "x.due", nil, {id = string.rep("i", 101)}) end,
  after_bad_payload = function() return kith.after(60, "x.due", function() end) end,
  at_garbage = function() return kith.at("tomorrow", "x.due") end,
  at_no_zone = function() return kith.at("2030-01-01T00:00:00", "x.due") end,
  at_huge = function() return kith.at(math.huge, "x.due") end,
  at_nan = function() return kith.at(0/0, "x.due") end,
  at_negative = function() return kith.at(-1, "x.due") end,
  every_long_spec = function() return kith.every(string.rep("1", 200) .. "s", "x.due") end,
  every_0s = function() return kith.every("0s", "x.due") end,
  every_minute_61 = function() return kith.every("61 * * * *", "x.due") end,
  every_hour_24 = function() return kith.every("0 24 * * *", "x.due") end,
  every_feb_30 = function() return kith.every("0 0 30 2 *", "x.due") end,
  every_four_fields = function() return kith.every("* * * *", "x.due") end,
  every_six_fields = function() return kith.every("* * * * * *", "x.due") end,
  every_step_0 = function() return kith.every("*/0 * * * *", "x.due") end,
  every_words = function() return kith.every("every day", "x.due") end,
  cancel_bad_id = function() return kith.cancel("has space") end,
}
local good = {
  after_number = function() return kith.after(60, "x.due", nil, {id = "g1"}) end,
  after_one = function() return kith.after(1.5, "x.due", nil, {id = "g2"}) end,
  after_90s = function() return kith.after("90s", "x.due", nil, {id = "g3"}) end,
  after_15m = function() return kith.after("15m", "x.due", nil, {id = "g4"}) end,
  after_2h = function() return kith.after("2h", "x.due", nil, {id = "g5"}) end,
  after_1d = function() return kith.after("1d", "x.due", nil, {id = "g6"}) end,
  at_rfc = function() return kith.at("2099-01-01T00:00:00Z", "x.due", nil, {id = "g7"}) end,
  at_ms = function() return kith.at(kith.time.now() + 60000, "x.due", nil, {id = "g8"}) end,
  every_15m = function() return kith.every("15m", "x.due", nil, {id = "g9"}) end,
  every_cron = function() return kith.every("*/5 * * * *", "x.due", nil, {id = "g10"}) end,
  every_weekdays = function() return kith.every("0 9 * * 1-5", "x.due", nil, {id = "g11"}) end,
  every_leap_day = function() return kith.every("0 0 29 2 *", "x.due", nil, {id = "g12"}) end,
  -- a number id is taken as its text; an id an __index makes lives only on the stack
  after_number_id = function() return kith.after(60, "x.due", {big = string.rep("p", 4096)},
                                                 {id = 13}) end,
  after_index_id = function()
    return kith.after(60, "x.due", {n = 1}, setmetatable({}, {__index = function(_, k)
      return k == "id" and ("g" .. "14") or nil end}))
  end,
}
kith.on("pokes.created", function(ev)
  local p = ev.record
  if p.cmd == "probe" then
    local out = {}
    for name, fn in pairs(bad) do
      local ok, err = pcall(fn)
      out[name] = ok and ("ok:" .. tostring(err)) or tostring(err)
    end
    for name, fn in pairs(good) do
      local ok, r = pcall(fn)
      out[name] = ok and ("ok:" .. tostring(r)) or tostring(r)
    end
    local gone = 0
    for i = 1, 12 do if kith.cancel("g" .. i) then gone = gone + 1 end end
    if kith.cancel("13") then gone = gone + 1 end
    if kith.cancel("g14") then gone = gone + 1 end
    out.cancelled = gone
    note({text = "probe", body = kith.json.encode(out)})
  elseif p.cmd == "uncaught" then
    -- the error undoes the whole handler: its note and its timer
    kith.after(1, "strict.due", nil, {id = "rolled-back"})
    note({text = "partial"})
    kith.after("0s", "strict.due")
  end
end)
kith.on("strict.due", function(ev) note({text = "fired"}) end)
'''


STRICT_GOOD = {"after_number": "g1", "after_one": "g2", "after_90s": "g3", "after_15m": "g4",
               "after_2h": "g5", "after_1d": "g6", "at_rfc": "g7", "at_ms": "g8",
               "every_15m": "g9", "every_cron": "g10", "every_weekdays": "g11",
               "every_leap_day": "g12", "after_number_id": "13", "after_index_id": "g14"}


def test_bad_timer_arguments_raise_in_a_handler(server):
    k = prepare(server)
    deploy_ok(server, k, "strict", STRICT)
    poke(server, k, "probe")
    out = json.loads(wait_notes(server, k, 1, "probe")[0]["body"])
    fn = {"after": "kith.after", "at": "kith.at", "every": "kith.every", "cancel": "kith.cancel"}
    assert len(out) == 1 + len(STRICT_GOOD) + 27, sorted(out)
    for name, msg in out.items():
        if name == "cancelled" or name in STRICT_GOOD:
            continue
        assert not msg.startswith("ok:"), (name, msg)
        assert fn[name.split("_")[0]] in msg, (name, msg)
    for name, tid in STRICT_GOOD.items():
        assert out[name] == "ok:" + tid, (name, out[name])
    assert out["cancelled"] == 14, out

    # uncaught: the handler fails, is counted, and leaves neither note nor timer
    errors0 = metric(server, "kith_lua_errors_total") or 0
    poke(server, k, "uncaught")
    h = poll(lambda: next((h for h in hooks(server, k, "strict")
                           if h["event"] == "pokes.created" and h["failures"] > 0), None), WAIT)
    assert h, hooks(server, k, "strict")
    assert (metric(server, "kith_lua_errors_total") or 0) > errors0
    time.sleep(2.0)                         # past the rolled-back timer's due time
    assert notes(server, k, "partial") == [] and notes(server, k, "fired") == [], \
        notes(server, k)


# ---------------------------------------------------------------- restarts and downtime

WAKE = NOTE_FN + r'''
kith.on("pokes.created", function(ev)
  kith.after(2, "wake.due", {ws = ev.record.arg}, {id = "wake"})
  note({text = "scheduled", tag = ev.record.arg})
end)
kith.on("wake.due", function(ev) note({text = "fired", tag = ev.payload.ws}) end)
'''


def test_timer_due_during_a_sigkill_fires_once_at_start(datadir):
    d, token = datadir
    srv = KithServer(d).start()
    srv.admin = token
    try:
        ks.workspace_create(srv, "other")
        keys = {"default": prepare(srv), "other": prepare(srv, srv.key("admin", "other"))}
        marks = {}
        for ws, k in keys.items():
            deploy_ok(srv, k, "wake", WAKE)
            marks[ws] = last_seq(srv, k)
            poke(srv, k, "go", ws)
        sched = {ws: wait_notes(srv, k, 1, "scheduled")[0] for ws, k in keys.items()}
        # committed (the note is in the timer's transaction): kill at once
        srv.stop(sig=signal.SIGKILL)
        assert srv.proc.returncode == -signal.SIGKILL
        assert time.time() - max(ts(n) for n in sched.values()) < 1.8, \
            "the kill came too late to test anything"
        time.sleep(max(0.0, max(ts(n) for n in sched.values()) + 4 - time.time()))

        before = time.time()
        srv = KithServer(d).start()
        srv.admin = token
        # no request for a while: every workspace is open and fires by itself
        time.sleep(2.0)
        asked = time.time()
        for ws, k in keys.items():
            fired = wait_notes(srv, k, 1, "fired")
            assert fired[0]["tag"] == ws, fired
            assert before <= ts(fired[0]) < asked, (ws, before, asked, fired)
        time.sleep(1.0)
        for ws, k in keys.items():
            quiesce(srv, k)
            assert len(notes(srv, k, "fired")) == 1, (ws, notes(srv, k))
            assert events_since(srv, k, marks[ws]) == 1, ws
    finally:
        srv.stop()


TICKER = NOTE_FN + r'''
kith.every("2s", "hb.tick")
kith.on("hb.tick", function(ev) note({text = "tick"}) end)
'''


def test_declared_every_fires_once_for_downtime(datadir):
    d, token = datadir
    srv = KithServer(d).start()
    srv.admin = token
    try:
        k = prepare(srv)
        deploy_ok(srv, k, "ticker", TICKER)
        wait_notes(srv, k, 1, "tick")
        srv.stop(sig=signal.SIGKILL)
        time.sleep(6.0)                       # three periods missed

        start = time.time()
        srv = KithServer(d).start()
        srv.admin = token
        got = poll(lambda: [n for n in notes(srv, k, "tick") if ts(n) >= start], WAIT)
        assert got, notes(srv, k, "tick")
        first = ts(got[0])
        # caught up at start (its old due time kept), not a period after the load
        assert first - start < 1.5, (start, got)
        time.sleep(max(0.0, first + 1.5 - time.time()))
        quiesce(srv, k)
        ticks = notes(srv, k, "tick")
        burst = [n for n in ticks if start <= ts(n) <= first + 1.5]
        assert len(burst) == 1, ("missed periods fired more than once", burst)
        # and then it goes on at its rate, from now
        after = poll(lambda: (lambda a: a if len(a) >= 2 else None)(
            [n for n in notes(srv, k, "tick") if ts(n) >= start]), WAIT)
        assert after, notes(srv, k, "tick")
        assert ts(after[1]) - first >= 1.5, after
    finally:
        srv.stop()


# ---------------------------------------------------------------- listing

LISTED = NOTE_FN + r'''
kith.every("0 9 * * 1-5", "digest.due", {team = "emea"}, {id = "digest"})
kith.on("pokes.created", function(ev)
  kith.after("1h", "followup.due", {contact = ev.id}, {id = "f-" .. ev.id})
end)
'''


def test_timers_are_listed_for_admins(server):
    k = prepare(server)
    deploy_ok(server, k, "listed", LISTED)
    p = poke(server, k, "go")

    def listed():
        r = server.req("GET", "/v1/timers", key=k)
        assert r.status == 200, r
        got = {t["id"]: t for t in r.json["timers"]}
        return got if "f-" + p["id"] in got else None
    got = poll(listed, WAIT)  # the after-hook schedules it after the commit
    assert got and "digest" in got, got
    d = got["digest"]
    assert (d["script"], d["event"], d["every"], d["declared"], d["payload"]) == \
        ("listed", "digest.due", "0 9 * * 1-5", True, {"team": "emea"})
    due = datetime.datetime.fromisoformat(d["due"].replace("Z", "+00:00"))
    assert due.hour == 9 and due.minute == 0 and due.weekday() < 5, d
    f = got["f-" + p["id"]]
    assert (f["script"], f["event"], f["declared"], f["payload"]) == \
        ("listed", "followup.due", False, {"contact": p["id"]})
    assert "every" not in f
    left = datetime.datetime.fromisoformat(f["due"].replace("Z", "+00:00")).timestamp() - time.time()
    assert 3000 < left <= 3600, f
    # gone with the script
    assert server.req("DELETE", "/v1/scripts/listed", key=k).status == 204
    r = server.req("GET", "/v1/timers", key=k)
    assert [t for t in r.json["timers"] if t["script"] == "listed"] == [], r.json
