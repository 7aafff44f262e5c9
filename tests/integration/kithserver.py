"""A real `kith serve` for integration tests, and a small HTTPS client.

    with KithServer(datadir) as srv:
        st, hdrs, body = srv.req("GET", "/v1/me", key=srv.admin)

The server listens on a random loopback port with TLS on (the data
directory's development certificate is the trust anchor), unless plain=True.
"""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time

from conftest import BIN, kith


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class KithServer:
    def __init__(self, datadir, plain=False, threads=2, extra_args=(), env=None, log=None):
        self.datadir = str(datadir)
        self.plain = plain
        self.threads = threads
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.log_path = log or os.path.join(self.datadir, "serve.log")
        self.proc = None
        self.port = None
        self._conns = {}

    # -- lifecycle --
    def start(self, timeout=20):
        args = [str(BIN / "kith"), "serve", "--data", self.datadir, "--listen", "127.0.0.1:0",
                "--threads", str(self.threads)] + self.extra_args
        if self.plain:
            args.append("--plain")
        e = dict(os.environ)
        e.setdefault("KITH_LOG", "info")
        e.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.logf, env=e)
        line = self.proc.stdout.readline().decode()
        m = re.search(r"listening on https?://[^:]+:(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log()}")
        self.port = int(m.group(1))
        return self

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        for c in self._conns.values():
            c.close()
        self._conns = {}
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "logf"):
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- keys --
    def key(self, role="admin", workspace="default", user=None, team=None):
        args = ["key", "create", "--data", self.datadir, "--workspace", workspace, "--role", role]
        if user:
            args += ["--user", user]
        if team:
            args += ["--team", team]
        return kith(*args, check=0).stdout.strip()

    # -- HTTP --
    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.datadir, "tls", "cert.pem"))
        return ctx

    def connection(self, fresh=False, timeout=60):
        if self.plain:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        return http.client.HTTPSConnection("localhost", self.port, timeout=timeout,
                                           context=self.ssl_context())

    def req(self, method, path, key=None, body=None, headers=None, ctype=None, keepalive=True,
            timeout=None):
        """One request; body may be bytes, str or a JSON-able object. timeout:
        seconds for a slow one (a corpus import under ASan), on its own
        connection."""
        if timeout is not None:
            keepalive = False
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        data = body
        if body is not None and not isinstance(body, (bytes, str)):
            data = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        elif body is not None:
            h.setdefault("Content-Type", ctype or "application/json")
        if isinstance(data, str):
            data = data.encode()
        for attempt in range(2):
            conn = self._conns.get("k") if keepalive else None
            if conn is None:
                conn = self.connection(timeout=timeout or 60)
                if keepalive:
                    self._conns["k"] = conn
            try:
                conn.request(method, path, body=data, headers=h)
                r = conn.getresponse()
                out = Response(r.status, r.getheaders(), r.read())
                if not keepalive or out.headers.get("connection") == "close":
                    conn.close()
                    self._conns.pop("k", None)
                return out
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                conn.close()
                self._conns.pop("k", None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def raw(self, data, timeout=5.0, read_until_close=True):
        """Sends raw bytes on a fresh connection; returns everything read back
        until the server closes (or the timeout)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if not self.plain:
            s = self.ssl_context().wrap_socket(s, server_hostname="localhost")
        try:
            s.sendall(data)
            chunks = []
            end = time.time() + timeout
            while time.time() < end:
                try:
                    c = s.recv(65536)
                except socket.timeout:
                    break
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not c:
                    break
                chunks.append(c)
                if not read_until_close:
                    break
            return b"".join(chunks)
        finally:
            s.close()


PROBLEM = "application/problem+json"


def problem(r, status, kind):
    """Asserts r is a problem+json of that status and type; returns it."""
    assert r.status == status, r
    assert r.headers.get("content-type", "").startswith(PROBLEM), r.headers
    p = r.json
    assert p["status"] == status and p["type"].endswith("/" + kind), p
    return p


def schema(srv, key, name, fields):
    r = srv.req("PUT", f"/v1/schema/{name}", key=key, body={"fields": fields})
    assert r.status in (200, 201), r
    return r.json


# ---- helpers for protocol-level tests (raw bytes, limits, responses) ----

def set_limits(datadir, **limits):
    """Writes limits into <datadir>/kith.json (takes effect at the next start)."""
    p = os.path.join(str(datadir), "kith.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg.setdefault("limits", {}).update(limits)
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2)


def parse_responses(data, head=False):
    """Splits raw bytes into HTTP/1.1 responses (Content-Length, chunked or
    until-close bodies; 1xx and 204/304 have none; head=True: no bodies).
    Returns (responses, leftover bytes that were not a complete response)."""
    out = []
    while data:
        i = data.find(b"\r\n\r\n")
        if i < 0:
            break
        lines = data[:i].decode("latin-1").split("\r\n")
        rest = data[i + 4:]
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            break
        status = int(m.group(1))
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip(), v.strip()))
        h = {k.lower(): v for k, v in hdrs}
        if 100 <= status < 200 or status in (204, 304) or head:
            body = b""
        elif "content-length" in h:
            n = int(h["content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        elif "chunked" in h.get("transfer-encoding", ""):
            body, ok = b"", False
            while True:
                j = rest.find(b"\r\n")
                if j < 0:
                    break
                size = int(rest[:j].split(b";")[0], 16)
                if size == 0:
                    k = rest.find(b"\r\n\r\n", j)
                    if k < 0:
                        break
                    rest, ok = rest[k + 4:], True
                    break
                if len(rest) < j + 2 + size + 2:
                    break
                body += rest[j + 2:j + 2 + size]
                rest = rest[j + 2 + size + 2:]
            if not ok:
                break
        else:
            body, rest = rest, b""
        out.append(Response(status, hdrs, body))
        data = rest
    return out, data


class RawConn:
    """One connection (TLS unless srv.plain) for sending raw bytes in pieces
    and reading what comes back. .closed tells whether the server closed."""

    def __init__(self, srv, timeout=10.0):
        self.srv = srv
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        if not srv.plain:
            s = srv.ssl_context().wrap_socket(s, server_hostname="localhost")
        self.sock = s
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def half_close(self):
        """Ends our sending side (TCP FIN; no TLS close_notify) and keeps reading."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            c = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            c = b""
        if not c:
            self.closed = True
        self.buf += c
        return c

    def read_until_close(self, timeout=10.0):
        """Everything until the server closes; raises if it does not in time."""
        end = time.time() + timeout
        while not self.closed:
            left = end - time.time()
            if left <= 0 or self._recv(left) is None:
                raise AssertionError(f"the server did not close the connection within "
                                     f"{timeout}s; got {self.buf[:500]!r}")
        return self.buf

    def read_responses(self, n, timeout=10.0, head=False):
        """Reads until n complete responses are in (not counting 1xx unless
        asked by the caller through parse_responses); returns them."""
        end = time.time() + timeout
        rs, rest = parse_responses(self.buf, head=head)
        # parse only what arrives (over TLS a read may bring one small record)
        finals = sum(1 for r in rs if r.status >= 200)
        while finals < n and not self.closed:
            left = end - time.time()
            c = self._recv(left) if left > 0 else None
            if c is None:
                break
            more, rest = parse_responses(rest + c, head=head)
            rs += more
            finals += sum(1 for r in more if r.status >= 200)
        return rs

    def wait_closed(self, timeout):
        """True if the server closes within timeout (data read meanwhile kept)."""
        end = time.time() + timeout
        while not self.closed:
            left = end - time.time()
            if left <= 0 or self._recv(left) is None:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def alive(srv):
    """The process runs and answers GET /healthz on a fresh connection."""
    if srv.proc.poll() is not None:
        return False
    try:
        r = srv.req("GET", "/healthz", keepalive=False)
    except (OSError, http.client.HTTPException):
        return False
    return r.status == 200


# ---- helpers added for the permission / masking suites (append-only) ----

class SSEStream:
    """An open GET on a text/event-stream route (Server-Sent Events).

    .status and .headers are known once opened; events() reads and parses
    events until a predicate holds, the server ends the stream, or the guard
    timeout passes (the timeout only keeps a broken server from hanging the
    test; nothing asserts on how long anything took)."""

    def __init__(self, srv, path, key=None, headers=None, timeout=10.0):
        import http.client as hc
        self.conn = srv.connection()
        self.conn.timeout = timeout
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.raw = b""          # everything read so far (for "never appears" checks)
        self.ended = False
        self._pending = b""
        self._hc = hc
        if self.status != 200:
            self.raw = self.resp.read()
            self.ended = True

    def _read_some(self, deadline):
        while time.time() < deadline:
            try:
                chunk = self.resp.read1(65536)
            except socket.timeout:
                continue
            except (self._hc.IncompleteRead, ConnectionError, ssl.SSLError, OSError, ValueError):
                self.ended = True
                return b""
            if not chunk:
                self.ended = True
                return b""
            return chunk
        return None

    def events(self, until=None, timeout=10.0):
        """Reads events ({"id", "event", "data"} dicts, data JSON-decoded when
        possible) until until(all_events_so_far) is true, the stream ends, or
        the guard timeout. Returns the events read by this call."""
        out = []
        deadline = time.time() + timeout
        while not self.ended:
            while b"\n\n" in self._pending:
                block, self._pending = self._pending.split(b"\n\n", 1)
                ev = {}
                for line in block.decode(errors="replace").split("\n"):
                    if not line or line.startswith(":"):
                        continue
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
                if "data" in ev:
                    try:
                        ev["data"] = json.loads(ev["data"])
                    except ValueError:
                        pass
                if ev:
                    out.append(ev)
            if until is not None and until(out):
                return out
            chunk = self._read_some(deadline)
            if chunk is None:
                return out
            self.raw += chunk
            self._pending += chunk
        return out

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sse(srv, path, key=None, headers=None, timeout=10.0):
    """Opens an SSE stream on srv (see SSEStream)."""
    return SSEStream(srv, path, key=key, headers=headers, timeout=timeout)


def start_server(tmp_dir):
    """`kith init` in tmp_dir/data and a running server on it, with .admin
    set; for module-scoped fixtures (the `server` fixture is per test)."""
    import pathlib
    d = pathlib.Path(tmp_dir) / "data"
    p = kith("init", "--data", d, check=0)
    token = p.stdout.strip().splitlines()[-1].split("=", 1)[1]
    srv = KithServer(d).start()
    srv.admin = token
    return srv


def workspace_create(srv, name):
    """`kith workspace create NAME` on the server's data directory."""
    kith("workspace", "create", name, "--data", srv.datadir, check=0)
    return name


def me(srv, key):
    r = srv.req("GET", "/v1/me", key=key)
    assert r.status == 200, r
    return r.json


def list_all(srv, key, coll, query="", limit=1000):
    """Every record of GET /v1/{coll} the key may see, following cursors."""
    import urllib.parse
    out, cursor = [], None
    while True:
        q = f"limit={limit}" + (f"&{query}" if query else "")
        if cursor:
            q += "&cursor=" + urllib.parse.quote(cursor, safe="")
        r = srv.req("GET", f"/v1/{coll}?{q}", key=key)
        assert r.status == 200, r
        out += r.json["data"]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


def query_all(srv, key, coll, body=None, limit=1000):
    """Every record of POST /v1/{coll}/query the key may see, following cursors."""
    out, cursor = [], None
    while True:
        b = dict(body or {})
        b["limit"] = limit
        if cursor:
            b["cursor"] = cursor
        r = srv.req("POST", f"/v1/{coll}/query", key=key, body=b)
        assert r.status == 200, r
        out += r.json["data"]
        cursor = r.json["next_cursor"]
        if not cursor:
            return out


def audit_all(srv, key, after=0):
    """Every audit entry after seq `after` (GET /v1/audit, paged)."""
    out = []
    while True:
        r = srv.req("GET", f"/v1/audit?after={after}&limit=1000", key=key)
        assert r.status == 200, r
        page = r.json["entries"]
        out += page
        if not page:
            return out
        after = r.json["next_after"]


def changes_all(srv, key, after=0):
    """Every change-log entry the key may see after seq `after` (GET /v1/changes, paged)."""
    out = []
    while True:
        r = srv.req("GET", f"/v1/changes?after={after}&limit=1000", key=key)
        assert r.status == 200, r
        out += r.json["changes"]
        if r.json["next_after"] >= r.json["last_seq"] or r.json["next_after"] == after:
            return out
        after = r.json["next_after"]


def is_forbidden(resp):
    """True when resp is exactly a 403 problem+json of type .../forbidden."""
    if resp.status != 403:
        return False
    if not resp.headers.get("content-type", "").startswith("application/problem+json"):
        return False
    try:
        p = resp.json
    except ValueError:
        return False
    return p.get("status") == 403 and str(p.get("type", "")).endswith("/forbidden")


def send_whole(srv, method, path, key=None, body=b"", ctype=None, headers=None, timeout=30):
    """One request on a fresh connection, its head and body written together
    in a single send (http.client writes them apart; the server must cope with
    both: test_api_permissions.py's test_streamed_body_after_the_head)."""
    import http.client as hc
    if isinstance(body, str):
        body = body.encode()
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        ctype = ctype or "application/json"
    body = body or b""
    h = {"Host": "localhost", "Content-Length": str(len(body)), "Connection": "close"}
    if key:
        h["Authorization"] = f"Bearer {key}"
    if ctype:
        h["Content-Type"] = ctype
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    if not srv.plain:
        s = srv.ssl_context().wrap_socket(s, server_hostname="localhost")
    try:
        s.sendall(head.encode() + b"\r\n" + body)
        resp = hc.HTTPResponse(s, method=method)
        resp.begin()
        data = resp.read()
        return Response(resp.status, resp.getheaders(), data)
    finally:
        s.close()


def enable_plugins(datadir, tmp_path, names, config=None):
    """Loads the first-party plugins `names` (in that order) from a private
    copy (the loader refuses files or directories others can write), with
    config {plugin: {...}} in kith.json."""
    import json
    import pathlib
    import shutil
    from conftest import BIN
    d = pathlib.Path(tmp_path) / "plugins"
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)
    for n in names:
        shutil.copy(BIN.parent / "lib" / "kith" / "plugins" / f"{n}.so", d / f"{n}.so")
        os.chmod(d / f"{n}.so", 0o644)
    p = pathlib.Path(datadir) / "kith.json"
    c = json.loads(p.read_text())
    c["plugins"] = {"dirs": [str(d)], "load": list(names)}
    if config:
        c["plugins"]["config"] = config
    p.write_text(json.dumps(c, indent=1))


def plugin_server(datadir, tmp_path, names, config=None):
    """A started server of datadir (the fixture's (path, token)) loading the
    first-party plugins `names`; .admin is the admin key."""
    d, token = datadir
    enable_plugins(d, tmp_path, names, config)
    s = KithServer(d).start()
    s.admin = token
    return s
