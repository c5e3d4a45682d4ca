"""Logins per second and server CPU per LOGIN, with and without the verified-password
cache (``auth_cache_ttl``), against a real ``carteiro serve``.

    .venv/bin/python bench/auth_cache.py [--seconds 10] [--clients 1,4]

Each client loops connect → LOGIN → LOGOUT on 127.0.0.1 for the given time. The server
runs the shipped configuration (argon2id t=3 m=64MiB p=4) except the cache settings and
the per-account connection limit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CARTEIRO, PASSWORD, ROOT, USER, Imap, ServerProcess  # noqa: E402


def login_loop(port: int, until: float, counts: list[int], slot: int) -> None:
    while time.monotonic() < until:
        try:
            client = Imap(port, timeout=60)
        except OSError:
            continue
        client.login(USER, PASSWORD)
        client.close()
        counts[slot] += 1


def measure(port: int, server: ServerProcess, clients: int, seconds: float) -> tuple[float, float]:
    """(logins/s, server CPU ms per login)."""
    counts = [0] * clients
    cpu0, t0 = server.cpu(), time.monotonic()
    threads = [
        threading.Thread(target=login_loop, args=(port, t0 + seconds, counts, i))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cpu = server.cpu() - cpu0
    total = sum(counts)
    return total / elapsed, 1000 * cpu / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,4")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="carteiro-auth-cache-"))
    try:
        data = root / "data"
        subprocess.run(
            [CARTEIRO, "user", "add", USER, "--password-stdin", "--data-dir", str(data)],
            input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        print(f"{'cache':<14}{'clients':>8}{'logins/s':>11}{'CPU ms/login':>15}")
        for label, ttl in (("off (ttl 0)", 0), ("on (ttl 300)", 300)):
            server = ServerProcess(data, config_extra=f"auth_cache_ttl = {ttl}\n")
            try:
                warm = Imap(server.port)
                warm.login(USER, PASSWORD)  # the first login verifies either way
                warm.close()
                for n in (int(x) for x in args.clients.split(",")):
                    rate, cpu = measure(server.port, server, n, args.seconds)
                    print(f"{label:<14}{n:>8}{rate:>11.1f}{cpu:>15.1f}", flush=True)
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
