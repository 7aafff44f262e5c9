#!/usr/bin/python3
"""HTTP benchmark: `kith serve` beside nginx on loopback, measured in one run.

Both get one I/O thread/worker (the machine has two cores; wrk uses the
other), keep-alive, 64 connections, request logs on (Kith's to a file,
nginx's access log to a file). nginx serves static files holding exactly the
bytes of Kith's answer body, so the baseline moves the same payload.

Prints BENCH lines:
  http_get_plain, http_get_tls  GET a record by id (baseline: nginx, same body)
  http_query50                  a 50-record query (baseline: nginx, same body)
  http_create_c64               durable creates at 64 connections (baseline: the
                                store's raw-LMDB creates at 64 submitters)
  http_import                   CSV import rows/s through the API (baseline: raw-LMDB
                                bulk load of the same rows with the same indexes)
  http_rules10                  durable creates at 64 connections into a workspace
                                whose before-hook scores each contact with 10 Lua
                                rules (baseline: the same creates into a workspace
                                without scripts; three interleaved rounds, medians)
  http_rss_peak, http_rss_per_conn  memory (baseline: nginx in the same run)

usage: bench_http.py BUILD_DIR SCRATCH_DIR
"""
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import ssl
import subprocess
import sys
import time

BUILD, TMP = sys.argv[1], sys.argv[2]
BIN = os.path.join(BUILD, "bin")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.environ.get("KITH_CORPUS", os.path.join(os.path.dirname(ROOT), "shared", "corpus"))
DURATION = os.environ.get("KITH_BENCH_SECONDS", "10")

CONTACT_FIELDS = [
    {"name": "name", "type": "string", "required": True},
    {"name": "email", "type": "email", "unique": True},
    {"name": "phone", "type": "phone"},
    {"name": "stage", "type": "enum", "values": ["lead", "customer", "churned"], "indexed": True},
    {"name": "score", "type": "int", "indexed": True},
    {"name": "lead_score", "type": "int"}]

# Ten rules of the kind admins write (as tests/bench/bench_lua.c's lua_rules10).
RULES10 = """kith.on('contacts.before_create', function(ev)
  local r, s = ev.record, 0
  if r.stage == 'lead' then s = s + 10 end
  if r.stage == 'customer' then s = s + 5 end
  if (r.score or 0) > 50 then s = s + 20 end
  if (r.score or 0) % 2 == 0 then s = s + 1 end
  if r.name and r.name:find('Customer 0', 1, true) then s = s + 3 end
  if r.phone and #r.phone > 10 then s = s + 2 end
  if r.stage ~= 'churned' then s = s + 1 end
  if (r.score or 0) < 10 then s = s - 5 end
  if r.name and #r.name > 20 then s = s + 1 end
  if r.email == nil then s = s + 4 end
  r.lead_score = s
end)
"""


def bench(name, value, unit, baseline):
    ratio = value / baseline if baseline else 0
    print(f"BENCH name={name} value={value:.0f} unit={unit} baseline={baseline:.0f} ratio={ratio:.2f}",
          flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, **kw)


def wrk(url, script, conns=64, seconds=DURATION):
    out = run("wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else 0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"# warning: {errors.group(1)} non-2xx answers from {url}", flush=True)
    return rps, p99ms


def lua(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def rss_kib(pid, field="VmRSS"):
    total = 0
    pids = [pid] + [int(p) for p in run("pgrep", "-P", pid, check=False).stdout.split()] \
        if False else [pid]
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            total += int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))
    return total


def tree_rss(pid, field="VmRSS"):
    """RSS of a process and its children (nginx: master + worker)."""
    total = rss_kib(pid, field)
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for k in kids:
        total += rss_kib(int(k), field)
    return total


def idle_conns(port, n, tls, path, headers):
    """Opens n keep-alive connections, one request each, and keeps them open."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if tls:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(req)
        s.recv(65536)
        socks.append(s)
    return socks


class Kith:
    def __init__(self, data, plain):
        self.data, self.plain = data, plain

    def __enter__(self):
        self.port = free_port()
        args = [os.path.join(BIN, "kith"), "serve", "--data", self.data, "--listen",
                f"127.0.0.1:{self.port}", "--threads", "1"]
        if self.plain:
            args.append("--plain")
        self.log = open(os.path.join(TMP, "kith.log"), "ab")
        env = dict(os.environ, KITH_LOG="info")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.p.stdout.readline()
        return self

    def __exit__(self, *a):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)
        self.log.close()


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    data = os.path.join(TMP, "data")
    token = run(os.path.join(BIN, "kith"), "init", "--data", data).stdout.strip().splitlines()[-1].split("=")[1]
    auth = f"Authorization: Bearer {token}\r\n"

    # two empty workspaces for http_rules10: one with the rules, one without
    ws_keys = {}
    for ws in ("norules", "rules"):
        run(os.path.join(BIN, "kith"), "workspace", "create", ws, "--data", data)
        ws_keys[ws] = run(os.path.join(BIN, "kith"), "key", "create", "--data", data,
                          "--workspace", ws, "--role", "admin").stdout.strip()

    # ---- data: 10,000 contacts ----
    with Kith(data, plain=True) as k:
        c = http.client.HTTPConnection("127.0.0.1", k.port)
        h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        c.request("PUT", "/v1/schema/contacts", json.dumps({"fields": [
            {"name": "name", "type": "string", "required": True},
            {"name": "email", "type": "email", "unique": True},
            {"name": "phone", "type": "phone"},
            {"name": "stage", "type": "enum", "values": ["lead", "customer", "churned"], "indexed": True},
            {"name": "score", "type": "int", "indexed": True}]}), h)
        c.getresponse().read()
        for ws, wkey in ws_keys.items():
            wh = {"Authorization": f"Bearer {wkey}", "Content-Type": "application/json"}
            c.request("PUT", "/v1/schema/contacts", json.dumps({"fields": CONTACT_FIELDS}), wh)
            c.getresponse().read()
            if ws == "rules":
                c.request("PUT", "/v1/scripts/score", RULES10,
                          {"Authorization": f"Bearer {wkey}", "Content-Type": "text/x-lua"})
                r = c.getresponse()
                if r.status != 201:
                    raise SystemExit(f"bench_http: the rules did not deploy: {r.read()!r}")
                r.read()
        lines = "".join(json.dumps({"name": f"Customer {i:05d}", "email": f"c{i}@example.com",
                                    "phone": f"+86 138 {i:04d} 5678", "stage": ["lead", "customer", "churned"][i % 3],
                                    "score": i % 100}) + "\n" for i in range(10000))
        c.request("POST", "/v1/contacts/bulk", lines, {**h, "Content-Type": "application/x-ndjson"})
        ids = [json.loads(x)["id"] for x in c.getresponse().read().decode().splitlines()[:-1]]
        c.request("GET", f"/v1/contacts/{ids[0]}", headers=h)
        get_body = c.getresponse().read()
        c.request("GET", "/v1/contacts?stage=lead&limit=50", headers=h)
        q_body = c.getresponse().read()
    print(f"# GET answer body {len(get_body)} bytes, query answer body {len(q_body)} bytes; "
          f"1 I/O thread (kith) vs 1 worker (nginx); wrk -t1 -c64 -d{DURATION}s", flush=True)

    # ---- nginx with the same bodies ----
    www = os.path.join(TMP, "www")
    os.makedirs(www)
    open(os.path.join(www, "get"), "wb").write(get_body)
    open(os.path.join(www, "q50"), "wb").write(q_body)
    os.chmod(TMP, 0o755)
    for p in (www, os.path.join(www, "get"), os.path.join(www, "q50")):
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
    nport, nsport = free_port(), free_port()
    cert, key = os.path.join(data, "tls/cert.pem"), os.path.join(data, "tls/key.pem")
    shutil.copy(cert, os.path.join(TMP, "cert.pem"))
    shutil.copy(key, os.path.join(TMP, "key.pem"))
    conf = os.path.join(TMP, "nginx.conf")
    open(conf, "w").write(f"""
worker_processes 1;
pid {TMP}/nginx.pid;
error_log {TMP}/nginx.error.log;
events {{ worker_connections 8192; }}
http {{
  access_log {TMP}/nginx.access.log;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  default_type application/json;
  server {{ listen 127.0.0.1:{nport}; root {www}; }}
  server {{ listen 127.0.0.1:{nsport} ssl; root {www};
    ssl_certificate {TMP}/cert.pem; ssl_certificate_key {TMP}/key.pem;
    ssl_protocols TLSv1.2; ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256; }}
}}
""")
    ng = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    tokscript = lua(os.path.join(TMP, "auth.lua"), f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    plainscript = lua(os.path.join(TMP, "plain.lua"), "\n")
    idl = ",".join(f'"{i}"' for i in ids[:1000])
    getscript = lua(os.path.join(TMP, "get.lua"), f"""
wrk.headers["Authorization"] = "Bearer {token}"
local ids = {{{idl}}}
local n = 0
request = function()
  n = n % #ids + 1
  return wrk.format("GET", "/v1/contacts/" .. ids[n])
end
""")
    try:
        base_plain, _ = wrk(f"http://127.0.0.1:{nport}/get", plainscript)
        base_tls, _ = wrk(f"https://127.0.0.1:{nsport}/get", plainscript)
        base_q, _ = wrk(f"http://127.0.0.1:{nport}/q50", plainscript)
        # RSS per idle keep-alive TLS connection, nginx
        ng_pid = ng.pid
        r0 = tree_rss(ng_pid)
        socks = idle_conns(nsport, 1000, True, "/get", "")
        time.sleep(0.5)
        ng_per_conn = (tree_rss(ng_pid) - r0) / 1000
        for s in socks:
            s.close()
        ng_peak = tree_rss(ng_pid, "VmHWM")
    finally:
        ng.send_signal(signal.SIGQUIT)
        ng.wait(30)

    with Kith(data, plain=True) as k:
        rps, _ = wrk(f"http://127.0.0.1:{k.port}/", getscript)
        bench("http_get_plain", rps, "requests/s", base_plain)
        rq, _ = wrk(f"http://127.0.0.1:{k.port}/v1/contacts?stage=lead&limit=50", tokscript)
        bench("http_query50", rq, "requests/s", base_q)
    with Kith(data, plain=False) as k:
        rps, _ = wrk(f"https://127.0.0.1:{k.port}/", getscript)
        bench("http_get_tls", rps, "requests/s", base_tls)
        post = lua(os.path.join(TMP, "post.lua"), f"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"name":"Bench Customer","phone":"+86 138 1234 5678","stage":"lead","score":42}}'
""")
        # five rounds, each kith then raw LMDB, medians of each: one round
        # alone swung the ratio from 0.51 to 0.82 on this shared disk, and
        # the raw baseline alone from 23k to 32k/s between runs of three
        rcs, p99s, bases = [], [], []
        for i in range(5):
            rc_i, p99_i = wrk(f"https://127.0.0.1:{k.port}/v1/contacts", post)
            rcs.append(rc_i)
            p99s.append(p99_i)
            raw = run(os.path.join(BIN, "bench_store"), os.path.join(TMP, f"raw{i}"),
                      "--records", "10000", "--raw-creates", "64").stdout
            bases.append(float(re.search(r"rate=(\d+)", raw).group(1)))
        rc, p99, base_c = statistics.median(rcs), max(p99s), statistics.median(bases)
        print(f"# http_create_c64 rounds: kith {[round(x) for x in rcs]}, raw LMDB "
              f"{[round(x) for x in bases]}; each round's own ratio "
              f"{[round(a / b, 2) for a, b in zip(rcs, bases)]}, median "
              f"{statistics.median(a / b for a, b in zip(rcs, bases)):.2f}", flush=True)
        # the same creates into a workspace with 10 Lua rules and into one without
        posts = {ws: lua(os.path.join(TMP, f"post_{ws}.lua"), f"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {wkey}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{{"name":"Bench Customer","phone":"+86 138 1234 5678","stage":"lead","score":42}}'
""") for ws, wkey in ws_keys.items()}
        with_rules, without = [], []
        for i in range(3):
            without.append(wrk(f"https://127.0.0.1:{k.port}/v1/contacts", posts["norules"])[0])
            with_rules.append(wrk(f"https://127.0.0.1:{k.port}/v1/contacts", posts["rules"])[0])
        print(f"# http_rules10 rounds: with rules {[round(x) for x in with_rules]}, without "
              f"{[round(x) for x in without]}", flush=True)
        rules_rate, norules_rate = statistics.median(with_rules), statistics.median(without)
        # the rules ran: every contact of that workspace has its score
        sc = http.client.HTTPSConnection("127.0.0.1", k.port,
                                         context=ssl._create_unverified_context())
        sc.request("GET", "/v1/contacts?limit=5", headers={
            "Authorization": f"Bearer {ws_keys['rules']}"})
        recs = json.loads(sc.getresponse().read())["data"]
        if not recs or any(r.get("lead_score") != 18 for r in recs):
            raise SystemExit(f"bench_http: the rules did not score the contacts: {recs[:1]}")
        r0 = rss_kib(k.p.pid)
        socks = idle_conns(k.port, 1000, True, f"/v1/contacts/{ids[0]}", auth)
        time.sleep(0.5)
        kith_per_conn = (rss_kib(k.p.pid) - r0) / 1000
        for s in socks:
            s.close()
        kith_peak = rss_kib(k.p.pid, "VmHWM")
    bench("http_create_c64", rc, "records/s", base_c)
    bench("http_rules10", rules_rate, "records/s", norules_rate)
    print(f"# http_create_c64 latency p99 {p99:.1f} ms, the worst of the rounds (goal < 20 ms)",
          flush=True)

    # ---- CSV import through the API vs a raw-LMDB load of the same rows ----
    retail = os.path.join(CORPUS, "online-retail", "online_retail.csv.gz")
    if os.path.exists(retail):
        csvf = os.path.join(TMP, "retail.csv")
        with gzip.open(retail, "rb") as s, open(csvf, "wb") as d:
            shutil.copyfileobj(s, d)
        raw = run(os.path.join(BIN, "bench_rawload"), os.path.join(TMP, "rawload"), csvf,
                  "InvoiceNo", "StockCode", "CustomerID", "Country").stdout
        base_i = float(re.search(r"rate=(\d+)", raw).group(1))
        with Kith(data, plain=False) as k:
            ctx = ssl.create_default_context(cafile=cert)
            c = http.client.HTTPSConnection("localhost", k.port, context=ctx, timeout=600)
            h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            c.request("PUT", "/v1/schema/invoice_lines", json.dumps({"fields": [
                {"name": "invoiceno", "type": "string", "indexed": True},
                {"name": "stockcode", "type": "string", "indexed": True},
                {"name": "description", "type": "string"},
                {"name": "quantity", "type": "int"},
                {"name": "invoicedate", "type": "datetime"},
                {"name": "unitprice", "type": "money"},
                {"name": "customerid", "type": "int", "indexed": True},
                {"name": "country", "type": "string", "indexed": True}]}), h)
            c.getresponse().read()
            size = os.path.getsize(csvf)
            t0 = time.time()
            c.putrequest("POST", "/v1/invoice_lines/import")
            c.putheader("Authorization", f"Bearer {token}")
            c.putheader("Content-Type", "text/csv")
            c.putheader("Content-Length", str(size))
            c.endheaders()
            with open(csvf, "rb") as f:
                while True:
                    b = f.read(1 << 18)
                    if not b:
                        break
                    c.send(b)
            rep = json.loads(c.getresponse().read())
            dt = time.time() - t0
            kith_peak = max(kith_peak, rss_kib(k.p.pid, "VmHWM"))
        bench("http_import", rep["rows"] / dt, "rows/s", base_i)
        print(f"# import: {rep['rows']} rows, {rep['created']} created, {rep['failed']} failed, "
              f"{dt:.1f} s", flush=True)
    bench("http_rss_peak", kith_peak, "KiB", ng_peak)
    print(f"# RSS per idle keep-alive TLS connection: kith {kith_per_conn:.1f} KiB, "
          f"nginx {ng_per_conn:.1f} KiB", flush=True)
    bench("http_rss_per_conn", kith_per_conn, "KiB", ng_per_conn)


if __name__ == "__main__":
    main()
