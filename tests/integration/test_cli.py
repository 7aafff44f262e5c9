"""The `kith` command: init, workspace, key, check, backup, version, and the
error contract (one line naming what and where, exit 2, nothing modified)."""
import json
import os
import re

from conftest import kith, storetool


def tree_state(path):
    """Every file's path, size and mtime, to prove a command changed nothing.
    LMDB's lock.mdb (reader table, runtime state) is not data and is skipped."""
    out = {}
    for root, dirs, files in os.walk(path):
        for f in files + dirs:
            if f == "lock.mdb":
                continue
            p = os.path.join(root, f)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def test_init_layout_and_last_line(tmp_path):
    d = tmp_path / "data"
    p = kith("init", "--data", d, check=0)
    last = p.stdout.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"KITH_API_KEY=kith_[A-Za-z0-9_-]{43}", last)
    for f in ["kith.json", "tls/cert.pem", "tls/key.pem", "system/data.mdb",
              "workspaces/default/data.mdb"]:
        assert (d / f).exists(), f
    assert oct((d / "tls/key.pem").stat().st_mode & 0o777) == "0o600"
    # the token is never stored: no file under the directory contains it
    token = last.split("=", 1)[1].encode()
    for root, _, files in os.walk(d):
        for f in files:
            assert token not in open(os.path.join(root, f), "rb").read()
    # no leftovers of the temporary build directory
    assert [x.name for x in tmp_path.iterdir()] == ["data"]


def test_dev_certificate_is_ecdsa_p256_for_localhost(datadir):
    import subprocess
    d, _ = datadir
    text = subprocess.run(["openssl", "x509", "-in", d / "tls/cert.pem", "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "id-ecPublicKey" in text and "prime256v1" in text
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    # the key matches the certificate
    pub1 = subprocess.run(["openssl", "x509", "-in", d / "tls/cert.pem", "-noout", "-pubkey"],
                          capture_output=True, text=True, check=True).stdout
    pub2 = subprocess.run(["openssl", "pkey", "-in", d / "tls/key.pem", "-pubout"],
                          capture_output=True, text=True, check=True).stdout
    assert pub1 == pub2


def test_init_refuses_existing_directory_untouched(datadir, tmp_path):
    d, _ = datadir
    before = tree_state(d)
    p = kith("init", "--data", d, check=2)
    assert "already exists" in p.stderr and str(d) in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert tree_state(d) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    kith("init", "--data", empty, check=2)
    assert list(empty.iterdir()) == []


def test_workspaces(datadir):
    d, _ = datadir
    assert kith("workspace", "list", "--data", d, check=0).stdout.split() == ["default"]
    kith("workspace", "create", "acme", "--data", d, check=0)
    kith("workspace", "create", "beta-2", "--data", d, check=0)
    assert kith("workspace", "list", "--data", d, check=0).stdout.split() == [
        "acme", "beta-2", "default"]
    p = kith("workspace", "create", "acme", "--data", d, check=2)
    assert "already exists" in p.stderr
    for bad in ["Acme", "-x", "a b", "x" * 64, "../etc", ""]:
        before = tree_state(d)
        p = kith("workspace", "create", bad, "--data", d)
        assert p.returncode == 2, bad
        assert tree_state(d) == before


def test_key_create_prints_token_alone(datadir):
    d, _ = datadir
    p = kith("key", "create", "--data", d, "--workspace", "default", "--role", "readonly",
             check=0)
    assert re.fullmatch(r"kith_[A-Za-z0-9_-]{43}\n", p.stdout)
    p2 = kith("key", "create", "--data", d, "--workspace", "default", "--role", "sales", check=0)
    assert p2.stdout != p.stdout
    for args, msg in [(["--workspace", "nope", "--role", "sales"], "no workspace"),
                      (["--workspace", "default", "--role", "boss"], "unknown role"),
                      (["--role", "sales"], "--workspace"),
                      (["--workspace", "default"], "--role")]:
        before = tree_state(d)
        p = kith("key", "create", "--data", d, *args, check=2)
        assert msg in p.stderr
        assert tree_state(d) == before


def test_check_counts_and_ok(datadir):
    d, _ = datadir
    storetool("put", "--data", d, "--schema",
              '{"name":"notes","fields":[{"name":"t","type":"string","indexed":true}]}',
              "--record", '{"t":"hello"}', check=0)
    p = kith("check", "--data", d, check=0)
        # three collections: notes, and the workspace's system collections _roles and _scripts
    assert "workspace default: 3 collections, 1 records, 1 index entries, 1 changes" in p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith("kith check: ok")


def test_corruption_names_the_record(datadir, tmp_path):
    d, _ = datadir
    marker = "MARKER-3f9a1c-payload"
    rid = storetool("put", "--data", d, "--schema",
                    '{"name":"notes","fields":[{"name":"t","type":"string"}]}',
                    "--record", '{"t":"%s"}' % marker, check=0).stdout.strip()
    storetool("put", "--data", d, "--schema",
              '{"name":"notes","fields":[{"name":"t","type":"string"}]}',
              "--record", '{"t":"another"}', check=0)
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(d, copy)
    f = copy / "workspaces/default/data.mdb"
    data = bytearray(f.read_bytes())
    # LMDB is copy-on-write: stale copies of the page may linger in free pages,
    # so flip the byte in every copy (one of them is the live record)
    hits = 0
    i = data.find(marker.encode())
    while i >= 0:
        data[i + 3] ^= 0x20  # one byte, inside the payload
        hits += 1
        i = data.find(marker.encode(), i + 1)
    assert hits > 0
    f.write_bytes(bytes(data))
    p = kith("check", "--data", copy)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"notes/{rid}" in p.stdout and "checksum mismatch" in p.stdout
    # the original is untouched and still fine
    kith("check", "--data", d, check=0)


def test_backup_is_compact_consistent_and_checkable(datadir, tmp_path):
    d, _ = datadir
    kith("workspace", "create", "acme", "--data", d, check=0)
    storetool("put", "--data", d, "--workspace", "acme", "--schema",
              '{"name":"notes","fields":[{"name":"t","type":"string","unique":true}]}',
              "--record", '{"t":"x"}', check=0)
    dest = tmp_path / "backup"
    p = kith("backup", "--data", d, dest, check=0)
    assert "2 workspace(s)" in p.stdout
    c = kith("check", "--data", dest, check=0)
    assert "workspace acme: 3 collections, 1 records" in c.stdout
    assert kith("workspace", "list", "--data", dest, check=0).stdout.split() == ["acme", "default"]
    assert (dest / "tls/cert.pem").read_bytes() == (d / "tls/cert.pem").read_bytes()
    # refuses an existing destination, and leaves no temporary directory
    kith("backup", "--data", d, dest, check=2)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["backup", "data"]


def test_version():
    p = kith("version", check=0)
    assert re.match(r"kith \d+\.\d+\.\d+\nplugin-abi \d+\napi-level \d+\n$", p.stdout)


def test_every_command_has_help():
    for cmd in [["init"], ["workspace", "create"], ["workspace", "list"], ["key", "create"],
                ["check"], ["backup"], ["version"]]:
        p = kith(*cmd, "--help", check=0)
        assert p.stdout.startswith("usage: kith " + " ".join(cmd)), cmd
    assert "kith check" in kith("--help", check=0).stdout


def test_errors_are_one_line_exit_2(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    notkith = tmp_path / "notkith"
    notkith.mkdir()
    cases = [
        (["check", "--data", tmp_path / "missing"], "no such data directory"),
        (["check", "--data", afile], "not a directory"),
        (["check", "--data", notkith], "not a kith data directory"),
        (["workspace", "list", "--data", notkith], "not a kith data directory"),
        (["check"], "--data DIR is required"),
        (["check", "--data", notkith, "--bogus"], "unknown option"),
        (["backup", "--data", notkith], "missing argument"),
        (["frobnicate"], "unknown command"),
        (["workspace", "frob"], "unknown or missing subcommand"),
    ]
    for args, msg in cases:
        p = kith(*args, check=2)
        first = p.stderr.splitlines()[0]
        assert msg in first, (args, p.stderr)
        assert first.startswith("kith"), first


def test_corrupt_environment_is_a_clear_error(datadir, tmp_path):
    d, _ = datadir
    (d / "system/data.mdb").write_bytes(os.urandom(20000))
    for args in [["check", "--data", d], ["workspace", "list", "--data", d],
                 ["workspace", "create", "x", "--data", d],
                 ["key", "create", "--data", d, "--workspace", "default", "--role", "admin"],
                 ["backup", "--data", d, tmp_path / "b"]]:
        p = kith(*args, check=2)
        assert "system" in p.stderr and "not an LMDB environment" in p.stderr, p.stderr
    assert not (tmp_path / "b").exists()


def test_check_names_unregistered_and_broken_workspaces(datadir):
    d, _ = datadir
    kith("workspace", "create", "acme", "--data", d, check=0)
    (d / "workspaces/acme/data.mdb").write_bytes(b"\0" * 8192)
    (d / "workspaces/stray").mkdir()
    p = kith("check", "--data", d, check=1)
    assert "PROBLEM workspace acme" in p.stdout
    assert "workspaces/stray" in p.stdout


def test_init_names_the_plugins_to_load(tmp_path):
    d = tmp_path / "withplugins"
    p = kith("init", "--data", d, "--plugins", "identity,pipeline,leads", check=0)
    assert "plugins:      identity,pipeline,leads" in p.stdout
    assert json.loads((d / "kith.json").read_text())["plugins"] == {
        "load": ["identity", "pipeline", "leads"]}
    out = kith("plugins", "--data", d, check=0).stdout
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["loaded", "identity"], ["loaded", "pipeline"], ["loaded", "leads"]], out
    for bad in ("Identity", "a,,b", "x" * 33, "a b"):
        p = kith("init", "--data", tmp_path / "bad", "--plugins", bad)
        assert p.returncode == 2 and "--plugins" in p.stderr, (bad, p.stderr)
        assert not (tmp_path / "bad").exists()
