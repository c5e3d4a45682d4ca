"""Core IMAP benchmark against a real ``carteiro serve`` subprocess over real sockets.

    .venv/bin/python bench/imap_core.py [--messages 100000] [--quick] [--profile DIR]

Measures SELECT, FETCH 1:* (FLAGS), UID FETCH (ENVELOPE BODYSTRUCTURE), SEARCH (UNSEEN,
TEXT on a word in 1 % of the messages and on one in none), an APPEND storm from 10
connections, 1,000 sessions in IDLE (server RSS, notification latency) and,
throughout, event-loop stalls seen from outside (a NOOP every 10 ms on its own
connection, from its own process). Prints a table: metric, value, target, PASS/FAIL.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    IDLE_MAILBOX,
    PASSWORD,
    USER,
    Imap,
    ImapError,
    Probe,
    Profiler,
    ServerProcess,
    client_cpu,
    ensure_populated,
    fresh_copy,
    median,
    percentile,
    raise_fd_limit,
    sample_messages,
    uid_set,
    variant,
)


# --- bookkeeping ---------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    t0: float = 0.0
    t1: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    rss_after_mb: float = 0.0

    @property
    def wall(self) -> float:
        return self.t1 - self.t0


@dataclass
class Row:
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: no target, figure only


@dataclass
class Bench:
    server: ServerProcess
    profiler: Profiler
    rows: list[Row] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str, profile: bool = False) -> Iterator[Phase]:
        ph = Phase(name)
        if profile:
            self.profiler.start(name)
        s0, c0 = self.server.cpu(), client_cpu()
        ph.t0 = time.monotonic()
        try:
            yield ph
        finally:
            ph.t1 = time.monotonic()
            ph.server_cpu = self.server.cpu() - s0
            ph.client_cpu = client_cpu() - c0
            if profile:
                self.profiler.stop()
            ph.rss_after_mb = self.server.rss_mb()
            self.phases.append(ph)
            print(
                f"  [{name}] {ph.wall:.2f} s wall, server CPU {ph.server_cpu:.2f} s,"
                f" client CPU {ph.client_cpu:.2f} s, server RSS {ph.rss_after_mb:.0f} MB",
                flush=True,
            )

    def add(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append(Row(metric, value, target, ok))


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


# --- phases --------------------------------------------------------------------------
def bench_select(b: Bench, port: int, n: int) -> Imap:
    c = Imap(port)
    c.login()
    times = []
    with b.phase("select"):
        for _ in range(5):
            r = c.ok(b"SELECT INBOX")
            if b"* %d EXISTS" % n not in r.data:
                raise ImapError(f"SELECT did not report {n} EXISTS: {r.data[:300]!r}")
            times.append(r.seconds)
    med = median(times)
    b.add(
        f"SELECT INBOX ({n:,} msgs), median of 5",
        f"{fmt_ms(med)}  (min {fmt_ms(min(times))}, max {fmt_ms(max(times))})",
        "< 150 ms",
        med < 0.150,
    )
    return c


def bench_fetch_flags(b: Bench, c: Imap, n: int, runs: int = 3) -> None:
    times = []
    nbytes = 0
    with b.phase("fetch-flags", profile=True) as ph:
        for _ in range(runs):
            r = c.ok(b"FETCH 1:* (FLAGS)")
            got = r.data.count(b" FETCH (")
            if got != n:
                raise ImapError(f"FETCH 1:* returned {got} responses, expected {n}")
            times.append(r.seconds)
            nbytes = r.nbytes
    med = median(times)
    b.add(
        f"FETCH 1:* (FLAGS), to last byte, median of {runs}",
        f"{med:.3f} s  ({nbytes / 1e6:.1f} MB, {n / med:,.0f} msg/s;"
        f" runs {', '.join(f'{t:.2f}' for t in times)})",
        "< 1 s",
        med < 1.0,
    )
    b.add(
        "  CPU per FETCH 1:* FLAGS: server / client",
        f"{ph.server_cpu / runs:.2f} s / {ph.client_cpu / runs:.3f} s",
    )


def bench_uid_fetch(b: Bench, c: Imap, n: int, runs: int = 3) -> None:
    k = min(10_000, n // 10)
    # scattered: 2,000 runs of 5 consecutive UIDs across the whole mailbox (a client
    # re-syncing what it lacks); a list of 10,000 single UIDs exceeds the 64 KiB line limit
    rng = random.Random(42)
    slots = sorted(rng.sample(range(n // 5), k // 5))
    scattered = [s * 5 + 1 + j for s in slots for j in range(5)]
    sset = uid_set(scattered)
    line = b"UID FETCH " + sset + b" (ENVELOPE BODYSTRUCTURE)"
    times = []
    with b.phase("uid-fetch-scattered", profile=True) as ph:
        for _ in range(runs):
            r = c.ok(line)
            got = r.data.count(b" FETCH (")
            if got != k:
                raise ImapError(f"UID FETCH returned {got} responses, expected {k}")
            times.append(r.seconds)
    med = median(times)
    b.add(
        f"UID FETCH {k:,} scattered UIDs (ENVELOPE BODYSTRUCTURE), median of {runs}",
        f"{med:.3f} s  ({r.nbytes / 1e6:.1f} MB, {len(line) / 1024:.0f} KiB command;"
        f" runs {', '.join(f'{t:.2f}' for t in times)})",
        "< 1 s",
        med < 1.0,
    )
    b.add(
        "  CPU per scattered UID FETCH: server / client",
        f"{ph.server_cpu / runs:.2f} s / {ph.client_cpu / runs:.3f} s",
    )
    times = []
    with b.phase("uid-fetch-range", profile=True):
        for _ in range(runs):
            r = c.ok(b"UID FETCH %d:%d (ENVELOPE BODYSTRUCTURE)" % (n - k + 1, n))
            got = r.data.count(b" FETCH (")
            if got != k:
                raise ImapError(f"UID FETCH range returned {got} responses, expected {k}")
            times.append(r.seconds)
    med = median(times)
    b.add(
        f"UID FETCH {n - k + 1}:{n} (ENVELOPE BODYSTRUCTURE), median of {runs}",
        f"{med:.3f} s  (runs {', '.join(f'{t:.2f}' for t in times)})",
        "< 1 s",
        med < 1.0,
    )


def wait_index(b: Bench, db: Path) -> None:
    """Waits for the server's background full-text indexing to catch up (a store
    migrated from before the index, or populated faster than it indexes)."""
    try:
        from carteiro.store.sqlite.fulltext import backlog_at
    except ImportError:  # a build without the index: nothing to wait for
        return
    with b.phase("index-catch-up"):
        t0, first = time.monotonic(), backlog_at(db)
        while backlog_at(db) > 0:
            time.sleep(0.5)
        wall = time.monotonic() - t0
    if first:
        b.add(
            "Full-text index catch-up after start (background, server idle)",
            f"{first:,} msgs in {wall:.1f} s ({first / max(wall, 1e-9):,.0f} msg/s);"
            f" database {db.stat().st_size / 1e6:,.0f} MB + WAL",
        )


def bench_search(b: Bench, c: Imap, n: int, runs: int = 3) -> None:
    # the sample with this Message-ID is every 100th message; the other word is nowhere
    cases = [
        (b"UNSEEN", n * 3 // 100),
        (b'TEXT "9b03ac"', n // 100),
        (b'TEXT "zqxjkvbw"', 0),
    ]
    with b.phase("search", profile=True):
        for key, want in cases:
            times = []
            for _ in range(runs):
                r = c.ok(b"UID SEARCH " + key)
                got = len(r.data.split(b"* SEARCH", 1)[1].split(b"\r\n", 1)[0].split())
                if got != want:
                    raise ImapError(f"SEARCH {key!r} found {got}, expected {want}")
                times.append(r.seconds)
            b.add(
                f"UID SEARCH {key.decode()} ({n:,} msgs, {want:,} hits), median of {runs}",
                f"{fmt_ms(median(times))}  (runs {', '.join(fmt_ms(t) for t in times)})",
            )


def bench_selected_memory(b: Bench, port: int, n: int, sessions: int = 10) -> None:
    """What one more session with the big INBOX selected costs the server."""
    before = b.server.rss_mb()
    conns = []
    with b.phase("select-memory"):
        for _ in range(sessions):
            c = Imap(port)
            c.login()
            c.ok(b"SELECT INBOX")
            conns.append(c)
        time.sleep(0.5)
        after = b.server.rss_mb()
    per = (after - before) / sessions * 1024
    b.add(
        f"Server RSS per session with the {n:,}-msg INBOX selected",
        f"{per:,.0f} KB  ({sessions} sessions: {before:.0f} -> {after:.0f} MB)",
    )
    for c in conns:
        c.close()


def bench_append(b: Bench, port: int, total: int, clients: int = 10) -> None:
    samples = sample_messages()
    per = total // clients
    payloads = [[variant(samples, w * per + i, "a") for i in range(per)] for w in range(clients)]
    conns = []
    for _ in range(clients):
        c = Imap(port)
        c.login()
        if b"LITERAL+" not in c.greeting + c.caps:
            raise ImapError("server does not advertise LITERAL+")
        conns.append(c)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline = time.monotonic() + 600

    def worker(w: int) -> None:
        c = conns[w]
        start.wait()
        try:
            for data in payloads[w]:
                if time.monotonic() > deadline:
                    errors.append("deadline")
                    return
                r = c.command(b"APPEND INBOX", literal=data, keep=False)
                if b" OK " not in r.status:
                    errors.append(r.status.decode(errors="replace"))
                    return
                latencies[w].append(r.seconds)
        except (OSError, ImapError) as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    with b.phase("append-storm", profile=True) as ph:
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join(700)
        elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    lat = [x for ws in latencies for x in ws]
    done = len(lat)
    rate = done / elapsed
    size = sum(len(d) for ws in payloads for d in ws) / max(1, total)
    failed = f", ERRORS: {errors[0]}" if errors else ""
    b.add(
        f"APPEND {total:,} msgs (avg {size / 1024:.1f} KB) from {clients} connections",
        f"{rate:,.0f} msg/s  ({done:,} in {elapsed:.2f} s{failed})",
        ">= 1,000 msg/s",
        rate >= 1000 and not errors,
    )
    b.add(
        "  APPEND latency p50 / p99 / max",
        f"{fmt_ms(percentile(lat, 50))} / {fmt_ms(percentile(lat, 99))} / {fmt_ms(max(lat))}",
    )
    per_msg = 1e3 / max(done, 1)
    b.add(
        "  CPU per appended message: server / client",
        f"{ph.server_cpu * per_msg:.2f} ms / {ph.client_cpu * per_msg:.3f} ms",
    )


async def _idle_phase(b: Bench, port: int, sessions: int, watched: int, rounds: int) -> None:
    server = b.server
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    sem = asyncio.Semaphore(16)
    failures: list[str] = []
    login_lat: list[float] = []

    async def expect(r: asyncio.StreamReader, tag: bytes) -> bytes:
        while True:
            line = await r.readline()
            if not line:
                raise ImapError("closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ImapError(line.decode(errors="replace"))
                return line

    async def open_one(i: int) -> None:
        async with sem:
            try:
                t0 = time.perf_counter()
                r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
                await r.readline()
                w.write(b'L LOGIN "%s" "%s"\r\n' % (USER.encode(), PASSWORD.encode()))
                await expect(r, b"L")
                login_lat.append(time.perf_counter() - t0)
                w.write(b"S SELECT %s\r\n" % IDLE_MAILBOX.encode())
                await expect(r, b"S")
                w.write(b"I IDLE\r\n")
                line = await r.readline()
                if not line.startswith(b"+"):
                    raise ImapError(f"IDLE refused: {line!r}")
                conns.append((r, w))
            except (OSError, ImapError) as exc:
                failures.append(f"session {i}: {exc!r}")

    rss0 = server.status()
    with b.phase("idle-open") as ph:
        t0 = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(open_one(i) for i in range(sessions))), timeout=1200
        )
        ramp = time.perf_counter() - t0
    await asyncio.sleep(2)  # let the server settle (argon2 buffers freed, etc.)
    rss1 = server.status()
    before, after = rss0["VmRSS"] / 1024, rss1["VmRSS"] / 1024
    held = len(conns)
    b.add(
        f"{sessions:,} sessions logged in + SELECT + IDLE: opened",
        f"{held:,} in {ramp:.1f} s ({held / ramp:,.0f} logins/s, LOGIN p50"
        f" {fmt_ms(percentile(login_lat, 50))}, server CPU {ph.server_cpu:.1f} s)"
        + (f"; {len(failures)} FAILED: {failures[0]}" if failures else ""),
        f"all {sessions:,}",
        held == sessions,
    )
    b.add(
        f"Server RSS with {held:,} IDLE sessions (before -> after)",
        f"{after:.1f} MB  ({before:.1f} -> {after:.1f} MB, threads {rss1['Threads']})",
        "< 150 MB",
        after < 150,
    )
    b.add(
        "  server RSS per IDLE session",
        f"{(after - before) * 1024 / max(held, 1):.1f} KB",
    )

    # notification latency: APPEND to the Idle mailbox from another connection
    step = max(1, held // watched)
    watch = conns[::step][:watched]
    ar, aw = await asyncio.open_connection("127.0.0.1", port)
    await ar.readline()
    aw.write(b'L LOGIN "%s" "%s"\r\n' % (USER.encode(), PASSWORD.encode()))
    await expect(ar, b"L")
    samples = sample_messages()
    lat: list[float] = []
    append_lat: list[float] = []
    missed = 0
    with b.phase("idle-notify", profile=True):
        for rnd in range(rounds):
            data = variant(samples, rnd, "n")

            async def wait_exists(r: asyncio.StreamReader, t0: float) -> float:
                await r.readuntil(b" EXISTS\r\n")
                return time.perf_counter() - t0

            t0 = time.perf_counter()
            waiters = [asyncio.ensure_future(wait_exists(r, t0)) for r, _ in watch]
            aw.write(b"A%d APPEND %s {%d+}\r\n" % (rnd, IDLE_MAILBOX.encode(), len(data)))
            aw.write(data + b"\r\n")
            await expect(ar, b"A%d" % rnd)
            append_lat.append(time.perf_counter() - t0)
            done, pending = await asyncio.wait(waiters, timeout=60)
            for p in pending:
                p.cancel()
            missed += len(pending)
            lat.extend(d.result() for d in done if not d.exception())
            await asyncio.sleep(1.0)  # let the other sessions' syncs finish
    b.add(
        f"IDLE notify latency, {len(watch)} watched of {held:,}, {rounds} APPENDs: p50 / max",
        f"{fmt_ms(percentile(lat, 50))} / {fmt_ms(max(lat) if lat else float('nan'))}"
        f"  (p90 {fmt_ms(percentile(lat, 90))}; the APPEND itself p50"
        f" {fmt_ms(percentile(append_lat, 50))})" + (f"; {missed} MISSED" if missed else ""),
    )
    b.add("  server RSS peak (VmHWM) so far", f"{server.status()['VmHWM'] / 1024:.0f} MB")
    aw.close()
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.5)


def noop_rows(b: Bench, probes: list[Probe]) -> None:
    for ph in b.phases:
        rtts = [x for p in probes for x in p.window(ph.t0, ph.t1)]
        if not rtts:
            continue
        b.add(
            f"NOOP RTT during {ph.name}: p50 / p99 / max (n={len(rtts)})",
            f"{percentile(rtts, 50):.1f} / {percentile(rtts, 99):.1f} / {max(rtts):.1f} ms",
            "max < 100 ms" if ph.name in STALL_PHASES else "",
            (max(rtts) < 100) if ph.name in STALL_PHASES else None,
        )


STALL_PHASES = ("fetch-flags", "append-storm")


def print_table(b: Bench) -> None:
    w1 = max(len(r.metric) for r in b.rows)
    w2 = min(90, max(len(r.value) for r in b.rows))
    w3 = max(len(r.target) for r in b.rows)
    print()
    print(f"{'metric':<{w1}}  {'value':<{w2}}  {'target':<{w3}}  result")
    print("-" * (w1 + w2 + w3 + 14))
    for r in b.rows:
        res = "" if r.ok is None else ("PASS" if r.ok else "FAIL")
        print(f"{r.metric:<{w1}}  {r.value:<{w2}}  {r.target:<{w3}}  {res}")
    print()


PHASES = ("select", "fetch", "search", "memory", "append", "idle")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=None, help="mailbox size (default 100,000)")
    ap.add_argument("--quick", action="store_true", help="10,000 messages, 200 IDLE sessions")
    ap.add_argument("--sessions", type=int, default=None, help="IDLE sessions (default 1,000)")
    ap.add_argument("--appends", type=int, default=None, help="APPEND storm size (10,000)")
    ap.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    ap.add_argument("--profile", type=Path, default=None, help="py-spy raw profiles to DIR")
    args = ap.parse_args()
    n = args.messages or (10_000 if args.quick else 100_000)
    sessions = args.sessions or (200 if args.quick else 1_000)
    appends = args.appends or (2_000 if args.quick else 10_000)
    only = set(args.only.split(","))
    if only - set(PHASES):
        ap.error(f"unknown phase(s): {', '.join(sorted(only - set(PHASES)))}")
    raise_fd_limit(sessions + 512)

    t_start = time.monotonic()
    print(f"carteiro imap_core benchmark: {n:,} messages, {sessions:,} IDLE sessions")
    pristine, populate_s = ensure_populated(n)
    if populate_s is not None:
        print(f"  populated in {populate_s:.1f} s")
    else:
        print(f"  using cached data in {pristine}")
    run_dir = fresh_copy(pristine)
    server = ServerProcess(run_dir)
    print(f"  server pid {server.pid} on 127.0.0.1:{server.port}, RSS {server.rss_mb():.0f} MB")
    b = Bench(server, Profiler(args.profile, server.pid))
    if populate_s is not None:
        b.add(f"populate {n:,} msgs via the store API (one-off, cached)", f"{populate_s:.1f} s")
    probes = [Probe(server.port, max_seconds=3600)]
    servers = [server]
    try:
        with b.phase("baseline"):
            time.sleep(1.0)
        if only & {"select", "fetch", "search"}:
            c = bench_select(b, server.port, n)
            if "fetch" in only:
                bench_fetch_flags(b, c, n)
                bench_uid_fetch(b, c, n)
            if "search" in only:
                wait_index(b, run_dir / "carteiro.db")
                bench_search(b, c, n)
            c.close()
        if "memory" in only:
            bench_selected_memory(b, server.port, n)
        if "append" in only:
            bench_append(b, server.port, appends)
        if "idle" in only:
            st = server.status()
            b.add(
                "Server RSS after the phases above (warm: SQLite caches, freed arenas)",
                f"{st['VmRSS'] / 1024:.1f} MB  (peak VmHWM {st['VmHWM'] / 1024:.0f} MB)",
            )
            # a fresh server, so that before/after isolates what the sessions cost
            probes[-1].finish()
            server.stop()
            server = ServerProcess(run_dir)
            servers.append(server)
            b.server = server
            b.profiler = Profiler(args.profile, server.pid)
            print(f"  restarted server: pid {server.pid}, RSS {server.rss_mb():.0f} MB")
            probes.append(Probe(server.port, max_seconds=3600))
            asyncio.run(_idle_phase(b, server.port, sessions, watched=50, rounds=5))
    finally:
        for p in probes:
            if p.proc.returncode is None and not p.samples:
                p.finish()
        server.stop()
    noop_rows(b, probes)
    errors = 0
    for s in servers:
        log = s.log_path.read_text(errors="replace") if s.log_path.exists() else ""
        errors += log.count(" ERROR ") + log.count("Traceback")
    b.add("server log errors/tracebacks", str(errors), "0", errors == 0)
    print_table(b)
    print(
        f"client: NOOP probe process CPU {sum(p.cpu for p in probes):.1f} s; benchmark wall"
        f" time {time.monotonic() - t_start:.0f} s; server log {server.log_path}"
    )
    failed = [r.metric for r in b.rows if r.ok is False]
    print("RESULT:", "all targets met" if not failed else f"{len(failed)} target(s) missed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
