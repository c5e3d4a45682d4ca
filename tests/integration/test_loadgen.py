"""The benchmark's load generator (bench/loadgen.py) against a real server: its model
checks find no error in a correct server, and the paced mode offers the rate asked."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.harness import ServerThread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import loadgen  # noqa: E402


def test_closed_loop_and_paced_runs_check_clean(server: ServerThread) -> None:
    users = [server.new_user() for _ in range(2)]
    closed = loadgen.run_mixed(server.port, users, "secret", clients=2, duration=1.5, procs=1)
    assert closed["errors"] == 0, closed["error_samples"]
    assert closed["loops"] > 0
    # every step of the loop ran and was timed
    assert {"LOGIN", "SELECT", "APPEND", "EXPUNGE", "LOGOUT"} <= set(closed["per_command"])

    rate = 60.0
    paced = loadgen.run_mixed(
        server.port, users, "secret", clients=2, duration=2.0, procs=1, rate=rate
    )
    assert paced["errors"] == 0, paced["error_samples"]
    assert paced["offered_per_s"] == rate
    # the server keeps up easily: the clients send at the pace asked, not flat out
    assert 0.7 * rate <= paced["commands_per_s"] <= 1.2 * rate
    assert paced["commands_per_s"] < closed["commands_per_s"]
