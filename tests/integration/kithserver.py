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

    def connection(self, fresh=False):
        if self.plain:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return http.client.HTTPSConnection("localhost", self.port, timeout=60,
                                           context=self.ssl_context())

    def req(self, method, path, key=None, body=None, headers=None, ctype=None, keepalive=True):
        """One request; body may be bytes, str or a JSON-able object."""
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
                conn = self.connection()
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


def schema(srv, key, name, fields):
    r = srv.req("PUT", f"/v1/schema/{name}", key=key, body={"fields": fields})
    assert r.status in (200, 201), r
    return r.json
