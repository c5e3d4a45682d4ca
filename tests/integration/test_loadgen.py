"""The benchmark's load generators against a real server: loadgen.py's model checks find
no error in a correct server and its paced mode offers the rate asked; the APPEND
workload stores every message it counts."""

from __future__ import annotations

import imaplib
import sys
import time
from pathlib import Path

from tests.integration.harness import ServerThread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import loadgen  # noqa: E402
import workloads  # noqa: E402


def test_closed_loop_and_paced_runs_check_clean(server: ServerThread) -> None:
    users = [server.new_user() for _ in range(2)]
    closed = loadgen.run_mixed(server.port, users, "secret", clients=2, duration=1.5, procs=1)
    assert closed["errors"] == 0, closed["error_samples"]
    assert closed["loops"] > 0
    # every step of the loop ran and was timed
    assert {"LOGIN", "SELECT", "APPEND", "EXPUNGE", "LOGOUT"} <= set(closed["per_command"])
    # each loop's connection is timed apart from the commands, about once per LOGIN
    connects = closed["connect"]["count"]
    assert abs(connects - closed["per_command"]["LOGIN"]["count"]) <= 2
    assert closed["connect"]["p50_ms"] > 0

    rate = 60.0
    paced = loadgen.run_mixed(
        server.port, users, "secret", clients=2, duration=2.0, procs=1, rate=rate
    )
    assert paced["errors"] == 0, paced["error_samples"]
    assert paced["offered_per_s"] == rate
    # the server keeps up easily: the clients send at the pace asked, not flat out
    assert 0.7 * rate <= paced["commands_per_s"] <= 1.2 * rate
    assert paced["commands_per_s"] < closed["commands_per_s"]


class _Measured:
    """What bench/workloads.py needs of a server: its port and its CPU (here the test
    process's own, since the server runs in a thread of it)."""

    def __init__(self, port: int) -> None:
        self.name = "Carteiro"
        self.imap_port = self.imaps_port = self.lmtp_port = port

    def cpu(self) -> float:
        return time.process_time()

    def pss_kib(self) -> int:
        return 0


def test_append_workload_stores_every_message_it_counts(server: ServerThread) -> None:
    users = [server.new_user() for _ in range(2)]
    r = workloads.append_storm(
        _Measured(server.port), users, clients=2, per_client=6, procs=2, password="secret"
    )
    assert r["errors"] == 0
    assert r["appends"] == 12
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    for user in users:  # every APPEND answered OK is in the user's INBOX, intact
        with imaplib.IMAP4("127.0.0.1", server.port) as c:
            c.login(user, "secret")
            c.select("INBOX", readonly=True)
            typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (X-BENCH-SEQ)])")
            assert typ == "OK"
            seqs = sorted(d[1].split(b":", 1)[1].strip() for d in data if isinstance(d, tuple))
            assert len(seqs) == 6 and len(set(seqs)) == 6
