"""Permissions over HTTPS: the route x role x workspace matrix, keys and
revocation, workspace isolation, and record scope.

The matrix is generated from the server's own route table (GET /v1/routes),
so a route added later is covered without touching this file; a route whose
`action` or path parameter this generator does not know fails the suite
loudly instead of being skipped.

The expected rights of every role are written down here (ROLES below, the
built-in roles of core/auth/auth_role.c plus one custom role defined through
/v1/roles), independently of the server; test_builtin_roles_are_as_specified
checks that the server serves the same definitions.
"""
import csv
import io
import itertools
import json
import urllib.parse

import pytest

import kithserver as ks
from kithserver import schema

WORKSPACES = ("default", "b")
RECORD_ACTIONS = ("read", "create", "update", "delete", "export", "import")
CAPABILITIES = ("unmask", "schema", "scripts", "keys", "audit")
KNOWN_ACTIONS = {"public", "any"} | set(RECORD_ACTIONS) | set(CAPABILITIES)
KNOWN_PARAMS = {"collection", "id", "name"}
ALL_ACTIONS = set(RECORD_ACTIONS)

# role -> grants {collection or "*": (actions, scope)}, capabilities, (user, team) of its key
ROLES = {
    "admin": ({"*": (ALL_ACTIONS, "all")}, set(CAPABILITIES), (None, None)),
    "manager": ({"*": (ALL_ACTIONS, "all")}, {"unmask", "audit"}, (None, None)),
    "sales": ({"*": ({"read", "create", "update", "export"}, "team")}, set(), ("u1", "t1")),
    "support": ({"*": ({"read", "create", "update"}, "team")}, set(), ("s1", "t2")),
    "readonly": ({"*": ({"read"}, "all")}, set(), (None, None)),
    # a custom role (PUT /v1/roles/closer): deals only, own records, may delete
    "closer": ({"deals": ({"read", "update", "delete"}, "own")}, {"audit"}, ("u1", "t1")),
}
BUILTIN = ("admin", "manager", "sales", "support", "readonly")
CLOSER_DEF = {"collections": {"deals": {"actions": ["read", "update", "delete"], "scope": "own"}},
              "capabilities": ["audit"]}

DEALS = [
    {"name": "name", "type": "string", "required": True, "indexed": True},
    {"name": "owner", "type": "string", "indexed": True},
    {"name": "team", "type": "string", "indexed": True},
    {"name": "email", "type": "email", "unique": True, "sensitive": True},
    {"name": "phone", "type": "phone", "sensitive": True},
    {"name": "note", "type": "text", "sensitive": True},
    {"name": "amount", "type": "int", "indexed": True},
    {"name": "account", "type": "ref", "ref": "accounts", "indexed": True},
]
ACCOUNTS = [{"name": "name", "type": "string", "required": True}]  # shared: no owner/team
SCRATCH = [{"name": "name", "type": "string"}]

# seeded deals: label -> (owner, team); None = field absent
SEED = {
    "u1": ("u1", "t1"),
    "u1t2": ("u1", "t2"),
    "u2": ("u2", "t1"),
    "u3": ("u3", "t2"),
    "s1": ("s1", "t2"),
    "x9": ("x9", "t9"),
    "none": (None, None),
}

MIN_ROUTES = {  # what the issue names; the table may only grow
    ("GET", "/v1/{collection}"), ("POST", "/v1/{collection}"),
    ("GET", "/v1/{collection}/{id}"), ("PATCH", "/v1/{collection}/{id}"),
    ("PUT", "/v1/{collection}/{id}"), ("DELETE", "/v1/{collection}/{id}"),
    ("POST", "/v1/{collection}/query"), ("POST", "/v1/{collection}/bulk"),
    ("POST", "/v1/{collection}/import"), ("GET", "/v1/{collection}/export"),
    ("GET", "/v1/changes"), ("GET", "/v1/changes/stream"), ("GET", "/v1/audit"),
    ("GET", "/v1/roles"), ("PUT", "/v1/roles/{name}"),
    ("GET", "/v1/keys"), ("POST", "/v1/keys"), ("DELETE", "/v1/keys/{id}"),
    ("PUT", "/v1/schema/{collection}"),
}


# ---------------------------------------------------------------- the rules

def role_scope(role, coll, action):
    """The scope with which role may do a record action on coll, or None."""
    grants = ROLES[role][0]
    g = grants.get(coll, grants.get("*") if not coll.startswith("_") else None)
    if g is None or action not in g[0]:
        return None
    return g[1]


def allowed(role, action, coll="deals"):
    if action not in KNOWN_ACTIONS:
        raise AssertionError(f"the route table has action {action!r}, which this generator "
                             f"does not know: teach test_api_permissions.py about it")
    if action in ("public", "any"):
        return True
    if action in RECORD_ACTIONS:
        return role_scope(role, coll, action) is not None
    return action in ROLES[role][1]


def in_scope(role, coll, rec):
    """Whether rec (a dict with owner/team or not) is within role's read scope."""
    scope = role_scope(role, coll, "read")
    if scope is None:
        return False
    if scope == "all" or coll != "deals":  # accounts is shared
        return True
    user, team = ROLES[role][2]
    if rec.get("owner") == user:
        return True
    return scope == "team" and team is not None and rec.get("team") == team


def path_params(pattern):
    import re
    names = re.findall(r"\{([^}]*)\}", pattern)
    unknown = set(names) - KNOWN_PARAMS
    if unknown:
        raise AssertionError(f"route {pattern}: unknown path parameter(s) {sorted(unknown)}: "
                             f"teach test_api_permissions.py how to fill them")
    return names


# ---------------------------------------------------------------- the world

class Space:
    """One workspace: its keys, records and identities."""

    def __init__(self, name):
        self.name = name
        self.keys = {}      # role -> token
        self.who = {}       # role -> /v1/me
        self.deals = {}     # label -> id
        self.account = None
        self.admin = None


class World:
    def __init__(self, srv):
        self.srv = srv
        self.ws = {}
        self.n = itertools.count(1)

    def uniq(self, prefix="m"):
        return f"{prefix}{next(self.n)}"

    def owner_of(self, ws, role):
        """(owner, team) for a record that lies in role's scope."""
        user, team = ROLES[role][2]
        if user is None:
            user = self.ws[ws].who[role]["user"]
        return user, team or "t9"

    def fresh_deal(self, ws, role, **extra):
        """A new deal (created by the workspace admin) within role's scope."""
        owner, team = self.owner_of(ws, role)
        body = {"name": self.uniq("fresh"), "owner": owner, "team": team, "amount": 1}
        body.update(extra)
        r = self.srv.req("POST", "/v1/deals", key=self.ws[ws].admin, body=body)
        assert r.status == 201, r
        return r.json["id"]

    def admin_get(self, ws, path):
        return self.srv.req("GET", path, key=self.ws[ws].admin)

    def gone_id(self, ws):
        """A well-formed record id that exists nowhere (created, then deleted)."""
        a = self.ws[ws].admin
        r = self.srv.req("POST", "/v1/accounts", key=a, body={"name": self.uniq("gone")})
        assert r.status == 201, r
        rid = r.json["id"]
        assert self.srv.req("DELETE", f"/v1/accounts/{rid}", key=a).status == 204
        return rid


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    srv = ks.start_server(tmp_path_factory.mktemp("perm"))
    ks.workspace_create(srv, "b")
    w = World(srv)
    for ws in WORKSPACES:
        s = Space(ws)
        w.ws[ws] = s
        s.admin = srv.admin if ws == "default" else srv.key("admin", ws)
        schema(srv, s.admin, "accounts", ACCOUNTS)
        schema(srv, s.admin, "deals", DEALS)
        schema(srv, s.admin, "scratch", SCRATCH)
        r = srv.req("PUT", "/v1/roles/closer", key=s.admin, body=CLOSER_DEF)
        assert r.status in (200, 201), r
        for role in ROLES:
            user, team = ROLES[role][2]
            s.keys[role] = s.admin if role == "admin" else srv.key(role, ws, user, team)
            s.who[role] = ks.me(srv, s.keys[role])
            assert s.who[role]["workspace"] == ws and s.who[role]["role"] == role
        r = srv.req("POST", "/v1/accounts", key=s.admin, body={"name": f"acme-{ws}"})
        assert r.status == 201, r
        s.account = r.json["id"]
        for i, (label, (owner, team)) in enumerate(SEED.items()):
            body = {"name": f"{ws}-{label}", "email": f"{label}.{ws}@example.com",
                    "phone": f"1381234{i:04d}", "note": f"note of {label}", "amount": i,
                    "account": s.account}
            if owner:
                body["owner"] = owner
            if team:
                body["team"] = team
            r = srv.req("POST", "/v1/deals", key=s.admin, body=body)
            assert r.status == 201, r
            s.deals[label] = r.json["id"]
    yield w
    srv.stop()


@pytest.fixture(scope="module")
def routes(world):
    r = world.srv.req("GET", "/v1/routes", key=world.ws["default"].admin)
    assert r.status == 200, r
    rs = r.json["routes"]
    for rt in rs:
        allowed("admin", rt["action"])  # raises on an unknown action
        path_params(rt["path"])         # raises on an unknown parameter
    return rs


# ---------------------------------------------------------------- requests

class Req:
    def __init__(self, method, path, body=None, ctype=None, stream=False, ok=None, unchanged=None,
                 known=True):
        self.method, self.path, self.body, self.ctype = method, path, body, ctype
        self.stream = stream
        self.ok = ok                # fn(resp) -> error text or None, when allowed
        self.unchanged = unchanged  # fn() -> error text or None, after a refusal
        self.known = known          # built by a route-specific builder
        self.whole = False          # head and body in one write (streamed-body routes)

    def send(self, srv, key, headers=None):
        if self.whole:
            return ks.send_whole(srv, self.method, self.path, key=key, body=self.body,
                                 ctype=self.ctype, headers=headers)
        if self.stream:
            with ks.sse(srv, self.path, key=key, headers=headers) as s:
                return ks.Response(s.status, list(s.headers.items()), s.raw)
        return srv.req(self.method, self.path, key=key, body=self.body, headers=headers,
                       ctype=self.ctype)


def expect_status(*codes):
    def check(r):
        return None if r.status in codes else f"expected {codes}, got {r!r}"
    return check


def build(w, ws, role, rt):
    """A real request for route rt as role in workspace ws."""
    req = build1(w, ws, role, rt)
    # Routes that stream their body get head and body in one write, so the
    # matrix does not depend on how bodies are framed in reads (that has its
    # own test: test_streamed_body_after_the_head).
    req.whole = bool(rt.get("streams_body"))
    return req


def build1(w, ws, role, rt):
    srv, s = w.srv, w.ws[ws]
    a = s.admin
    name, method, path = rt["name"], rt["method"], rt["path"]
    owner, team = w.owner_of(ws, role)

    def no_deal_named(marker):
        def check():
            r = srv.req("POST", "/v1/deals/query", key=a, body={"filter": {"name": marker}})
            if r.status != 200 or r.json["data"]:
                return f"a refused write left a record named {marker}: {r!r}"
        return check

    def deal_untouched(rid):
        def check():
            r = srv.req("GET", f"/v1/deals/{rid}", key=a)
            if r.status != 200 or r.json["version"] != 1:
                return f"a refused write changed deal {rid}: {r!r}"
        return check

    if name in ("health", "metrics", "routes", "openapi", "schema.get", "changes.list",
                "audit.list", "roles.list", "keys.list"):
        return Req(method, path, ok=expect_status(200))
    if name == "me":
        def ok(r):
            if r.status != 200 or r.json["workspace"] != ws or r.json["role"] != role:
                return f"/v1/me: {r!r}"
        return Req(method, path, ok=ok)
    if name == "changes.stream":
        return Req(method, path, stream=True, ok=expect_status(200))
    if name == "schema.put":
        coll = w.uniq("sch")

        def unchanged():
            r = srv.req("GET", "/v1/schema", key=a)
            if coll in [c["name"] for c in r.json["collections"]]:
                return f"a refused schema.put created {coll}"
        return Req(method, path.replace("{collection}", coll), body={"fields": SCRATCH},
                   ok=expect_status(201), unchanged=unchanged)
    if name == "schema.field":
        field = w.uniq("f")

        def unchanged():
            r = srv.req("GET", "/v1/schema", key=a)
            sc = [c for c in r.json["collections"] if c["name"] == "scratch"][0]
            if field in [f["name"] for f in sc["fields"]]:
                return f"a refused schema.field added {field}"
        p = path.replace("{collection}", "scratch").replace("{name}", field)
        return Req(method, p, body={"type": "string"}, ok=expect_status(200),
                   unchanged=unchanged)
    if name == "roles.get":
        return Req(method, path.replace("{name}", "closer"), ok=expect_status(200))
    if name == "roles.put":
        rn = w.uniq("role-")

        def unchanged():
            if srv.req("GET", f"/v1/roles/{rn}", key=a).status != 404:
                return f"a refused roles.put created role {rn}"
        body = {"collections": {"deals": {"actions": ["read"], "scope": "own"}},
                "capabilities": []}
        return Req(method, path.replace("{name}", rn), body=body, ok=expect_status(201),
                   unchanged=unchanged)
    if name == "roles.delete":
        rn = w.uniq("role-")
        r = srv.req("PUT", f"/v1/roles/{rn}", key=a,
                    body={"collections": {"deals": {"actions": ["read"]}}})
        assert r.status == 201, r

        def unchanged():
            if srv.req("GET", f"/v1/roles/{rn}", key=a).status != 200:
                return f"a refused roles.delete removed role {rn}"
        return Req(method, path.replace("{name}", rn), ok=expect_status(204), unchanged=unchanged)
    if name == "keys.create":
        label = w.uniq("label")

        def unchanged():
            keys = srv.req("GET", "/v1/keys", key=a).json["keys"]
            if any(k.get("label") == label for k in keys):
                return f"a refused keys.create made a key labelled {label}"
        return Req(method, path, body={"role": "readonly", "label": label},
                   ok=expect_status(201), unchanged=unchanged)
    if name == "keys.delete":
        r = srv.req("POST", "/v1/keys", key=a, body={"role": "readonly", "label": "victim"})
        assert r.status == 201, r
        kid, tok = r.json["id"], r.json["token"]

        def unchanged():
            if srv.req("GET", "/v1/me", key=tok).status != 200:
                return f"a refused keys.delete revoked key {kid}"
        return Req(method, path.replace("{id}", kid), ok=expect_status(204), unchanged=unchanged)

    if "{collection}" not in path:
        # an unknown route without a collection: a generic request
        return generic(w, ws, role, rt)

    p = path.replace("{collection}", "deals")
    marker = w.uniq("mk")
    if name == "records.query":
        return Req(method, p, body={"filter": {"amount": {"gte": 0}}, "limit": 10},
                   ok=expect_status(200))
    if name == "records.list":
        return Req(method, p + "?limit=10", ok=expect_status(200))
    if name == "records.export":
        fmt = "csv" if next(w.n) % 2 else "ndjson"
        return Req(method, p + f"?format={fmt}", ok=expect_status(200))
    if name == "records.create":
        return Req(method, p, body={"name": marker, "owner": owner, "team": team},
                   ok=expect_status(201), unchanged=no_deal_named(marker))
    if name == "records.bulk":
        body = json.dumps({"name": marker, "owner": owner, "team": team}) + "\n"

        def ok(r):
            if r.status != 200:
                return f"bulk: {r!r}"
            lines = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
            bad = [x for x in lines if "status" in x and not 200 <= x["status"] < 300]
            if bad or lines[-1].get("summary", {}).get("ok") != 1:
                return f"bulk lines: {lines}"
        return Req(method, p, body=body, ctype="application/x-ndjson", ok=ok,
                   unchanged=no_deal_named(marker))
    if name == "records.import":
        body = f"name,owner,team\r\n{marker},{owner},{team}\r\n"

        def ok(r):
            if r.status != 200 or r.json.get("created") != 1:
                return f"import: {r!r}"
        return Req(method, p, body=body, ctype="text/csv", ok=ok, unchanged=no_deal_named(marker))
    if "{id}" in p:
        rid = w.fresh_deal(ws, role)
        p = p.replace("{id}", rid)
        if name == "records.get":
            return Req(method, p, ok=expect_status(200))
        if name == "records.update":
            return Req(method, p, body={"amount": 5}, ok=expect_status(200),
                       unchanged=deal_untouched(rid))
        if name == "records.replace":
            return Req(method, p, body={"name": marker, "owner": owner, "team": team},
                       ok=expect_status(200), unchanged=deal_untouched(rid))
        if name == "records.delete":
            return Req(method, p, ok=expect_status(204), unchanged=deal_untouched(rid))
    return generic(w, ws, role, rt)


def generic(w, ws, role, rt):
    """A request for a route this file has no specific builder for: the
    permission gate runs before the handler, so any well-formed request
    shows whether the role gets through."""
    path = rt["path"].replace("{collection}", "deals").replace("{name}", "closer")
    if "{id}" in path:
        path = path.replace("{id}", w.fresh_deal(ws, role))
    body = {} if rt["method"] in ("POST", "PUT", "PATCH") else None
    return Req(rt["method"], path, body=body, stream=False, known=False)


def route_coll(rt):
    return "deals" if "{collection}" in rt["path"] else ""


# ---------------------------------------------------------------- tests

def test_route_table_is_complete(routes):
    have = {(r["method"], r["path"]) for r in routes}
    missing = MIN_ROUTES - have
    assert not missing, f"routes missing from GET /v1/routes: {sorted(missing)}"
    for r in routes:
        assert r["action"] in KNOWN_ACTIONS, r
        if "{collection}" in r["path"] and r["action"] not in ("public", "any"):
            # a collection route is gated by a record action or a capability
            assert r["action"] in RECORD_ACTIONS or r["action"] in CAPABILITIES, r


def test_builtin_roles_are_as_specified(world):
    srv, a = world.srv, world.ws["default"].admin
    for name in BUILTIN + ("closer",):
        r = srv.req("GET", f"/v1/roles/{name}", key=a)
        assert r.status == 200, r
        grants, caps, _ = ROLES[name]
        got = r.json
        assert set(got["capabilities"]) == caps, got
        assert {c: (set(g["actions"]), g["scope"]) for c, g in got["collections"].items()} == \
            grants, got
        assert got["builtin"] == (name in BUILTIN)
    names = {x["name"] for x in srv.req("GET", "/v1/roles", key=a).json["roles"]}
    assert set(BUILTIN) | {"closer"} <= names


@pytest.mark.parametrize("ws", WORKSPACES)
def test_permission_matrix(world, routes, ws):
    """Every route x every role (the five built-in ones and a custom one) in
    this workspace: allowed -> never 401/403 (and the route's success status);
    refused -> exactly 403 problem+json .../forbidden, with nothing changed."""
    srv = world.srv
    failures, count = [], 0
    for rt in routes:
        for role in ROLES:
            key = world.ws[ws].keys[role]
            req = build(world, ws, role, rt)
            r = req.send(srv, key)
            count += 1
            where = f"{ws} {role:8} {rt['method']} {rt['path']} ({rt['action']}) -> {req.path}"
            if allowed(role, rt["action"], route_coll(rt)):
                if r.status in (401, 403):
                    failures.append(f"{where}: allowed but got {r!r}")
                elif req.ok and req.known:
                    err = req.ok(r)
                    if err:
                        failures.append(f"{where}: {err}")
            else:
                if not ks.is_forbidden(r):
                    failures.append(f"{where}: should be a 403 .../forbidden, got {r!r} "
                                    f"{r.headers.get('content-type')}")
                elif req.unchanged:
                    err = req.unchanged()
                    if err:
                        failures.append(f"{where}: {err}")
    assert count == len(routes) * len(ROLES)
    assert not failures, f"{len(failures)} of {count} failed:\n" + "\n".join(failures)


def test_no_key_or_a_bad_key_is_401(world, routes):
    srv = world.srv
    bad_headers = [None, {"Authorization": "Bearer kith_" + "A" * 43},
                   {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer "}]
    failures = []
    for rt in routes:
        for h in bad_headers:
            req = build(world, "default", "admin", rt)
            r = req.send(srv, None, headers=h)
            where = f"{rt['method']} {rt['path']} with {h}"
            if rt["action"] == "public":
                if r.status != 200:
                    failures.append(f"{where}: public route answered {r!r}")
            elif r.status != 401 or not r.json["type"].endswith("/unauthorized") or \
                    not r.headers["content-type"].startswith("application/problem+json"):
                failures.append(f"{where}: expected a 401 problem, got {r!r}")
            elif req.unchanged and req.unchanged():
                failures.append(f"{where}: {req.unchanged()}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("ws", WORKSPACES)
def test_revoked_key_fails_at_once(world, ws):
    srv, s = world.srv, world.ws[ws]
    for role in ROLES:
        user, team = ROLES[role][2]
        tok = srv.key(role, ws, user, team)
        kid = ks.me(srv, tok)["key_id"]
        # warm the per-loop key caches: several connections, and the kept-alive one
        for _ in range(4):
            assert srv.req("GET", "/v1/deals?limit=1", key=tok, keepalive=False).status == 200
        assert srv.req("GET", "/v1/me", key=tok).status == 200
        r = srv.req("DELETE", f"/v1/keys/{kid}", key=s.admin)
        assert r.status == 204, r
        for keepalive in (True, False, False, False, False):
            for path in ("/v1/me", "/v1/deals?limit=1"):
                r = srv.req("GET", path, key=tok, keepalive=keepalive)
                assert r.status == 401, (role, path, r)
                assert r.json["type"].endswith("/unauthorized")
        k = [x for x in srv.req("GET", "/v1/keys", key=s.admin).json["keys"] if x["id"] == kid]
        assert k and k[0]["revoked"] is True
    # a key made through the API, revoked through the API
    r = srv.req("POST", "/v1/keys", key=s.admin, body={"role": "sales", "user": "u1", "team": "t1"})
    assert r.status == 201, r
    tok, kid = r.json["token"], r.json["id"]
    assert srv.req("GET", "/v1/deals?limit=1", key=tok).status == 200
    assert srv.req("DELETE", f"/v1/keys/{kid}", key=s.admin).status == 204
    assert srv.req("GET", "/v1/deals?limit=1", key=tok).status == 401
    # roles without the keys capability cannot revoke; the key keeps working
    victim = srv.key("readonly", ws)
    vid = ks.me(srv, victim)["key_id"]
    for role in ROLES:
        if "keys" in ROLES[role][1]:
            continue
        assert ks.is_forbidden(srv.req("DELETE", f"/v1/keys/{vid}", key=s.keys[role])), role
    assert srv.req("GET", "/v1/me", key=victim).status == 200


def test_revoked_key_ends_its_open_change_stream(world):
    srv, s = world.srv, world.ws["default"]
    r = srv.req("POST", "/v1/keys", key=s.admin, body={"role": "readonly"})
    assert r.status == 201, r
    tok, kid = r.json["token"], r.json["id"]
    last = srv.req("GET", "/v1/changes?limit=1", key=s.admin).json["last_seq"]
    with ks.sse(srv, f"/v1/changes/stream?after={last}", key=tok) as st:
        assert st.status == 200
        first = world.fresh_deal("default", "admin")
        st.events(until=lambda ev: any(e.get("data", {}).get("id") == first for e in ev))
        assert first in st.raw.decode()
        assert srv.req("DELETE", f"/v1/keys/{kid}", key=s.admin).status == 204
        after = world.fresh_deal("default", "admin")
        st.events(until=lambda ev: any(e.get("data", {}).get("id") == after for e in ev))
        # a revoked key fails at once: nothing written after the revocation reaches it
        assert after not in st.raw.decode(), "the revoked key's stream still delivers changes"
        assert st.ended


# ---------------------------------------------------------------- workspaces

def ptype(r):
    """The problem type of a response, or None."""
    try:
        return r.json.get("type")
    except (ValueError, AttributeError):
        return None


def snapshot(world, ws):
    """What workspace ws holds, read with its admin key."""
    srv, s = world.srv, world.ws[ws]
    out = {}
    for coll in ("deals", "accounts", "scratch"):
        out[coll] = sorted(ks.list_all(srv, s.admin, coll), key=lambda x: x["id"])
    out["last_seq"] = srv.req("GET", "/v1/changes?limit=1", key=s.admin).json["last_seq"]
    out["keys"] = sorted(srv.req("GET", "/v1/keys", key=s.admin).json["keys"],
                         key=lambda x: x["id"])
    out["roles"] = srv.req("GET", "/v1/roles", key=s.admin).json["roles"]
    out["schema"] = srv.req("GET", "/v1/schema", key=s.admin).json
    return out


def ids_of(world, ws):
    """Every id workspace ws has handed out that another workspace could try."""
    srv, s = world.srv, world.ws[ws]
    ids = set()
    for coll in ("deals", "accounts", "scratch"):
        ids |= {x["id"] for x in ks.list_all(srv, s.admin, coll, "fields=name")}
    ids |= {k["id"] for k in srv.req("GET", "/v1/keys", key=s.admin).json["keys"]}
    return ids


@pytest.mark.parametrize("src,dst", [("b", "default"), ("default", "b")])
def test_cross_workspace_isolation(world, routes, src, dst):
    """Keys of workspace src never read or write workspace dst."""
    srv = world.srv
    S, D = world.ws[src], world.ws[dst]
    only = world.uniq("only-")
    r = srv.req("PUT", f"/v1/roles/{only}", key=D.admin,
                body={"collections": {"deals": {"actions": ["read"]}}})
    assert r.status == 201, r
    before = snapshot(world, dst)
    audit_mark = ks.audit_all(srv, D.admin)[-1]["seq"]
    dst_admin_id = D.who["admin"]["key_id"]
    victim_key = srv.key("readonly", dst)
    victim_id = ks.me(srv, victim_key)["key_id"]
    foreign = {"deal": D.deals["u1"], "account": D.account, "key": victim_id}
    gone = world.gone_id(src)
    failures = []

    # 1. every route taking an {id} or {name}: the other workspace's looks as absent as none
    for rt in routes:
        params = path_params(rt["path"])
        if "id" not in params and not ("name" in params and rt["name"].startswith("roles.")):
            continue
        if rt["name"] == "roles.put":
            continue  # creates src's own role of that name; dst is compared below
        for role in ROLES:
            key = S.keys[role]
            coll = route_coll(rt)
            results = []
            for target in (foreign["key"] if rt["name"].startswith("keys.") else foreign["deal"],
                           gone):
                p = rt["path"].replace("{collection}", "deals").replace("{id}", target)
                p = p.replace("{name}", only if target != gone else world.uniq("nope-"))
                body = None
                if rt["method"] == "PATCH":
                    body = {"amount": 99}
                elif rt["method"] in ("PUT", "POST"):
                    o, t = world.owner_of(src, role)
                    body = {"name": "hijack", "owner": o, "team": t}
                results.append(srv.req(rt["method"], p, key=key, body=body))
            theirs, none = results
            where = f"{src}->{dst} {role} {rt['method']} {rt['path']}"
            if allowed(role, rt["action"], coll) and theirs.status != 404:
                failures.append(f"{where}: expected 404, got {theirs!r}")
            if theirs.status != none.status or ptype(theirs) != ptype(none):
                failures.append(f"{where}: answers differ for another workspace's id "
                                f"({theirs!r}) and a missing one ({none!r})")

    # 2. bulk lines naming the other workspace's ids
    for role in ("admin", "sales", "closer"):
        if not allowed(role, "create"):
            continue
        lines = [{"op": "update", "id": foreign["deal"], "data": {"amount": 99}},
                 {"op": "replace", "id": foreign["deal"], "data": {"name": "hijack"}},
                 {"op": "delete", "id": foreign["deal"]}]
        body = "".join(json.dumps(x) + "\n" for x in lines)
        r = ks.send_whole(srv, "POST", "/v1/deals/bulk", key=S.keys[role], body=body,
                    ctype="application/x-ndjson")
        assert r.status == 200, r
        res = [json.loads(x) for x in r.body.decode().splitlines()][:-1]
        for line, x in zip(lines, res):
            act = "delete" if line["op"] == "delete" else "update"
            want = 404 if allowed(role, act) else 403
            if x["status"] != want:
                failures.append(f"{src}->{dst} {role} bulk {line['op']}: {x}")

    # 3. refs to the other workspace's records are refused (422), as are refs to nothing
    a = S.admin
    r = srv.req("POST", "/v1/deals", key=a, body={"name": "ref", "account": foreign["account"]})
    assert r.status == 422 and r.json["errors"][0]["field"] == "account", r
    sales = S.keys["sales"]
    r = srv.req("POST", "/v1/deals", key=sales, body={"name": "ref", "account": foreign["account"]})
    assert r.status == 422 and r.json["errors"][0]["field"] == "account", r
    mine = world.fresh_deal(src, "sales")
    r = srv.req("PATCH", f"/v1/deals/{mine}", key=sales, body={"account": foreign["account"]})
    assert r.status == 422 and r.json["errors"][0]["field"] == "account", r
    r = srv.req("PUT", f"/v1/deals/{mine}", key=a,
                body={"name": "x", "account": foreign["account"]})
    assert r.status == 422 and r.json["errors"][0]["field"] == "account", r
    r = ks.send_whole(srv, "POST", "/v1/deals/bulk", key=a, ctype="application/x-ndjson",
                body=json.dumps({"name": "ref", "account": foreign["account"]}) + "\n" +
                json.dumps({"op": "update", "id": mine, "data": {"account": foreign["account"]}}))
    res = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x.get("status") for x in res[:2]] == [422, 422], res
    r = ks.send_whole(srv, "POST", "/v1/deals/import", key=a, ctype="text/csv",
                body=f"name,account\r\nref,{foreign['account']}\r\n")
    assert r.status == 200 and r.json["created"] == 0 and r.json["failed"] == 1, r
    assert r.json["errors"][0]["status"] == 422, r
    # control: a ref to the workspace's own account is fine
    r = srv.req("POST", "/v1/deals", key=a, body={"name": "ref-ok", "account": S.account})
    assert r.status == 201, r
    # ids in bodies: never taken from the client, so never the other workspace's
    r = srv.req("POST", "/v1/deals", key=a, body={"id": foreign["deal"], "name": "same id"})
    assert r.status == 422 and r.json["errors"][0]["field"] == "id", r
    r = ks.send_whole(srv, "POST", "/v1/deals/bulk", key=a, ctype="application/x-ndjson",
                      body=json.dumps({"op": "create", "id": foreign["deal"],
                                       "data": {"name": "same id"}}) + "\n")
    res = [json.loads(x) for x in r.body.decode().splitlines()]
    assert res[0]["status"] != 201 or res[0]["id"] != foreign["deal"], res
    r = ks.send_whole(srv, "POST", "/v1/deals/import", key=a, ctype="text/csv",
                      body=f"id,name\r\n{foreign['deal']},same id\r\n")
    assert r.status in (200, 400), r
    assert srv.req("GET", f"/v1/deals/{foreign['deal']}", key=a).status == 404

    # 4. filters naming the other workspace's ids find nothing
    dst_ids = sorted(ids_of(world, dst))
    for role in ROLES:
        key = S.keys[role]
        if not allowed(role, "read"):
            continue
        for f in ({"id": foreign["deal"]}, {"id": {"in": dst_ids[:1000]}},
                  {"account": foreign["account"]}, {"account": {"in": [foreign["account"]]}}):
            r = srv.req("POST", "/v1/deals/query", key=key, body={"filter": f})
            if r.status != 200 or r.json["data"]:
                failures.append(f"{src}->{dst} {role} query {f}: {r!r}")
        for q in (f"id={foreign['deal']}", f"account={foreign['account']}"):
            r = srv.req("GET", f"/v1/deals?{q}", key=key)
            if r.status != 200 or r.json["data"]:
                failures.append(f"{src}->{dst} {role} list ?{q}: {r!r}")
        r = srv.req("GET", f"/v1/accounts?id={foreign['account']}", key=key)
        if allowed(role, "read", "accounts") and (r.status != 200 or r.json["data"]):
            failures.append(f"{src}->{dst} {role} accounts ?id=: {r!r}")
        if allowed(role, "export"):
            some = sorted({foreign["deal"], foreign["account"]} | set(dst_ids[:60]))
            flt = urllib.parse.quote(json.dumps({"id": {"in": some}}))
            for fmt in ("csv", "ndjson"):
                r = srv.req("GET", f"/v1/deals/export?format={fmt}&filter={flt}", key=key)
                rows = r.body.decode().splitlines()
                if r.status != 200 or rows[1 if fmt == "csv" else 0:]:
                    failures.append(f"{src}->{dst} {role} export {fmt} by id: {r!r}")
    # control: the same filter with the workspace's own id does find it
    r = srv.req("POST", "/v1/deals/query", key=a, body={"filter": {"id": S.deals["u1"]}})
    assert [x["id"] for x in r.json["data"]] == [S.deals["u1"]], r

    # 5. nothing src can list, query, export, stream or audit names a dst id
    dst_ids = ids_of(world, dst) | {dst_admin_id}
    # control: the scan below does find dst's ids in what dst itself lists
    own = srv.req("GET", "/v1/deals?limit=1000", key=D.admin).body.decode()
    assert foreign["deal"] in own and foreign["account"] in own
    last = max(c["seq"] for c in ks.changes_all(srv, S.admin))  # the last one a reader sees
    for role in ROLES:
        key = S.keys[role]
        bodies = []
        for coll in ("deals", "accounts", "scratch"):
            if allowed(role, "read", coll):
                bodies.append(srv.req("GET", f"/v1/{coll}?limit=1000", key=key).body)
                bodies.append(srv.req("POST", f"/v1/{coll}/query", key=key,
                                      body={"limit": 1000}).body)
            if allowed(role, "export", coll):
                for fmt in ("csv", "ndjson"):
                    bodies.append(srv.req("GET", f"/v1/{coll}/export?format={fmt}",
                                          key=key).body)
        bodies.append(json.dumps(ks.changes_all(srv, key)).encode())
        for path in ("/v1/schema", "/v1/roles", "/v1/me"):
            bodies.append(srv.req("GET", path, key=key).body)
        if allowed(role, "audit"):
            bodies.append(json.dumps(ks.audit_all(srv, key)).encode())
        if allowed(role, "keys"):
            bodies.append(srv.req("GET", "/v1/keys", key=key).body)
        if role_scope(role, "deals", "read") == "all" and last:
            with ks.sse(srv, "/v1/changes/stream?after=0", key=key) as st:
                st.events(until=lambda ev: any(e.get("id") == str(last) for e in ev))
                bodies.append(st.raw)
                if f"id: {last}\n" not in st.raw.decode():
                    failures.append(f"{src} {role}: the change stream did not catch up")
        text = b"\n".join(bodies).decode()
        leaked = sorted(i for i in dst_ids if i in text)
        if leaked:
            failures.append(f"{src}->{dst} {role}: {dst} ids visible: {leaked}")

    # 6. keys: src cannot revoke or see dst's keys; dst's key keeps working
    r = srv.req("DELETE", f"/v1/keys/{victim_id}", key=S.admin)
    assert r.status == 404, r
    assert srv.req("GET", "/v1/me", key=victim_key).status == 200
    r = srv.req("POST", "/v1/keys", key=S.admin, body={"role": only})
    assert r.status == 422, r  # dst's custom role does not exist in src
    assert srv.req("GET", f"/v1/roles/{only}", key=S.admin).status == 404
    # the workspace comes only from the key: a body cannot name another one
    r = srv.req("POST", "/v1/keys", key=S.admin, body={"role": "admin", "workspace": dst})
    assert r.status == 400, r
    r = srv.req("POST", "/v1/keys", key=S.admin, body={"role": "admin", "label": "x-ws"})
    assert r.status == 201, r
    assert ks.me(srv, r.json["token"])["workspace"] == src

    # 7. a collection only dst has is as absent from src as one nobody has
    coll = world.uniq("dstonly")
    schema(srv, D.admin, coll, SCRATCH)
    r = srv.req("POST", f"/v1/{coll}", key=D.admin, body={"name": "d"})
    assert r.status == 201, r
    rid = r.json["id"]
    for role in ROLES:
        key = S.keys[role]
        for path in ("/v1/schema", "/v1/openapi.json"):
            assert coll not in srv.req("GET", path, key=key).body.decode(), (role, path)
        for method, suffix, body in (("GET", "", None), ("POST", "", {"name": "x"}),
                                     ("POST", "/query", {}), ("GET", f"/{rid}", None)):
            theirs = srv.req(method, f"/v1/{coll}{suffix}", key=key, body=body)
            nobody = srv.req(method, f"/v1/nocoll{suffix}", key=key, body=body)
            assert theirs.status == nobody.status and theirs.status in (403, 404), (role, theirs)
            assert theirs.json["detail"].replace(coll, "nocoll") == nobody.json["detail"], \
                (theirs, nobody)
    assert [x["name"] for x in ks.list_all(srv, D.admin, coll)] == ["d"]

    # 8. nothing of dst changed; its audit log only gained its own admin's reads
    after = snapshot(world, dst)
    after_keys = [k for k in after["keys"] if k["id"] != victim_id]
    before_keys = [k for k in before["keys"] if k["id"] != victim_id]
    assert after_keys == before_keys
    assert [k["revoked"] for k in after["keys"] if k["id"] == victim_id] == [False]
    for k in ("deals", "accounts", "scratch", "roles"):
        assert after[k] == before[k], f"{dst} {k} changed while {src} worked"
    # dst's own admin made one collection and one record since (section 7)
    assert after["last_seq"] == before["last_seq"] + 1
    assert [c for c in after["schema"]["collections"] if c["name"] != coll] == \
        before["schema"]["collections"]
    new = [e for e in ks.audit_all(srv, D.admin, after=audit_mark)]
    foreign_entries = [e for e in new if e["actor"] != dst_admin_id or e["action"] not in
                       ("read", "schema", "create")]
    assert not foreign_entries, foreign_entries
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- record scope

def parse_export(r):
    assert r.status == 200, r
    text = r.body.decode()
    if r.headers["content-type"].startswith("text/csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        return {x["id"] for x in rows}
    return {json.loads(x)["id"] for x in text.splitlines() if x.strip()}


@pytest.mark.parametrize("ws", WORKSPACES)
def test_record_scope(world, ws):
    srv, s = world.srv, world.ws[ws]
    everything = ks.list_all(srv, s.admin, "deals")
    all_ids = {x["id"] for x in everything}
    accounts = {x["id"] for x in ks.list_all(srv, s.admin, "accounts")}
    gone = world.gone_id(ws)
    missing = srv.req("GET", f"/v1/deals/{gone}", key=s.admin)
    assert missing.status == 404
    for role in ROLES:
        key = s.keys[role]
        if not allowed(role, "read"):
            continue
        visible = {x["id"] for x in everything if in_scope(role, "deals", x)}
        assert visible, role
        if role_scope(role, "deals", "read") != "all":
            assert visible != all_ids, role  # the seeds put records outside every scope
        # GET one: in scope 200, out of scope exactly like a missing record
        for x in everything:
            r = srv.req("GET", f"/v1/deals/{x['id']}", key=key)
            if x["id"] in visible:
                assert r.status == 200 and r.json["id"] == x["id"], (role, r)
            else:
                assert r.status == 404 and r.json["type"] == missing.json["type"], (role, x, r)
                assert r.json["detail"] == missing.json["detail"], (role, r)
        # list, query, query with a filter naming other owners, export
        assert {x["id"] for x in ks.list_all(srv, key, "deals")} == visible, role
        assert {x["id"] for x in ks.query_all(srv, key, "deals")} == visible, role
        for label in ("u3", "x9", "u2"):
            f = {"owner": SEED[label][0]}
            got = {x["id"] for x in ks.query_all(srv, key, "deals", {"filter": f})}
            assert got == {x["id"] for x in everything
                           if x["id"] in visible and x.get("owner") == f["owner"]}, (role, f)
        if allowed(role, "export"):
            for fmt in ("csv", "ndjson"):
                got = parse_export(srv.req("GET", f"/v1/deals/export?format={fmt}", key=key))
                assert got == visible, (role, fmt)
        # a shared collection (no owner/team fields) is all visible to any reader
        if allowed(role, "read", "accounts"):
            assert {x["id"] for x in ks.list_all(srv, key, "accounts")} == accounts, role
        # the change log names no record outside the role's scope
        seen = {c["id"] for c in ks.changes_all(srv, key) if c["collection"] == "deals"}
        assert not (seen & (all_ids - visible)), role


@pytest.mark.parametrize("ws", WORKSPACES)
def test_scoped_writes(world, ws):
    srv, s = world.srv, world.ws[ws]
    a = s.admin

    def version(rid):
        r = srv.req("GET", f"/v1/deals/{rid}", key=a)
        return r.json["version"] if r.status == 200 else None

    # sales (team t1, user u1)
    sales = s.keys["sales"]
    other = world.fresh_deal(ws, "admin", owner="u3", team="t2")
    mate = world.fresh_deal(ws, "admin", owner="u2", team="t1")
    own = world.fresh_deal(ws, "sales")
    for method, body in (("PATCH", {"amount": 7}), ("PUT", {"name": "mine now"})):
        r = srv.req(method, f"/v1/deals/{other}", key=sales, body=body)
        assert r.status == 404 and r.json["type"].endswith("/not-found"), (method, r)
    assert version(other) == 1
    assert ks.is_forbidden(srv.req("DELETE", f"/v1/deals/{other}", key=sales))
    assert ks.is_forbidden(srv.req("DELETE", f"/v1/deals/{own}", key=sales))  # no delete at all
    assert version(other) == 1 and version(own) == 1
    r = srv.req("PATCH", f"/v1/deals/{mate}", key=sales, body={"amount": 7})
    assert r.status == 200, r  # team scope
    # moving a record out of scope, or creating one owned by someone else: 403
    r = srv.req("PATCH", f"/v1/deals/{own}", key=sales, body={"owner": "u9", "team": "t9"})
    assert ks.is_forbidden(r), r
    assert version(own) == 1
    r = srv.req("PUT", f"/v1/deals/{own}", key=sales,
                body={"name": "x", "owner": "u9", "team": "t9"})
    assert ks.is_forbidden(r), r
    assert version(own) == 1
    marker = world.uniq("elsewhere")
    r = srv.req("POST", "/v1/deals", key=sales, body={"name": marker, "owner": "u9", "team": "t9"})
    assert ks.is_forbidden(r), r
    r = ks.send_whole(srv, "POST", "/v1/deals/bulk", key=sales, ctype="application/x-ndjson",
                body="\n".join(json.dumps(x) for x in [
                    {"name": marker, "owner": "u9", "team": "t9"},
                    {"op": "update", "id": other, "data": {"amount": 8}},
                    {"op": "update", "id": mate, "data": {"amount": 8}},
                    {"op": "delete", "id": own}]) + "\n")
    res = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x.get("status") for x in res[:4]] == [403, 404, 200, 403], res
    assert not ks.query_all(srv, a, "deals", {"filter": {"name": marker}})
    assert version(other) == 1 and version(own) == 1
    # what sales creates without an owner is its own
    r = srv.req("POST", "/v1/deals", key=sales, body={"name": world.uniq("mine")})
    assert r.status == 201 and r.json["owner"] == "u1" and r.json["team"] == "t1", r

    # the custom role closer: own scope, may delete its own records only
    closer = s.keys["closer"]
    theirs = world.fresh_deal(ws, "admin", owner="u2", team="t1")  # same team, not own
    mine = world.fresh_deal(ws, "closer")
    assert srv.req("GET", f"/v1/deals/{theirs}", key=closer).status == 404
    assert srv.req("DELETE", f"/v1/deals/{theirs}", key=closer).status == 404
    assert srv.req("PATCH", f"/v1/deals/{theirs}", key=closer, body={"amount": 3}).status == 404
    assert version(theirs) == 1
    assert ks.is_forbidden(srv.req("POST", "/v1/deals", key=closer, body={"name": "c"}))
    assert ks.is_forbidden(srv.req("GET", "/v1/accounts", key=closer))
    assert srv.req("DELETE", f"/v1/deals/{mine}", key=closer).status == 204
    assert version(mine) is None

    # readonly reads everything and writes nothing
    ro = s.keys["readonly"]
    target = world.fresh_deal(ws, "admin", owner="u3", team="t2")
    assert srv.req("GET", f"/v1/deals/{target}", key=ro).status == 200
    for method, path, body, ctype in (
            ("POST", "/v1/deals", {"name": "ro"}, None),
            ("PATCH", f"/v1/deals/{target}", {"amount": 1}, None),
            ("PUT", f"/v1/deals/{target}", {"name": "ro"}, None),
            ("DELETE", f"/v1/deals/{target}", None, None),
            ("POST", "/v1/deals/bulk", '{"name":"ro"}\n', "application/x-ndjson"),
            ("POST", "/v1/deals/import", "name\r\nro\r\n", "text/csv"),
            ("GET", "/v1/deals/export", None, None),
            ("PATCH", f"/v1/accounts/{s.account}", {"name": "ro"}, None)):
        r = ks.send_whole(srv, method, path, key=ro, body=body, ctype=ctype) if ctype else \
            srv.req(method, path, key=ro, body=body)
        assert ks.is_forbidden(r), (method, path, r)
    assert version(target) == 1
    assert not ks.query_all(srv, a, "deals", {"filter": {"name": "ro"}})


# ---------------------------------------------------------------- transport

def test_streamed_body_after_the_head(world):
    """What http.client (and any client sending a large body) does: the head,
    then the body in a separate write. The permission gate runs on the head;
    the body must still be read."""
    import socket
    import time
    srv, a = world.srv, world.ws["default"].admin
    body = json.dumps({"name": world.uniq("split"), "owner": "u1", "team": "t1"}).encode() + b"\n"
    head = (f"POST /v1/deals/bulk HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {a}\r\n"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s = srv.ssl_context().wrap_socket(s, server_hostname="localhost")
    try:
        s.sendall(head)
        time.sleep(0.2)  # only to make the two writes two reads on the server
        s.sendall(body)
        got = b""
        try:
            while b"summary" not in got:
                c = s.recv(65536)
                if not c:
                    break
                got += c
        except (socket.timeout, TimeoutError):
            pass
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    assert b'"ok":1' in got, got


def test_custom_role_changes_apply_at_once(world):
    """PUT and DELETE /v1/roles/{name} take effect on the next request of
    every key with that role (keys are cached per loop)."""
    srv, s = world.srv, world.ws["default"]
    a = s.admin
    name = world.uniq("temp-")
    r = srv.req("PUT", f"/v1/roles/{name}", key=a,
                body={"collections": {"deals": {"actions": ["read", "update"], "scope": "all"}}})
    assert r.status == 201, r
    tok = srv.key(name, "default", "u1", "t1")
    rid = world.fresh_deal("default", "admin", owner="u3", team="t2")
    for _ in range(4):  # on every loop
        assert srv.req("GET", f"/v1/deals/{rid}", key=tok, keepalive=False).status == 200
    r = srv.req("PUT", f"/v1/roles/{name}", key=a,
                body={"collections": {"deals": {"actions": ["read"], "scope": "own"}}})
    assert r.status == 200, r
    for _ in range(4):
        r = srv.req("GET", f"/v1/deals/{rid}", key=tok, keepalive=False)
        assert r.status == 404, r  # now own scope: u3's record is out of it
        assert ks.is_forbidden(srv.req("PATCH", f"/v1/deals/{rid}", key=tok, body={"amount": 2},
                                       keepalive=False))
    assert srv.req("DELETE", f"/v1/roles/{name}", key=a).status == 204
    for _ in range(4):
        r = srv.req("GET", "/v1/deals?limit=1", key=tok, keepalive=False)
        assert r.status in (401, 403), r
    # built-in roles cannot be changed or deleted
    assert srv.req("PUT", "/v1/roles/sales", key=a, body=CLOSER_DEF).status == 409
    assert srv.req("DELETE", "/v1/roles/readonly", key=a).status == 409


def test_system_collections_are_unreachable(world):
    srv, s = world.srv, world.ws["default"]
    for role in ROLES:
        key = s.keys[role]
        for coll in ("_roles", "_keys", "_workspaces", "_audit"):
            for method, suffix, body, ctype in (
                    ("GET", "", None, None), ("POST", "", {"name": "x"}, None),
                    ("POST", "/query", {}, None), ("GET", "/export?format=ndjson", None, None),
                    ("POST", "/bulk", '{"name":"x"}\n', "application/x-ndjson"),
                    ("POST", "/import", "name\r\nx\r\n", "text/csv"),
                    ("GET", f"/{s.deals['u1']}", None, None)):
                if ctype:
                    r = ks.send_whole(srv, method, f"/v1/{coll}{suffix}", key=key, body=body,
                                      ctype=ctype)
                else:
                    r = srv.req(method, f"/v1/{coll}{suffix}", key=key, body=body)
                assert r.status in (403, 404), (role, method, coll, suffix, r)
            r = srv.req("PUT", f"/v1/schema/{coll}", key=key, body={"fields": SCRATCH})
            assert r.status in (403, 404), (role, coll, r)
            r = srv.req("PUT", f"/v1/schema/{coll}/fields/x", key=key, body={"type": "string"})
            assert r.status in (403, 404), (role, coll, r)
