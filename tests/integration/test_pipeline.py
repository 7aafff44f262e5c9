"""plugins/pipeline: deals, activities and configurable pipelines.

Each test copies identity.so and pipeline.so into its own plugin directory
(the loader refuses files others can write) and names them in kith.json,
identity first: deals and activities refer to its contacts and companies.
The corpus test (test_pipeline_corpus.py) imports the Maven CRM pipeline.
"""
import datetime
import time
import urllib.parse

import pytest

from kithserver import KithServer, enable_plugins, list_all, plugin_server, problem

WAIT = 60  # seconds to wait for timers and after-hooks on a busy machine


def enable(datadir, tmp_path, config=None, load=("identity", "pipeline")):
    enable_plugins(datadir, tmp_path, load, {"pipeline": config} if config is not None else None)


@pytest.fixture
def srv(tmp_path, datadir):
    s = plugin_server(datadir, tmp_path, ["identity", "pipeline"])
    yield s
    s.stop()


def post(srv, coll, body, key=None):
    return srv.req("POST", f"/v1/{coll}", key=key or srv.admin, body=body)


def patch(srv, coll, rid, body, key=None):
    return srv.req("PATCH", f"/v1/{coll}/{rid}", key=key or srv.admin, body=body)


def ok(r, status=(200, 201)):
    assert r.status in ((status,) if isinstance(status, int) else status), r
    return r.json


def poll(fn, timeout=WAIT, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def timers(srv):
    r = srv.req("GET", "/v1/timers", key=srv.admin)
    assert r.status == 200, r
    return {t["id"]: t for t in r.json["timers"] if t.get("owner") == "plugin:pipeline"}


def stall_timer(srv, deal_id):
    return timers(srv).get("stall-" + deal_id.lower())


def tasks_of(srv, deal_id):
    r = srv.req("POST", "/v1/activities/query", key=srv.admin,
                body={"filter": {"deal_id": deal_id, "kind": "task"}, "limit": 100})
    assert r.status == 200, r
    return r.json["data"]


SPY = """
for _, name in ipairs({"deal.won", "deal.lost", "deal.stalled"}) do
  kith.on(name, {name = "spy-" .. name}, function(ev)
    assert(kith.entity.create("seen", {event = ev.name, payload = ev.payload}))
  end)
end
"""


def spy(srv):
    """Records deal.won, deal.lost and deal.stalled (a Lua script writing
    them to the collection seen): GET /v1/changes does not show domain events."""
    r = srv.req("PUT", "/v1/schema/seen", key=srv.admin,
                body={"fields": [{"name": "event", "type": "string", "indexed": True},
                                 {"name": "payload", "type": "object"}]})
    assert r.status in (200, 201), r
    r = srv.req("PUT", "/v1/scripts/spy", key=srv.admin, body=SPY, ctype="text/x-lua")
    assert r.status in (200, 201), r


def domain_events(srv, name):
    r = srv.req("POST", "/v1/seen/query", key=srv.admin,
                body={"filter": {"event": name}, "limit": 1000})
    assert r.status == 200, r
    return r.json["data"]


def today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


# ---------------------------------------------------------------- schema

def test_collections_and_routes_are_declared(srv):
    r = srv.req("GET", "/v1/schema", key=srv.admin)
    colls = {c["name"]: {f["name"]: f for f in c["fields"]} for c in r.json["collections"]}
    deals, acts = colls["deals"], colls["activities"]
    for f in ("name", "amount", "stage", "pipeline", "probability", "contact_id", "company_id",
              "lead_id", "product", "close_date", "stage_changed_at", "stage_history", "closed",
              "owner", "team", "tags"):
        assert f in deals, f
    assert deals["contact_id"]["type"] == "ref" and deals["contact_id"]["ref"] == "contacts"
    assert deals["company_id"]["ref"] == "companies"
    assert deals["lead_id"]["type"] == "string" and deals["amount"]["type"] == "money"
    assert acts["kind"]["values"] == ["call", "meeting", "note", "email", "task"]
    assert acts["deal_id"]["ref"] == "deals" and acts["due_at"]["type"] == "datetime"
    assert {"name", "stages", "default"} <= set(colls["pipelines"])
    assert {"name", "key", "series", "price"} <= set(colls["products"])
    r = srv.req("GET", "/v1/plugins", key=srv.admin)
    assert [p["state"] for p in r.json["plugins"] if p["name"] == "pipeline"] == ["loaded"]
    # custom fields: an admin adds them as to any collection
    r = srv.req("PUT", "/v1/schema/deals/fields/region", key=srv.admin,
                body={"type": "string", "indexed": True})
    assert r.status in (200, 201), r
    d = ok(post(srv, "deals", {"name": "Custom", "region": "emea"}))
    assert d["region"] == "emea"


def test_without_identity_refs_become_plain_strings(tmp_path, datadir):
    d, token = datadir
    enable(d, tmp_path, config={"contact_refs": False}, load=("pipeline",))
    with KithServer(d) as s:
        r = s.req("GET", "/v1/schema", key=token)
        colls = {c["name"]: {f["name"]: f for f in c["fields"]} for c in r.json["collections"]}
        assert "contacts" not in colls
        assert colls["deals"]["contact_id"]["type"] == "string"
        assert colls["activities"]["company_id"]["type"] == "string"
        r = s.req("POST", "/v1/deals", key=token, body={"name": "X", "contact_id": "anything"})
        assert r.status == 201, r


# ---------------------------------------------------------------- deals and stages

def test_a_deal_follows_the_default_pipeline(srv):
    spy(srv)
    d = ok(post(srv, "deals", {"name": "Acme renewal", "amount": "1200.50", "owner": "ann"}))
    assert d["pipeline"] == "default" and d["stage"] == "prospecting"
    assert d["probability"] == 10 and "closed" not in d
    assert [h["stage"] for h in d["stage_history"]] == ["prospecting"]
    assert d["stage_history"][0]["at"] == d["stage_changed_at"]
    t = stall_timer(srv, d["id"])
    assert t and t["event"] == "deal.stall_due" and t["payload"]["stage"] == "prospecting", t
    left = datetime.datetime.fromisoformat(t["due"].replace("Z", "+00:00")).timestamp() - \
        time.time()
    assert 47 * 3600 < left <= 48 * 3600, t

    # a stage named in another case is stored as the pipeline spells it;
    # probability follows the stage
    d2 = ok(patch(srv, "deals", d["id"], {"stage": "Needs Analysis"}))
    assert d2["stage"] == "needs analysis" and d2["probability"] == 40
    assert [h["stage"] for h in d2["stage_history"]] == ["prospecting", "needs analysis"]
    assert d2["stage_changed_at"] >= d["stage_changed_at"]
    assert stall_timer(srv, d["id"])["payload"]["stage"] == "needs analysis"
    # ... unless the same write sets it
    d3 = ok(patch(srv, "deals", d["id"], {"stage": "proposal", "probability": 55}))
    assert d3["probability"] == 55
    # an update that leaves the stage alone keeps history and time
    d4 = ok(patch(srv, "deals", d["id"], {"amount": "1300"}))
    assert d4["stage_history"] == d3["stage_history"]
    assert d4["stage_changed_at"] == d3["stage_changed_at"] and d4["probability"] == 55

    # won: closed, probability 100, a close date, the timer gone, deal.won emitted
    w = ok(patch(srv, "deals", d["id"], {"stage": "won"}))
    assert w["closed"] == "won" and w["probability"] == 100 and w["close_date"] == today()
    assert stall_timer(srv, d["id"]) is None
    ev = poll(lambda: domain_events(srv, "deal.won"), 10)
    assert len(ev) == 1, ev
    assert ev[0]["payload"]["deal"] == d["id"] and ev[0]["payload"]["owner"] == "ann"
    assert ev[0]["payload"]["amount"] in ("1300", "1300.00")
    # reopened: open again, timer back; then lost
    r = ok(patch(srv, "deals", d["id"], {"stage": "negotiation"}))
    assert "closed" not in r and r["probability"] == 80 and stall_timer(srv, d["id"])
    r = ok(patch(srv, "deals", d["id"], {"stage": "lost", "lost_reason": "price"}))
    assert r["closed"] == "lost" and r["probability"] == 0
    assert stall_timer(srv, d["id"]) is None
    assert len(poll(lambda: domain_events(srv, "deal.lost"), 10)) == 1
    assert [h["stage"] for h in r["stage_history"]] == \
        ["prospecting", "needs analysis", "proposal", "won", "negotiation", "lost"]
    # deleting a deal removes its timer
    e = ok(post(srv, "deals", {"name": "Short-lived"}))
    assert stall_timer(srv, e["id"])
    assert srv.req("DELETE", f"/v1/deals/{e['id']}", key=srv.admin).status == 204
    assert stall_timer(srv, e["id"]) is None


def test_bad_deals_are_refused_with_the_field_named(srv):
    d = ok(post(srv, "deals", {"name": "X"}))
    cases = [
        ({"name": "Y", "stage": "closing"}, "stage", "not a stage of pipeline 'default'"),
        ({"name": "Y", "pipeline": "nope"}, "pipeline", "no pipeline is called 'nope'"),
        ({"name": "Y", "probability": 150}, "probability", "0 to 100"),
        ({"name": "Y", "probability": -1}, "probability", "0 to 100"),
    ]
    for body, field, says in cases:
        p = problem(post(srv, "deals", body), 422, "validation")
        assert p["errors"][0]["field"] == field and says in p["errors"][0]["detail"], p
        p = problem(patch(srv, "deals", d["id"], {k: v for k, v in body.items() if k != "name"}),
                    422, "validation")
        assert p["errors"][0]["field"] == field, p
    # the stage history and its time are the plugin's
    for body in ({"stage_history": []}, {"stage_changed_at": "2020-01-01T00:00:00Z"}):
        p = problem(patch(srv, "deals", d["id"], body), 422, "validation")
        assert p["errors"][0]["field"] == list(body)[0], p
    p = problem(patch(srv, "deals", d["id"], {"stage": None}), 422, "validation")
    assert p["errors"][0]["field"] == "stage"
    # schema types still apply first
    p = problem(post(srv, "deals", {"amount": "12.345678"}), 422, "validation")
    assert p["errors"][0]["field"] == "amount"
    p = problem(post(srv, "activities", {"kind": "lunch"}), 422, "validation")
    assert p["errors"][0]["field"] == "kind"
    assert len(list_all(srv, srv.admin, "deals")) == 1


# ---------------------------------------------------------------- pipelines

SHORT = [{"name": "Lead", "probability": 5, "limit_hours": 1},
         {"name": "Demo", "probability": 50},
         {"name": "Won", "outcome": "won"},
         {"name": "Lost", "outcome": "lost"}]


def test_pipelines_are_records(srv):
    bad = [
        ([], "1 to 50 stages"),
        ([{"name": "A", "outcome": "won"}], "at least one open stage"),
        ([{"name": "A"}, {"name": "a"}], "twice"),
        ([{"name": "A", "probability": 101}], "probability"),
        ([{"name": "A", "limit_hours": 0}], "limit_hours"),
        ([{"name": "A", "outcome": "maybe"}], "outcome"),
        ([{"name": "A", "colour": "red"}], "unknown key 'colour'"),
        ([{"name": ""}], "a name"),
        (["A"], "object"),
    ]
    for stages, says in bad:
        p = problem(post(srv, "pipelines", {"name": "P", "stages": stages}), 422, "validation")
        assert p["errors"][0]["field"] == "stages" and says in p["errors"][0]["detail"], (stages, p)
    p1 = ok(post(srv, "pipelines", {"name": "Enterprise", "stages": SHORT}))
    d = ok(post(srv, "deals", {"name": "Big", "pipeline": "Enterprise"}))
    assert d["stage"] == "Lead" and d["probability"] == 5
    assert ok(patch(srv, "deals", d["id"], {"stage": "demo"}))["probability"] == 50
    assert stall_timer(srv, d["id"]) is None  # Demo has no limit
    # the default pipeline stays the built-in one until a record is marked default
    assert ok(post(srv, "deals", {"name": "Small"}))["pipeline"] == "default"
    ok(patch(srv, "pipelines", p1["id"], {"default": True}))
    assert ok(post(srv, "deals", {"name": "Small 2"}))["pipeline"] == "Enterprise"
    # the built-in one can still be named
    assert ok(post(srv, "deals", {"pipeline": "default"}))["stage"] == "prospecting"
    # one default: a new default takes it from the other
    ok(post(srv, "pipelines", {"name": "SMB", "stages": SHORT, "default": True}))
    assert "default" not in srv.req("GET", f"/v1/pipelines/{p1['id']}", key=srv.admin).json
    assert ok(post(srv, "deals", {"name": "Small 3"}))["pipeline"] == "SMB"
    # what deals use cannot go away
    p = problem(patch(srv, "pipelines", p1["id"], {"name": "Ent"}), 409, "conflict")
    assert p["errors"][0]["field"] == "name"
    p = problem(patch(srv, "pipelines", p1["id"], {"stages": [SHORT[0]] + SHORT[2:]}), 409,
                "conflict")
    assert p["errors"][0]["field"] == "stages" and "Demo" in p["detail"]
    problem(srv.req("DELETE", f"/v1/pipelines/{p1['id']}", key=srv.admin), 409, "conflict")
    # an empty stage may go; an unused pipeline may be renamed and deleted
    ok(patch(srv, "pipelines", p1["id"], {"stages": SHORT + [{"name": "Trial"}]}))
    ok(patch(srv, "pipelines", p1["id"], {"stages": SHORT}))
    p3 = ok(post(srv, "pipelines", {"name": "Unused", "stages": SHORT}))
    ok(patch(srv, "pipelines", p3["id"], {"name": "Unused 2"}))
    assert srv.req("DELETE", f"/v1/pipelines/{p3['id']}", key=srv.admin).status == 204
    problem(post(srv, "pipelines", {"name": "SMB", "stages": SHORT}), 409, "conflict")


def test_bad_default_pipeline_configuration_refuses_the_plugin(tmp_path, datadir):
    d, token = datadir
    enable(d, tmp_path, config={"default_pipeline": {"name": "x", "stages": [{"name": "won",
                                                                             "outcome": "won"}]}})
    with KithServer(d) as s:
        r = s.req("GET", "/v1/plugins", key=token)
        assert [p["state"] for p in r.json["plugins"] if p["name"] == "pipeline"] != ["loaded"]
        assert "default_pipeline.stages" in s.log()


# ---------------------------------------------------------------- products

def test_products_match_ignoring_case_and_spaces(srv):
    ok(post(srv, "products", {"name": "GTX Pro", "series": "GTX", "price": "4821"}))
    p = problem(post(srv, "products", {"name": "gtxpro"}), 409, "conflict")
    assert p["errors"][0]["field"] == "name" and p["existing_id"]
    d = ok(post(srv, "deals", {"name": "A", "product": "GTXPro"}))
    assert d["product"] == "GTX Pro"
    p = problem(post(srv, "deals", {"name": "B", "product": "GTX Ultra"}), 422, "validation")
    assert p["errors"][0]["field"] == "product" and "catalog" in p["errors"][0]["detail"]
    p = problem(post(srv, "deals", {"name": "B", "product": " - "}), 422, "validation")
    assert p["errors"][0]["field"] == "product"


# ---------------------------------------------------------------- stalled deals

FAST = [{"name": "Open", "probability": 10, "limit_hours": 0.0005},  # 1.8 s
        {"name": "Slow", "probability": 20, "limit_hours": 1000},
        {"name": "Won", "outcome": "won"},
        {"name": "Lost", "outcome": "lost"}]


def test_a_stalled_deal_raises_once_and_gets_a_task(srv):
    spy(srv)
    ok(post(srv, "pipelines", {"name": "Fast", "stages": FAST}))
    c = ok(post(srv, "contacts", {"name": "Ann", "email": "ann@example.com"}))
    d = ok(post(srv, "deals", {"name": "Stuck", "pipeline": "Fast", "owner": "rep1",
                               "team": "emea", "contact_id": c["id"], "amount": "500"}))
    moved = ok(post(srv, "deals", {"name": "Moving", "pipeline": "Fast", "owner": "rep1"}))
    ok(patch(srv, "deals", moved["id"], {"stage": "Slow"}))  # replaces its timer
    closed = ok(post(srv, "deals", {"name": "Closing", "pipeline": "Fast", "owner": "rep1"}))
    ok(patch(srv, "deals", closed["id"], {"stage": "Won"}))  # cancels it
    got = poll(lambda: tasks_of(srv, d["id"]))
    assert len(got) == 1, got
    t = got[0]
    assert t["kind"] == "task" and t["owner"] == "rep1" and t["team"] == "emea"
    assert t["contact_id"] == c["id"] and t["tags"] == ["stalled"] and t["done"] is False
    assert "Stuck" in t["subject"] and "Open" in t["subject"]
    ev = poll(lambda: domain_events(srv, "deal.stalled"))
    assert [e["payload"]["deal"] for e in ev] == [d["id"]], ev
    assert ev[0]["payload"]["task"] == t["id"] and ev[0]["payload"]["owner"] == "rep1"
    # once: the timer is gone, and no more tasks or events come
    assert stall_timer(srv, d["id"]) is None
    assert stall_timer(srv, moved["id"])["payload"]["stage"] == "Slow"
    time.sleep(2.5)
    assert len(tasks_of(srv, d["id"])) == 1 and len(domain_events(srv, "deal.stalled")) == 1
    assert tasks_of(srv, moved["id"]) == [] and tasks_of(srv, closed["id"]) == []
    # the rep sees it among today's tasks
    rep = srv.key(role="sales", user="rep1", team="emea")
    r = srv.req("GET", "/v1/me/tasks?due=today", key=rep)
    assert r.status == 200, r
    assert [x["id"] for x in r.json["data"]] == [t["id"]]


def test_a_stall_timer_survives_a_restart(tmp_path, datadir):
    d, token = datadir
    enable(d, tmp_path)
    s = KithServer(d).start()
    try:
        ok(post(s, "pipelines", {"name": "Fast", "stages": FAST}, key=token))
        deal = ok(post(s, "deals", {"name": "Across", "pipeline": "Fast", "owner": "rep2"},
                       key=token))
    finally:
        s.stop()
    time.sleep(2.5)  # due while the server is down
    s = KithServer(d).start()
    s.admin = token
    try:
        got = poll(lambda: tasks_of(s, deal["id"]))
        assert len(got) == 1 and got[0]["owner"] == "rep2", got
        time.sleep(1)
        assert len(tasks_of(s, deal["id"])) == 1
    finally:
        s.stop()


# ---------------------------------------------------------------- my tasks

def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_my_tasks(srv):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    start = now.replace(hour=0, minute=0, second=0)
    mine = {
        "overdue": now - datetime.timedelta(days=3),
        "today": start + datetime.timedelta(hours=23, minutes=59),
        "in3days": start + datetime.timedelta(days=3, hours=1),
        "in10days": start + datetime.timedelta(days=10),
    }
    ids = {}
    for label, due in mine.items():
        ids[label] = ok(post(srv, "activities", {"kind": "task", "subject": label,
                                                 "owner": "rep1", "due_at": iso(due)}))["id"]
    done = ok(post(srv, "activities", {"kind": "task", "subject": "done", "owner": "rep1",
                                       "due_at": iso(start), "done": True}))
    assert done["done_at"]
    ok(post(srv, "activities", {"kind": "call", "subject": "a call", "owner": "rep1",
                                "due_at": iso(start)}))
    ok(post(srv, "activities", {"kind": "task", "subject": "other's", "owner": "rep9",
                                "due_at": iso(start)}))
    rep = srv.key(role="sales", user="rep1", team="emea")

    def subjects(q):
        r = srv.req("GET", "/v1/me/tasks" + q, key=rep)
        assert r.status == 200, r
        return [t["subject"] for t in r.json["data"]]
    # sorted by due date; only the caller's open tasks
    assert subjects("") == ["overdue", "today", "in3days", "in10days"]
    assert subjects("?due=all") == subjects("")
    want_today = ["today"] if start.date() == now.date() else []
    assert subjects("?due=today") == want_today
    assert subjects("?due=overdue") == ["overdue"]
    assert subjects("?due=week") == ["today", "in3days"]
    # a task marked done leaves the list; done_at follows done
    r = ok(patch(srv, "activities", ids["in3days"], {"done": True}))
    assert r["done_at"]
    assert subjects("?due=week") == ["today"]
    r = ok(patch(srv, "activities", ids["in3days"], {"done": False}))
    assert "done_at" not in r
    # pages
    r = srv.req("GET", "/v1/me/tasks?limit=2", key=rep).json
    assert len(r["data"]) == 2 and r["next_cursor"]
    r2 = srv.req("GET", "/v1/me/tasks?limit=2&cursor=" + urllib.parse.quote(r["next_cursor"]),
                 key=rep).json
    assert [t["subject"] for t in r["data"] + r2["data"]] == subjects("")
    # an offset moves "today" to the caller's day
    r = srv.req("GET", "/v1/me/tasks?due=today&offset=480", key=rep).json
    assert r["from"].endswith("16:00:00.000Z") and r["due"] == "today"
    # bad parameters
    for q, says in (("?due=tomorrow", "due:"), ("?limit=0", "limit"), ("?limit=x", "limit"),
                    ("?offset=9999", "offset"), ("?dew=today", "unknown parameter 'dew'"),
                    ("?due=%zz", "due"), ("?cursor=garbage", "")):
        p = problem(srv.req("GET", "/v1/me/tasks" + q, key=rep), 400, "invalid")
        assert says in p["detail"], (q, p)
    # a key without the right to read activities
    srv.req("PUT", "/v1/roles/nothing", key=srv.admin,
            body={"name": "nothing", "collections": {"contacts": {"actions": ["read"],
                                                                  "scope": "all"}}})
    k = srv.key(role="nothing", user="rep1")
    assert srv.req("GET", "/v1/me/tasks", key=k).status == 403


# ---------------------------------------------------------------- deal_won.lua

def test_deal_won_script_runs_the_cross_team_flow(srv):
    r = srv.req("POST", "/v1/scripts/deal_won/enable", key=srv.admin)
    assert r.status == 201, r
    c = ok(post(srv, "contacts", {"name": "Bo", "email": "bo@example.com",
                                  "lifecycle_stage": "opportunity"}))
    d = ok(post(srv, "deals", {"name": "Bo's deal", "owner": "rep1", "team": "emea",
                               "contact_id": c["id"], "amount": "999.90"}))
    ok(patch(srv, "deals", d["id"], {"stage": "won"}))

    def flow():
        ts = tasks_of(srv, d["id"])
        return ts if len(ts) >= 3 else None
    ts = poll(flow)
    assert ts, tasks_of(srv, d["id"])
    by = {t["subject"].split(":")[0]: t for t in ts}
    assert set(by) == {"Deliver", "Invoice request", "Kick-off"}, ts
    assert by["Deliver"]["owner"] == "rep1"
    assert by["Invoice request"]["owner"] == "finance" and "999.9" in by["Invoice request"]["subject"]
    assert by["Kick-off"]["owner"] == "customer-success"
    assert all(t["contact_id"] == c["id"] and t["team"] == "emea" for t in ts)
    deal = srv.req("GET", f"/v1/deals/{d['id']}", key=srv.admin).json
    assert deal["cs_owner"] == "customer-success"
    contact = poll(lambda: (lambda x: x if x["lifecycle_stage"] == "customer" else None)(
        srv.req("GET", f"/v1/contacts/{c['id']}", key=srv.admin).json))
    assert contact and contact["lifecycle_stage"] == "customer"
    time.sleep(1)
    assert len(tasks_of(srv, d["id"])) == 3
    # the script is an ordinary script of the workspace from now on
    r = srv.req("GET", "/v1/scripts/deal_won", key=srv.admin)
    assert r.status == 200 and r.json.get("origin") == "shipped", r


# ---------------------------------------------------------------- the report

def test_report_of_a_small_pipeline(srv):
    ok(post(srv, "pipelines", {"name": "S", "stages": SHORT}))
    ok(post(srv, "products", {"name": "Widget"}))
    rows = [("Lead", "100", None), ("Demo", "200", None), ("Demo", "300", "Widget"),
            ("Won", "1000.5", "widget"), ("Won", "500", None), ("Lost", "50", None)]
    for stage, amount, product in rows:
        body = {"pipeline": "S", "amount": amount}
        if product:
            body["product"] = product
        d = ok(post(srv, "deals", body))
        if stage != "Lead":  # through the funnel, so the history says how far it got
            ok(patch(srv, "deals", d["id"], {"stage": "Demo"}))
            if stage != "Demo":
                ok(patch(srv, "deals", d["id"], {"stage": stage}))
    ok(post(srv, "deals", {"pipeline": "S", "stage": "Lost"}))  # lost straight away
    r = srv.req("GET", "/v1/reports/pipeline?pipeline=S", key=srv.admin)
    assert r.status == 200, r
    rep = r.json
    st = {s["name"]: s for s in rep["stages"]}
    assert [s["name"] for s in rep["stages"]] == ["Lead", "Demo", "Won", "Lost"]
    assert (st["Lead"]["deals"], st["Demo"]["deals"], st["Won"]["deals"], st["Lost"]["deals"]) \
        == (1, 2, 2, 2)
    assert st["Won"]["value"] == "1500.5" and rep["won"] == {"deals": 2, "value": "1500.5"}
    assert st["Lead"]["reached"] == 7 and st["Demo"]["reached"] == 5
    assert rep["conversion"] == [
        {"from": "Lead", "to": "Demo", "from_deals": 7, "to_deals": 5, "rate": 71.43},
        {"from": "Demo", "to": "won", "from_deals": 5, "to_deals": 2, "rate": 40.0}]
    assert rep["win_rate"] == 50.0 and rep["deals"] == 7 and rep["value"] == "2150.5"
    assert rep["open"]["deals"] == 3 and rep["open"]["value"] == "600"
    assert rep["average_sales_cycle_days"] == 0.0 and rep["sales_cycle_deals"] == 2
    assert rep["products"][0] == {"product": "Widget", "deals": 2, "won_deals": 1,
                                  "won_value": "1000.5"}
    # filters
    rep = srv.req("GET", "/v1/reports/pipeline?pipeline=S&product=WIDGET", key=srv.admin).json
    assert rep["deals"] == 2 and rep["filters"]["product"] == "Widget"
    rep = srv.req("GET", f"/v1/reports/pipeline?pipeline=S&from={today()}&to={today()}",
                  key=srv.admin).json
    assert rep["deals"] == 4  # closed today: the won and lost ones
    # the default pipeline (the built-in one) has no deals
    rep = srv.req("GET", "/v1/reports/pipeline", key=srv.admin).json
    assert rep["pipeline"]["name"] == "default" and rep["pipeline"]["builtin"] is True
    assert rep["deals"] == 0 and rep["win_rate"] is None
    # bad requests
    for q, status, kind in (("?pipeline=nope", 404, "not-found"),
                            ("?from=2017-02-30", 400, "invalid"),
                            ("?from=2017-03-01T00:00:00Z", 400, "invalid"),
                            ("?from=2017-03-02&to=2017-03-01", 400, "invalid"),
                            ("?pipline=S", 400, "invalid"),
                            ("?pipeline=%", 400, "invalid")):
        problem(srv.req("GET", "/v1/reports/pipeline" + q, key=srv.admin), status, kind)
    # a rep sees the report over the deals their role may read
    rep_key = srv.key(role="sales", user="nobody", team="none")
    r = srv.req("GET", "/v1/reports/pipeline?pipeline=S", key=rep_key)
    assert r.status == 200 and r.json["deals"] == 0, r


# ---------------------------------------------------------------- with identity's merge

def test_identity_merge_moves_deals_and_activities(srv):
    a = ok(post(srv, "contacts", {"name": "Ann", "email": "ann@example.com"}))
    b = ok(post(srv, "contacts", {"name": "Ann L", "email": "ann.l@example.com"}))
    d = ok(post(srv, "deals", {"name": "D", "contact_id": b["id"], "stage": "proposal"}))
    t = ok(post(srv, "activities", {"kind": "call", "contact_id": b["id"], "deal_id": d["id"]}))
    r = srv.req("POST", f"/v1/contacts/{a['id']}/merge", key=srv.admin, body={"ids": [b["id"]]})
    assert r.status == 200, r
    assert r.json["moves"]["deals"] == 1 and r.json["moves"]["activities"] == 1
    moved = srv.req("GET", f"/v1/deals/{d['id']}", key=srv.admin).json
    assert moved["contact_id"] == a["id"]
    # the move is not a stage change
    assert moved["stage_history"] == d["stage_history"] and moved["probability"] == 60
    assert srv.req("GET", f"/v1/activities/{t['id']}", key=srv.admin).json["contact_id"] == a["id"]


def test_pipeline_before_identity_is_logged_not_fatal(tmp_path, datadir):
    """deals refers to contacts: with pipeline loaded first the collection
    cannot be made, which the log says; the server still serves."""
    d, token = datadir
    enable(d, tmp_path, load=("pipeline", "identity"))
    with KithServer(d) as s:
        assert s.req("GET", "/v1/me", key=token).status == 200
        assert "plugin pipeline: collection deals" in s.log()
