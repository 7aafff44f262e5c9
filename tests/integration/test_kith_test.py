"""`kith test --data DIR [--workspace NAME] FILE...`: admin-written Lua tests
run against a throw-away copy of a workspace, beside a running server.

Scripts are deployed over HTTPS (a before-hook that vetoes and amends, an
after-hook that writes another record, a domain-event handler); then test
files that pass, fail, do not compile or loop forever are run. Each run gets
its own empty $TMPDIR, which must be empty again afterwards, and the
server's data must be what it was before.
"""
import os
import re
import signal
import subprocess
import time

import kithserver as ks
from conftest import BIN, kith
from kithserver import schema

CONTACTS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "note", "type": "string"},
    {"name": "stage", "type": "string"},
]
MARKERS = [{"name": "contact", "type": "string"}, {"name": "tag", "type": "string"}]

RULES = '''
kith.on("contacts.before_create", function(ev)
  if ev.record.name == "blocked" then return false, "blocked names are refused" end
  ev.record.note = "amended"
end)
kith.on("contacts.created", function(ev)
  kith.entity.create("markers", {contact = ev.id, tag = "seen"})
end)
kith.on("lead.hot", function(ev)
  kith.entity.create("markers", {contact = ev.payload.id, tag = "hot"})
end)
'''

PASSING = '''
local created

before_each(function() kith.log.info("setting up") end)

describe("contacts", function()
  it("are amended by the before-hook", function()
    local c, err = kith.entity.create("contacts", {name = "alice"})
    expect(err).to_be_nil()
    expect(c.note).to_be("amended")
    created = c
  end)

  it("with a blocked name are vetoed", function()
    local c, err = kith.entity.create("contacts", {name = "blocked"})
    expect(c).to_be_nil()
    expect(err).to_equal({code = "vetoed", message = "blocked names are refused"})
    expect(kith.entity.query("contacts", {name = "blocked"})).to_equal({})
  end)

  describe("after-hooks", function()
    it("ran before the write returned", function()
      local ms = kith.entity.query("markers", {contact = created.id})
      expect(#ms).to_be(1)
      expect(ms[1].tag).to_be("seen")
    end)

    it("see domain events", function()
      expect(kith.emit("lead.hot", {id = created.id})).to_be_truthy()
      local ms = kith.entity.query("markers", {contact = created.id, tag = "hot"})
      expect(#ms).to_be(1)
    end)
  end)

  it("can be read, updated and deleted", function()
    local got = kith.entity.get("contacts", created.id)
    expect(got.name).to_be("alice")
    local up = kith.entity.update("contacts", created.id, {stage = "won"})
    expect(up.stage).to_be("won")
    expect(kith.entity.delete("contacts", created.id)).to_be(true)
    local gone, err = kith.entity.get("contacts", created.id)
    expect(gone).to_be_nil()
    expect(err.code).to_be("not_found")
  end)
end)

it("matchers", function()
  expect({a = {1, 2}, b = "x"}).to_equal({b = "x", a = {1, 2}})
  expect({a = 1}).never.to_equal({a = 2})
  expect({1, {2}, 3}).to_contain({2})
  expect("hello").to_contain("ell")
  expect("hello").not_.to_contain("z")
  expect(nil).to_be_falsy()
  expect(0).to_be_truthy()
  expect(false).never.to_be_nil()
  expect(function() error("boom") end).to_fail("boom")
  expect(function() end).never.to_fail()
  expect(3).to_be_greater_than(2)
  expect(2).to_be_less_than(3)
  expect("abc"):to_match("^a")
  expect(kith.json.decode('{"x":null}').x).to_be(kith.json.null)
  expect(type(kith.time.now())).to_be("number")
end)
'''

FAILING = '''describe("math", function()
  it("adds", function()
    expect(1 + 1).to_be(2)
  end)
  it("is wrong", function()
    expect(1 + 1).to_be(3)
  end)
  it("errors", function()
    local t = nil
    return t.field
  end)
  it("compares tables", function()
    expect({a = 1, b = {2}}).to_equal({a = 1, b = {3}})
  end)
  it("still runs after failures", function()
    expect(kith.entity.create("contacts", {name = "carol"}).note).to_be("amended")
  end)
end)
'''

SYNTAX = '''describe("broken", function()
  it("never runs", function()
    expect(1).to_be(1)
  end
end)
'''

LOOPING = '''it("loops forever", function()
  while true do end
end)
it("runs anyway", function()
  expect(kith.entity.create("contacts", {name = "dave"})).to_be_truthy()
end)
'''

TOP_LEVEL_ERROR = '''it("is declared", function() end)
local x = nil
x.y = 1
'''


def setup_default(srv):
    k = srv.admin
    schema(srv, k, "contacts", CONTACTS)
    schema(srv, k, "markers", MARKERS)
    r = srv.req("PUT", "/v1/scripts/rules", key=k, body=RULES, ctype="text/x-lua")
    assert r.status in (200, 201), r
    seed = srv.req("POST", "/v1/contacts", key=k, body={"name": "seed"})
    assert seed.status == 201, seed
    # the server's after-hook marks it; wait, so the snapshots compare settled data
    end = time.monotonic() + 5
    while not ks.list_all(srv, k, "markers") and time.monotonic() < end:
        time.sleep(0.02)
    assert len(ks.list_all(srv, k, "markers")) == 1
    return k


def snapshot(srv, key):
    """What the server holds: every contact and marker, and the change log's end."""
    return {
        "contacts": ks.list_all(srv, key, "contacts"),
        "markers": ks.list_all(srv, key, "markers"),
        "last_seq": srv.req("GET", "/v1/changes?limit=1", key=key).json["last_seq"],
    }


def kith_test(srv, tmp_path, files, *extra, check=None):
    """Writes files ({name: source}) and runs kith test on them with a fresh
    empty TMPDIR; asserts it is empty again afterwards."""
    tmpdir = tmp_path / f"tmp-{time.monotonic_ns()}"
    tmpdir.mkdir()
    paths = []
    for name, src in files.items():
        p = tmp_path / name
        p.write_text(src)
        paths.append(p)
    p = kith("test", "--data", srv.datadir, *extra, *paths, check=check,
             env={"TMPDIR": str(tmpdir)})
    assert os.listdir(tmpdir) == [], (os.listdir(tmpdir), p.stdout, p.stderr)
    return p


def lines(p):
    return p.stdout.splitlines()


def test_passing_file_runs_against_the_scripts_and_leaves_the_server_alone(server, tmp_path):
    k = setup_default(server)
    before = snapshot(server, k)
    p = kith_test(server, tmp_path, {"pass.lua": PASSING}, check=0)
    out = lines(p)
    assert [l for l in out if re.match(r"(not )?ok ", l)] == [
        "ok 1 - contacts > are amended by the before-hook",
        "ok 2 - contacts > with a blocked name are vetoed",
        "ok 3 - contacts > after-hooks > ran before the write returned",
        "ok 4 - contacts > after-hooks > see domain events",
        "ok 5 - contacts > can be read, updated and deleted",
        "ok 6 - matchers",
    ], p.stdout
    assert out[-1] == "6 passed, 0 failed", p.stdout
    assert "# setting up" in out, p.stdout      # kith.log goes into the report
    # nothing the tests wrote reached the real workspace
    assert snapshot(server, k) == before
    names = [c["name"] for c in ks.list_all(server, k, "contacts")]
    assert "alice" not in names and names == ["seed"], names
    # and the server still works
    assert server.req("POST", "/v1/contacts", key=k, body={"name": "after"}).json["note"] == \
        "amended"


def test_failures_name_the_line_and_the_others_still_run(server, tmp_path):
    k = setup_default(server)
    before = snapshot(server, k)
    p = kith_test(server, tmp_path, {"fail.lua": FAILING, "pass.lua": PASSING}, check=1)
    out = lines(p)
    assert out[0] == "ok 1 - math > adds", p.stdout
    assert out[1] == "not ok 2 - math > is wrong", p.stdout
    assert re.fullmatch(r"  # \S*fail\.lua:6: expected 3, got 2", out[2]), p.stdout
    assert out[3] == "not ok 3 - math > errors", p.stdout
    assert re.fullmatch(r"  # \S*fail\.lua:10: attempt to index .*", out[4]), p.stdout
    assert out[5] == "not ok 4 - math > compares tables", p.stdout
    assert re.fullmatch(r"  # \S*fail\.lua:13: expected \{a = 1, b = \{3\}\} \(deep equality\), "
                        r"got \{a = 1, b = \{2\}\}", out[6]), p.stdout
    assert out[7] == "ok 5 - math > still runs after failures", p.stdout
    # the second file runs too, numbered on
    assert "ok 11 - matchers" in out, p.stdout
    assert out[-1] == "8 passed, 3 failed", p.stdout
    assert snapshot(server, k) == before


def test_an_endless_loop_fails_its_test_only(server, tmp_path):
    k = setup_default(server)
    t0 = time.monotonic()
    p = kith_test(server, tmp_path, {"loop.lua": LOOPING}, check=1)
    out = lines(p)
    assert out[0] == "not ok 1 - loops forever", p.stdout
    assert re.fullmatch(r"  # \S*loop\.lua:1: time budget of \d+ ms exceeded", out[1]), p.stdout
    assert out[2] == "ok 2 - runs anyway", p.stdout
    assert out[-1] == "1 passed, 1 failed", p.stdout
    assert time.monotonic() - t0 < 60
    assert "dave" not in [c["name"] for c in ks.list_all(server, k, "contacts")]


def test_an_error_at_the_top_level_fails_the_file(server, tmp_path):
    setup_default(server)
    p = kith_test(server, tmp_path, {"top.lua": TOP_LEVEL_ERROR, "pass.lua": PASSING}, check=1)
    out = lines(p)
    assert re.fullmatch(r"not ok 1 - \S*top\.lua", out[0]), p.stdout
    assert re.fullmatch(r"  # \S*top\.lua:3: attempt to index .*", out[1]), p.stdout
    assert out[-1] == "6 passed, 1 failed", p.stdout


def test_bad_files_and_usage_exit_2_and_run_nothing(server, tmp_path):
    k = setup_default(server)
    before = snapshot(server, k)
    p = kith_test(server, tmp_path, {"pass.lua": PASSING, "syntax.lua": SYNTAX}, check=2)
    assert p.stdout == "", p.stdout                       # nothing ran
    first = p.stderr.splitlines()[0]
    assert first.startswith("kith test: ") and re.search(r"syntax\.lua:5: .*expected", first), \
        p.stderr
    p = kith("test", "--data", server.datadir, tmp_path / "missing.lua", check=2)
    assert p.stderr.startswith("kith test: ") and "missing.lua" in p.stderr, p.stderr
    p = kith("test", "--data", server.datadir, check=2)
    assert "missing argument" in p.stderr, p.stderr
    p = kith_test(server, tmp_path, {"pass.lua": PASSING}, "--workspace", "nope", check=2)
    assert p.stderr.startswith("kith test: ") and "no workspace 'nope'" in p.stderr, p.stderr
    assert snapshot(server, k) == before


def test_another_workspace(server, tmp_path):
    setup_default(server)
    ks.workspace_create(server, "other")
    b = server.key("admin", "other")
    schema(server, b, "contacts", CONTACTS)
    r = server.req("PUT", "/v1/scripts/stamp", key=b, ctype="text/x-lua",
                   body='kith.on("contacts.before_create", function(ev) '
                        'ev.record.note = "other" end)\n')
    assert r.status in (200, 201), r
    src = '''it("uses the other workspace's scripts", function()
  expect(kith.entity.create("contacts", {name = "x"}).note).to_be("other")
  local ok, err = kith.entity.query("markers")
  expect(ok).to_be_nil()
  expect(err.code).to_be("not_found")
end)
'''
    p = kith_test(server, tmp_path, {"other.lua": src}, "--workspace", "other", check=0)
    assert lines(p) == ["ok 1 - uses the other workspace's scripts", "1 passed, 0 failed"], \
        p.stdout
    assert ks.list_all(server, b, "contacts") == []
    # the same file against default fails: its rule amends differently
    p = kith_test(server, tmp_path, {"other.lua": src}, check=1)
    assert 'expected "other", got "amended"' in p.stdout, p.stdout


def test_a_signal_still_removes_the_copy(server, tmp_path):
    setup_default(server)
    src = "".join(f'it("loop {i}", function() while true do end end)\n' for i in range(100))
    f = tmp_path / "slow.lua"
    f.write_text(src)
    tmpdir = tmp_path / "tmp-signal"
    tmpdir.mkdir()
    e = dict(os.environ, TMPDIR=str(tmpdir), KITH_LOG="warn")
    proc = subprocess.Popen([str(BIN / "kith"), "test", "--data", str(server.datadir), str(f)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("not ok 1 - loop 0"), first
        assert len(os.listdir(tmpdir)) == 1              # the copy exists while it runs
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM, proc.returncode
    assert os.listdir(tmpdir) == []


HOOKS = """
describe("hooks", function()
  it("first", function() kith.log.info("body 1") end)
  -- declared after the first it: still runs around it
  before_each(function() kith.log.info("before") end)
  after_each(function() kith.log.info("after") end)
  it("second fails", function()
    kith.log.info("body 2")
    expect(1).to_be(2)
  end)
end)
"""


def test_before_and_after_each_wrap_every_test_even_a_failing_one(server, tmp_path):
    setup_default(server)
    p = kith_test(server, tmp_path, {"hooks.lua": HOOKS}, check=1)
    trace = [l.strip() for l in lines(p) if l.strip() in
             ("# before", "# after", "# body 1", "# body 2")]
    assert trace == ["# before", "# body 1", "# after", "# before", "# body 2", "# after"], \
        p.stdout
