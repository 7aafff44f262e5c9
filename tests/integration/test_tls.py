"""TLS of `kith serve`, probed with `openssl s_client`: TLS 1.2 only, ECDHE
key exchange with AEAD ciphers only, no renegotiation, session tickets.

Every refusal has a positive control: the same s_client flags against an
`openssl s_server` that allows them, with the same certificate, must connect,
so a refusal is the server's doing and not a client that never offered it
(OpenSSL 3 offers TLS 1.0/1.1 and SHA-1 suites only at @SECLEVEL=0).
"""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from kithserver import KithServer

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(not OPENSSL, reason="openssl is not installed")

GET = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def s_client(port, *args, stdin=b"", timeout=20):
    """Runs s_client to 127.0.0.1:port; returns (exit code, stdout+stderr)."""
    p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost", *args],
                       input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("latin-1")


def session(out):
    """(protocol, cipher) from s_client's SSL-Session block; cipher None when
    no handshake completed."""
    proto = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
    cipher = re.search(r"^\s*Cipher\s*:\s*(\S+)", out, re.M)
    c = cipher.group(1) if cipher else None
    return (proto.group(1) if proto else None), (None if c in (None, "0000", "(NONE)") else c)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class OpenSSLServer:
    """`openssl s_server` allowing whatever the flags say (the control)."""

    def __init__(self, cert, key, *flags):
        self.port = free_port()
        self.proc = subprocess.Popen([OPENSSL, "s_server", "-accept", str(self.port), "-cert",
                                      cert, "-key", key, "-www", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("openssl s_server did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def rsa_cert(dirpath):
    cert, key = os.path.join(dirpath, "rsa-cert.pem"), os.path.join(dirpath, "rsa-key.pem")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "30", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(params=["ecdsa", "rsa"])
def tls_server(request, datadir, tmp_path):
    """A TLS server with the development certificate (ECDSA P-256) or an RSA
    one (so that static-RSA suites would even be possible)."""
    d, token = datadir
    cert, key = os.path.join(d, "tls", "cert.pem"), os.path.join(d, "tls", "key.pem")
    if request.param == "rsa":
        rc, rk = rsa_cert(tmp_path)
        shutil.copyfile(rc, cert)
        shutil.copyfile(rk, key)
    srv = KithServer(d, threads=1).start()
    srv.kind, srv.cert, srv.key = request.param, cert, key
    yield srv
    srv.stop()


def refused_but_possible(srv, control_flags, *client_flags):
    """Kith refuses the handshake; the control server accepts the same client."""
    rc, out = s_client(srv.port, *client_flags)
    proto, cipher = session(out)
    assert rc != 0 and cipher is None, f"kith accepted {client_flags}: {proto} {cipher}\n{out}"
    assert srv.proc.poll() is None
    with OpenSSLServer(srv.cert, srv.key, *control_flags) as ctl:
        rc, out = s_client(ctl.port, *client_flags)
    assert rc == 0 and session(out)[1], f"control: s_client {client_flags} cannot connect " \
                                        f"even to openssl s_server:\n{out}"
    return out


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused(tls_server, version):
    flags = (version, "-cipher", "DEFAULT:@SECLEVEL=0")
    refused_but_possible(tls_server, flags, *flags)


WEAK = {
    # (certificate kind, suite): why it must be refused
    ("rsa", "AES128-SHA"): "static RSA key exchange, CBC",
    ("rsa", "AES128-GCM-SHA256"): "static RSA key exchange",
    ("rsa", "AES256-GCM-SHA384"): "static RSA key exchange",
    ("rsa", "DHE-RSA-AES128-GCM-SHA256"): "finite-field DHE",
    ("rsa", "ECDHE-RSA-AES128-SHA"): "CBC",
    ("rsa", "ECDHE-RSA-AES128-SHA256"): "CBC",
    ("ecdsa", "ECDHE-ECDSA-AES128-SHA"): "CBC",
    ("ecdsa", "ECDHE-ECDSA-AES256-SHA384"): "CBC",
}


@pytest.mark.parametrize("tls_server,suite", sorted(WEAK), indirect=["tls_server"],
                         ids=[f"{k}-{s}" for k, s in sorted(WEAK)])
def test_cbc_static_rsa_and_dhe_suites_are_refused(tls_server, suite):
    flags = ("-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0")
    refused_but_possible(tls_server, flags, *flags)


GOOD = {
    "ecdsa": ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
              "ECDHE-ECDSA-CHACHA20-POLY1305"],
    "rsa": ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-CHACHA20-POLY1305"],
}


def test_ecdhe_aead_suites_work_and_serve(tls_server):
    for suite in GOOD[tls_server.kind]:
        rc, out = s_client(tls_server.port, "-tls1_2", "-cipher", suite, "-ign_eof",
                           "-CAfile", tls_server.cert, "-verify_return_error",
                           "-verify_hostname", "localhost", stdin=GET)
        assert rc == 0, out
        assert session(out) == ("TLSv1.2", suite), out
        assert "Verify return code: 0 (ok)" in out
        assert re.search(r"^HTTP/1\.1 200 OK\r?$", out, re.M), out
        assert '{"status":"ok"}' in out


def test_tls_1_3_is_not_negotiated(tls_server):
    # TLS 1.3 alone: mbedtls 2.28 has none, so no handshake at all
    rc, out = s_client(tls_server.port, "-tls1_3")
    proto, cipher = session(out)
    assert rc != 0 and cipher is None, out
    # a client offering 1.3 and 1.2 gets 1.2
    rc, out = s_client(tls_server.port, "-ign_eof", stdin=GET)
    assert rc == 0 and session(out)[0] == "TLSv1.2", out
    assert re.search(r"^HTTP/1\.1 200 OK\r?$", out, re.M), out


def test_client_renegotiation_is_refused(tls_server):
    """s_client's 'R' line starts a renegotiation in the middle of the
    connection: refused, and nothing more is served on it."""
    port = tls_server.port
    p = subprocess.Popen([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                          "localhost", "-tls1_2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        keepalive_get = GET.replace(b"Connection: close", b"X-A: 1")
        p.stdin.write(keepalive_get)
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.write(b"R\n")
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.write(keepalive_get)
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.close()
    except BrokenPipeError:
        pass
    try:
        out = p.stdout.read().decode("latin-1")
        p.wait(20)
    finally:
        p.kill()
    assert "RENEGOTIATING" in out, out
    # the first request was served; the renegotiation failed with an alert
    # and the request after it was not served
    assert len(re.findall(r"^HTTP/1\.1 200 OK", out, re.M)) == 1, out
    assert "no renegotiation" in out or "handshake failure" in out, out
    assert tls_server.proc.poll() is None


def test_session_ticket_resumption(tls_server, tmp_path):
    sess = tmp_path / "session.pem"
    rc, out = s_client(tls_server.port, "-tls1_2", "-sess_out", sess)
    assert rc == 0, out
    assert "TLS session ticket:" in out, "the server issued no ticket"
    assert out.count("New, TLSv1.2") == 1
    # the server keeps no session cache: resumption can only come from the ticket
    for _ in range(2):
        rc, out = s_client(tls_server.port, "-tls1_2", "-sess_in", sess, "-ign_eof", stdin=GET)
        assert rc == 0, out
        assert "Reused, TLSv1.2" in out, out
        assert re.search(r"^HTTP/1\.1 200 OK\r?$", out, re.M), out
    # a client without tickets cannot resume
    rc, out = s_client(tls_server.port, "-tls1_2", "-no_ticket", "-sess_out", sess)
    assert rc == 0
    rc, out = s_client(tls_server.port, "-tls1_2", "-no_ticket", "-sess_in", sess)
    assert "New, TLSv1.2" in out and "Reused" not in out, out


def test_garbage_and_stalled_handshakes_are_closed(datadir):
    """Plain HTTP or garbage on the TLS port is dropped; a client that opens a
    connection and never finishes its handshake is closed by the header
    deadline; the server keeps serving."""
    from kithserver import set_limits
    d, _ = datadir
    set_limits(d, header_timeout_ms=1000)
    srv = KithServer(d, threads=1).start()
    try:
        def closed_within(sock, timeout):
            sock.settimeout(timeout)
            end = time.time() + timeout
            try:
                while time.time() < end:
                    if not sock.recv(65536):
                        return True
            except socket.timeout:
                return False
            except OSError:
                return True
            return False

        for junk in [b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", bytes(range(256)) * 4,
                     b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + b"A" * 70000]:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            try:
                s.sendall(junk)
            except OSError:
                pass
            assert closed_within(s, 10), junk[:20]
            s.close()
        # nothing at all, and half a ClientHello: the deadline ends both
        for first in [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"]:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(first)
            assert closed_within(s, 10), first
            s.close()
        rc, out = s_client(srv.port, "-ign_eof", stdin=GET)
        assert rc == 0 and re.search(r"^HTTP/1\.1 200 OK\r?$", out, re.M), out
    finally:
        assert srv.stop() == 0
