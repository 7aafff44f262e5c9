"""Signals and process life of `kith serve`: SIGHUP reloads the certificate
under load (a bad one is refused, the old kept), SIGTERM drains without
losing an acknowledged write, one server per data directory, --plain only on
loopback."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import BIN, kith
from kithserver import KithServer, RawConn, list_all, schema, set_limits

THINGS = [{"name": "x", "type": "string"}, {"name": "n", "type": "int"}]


def der(pem_text):
    return ssl.PEM_cert_to_DER_cert(pem_text)


def served_cert(port):
    """DER of the certificate a new connection is shown."""
    return der(ssl.get_server_certificate(("127.0.0.1", port), timeout=10))


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Load:
    """Threads doing requests on their own keep-alive connection each, never
    reconnecting: a dropped connection or a failed request is an error."""

    def __init__(self, srv, nthreads=3):
        self.srv = srv
        self.stop_ev = threading.Event()
        self.errors = []
        self.counts = [0] * nthreads
        self.conns = [srv.connection() for _ in range(nthreads)]
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(nthreads)]

    def run(self, i):
        c = self.conns[i]
        sock = None
        try:
            while not self.stop_ev.is_set():
                c.request("GET", "/healthz")
                r = c.getresponse()
                body = r.read()
                if sock is None:
                    sock = c.sock
                if r.status != 200 or body != b'{"status":"ok"}':
                    self.errors.append(f"thread {i}: {r.status} {body!r}")
                if c.sock is not sock or r.getheader("connection") == "close":
                    self.errors.append(f"thread {i}: the connection was replaced or closed")
                    return
                self.counts[i] += 1
        except Exception as e:  # noqa: BLE001 - any failure is what we count
            self.errors.append(f"thread {i}: {e!r}")

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def total(self):
        return sum(self.counts)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        for c in self.conns:
            c.close()


def test_sighup_reloads_certificate_under_load(datadir, tmp_path):
    d, token = datadir
    tls = os.path.join(d, "tls")
    old_pem = open(os.path.join(tls, "cert.pem")).read()
    shutil.copyfile(os.path.join(tls, "key.pem"), tmp_path / "old-key.pem")
    other = tmp_path / "other"
    kith("init", "--data", other, check=0)
    new_pem = open(other / "tls" / "cert.pem").read()
    assert der(old_pem) != der(new_pem)

    srv = KithServer(d, threads=2, env={"KITH_LOG": "info"}).start()
    try:
        assert served_cert(srv.port) == der(old_pem)
        load = Load(srv).start()
        try:
            wait_for(lambda: load.total() > 50, 20, "the load to get going")
            shutil.copyfile(other / "tls" / "key.pem", os.path.join(tls, "key.pem"))
            shutil.copyfile(other / "tls" / "cert.pem", os.path.join(tls, "cert.pem"))
            srv.proc.send_signal(signal.SIGHUP)
            # every loop has it: several new connections in a row all see it
            wait_for(lambda: all(served_cert(srv.port) == der(new_pem) for _ in range(8)), 10,
                     "the new certificate")
            # a client that trusts only the new certificate gets served
            ctx = ssl.create_default_context(cafile=str(other / "tls" / "cert.pem"))
            c = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=10)
            c.request("GET", "/healthz")
            assert c.getresponse().status == 200
            c.close()
            # the connections opened before keep working, on the old certificate
            before = load.total()
            wait_for(lambda: load.total() > before + 200, 20, "more requests after the reload")
            # reload back and forth a few times under the same load
            for i in range(6):
                pem = (old_pem, new_pem)[i % 2]
                if i % 2 == 0:
                    shutil.copyfile(tmp_path / "old-key.pem", os.path.join(tls, "key.pem"))
                else:
                    shutil.copyfile(other / "tls" / "key.pem", os.path.join(tls, "key.pem"))
                with open(os.path.join(tls, "cert.pem"), "w") as f:
                    f.write(pem)
                srv.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: all(served_cert(srv.port) == der(pem) for _ in range(4)), 10,
                         f"reload {i}")
                before = load.total()
                wait_for(lambda: load.total() > before + 20, 20, "requests after a reload")
            for c in load.conns:
                assert c.sock.getpeercert(binary_form=True) == der(old_pem)
        finally:
            load.stop()
        assert not load.errors, load.errors
        assert all(n > 0 for n in load.counts), load.counts
        assert "certificate reloaded" in srv.log()

        # a garbage certificate: refused with a log line, the last good one stays
        with open(os.path.join(tls, "cert.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "certificate reload refused" in srv.log(), 10, "the refusal log line")
        assert srv.proc.poll() is None
        for _ in range(6):
            assert served_cert(srv.port) == der(new_pem)
        # a certificate that does not match the key: refused the same way
        with open(os.path.join(tls, "cert.pem"), "w") as f:
            f.write(old_pem)  # the key file holds the new certificate's key
        n = srv.log().count("certificate reload refused")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: srv.log().count("certificate reload refused") > n, 10,
                 "the refusal of a mismatched key")
        assert "does not belong" in srv.log()
        assert served_cert(srv.port) == der(new_pem)
        ctx = ssl.create_default_context(cafile=str(other / "tls" / "cert.pem"))
        c = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=10)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
    finally:
        assert srv.stop() == 0


def test_sigterm_drains_without_losing_acknowledged_writes(datadir):
    d, token = datadir
    set_limits(d, drain_timeout_ms=10000)
    srv = KithServer(d, threads=2, env={"KITH_LOG": "info"}).start()
    srv.admin = token
    schema(srv, token, "things", THINGS)
    acked = [[] for _ in range(6)]
    other = []  # answers that are not 201 (e.g. 503 while draining)
    stop = threading.Event()
    started = threading.Barrier(len(acked) + 1)
    term_sent = threading.Event()
    after_term = [0]

    def writer(i):
        conn = srv.connection()
        started.wait()
        n = 0
        while not stop.is_set():
            body = json.dumps({"x": f"w{i}-{n}", "n": n})
            try:
                conn.request("POST", "/v1/things", body=body,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                if term_sent.is_set():
                    return  # the server is going away: done
                conn = srv.connection()  # (a keep-alive connection may end)
                continue
            if r.status == 201:
                acked[i].append(json.loads(data)["id"])
                if term_sent.is_set():
                    after_term[0] += 1
            else:
                other.append((r.status, data[:200]))
            if r.getheader("connection") == "close":
                conn.close()
                if term_sent.is_set():
                    return
                conn = srv.connection()
            n += 1
        conn.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(acked))]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(1.5)
    term_sent.set()
    srv.proc.send_signal(signal.SIGTERM)
    try:
        rc = srv.proc.wait(10 + 20)  # the drain timeout, and then some
    except subprocess.TimeoutExpired:
        rc = None
    stop.set()
    for t in threads:
        t.join(30)
    srv.stop()
    assert rc == 0, f"exit {rc}\n{srv.log()[-3000:]}"
    assert "draining" in srv.log()
    ids = [x for a in acked for x in a]
    assert len(ids) > 100, "the writers never got going"
    assert not [o for o in other if o[0] < 500 and o[0] != 503], other

    c = kith("check", "--data", d)
    assert c.returncode == 0, c.stdout + c.stderr
    srv2 = KithServer(d, threads=1).start()
    try:
        stored = {r["id"] for r in list_all(srv2, token, "things")}
    finally:
        srv2.stop()
    print(f"acked {len(ids)}, after SIGTERM {after_term[0]}, other {len(other)}, "
          f"stored {len(stored)}")
    missing = [x for x in ids if x not in stored]
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged writes lost: {missing[:10]}"


def test_sigterm_finishes_a_request_in_flight(datadir):
    """At SIGTERM: idle keep-alive connections close, new connections are
    refused, a request half-way through its body is still read and answered
    (Connection: close), then the process exits 0."""
    d, token = datadir
    set_limits(d, drain_timeout_ms=20000)
    srv = KithServer(d, threads=2, env={"KITH_LOG": "info"}).start()
    schema(srv, token, "things", THINGS)
    body = json.dumps({"x": "in flight", "n": 1}).encode()
    head = (f"POST /v1/things HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    idle, busy = RawConn(srv), RawConn(srv)
    try:
        idle.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert [r.status for r in idle.read_responses(1)] == [200]
        busy.send(head + body[:5])
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        assert idle.wait_closed(10), "an idle connection outlived the drain"

        def refused():
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
                return False
            except OSError:
                return True
        wait_for(refused, 10, "new connections to be refused")
        assert srv.proc.poll() is None, "exited with a request in flight"
        busy.send(body[5:])
        rs = busy.read_responses(1)
        assert [r.status for r in rs] == [201], rs
        assert rs[0].headers.get("connection") == "close"
        rec_id = rs[0].json["id"]
        assert busy.wait_closed(10)
        assert srv.proc.wait(30) == 0
    finally:
        idle.close()
        busy.close()
        srv.stop()
    srv2 = KithServer(d, threads=1).start()
    try:
        r = srv2.req("GET", f"/v1/things/{rec_id}", key=token)
        assert r.status == 200 and r.json["x"] == "in flight"
    finally:
        srv2.stop()


def test_second_server_on_same_data_dir_is_refused(datadir):
    d, _ = datadir
    srv = KithServer(d, threads=1).start()
    try:
        p = subprocess.run([str(BIN / "kith"), "serve", "--data", str(d), "--listen",
                            "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
        assert "locked" in p.stderr and str(srv.proc.pid) in p.stderr, p.stderr
        assert "listening" not in p.stdout
        # the first one is undisturbed
        assert srv.req("GET", "/healthz", keepalive=False).status == 200
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"])
def test_plain_refused_off_loopback(datadir, listen):
    d, _ = datadir
    p = subprocess.run([str(BIN / "kith"), "serve", "--data", str(d), "--plain", "--listen",
                        listen], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "--plain" in p.stderr and "loopback" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "listening" not in p.stdout
