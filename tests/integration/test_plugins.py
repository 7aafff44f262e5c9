"""The C plugin SDK: loading and refusing plugins, and what a plugin can do.

Fixtures (tests/plugins/fixture.c, one .so per bad case, and not_elf.so /
truncated.so made at build time) and the SDK example sdk/examples/hello are
built by CMake into <build>/plugins. Each test copies the files it needs into
its own directory with fixed modes, since the loader refuses files or
directories that others can write.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT, kith
from kithserver import KithServer

BUILD = BIN.parent
PLUGINS = BUILD / "plugins"

BAD = {
    # name in plugins.load -> what the refusal says
    "not_elf": "is not an ELF file",
    "truncated": "is truncated",
    "wrong_abi": "built for plugin ABI 99; this kith speaks ABI 1",
    "wrong_signature": "built with signature 'kith-abi1/p4/l4/o4321'",
    "api_too_new": "needs API level 3; this kith offers 2",
    "no_descriptor": "exports no kith_plugin descriptor",
    "duplicate_name": "duplicate name: a plugin named hello is already loaded",
    "unresolved": "undefined symbol: kith_fixture_no_such_symbol",
    "bad_init": "init failed (-1): bad_init: the database is unreachable",
    "route_clash": "the same paths as the core route records.get",
    "route_takeover": "would take requests of the core route records.query",
    "missing": "no missing.so in the plugin directories",
}


def plugin_dir(tmp_path, names):
    d = tmp_path / "plugins"
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)
    for n in names:
        src = PLUGINS / f"{n}.so"
        if src.exists():
            shutil.copy(src, d / f"{n}.so")
            os.chmod(d / f"{n}.so", 0o644)
    return d


def configure(datadir, dirs, load, config=None):
    p = pathlib.Path(datadir) / "kith.json"
    c = json.loads(p.read_text())
    c["plugins"] = {"dirs": [str(x) for x in dirs], "load": load}
    if config is not None:
        c["plugins"]["config"] = config
    p.write_text(json.dumps(c, indent=1))


@pytest.fixture
def loaded(tmp_path, datadir):
    """A server with hello and every bad fixture configured."""
    d, token = datadir
    pdir = plugin_dir(tmp_path, ["hello"] + list(BAD))
    configure(d, [pdir], ["hello"] + list(BAD))
    srv = KithServer(d).start()
    srv.admin = token
    yield srv
    srv.stop()


def test_kith_plugins_lists_loaded_and_refused(tmp_path, datadir):
    d, _ = datadir
    pdir = plugin_dir(tmp_path, ["hello"] + list(BAD))
    configure(d, [pdir], ["hello"] + list(BAD))
    p = kith("plugins", "--data", d)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"loaded hello 1.0.0 {pdir}/hello.so"), lines
    assert "2 hooks, 2 routes, 1 collections, 1 timers" in lines[0]
    for name, why in BAD.items():
        line = [l for l in lines if l.startswith(f"refused {name}:")]
        assert len(line) == 1, (name, lines)
        assert why in line[0], (name, line[0])
    # only hello configured: everything loads, exit 0
    configure(d, [pdir], ["hello"])
    p = kith("plugins", "--data", d, check=0)
    assert p.stdout.startswith("loaded hello")
    configure(d, [pdir], [])
    assert "no plugins configured" in kith("plugins", "--data", d, check=0).stdout


def test_refusals_are_logged_and_the_server_serves(loaded):
    srv = loaded
    assert srv.req("GET", "/healthz").status == 200
    log = srv.log()
    for name, why in BAD.items():
        lines = [l for l in log.splitlines() if f"plugin {name} refused:" in l]
        assert len(lines) == 1, (name, lines)
        assert why in lines[0]
    r = srv.req("GET", "/v1/plugins", key=srv.admin)
    assert r.status == 200
    states = {p["name"]: p["state"] for p in r.json["plugins"]}
    assert states["hello"] == "loaded"
    assert all(states[n] == "refused" for n in BAD if n != "duplicate_name")
    # a refused plugin's reason is listed; the listing needs the scripts capability
    bad = [p for p in r.json["plugins"] if p["name"] == "bad_init"][0]
    assert "database is unreachable" in bad["reason"]
    assert srv.req("GET", "/v1/plugins", key=srv.key("sales")).status == 403


def test_failed_init_leaves_nothing_registered(loaded):
    srv = loaded
    hooks = srv.req("GET", "/v1/hooks", key=srv.admin).json["hooks"]
    owners = {h["owner"] for h in hooks}
    assert owners == {"plugin:hello"}, owners
    routes = srv.req("GET", "/v1/routes", key=srv.admin).json["routes"]
    paths = {(r["method"], r["path"]) for r in routes}
    assert ("GET", "/v1/hello/{name}") in paths
    assert not any("bad-init" in p for _, p in paths)
    assert srv.req("GET", "/v1/bad-init/probe", key=srv.admin).status == 404
    schema = srv.req("GET", "/v1/schema", key=srv.admin).json
    names = {c["name"] for c in schema["collections"]}
    assert "hello_visits" in names and "bad_init_things" not in names
    timers = srv.req("GET", "/v1/timers", key=srv.admin).json["timers"]
    assert [(t["owner"], t["id"], t["script"]) for t in timers] == [("plugin:hello", "tick", "")]
    # a notes collection is not vetoed by bad_init's hook
    from kithserver import schema as mkschema
    mkschema(srv, srv.admin, "notes", [{"name": "text", "type": "string"}])
    assert srv.req("POST", "/v1/notes", key=srv.admin, body={"text": "x"}).status == 201


def test_hello_hooks_routes_counters(loaded):
    srv = loaded
    admin = srv.admin
    r = srv.req("POST", "/v1/hello/world", key=admin, body={"phone": "13812345678"})
    assert r.status == 201, r
    rec = r.json
    assert rec["record"]["greeting"] == "Hello"  # the before-hook amended it
    assert rec["record"]["phone"] == "13812345678"
    # the veto comes back as 422 with the plugin's message, nothing written
    r = srv.req("POST", "/v1/hello/nobody", key=admin)
    assert r.status == 422 and "nobody cannot visit" in r.json["detail"]
    r = srv.req("GET", "/v1/hello/world", key=admin)
    assert r.status == 200
    assert r.json == {"greeting": "Hello, world", "visits": 1, "phones": ["13812345678"],
                        "workspace": "default"}
    assert srv.req("GET", "/v1/hello/nobody", key=admin).json["visits"] == 0
    # the after-hook ran: counter, and the record is readable through the core API
    got = srv.req("GET", f"/v1/hello_visits/{rec['id']}", key=admin).json
    assert got["greeting"] == "Hello"
    for _ in range(100):
        m = srv.req("GET", "/metrics").body.decode()
        if "kith_plugin_hello_visits_total 1" in m:
            break
        import time
        time.sleep(0.05)
    assert "kith_plugin_hello_visits_total 1" in m
    assert "# HELP kith_plugin_hello_visits_total Visits recorded" in m
    assert 'kith_http_requests_total{route="hello.visit",status="201"} 1' in m


def test_a_collection_cannot_take_a_name_a_plugin_route_answers_for(loaded):
    srv = loaded
    fields = {"fields": [{"name": "n", "type": "string"}]}
    # GET /v1/hello/{name} would answer in place of GET /v1/hello/{id}
    r = srv.req("PUT", "/v1/schema/hello", key=srv.admin, body=fields)
    assert r.status == 409, r
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "GET /v1/hello/{name}" in r.json["detail"], r.json
    names = [c["name"] for c in srv.req("GET", "/v1/schema", key=srv.admin).json["collections"]]
    assert "hello" not in names and "hello_visits" in names, names
    # names beside it are free, and so is the plugin's own collection
    for name in ("hellos", "hell"):
        r = srv.req("PUT", f"/v1/schema/{name}", key=srv.admin, body=fields)
        assert r.status in (200, 201), r
        made = srv.req("POST", f"/v1/{name}", key=srv.admin, body={"n": "x"})
        assert made.status == 201, made
        assert srv.req("GET", f"/v1/{name}/{made.json['id']}", key=srv.admin).status == 200


def test_a_collection_made_before_the_plugin_is_warned_about(tmp_path, datadir):
    d, token = datadir
    fields = {"fields": [{"name": "n", "type": "string"}]}
    with KithServer(d) as srv:  # no plugins yet: the name is free
        assert srv.req("PUT", "/v1/schema/hello", key=token, body=fields).status == 201
        rid = srv.req("POST", "/v1/hello", key=token, body={"n": "x"}).json["id"]
    pdir = plugin_dir(tmp_path, ["hello"])
    configure(d, [pdir], ["hello"])
    with KithServer(d) as srv:
        # the plugin's route answers for GET /v1/hello/{id}: the log says so
        r = srv.req("GET", f"/v1/hello/{rid}", key=token)
        assert r.status == 200 and "greeting" in r.json, r
        log = srv.log()
        assert ("the plugin route GET /v1/hello/{name} (hello.greet) answers in place of the "
                "records of collection 'hello'") in log, log[-2000:]
        # still editable, and still listed
        r = srv.req("PUT", "/v1/schema/hello/fields/m", key=token, body={"type": "string"})
        assert r.status == 200, r


def test_routes_act_as_the_caller(loaded):
    srv = loaded
    srv.req("POST", "/v1/hello/ann", key=srv.admin, body={"phone": "13812345678"})
    ro = srv.key("readonly")
    # masking applies to what a read route returns
    r = srv.req("GET", "/v1/hello/ann", key=ro)
    assert r.status == 200 and r.json["phones"] == ["138****5678"]
    # the route's action is checked before the plugin runs
    r = srv.req("POST", "/v1/hello/bob", key=ro)
    assert r.status == 403 and "may not create hello_visits" in r.json["detail"]
    assert srv.req("GET", "/v1/hello/ann").status == 401
    # writes and unmasked reads through plugin routes are audited
    audit = srv.req("GET", "/v1/audit?limit=100", key=srv.admin).json["entries"]
    acts = [(e["action"], e["collection"]) for e in audit]
    assert ("create", "hello_visits") in acts
    srv.req("GET", "/v1/hello/ann", key=srv.admin)
    audit = srv.req("GET", "/v1/audit?limit=100", key=srv.admin).json["entries"]
    reads = [e for e in audit if e["action"] == "read" and e.get("fields") == ["phone"]]
    assert reads, audit
    # bad JSON body: 400 before the plugin runs
    r = srv.req("POST", "/v1/hello/x", key=srv.admin, body=b"{nope", ctype="application/json")
    assert r.status == 400


def test_other_workspace_sees_its_own_data(loaded):
    srv = loaded
    kith("workspace", "create", "other", "--data", srv.datadir, check=0)
    other = srv.key("admin", workspace="other")
    srv.req("POST", "/v1/hello/zed", key=srv.admin)
    r = srv.req("GET", "/v1/hello/zed", key=other)
    assert r.status == 200 and r.json["visits"] == 0 and r.json["workspace"] == "other"


def test_config_is_checked_and_given(tmp_path, datadir):
    d, token = datadir
    pdir = plugin_dir(tmp_path, ["hello"])
    configure(d, [pdir], ["hello"], {"hello": {"greeting": 5}})
    p = kith("plugins", "--data", d)
    assert p.returncode == 1 and "config: 'greeting' must be of type string" in p.stdout
    configure(d, [pdir], ["hello"], {"hello": {"salutation": "x"}})
    assert "config: unknown key 'salutation'" in kith("plugins", "--data", d).stdout
    configure(d, [pdir], ["hello"], {"hello": {"greeting": "Hi"}})
    with KithServer(d) as srv:
        assert srv.req("GET", "/v1/hello/you", key=token).json["greeting"] == "Hi, you"
    # a malformed plugins section stops the server with a message naming the key
    c = json.loads((pathlib.Path(d) / "kith.json").read_text())
    c["plugins"]["load"] = ["Bad Name"]
    (pathlib.Path(d) / "kith.json").write_text(json.dumps(c))
    p = kith("serve", "--data", d, "--listen", "127.0.0.1:0")
    assert p.returncode == 2 and "plugins.load" in p.stderr


def test_path_policy(tmp_path, datadir):
    d, _ = datadir
    pdir = plugin_dir(tmp_path, ["hello"])
    os.chmod(pdir / "hello.so", 0o664)
    configure(d, [pdir], ["hello"])
    out = kith("plugins", "--data", d).stdout
    assert "hello.so is writable by its group" in out
    os.chmod(pdir / "hello.so", 0o644)
    os.chmod(pdir, 0o777)
    out = kith("plugins", "--data", d).stdout
    assert f"the directory {pdir} is writable by others" in out
    os.chmod(pdir, 0o755)
    assert kith("plugins", "--data", d).returncode == 0


def test_sdk_builds_out_of_tree(tmp_path, datadir):
    """make install's files: the example builds with only pkg-config's flags,
    and with the CMake helper, and the result loads."""
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)], check=True,
                   capture_output=True)
    assert (prefix / "include/kith/plugin.h").exists()
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))
    cflags = subprocess.run(["pkg-config", "--cflags", "kith-plugin"], env=env, check=True,
                            capture_output=True, text=True).stdout.split()
    out = plugin_dir(tmp_path, [])
    src = prefix / "share/kith/sdk/examples/hello/hello.c"
    subprocess.run(["cc", *cflags, "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-o", str(out / "hello.so"), str(src)], check=True)
    os.chmod(out / "hello.so", 0o644)
    d, _ = datadir
    configure(d, [out], ["hello"])
    assert kith("plugins", "--data", d, check=0).stdout.startswith("loaded hello 1.0.0")
    # the CMake helper
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(src, proj / "hello.c")
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(p C)\n"
        "find_package(KithPlugin REQUIRED)\nkith_add_plugin(hello hello.c)\n")
    b = tmp_path / "projbuild"
    subprocess.run(["cmake", "-S", str(proj), "-B", str(b), f"-DCMAKE_PREFIX_PATH={prefix}"],
                   check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(b)], check=True, capture_output=True)
    assert (b / "hello.so").exists()


def test_kith_test_runs_with_the_plugins(tmp_path, datadir):
    """kith test opens its copy as the server opens a workspace: the plugins'
    collections and hooks are there."""
    d, _ = datadir
    pdir = plugin_dir(tmp_path, ["hello"])
    configure(d, [pdir], ["hello"], {"hello": {"greeting": "Ahoy"}})
    f = tmp_path / "hello_test.lua"
    f.write_text('''
describe("hello", function()
  it("stamps the greeting", function()
    local r = kith.entity.create("hello_visits", {name = "ann"})
    expect(r.greeting).to_be("Ahoy")
  end)
  it("vetoes nobody", function()
    local r, err = kith.entity.create("hello_visits", {name = "nobody"})
    expect(r).to_be_nil()
    expect(err.message).to_contain("nobody cannot visit")
  end)
end)
''')
    p = kith("test", "--data", d, f)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 passed, 0 failed" in p.stdout


def test_route_contract(tmp_path, datadir):
    """What a misbehaving route gets: a failure after an answer drops the
    answer (nothing unaudited leaves), an error answer rolls its writes back,
    a code the writer uses internally is a plain failure."""
    d, token = datadir
    pdir = plugin_dir(tmp_path, ["probe"])
    configure(d, [pdir], ["probe"])
    with KithServer(d) as srv:
        r = srv.req("POST", "/v1/probe/note", key=token)
        assert r.status == 201, r
        nid = r.json["id"]
        audit0 = len(srv.req("GET", "/v1/audit?limit=1000", key=token).json["entries"])
        r = srv.req("GET", f"/v1/probe/{nid}/leak", key=token)
        assert r.status == 500 and b"13812345678" not in r.body, r
        audit1 = len(srv.req("GET", "/v1/audit?limit=1000", key=token).json["entries"])
        assert audit1 == audit0
        r = srv.req("POST", "/v1/probe/refuse", key=token)
        assert r.status == 409 and "refused after writing" in r.json["detail"]
        r = srv.req("POST", "/v1/probe/internal", key=token)
        assert r.status == 500
        from kithserver import list_all
        notes = list_all(srv, token, "probe_notes")
        assert [n["id"] for n in notes] == [nid]  # the refused and failed writes rolled back
        assert srv.req("GET", "/healthz").status == 200
        # a masked caller may not filter by the sensitive field (no prefix oracle)
        r = srv.req("GET", "/v1/probe-phone/13812345678", key=token)
        assert r.status == 200 and r.json["count"] == 1, r
        r = srv.req("GET", "/v1/probe-phone/13812345678", key=srv.key("readonly"))
        assert r.status == 403 and "phone' is sensitive" in r.json["detail"], r


def test_symlinked_plugin_is_checked_where_it_lives(tmp_path, datadir):
    d, _ = datadir
    wide = tmp_path / "wide"
    wide.mkdir()
    shutil.copy(PLUGINS / "hello.so", wide / "hello.so")
    os.chmod(wide / "hello.so", 0o644)
    os.chmod(wide, 0o777)
    pdir = plugin_dir(tmp_path, [])
    os.symlink(wide / "hello.so", pdir / "hello.so")
    configure(d, [pdir], ["hello"])
    out = kith("plugins", "--data", d).stdout
    assert f"the directory {wide} is writable by others" in out, out
    os.chmod(wide, 0o755)
    assert kith("plugins", "--data", d).stdout.startswith("loaded hello")
