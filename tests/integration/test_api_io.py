"""Streams of records over HTTPS: CSV import (csv-spectrum, the 541,909-row
Online Retail file), export in CSV and NDJSON, NDJSON bulk, the change log
and its Server-Sent Events stream."""
import csv
import gzip
import http.client
import io
import json
import os
import re
import shutil
import socket
import ssl
import time

import pytest

from conftest import CORPUS, kith
from kithserver import schema

SPECTRUM = CORPUS / "csv-spectrum"
RETAIL = CORPUS / "online-retail" / "online_retail.csv.gz"


def norm(h):
    return re.sub(r"[ -]", "_", h.lower())


@pytest.mark.skipif(not SPECTRUM.exists(), reason="csv-spectrum corpus not found")
def test_csv_spectrum_imports_to_expected_records(server):
    k = server.admin
    for path in sorted((SPECTRUM / "csvs").glob("*.csv")):
        name = path.stem
        data = path.read_bytes()
        header = next(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
        coll = "s_" + name
        schema(server, k, coll, [{"name": norm(h), "type": "text"} for h in header])
        r = server.req("POST", f"/v1/{coll}/import", key=k, body=data, ctype="text/csv")
        assert r.status == 200, (name, r)
        rep = r.json
        expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text())
        if isinstance(expected, dict):  # the upstream quirk: one object, not an array
            expected = [expected]
        assert rep["rows"] == len(expected) and rep["failed"] == 0, (name, rep)
        got = server.req("GET", f"/v1/{coll}?limit=100", key=k).json["data"]
        assert len(got) == len(expected)
        for g, e in zip(got, expected):  # id order is creation order: the file's order
            for h, v in e.items():
                if name == "location_coordinates" and h == "Contact Phone Number":
                    continue  # SOURCE.md: the upstream JSON disagrees with its CSV here
                if v == "":
                    assert norm(h) not in g, (name, h)  # an empty cell is an absent value
                else:
                    assert g.get(norm(h)) == v, (name, h, g.get(norm(h)), v)


def test_import_maps_converts_upserts_and_reports_rows(server):
    k = server.admin
    schema(server, k, "people", [
        {"name": "email", "type": "email", "unique": True},
        {"name": "name", "type": "string", "required": True},
        {"name": "age", "type": "int"},
        {"name": "vip", "type": "bool"},
        {"name": "tags", "type": "array", "items": "string"},
        {"name": "seen", "type": "datetime"},
    ])
    body = ("E-Mail,Full Name,Age,VIP,Tags,Seen,Extra\r\n"
            "a@x.io,Ada,36,yes,a;b,2026-01-02 03:04:05,z\r\n"
            "b@x.io,,7,no,,,\r\n"              # name missing: row 3 fails
            "c@x.io,Cy,seven,true,,,\r\n"      # age does not convert: row 4 fails
            "A@X.IO,Ada Lovelace,37,,,,\r\n")  # same e-mail: an update with upsert
    mp = json.dumps({"E-Mail": "email", "Full Name": "name", "Age": "age", "VIP": "vip",
                     "Tags": "tags", "Seen": "seen"})
    from urllib.parse import quote
    r = server.req("POST", f"/v1/people/import?upsert=email&map={quote(mp)}", key=k,
                   body=body, ctype="text/csv")
    assert r.status == 200, r
    rep = r.json
    assert rep["rows"] == 4 and rep["created"] == 1 and rep["updated"] == 1 and rep["failed"] == 2
    assert rep["ignored_columns"] == ["Extra"]
    rows = {e["row"]: e for e in rep["errors"]}
    assert set(rows) == {3, 4}
    assert rows[3]["errors"][0]["field"] == "name"
    assert rows[4]["errors"][0]["field"] == "age"
    people = server.req("GET", "/v1/people", key=k).json["data"]
    assert len(people) == 1
    p = people[0]
    assert p["name"] == "Ada Lovelace" and p["age"] == 37 and p["vip"] is True
    assert p["tags"] == ["a", "b"] and p["seen"] == "2026-01-02T03:04:05Z"
    # malformed CSV stops with 400 and says where
    bad = server.req("POST", "/v1/people/import", key=k, body='email,name\n"a@x.io"x,y\n',
                     ctype="text/csv")
    assert bad.status == 400 and "row 2" in bad.json["detail"]
    assert server.req("POST", "/v1/people/import", key=k, body="a,b\n",
                      ctype="application/json").status == 415
    assert server.req("POST", "/v1/people/import?upsert=name", key=k, body="email\n",
                      ctype="text/csv").status == 400


def stream_post(srv, path, key, fileobj, size, ctype):
    """POST a large body from a file object without holding it in memory."""
    conn = srv.connection()
    conn.timeout = 900  # the answer (the report) comes when the last row is in
    conn.putrequest("POST", path)
    conn.putheader("Authorization", f"Bearer {key}")
    conn.putheader("Content-Type", ctype)
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    while True:
        chunk = fileobj.read(256 * 1024)
        if not chunk:
            break
        conn.send(chunk)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


@pytest.mark.skipif(not RETAIL.exists(), reason="online-retail corpus not found")
def test_online_retail_541909_rows_through_the_api(server, tmp_path):
    k = server.admin
    schema(server, k, "invoice_lines", [
        {"name": "invoice_no", "type": "string", "required": True, "indexed": True},
        {"name": "stock_code", "type": "string", "indexed": True},
        {"name": "description", "type": "string", "required": True},
        {"name": "quantity", "type": "int"},
        {"name": "invoice_date", "type": "datetime"},
        {"name": "unit_price", "type": "money"},
        {"name": "customer_id", "type": "int", "indexed": True},
        {"name": "country", "type": "string", "indexed": True},
    ])
    raw = tmp_path / "retail.csv"
    # KITH_TEST_ROWS (set by the sanitizer test preset, where LMDB's per-
    # transaction allocations make each row ~50x slower) imports a prefix
    limit = int(os.environ.get("KITH_TEST_ROWS", "0"))
    with gzip.open(RETAIL, "rb") as src, open(raw, "wb") as dst:
        if limit:
            for i, line in enumerate(src):
                if i > limit:
                    break
                dst.write(line)
        else:
            shutil.copyfileobj(src, dst)
    size = raw.stat().st_size
    # the oracle, from Python's csv module over the same bytes
    with open(raw, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want_failed = sum(1 for r in rows if r["Description"] == "")
    want_invoices = {r["InvoiceNo"] for r in rows if r["CustomerID"] == "12347"}
    # header names map by name once normalised: InvoiceNo -> invoiceno does not,
    # so give the mapping explicitly
    mp = json.dumps({"InvoiceNo": "invoice_no", "StockCode": "stock_code",
                     "Description": "description", "Quantity": "quantity",
                     "InvoiceDate": "invoice_date", "UnitPrice": "unit_price",
                     "CustomerID": "customer_id", "Country": "country"})
    from urllib.parse import quote
    with open(raw, "rb") as f:
        st, body = stream_post(server, f"/v1/invoice_lines/import?map={quote(mp)}", k, f, size,
                               "text/csv")
    assert st == 200, body[:500]
    rep = json.loads(body)
    assert rep["rows"] == len(rows)
    assert rep["failed"] == want_failed and rep["created"] == len(rows) - want_failed
    if not limit:
        # SOURCE.md: 541,909 rows; Description empty on 1,454 of them (required here)
        assert rep["rows"] == 541909 and rep["failed"] == 1454
        assert rep["errors_truncated"] is True and len(rep["errors"]) == 1000
    assert all(e["errors"][0]["field"] == "description" for e in rep["errors"])
    # a query over what was imported: SOURCE.md's customer 12347 has 7 invoices
    q = server.req("POST", "/v1/invoice_lines/query", key=k,
                   body={"filter": {"customer_id": 12347}, "limit": 1000, "fields": ["invoice_no"]})
    assert q.status == 200
    assert {x["invoice_no"] for x in q.json["data"]} == want_invoices
    if not limit:
        assert len(want_invoices) == 7
    server.stop()
    c = kith("check", "--data", server.datadir, check=0)
    assert re.search(rf"\b{len(rows) - want_failed} records", c.stdout.replace(",", "")), c.stdout


def test_export_csv_and_ndjson_round_trip(server):
    k = server.admin
    schema(server, k, "notes", [{"name": "title", "type": "string"},
                                {"name": "body", "type": "text"},
                                {"name": "n", "type": "int", "indexed": True},
                                {"name": "tags", "type": "array", "items": "string"}])
    for i in range(2500):  # more than two export pages
        assert server.req("POST", "/v1/notes", key=k, body={
            "title": f"t{i}", "body": 'line 1\nline "2", with comma', "n": i,
            "tags": ["x", f"y{i}"]}).status == 201
    r = server.req("GET", "/v1/notes/export?format=ndjson", key=k)
    assert r.status == 200 and r.headers["transfer-encoding"] == "chunked"
    lines = [json.loads(x) for x in r.body.decode().splitlines()]
    assert [x["n"] for x in lines] == list(range(2500))
    c = server.req("GET", "/v1/notes/export?format=csv&fields=title,body,tags", key=k)
    assert c.status == 200 and c.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(c.body.decode(), newline="")))
    assert rows[0] == ["id", "version", "created_at", "updated_at", "title", "body", "tags"]
    assert len(rows) == 2501
    assert rows[1][5] == 'line 1\nline "2", with comma' and json.loads(rows[1][6]) == ["x", "y0"]
    f = server.req("GET", "/v1/notes/export?filter=" + json.dumps({"n": {"lt": 5}}).replace(" ", ""),
                   key=k)
    assert f.status == 200 and len(f.body.decode().splitlines()) == 5
    assert server.req("GET", "/v1/notes/export?format=xml", key=k).status == 400
    assert server.req("GET", "/v1/notes/export?filter=%7Bbad", key=k).status == 400
    # the export is in the audit log
    entries, after = [], 0
    while True:
        page = server.req("GET", f"/v1/audit?after={after}&limit=1000", key=k).json
        entries += page["entries"]
        if not page["entries"]:
            break
        after = page["next_after"]
    exports = [e for e in entries if e["action"] == "export" and e["collection"] == "notes"]
    assert len(exports) == 3  # ndjson, csv, filtered


def test_bulk_ndjson_reports_each_line(server):
    k = server.admin
    schema(server, k, "items", [{"name": "sku", "type": "string", "unique": True},
                                {"name": "qty", "type": "int"}])
    first = server.req("POST", "/v1/items", key=k, body={"sku": "A", "qty": 1}).json
    lines = [
        json.dumps({"sku": "B", "qty": 2}),
        "not json",
        json.dumps({"op": "update", "id": first["id"], "data": {"qty": 5}}),
        "",
        json.dumps({"sku": "A", "qty": 9}),          # duplicate sku
        json.dumps({"op": "delete", "id": first["id"], "if_version": 1}),  # stale
        json.dumps({"op": "frobnicate"}),
        json.dumps({"sku": "C", "qty": "x"}),
    ]
    r = server.req("POST", "/v1/items/bulk", key=k, body="\n".join(lines) + "\n",
                   ctype="application/x-ndjson")
    assert r.status == 200, r
    out = [json.loads(x) for x in r.body.decode().splitlines()]
    summary = out.pop()["summary"]
    by_line = {o["line"]: o for o in out}
    assert by_line[1]["status"] == 201
    assert by_line[2]["status"] == 400
    assert by_line[3]["status"] == 200 and by_line[3]["version"] == 2
    assert by_line[4]["status"] == 409                       # (blank line skipped)
    assert by_line[5]["status"] == 409                       # stale if_version
    assert by_line[6]["status"] == 400
    assert by_line[7]["status"] == 422 and by_line[7]["errors"][0]["field"] == "qty"
    assert summary == {"lines": 7, "ok": 2, "failed": 5}
    assert server.req("POST", "/v1/items/bulk", key=k, body="{}",
                      ctype="application/json").status == 415


def sse_events(srv, key, headers=None, n=1, timeout=10):
    ctx = srv.ssl_context()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=timeout),
                        server_hostname="localhost")
    h = "".join(f"{a}: {b}\r\n" for a, b in (headers or {}).items())
    s.sendall(f"GET /v1/changes/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n{h}\r\n"
              .encode())
    buf, events, end = b"", [], time.time() + timeout
    while len(events) < n and time.time() < end:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        events = re.findall(rb"id: (\d+)\nevent: change\ndata: (\{.*?\})\n\n", buf)
    s.close()
    return [(int(i), json.loads(d)) for i, d in events]


def test_changes_list_and_stream_resume(server):
    k = server.admin
    schema(server, k, "deals", [{"name": "title", "type": "string"}])
    ids = [server.req("POST", "/v1/deals", key=k, body={"title": f"d{i}"}).json["id"] for i in range(5)]
    ch = server.req("GET", "/v1/changes?after=0&limit=100", key=k).json
    mine = [c for c in ch["changes"] if c["collection"] == "deals"]
    assert [c["id"] for c in mine] == ids and all(c["op"] == "create" for c in mine)
    assert mine[0]["changed"] == ["title"]
    seqs = [c["seq"] for c in mine]
    # the stream resumes after Last-Event-ID, in order
    ev = sse_events(server, k, {"Last-Event-ID": str(seqs[1])}, n=3)
    assert [e[0] for e in ev] == seqs[2:5]
    assert [e[1]["id"] for e in ev] == ids[2:5]
    # and delivers changes committed while it is open
    import threading
    got = []
    t = threading.Thread(target=lambda: got.extend(
        sse_events(server, k, {"Last-Event-ID": str(seqs[4])}, n=1)))
    t.start()
    time.sleep(0.3)
    new = server.req("POST", "/v1/deals", key=k, body={"title": "live"}).json["id"]
    t.join(15)
    assert got and got[0][1]["id"] == new
