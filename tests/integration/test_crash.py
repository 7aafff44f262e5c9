"""Crash safety: a writer that records every acknowledged write in a ledger is
killed with SIGKILL at random moments, 100 times. After each kill `kith check`
must pass and every acknowledged write of that run must be in the store; every
10 cycles and at the end, every acknowledged write of all runs is checked."""
import os
import random
import signal
import subprocess
import time

from conftest import BIN, kith, storetool

CYCLES = int(os.environ.get("KITH_CRASH_CYCLES", "100"))


def verify(d, ledger, cycle):
    v = storetool("verify", "--data", d, "--ledger", ledger)
    assert v.returncode == 0, f"cycle {cycle}: lost writes:\n{v.stdout}{v.stderr}"


def test_sigkill_never_loses_an_acknowledged_write(datadir, tmp_path):
    d, _ = datadir
    seed = int(os.environ.get("KITH_CRASH_SEED", "0")) or random.randrange(1 << 30)
    rng = random.Random(seed)
    history = tmp_path / "ledger.all"
    acked = 0
    for cycle in range(CYCLES):
        ledger = tmp_path / f"ledger.{cycle}"
        p = subprocess.Popen([BIN / "kith-storetool", "write", "--data", d, "--ledger", ledger,
                              "--submitters", str(rng.choice([1, 8, 32, 64]))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Kill while it writes: after its first acknowledgement (start-up
        # takes longer under the sanitizers than a fixed delay allowed, and
        # a kill before any write proves nothing), at a random moment.
        deadline = time.time() + 30
        while time.time() < deadline and p.poll() is None and \
                not (ledger.exists() and ledger.stat().st_size > 0):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.28))
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        assert p.returncode == -signal.SIGKILL, f"cycle {cycle} (seed {seed}): writer died: {err!r}"
        c = kith("check", "--data", d)
        assert c.returncode == 0, f"cycle {cycle} (seed {seed}): kith check:\n{c.stdout}{c.stderr}"
        if ledger.exists():
            verify(d, ledger, cycle)
            data = ledger.read_bytes()
            # a line cut by the kill was never a complete acknowledgement
            data = data[: data.rfind(b"\n") + 1]
            acked += data.count(b"\n")
            with open(history, "ab") as h:
                h.write(data)
            ledger.unlink()
        if cycle % 10 == 9 or cycle == CYCLES - 1:
            verify(d, history, cycle)
    # every cycle was killed mid-write (the wait above), so each acknowledged
    # something; the test would prove nothing otherwise
    assert acked >= CYCLES, acked
