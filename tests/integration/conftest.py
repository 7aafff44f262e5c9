"""Shared fixtures for Kith's integration tests (pytest, system python3).

The binaries under test come from $KITH_BIN_DIR (set by ctest to the build's
bin/ directory); the reference corpus from $KITH_CORPUS (default
../shared/corpus beside the repository).
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("KITH_BIN_DIR", ROOT / "build" / "dev" / "bin"))
CORPUS = pathlib.Path(os.environ.get("KITH_CORPUS", ROOT.parent / "shared" / "corpus"))


def run(*args, check=None, env=None, timeout=120):
    """Runs a command; returns CompletedProcess with text output."""
    e = dict(os.environ)
    e.setdefault("KITH_LOG", "warn")
    if env:
        e.update(env)
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=e,
                       timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(f"{args}: exit {p.returncode}, expected {check}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def kith(*args, **kw):
    return run(BIN / "kith", *args, **kw)


def storetool(*args, **kw):
    return run(BIN / "kith-storetool", *args, **kw)


@pytest.fixture
def datadir(tmp_path):
    """A fresh data directory made by `kith init`; yields (path, admin token)."""
    d = tmp_path / "data"
    p = kith("init", "--data", d, check=0)
    token = p.stdout.strip().splitlines()[-1].split("=", 1)[1]
    return d, token


@pytest.fixture
def server(datadir):
    """A running TLS server on a fresh data directory; .admin is an admin key."""
    from kithserver import KithServer
    d, token = datadir
    srv = KithServer(d).start()
    srv.admin = token
    yield srv
    srv.stop()
