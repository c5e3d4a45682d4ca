"""The workloads of bench/compare.py other than the mixed one (that is loadgen.py).

Each takes a running server (anything with ``imap_port``, ``imaps_port``, ``lmtp_port``,
``cpu()`` and ``pss_kib()``) and returns plain figures; the same code drives Carteiro and
Dovecot. Everything talks to 127.0.0.1 only and every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from common import PASSWORD, USER, Imap, ImapError, median, percentile, sample_messages, uid_set
from common import variant as make_variant
from loadgen import Conn, ProtocolError, _ok


class Server(Protocol):
    name: str
    imap_port: int
    imaps_port: int
    lmtp_port: int

    def cpu(self) -> float: ...
    def pss_kib(self) -> int: ...


def _timed(c: Imap, line: bytes, runs: int, check: Any = None) -> tuple[list[float], bytes]:
    """One untimed warm-up, then ``runs`` timed runs; returns (seconds, last reply)."""
    r = c.ok(line)
    if check is not None:
        check(r.data)
    times = []
    for _ in range(runs):
        r = c.ok(line)
        if check is not None:
            check(r.data)
        times.append(r.seconds)
    return times, r.data


def search_word(samples: Sequence[bytes]) -> tuple[str, int]:
    """The least common word (5+ letters) of the samples' unencoded text whose raw count
    equals its count in the text a server decodes, and how many samples hold it."""
    seen: Counter[str] = Counter()
    for m in samples:
        if b"base64" in m.lower() or b"quoted-printable" in m.lower():
            continue
        body = m.partition(b"\r\n\r\n")[2]
        for w in set(re.findall(rb"(?<![A-Za-z0-9+/=])[A-Za-z]{5,14}(?![A-Za-z0-9+/=])", body)):
            seen[w.decode().lower()] += 1
    for word, n in sorted(seen.items(), key=lambda x: (x[1], x[0])):
        if sum(word.encode() in m.lower() for m in samples) == n:
            return word, n
    raise RuntimeError("no search word found in the samples")


# --- big mailbox ------------------------------------------------------------------------
def bigmailbox(server: Server, messages: int, runs: int = 3) -> dict[str, Any]:
    c = Imap(server.imap_port, timeout=900)
    c.login(USER, PASSWORD)
    out: dict[str, Any] = {"messages": messages}
    cpu0 = server.cpu()

    def expect_exists(data: bytes) -> None:
        if b"* %d EXISTS" % messages not in data:
            raise ImapError(f"SELECT did not report {messages} EXISTS")

    t, _ = _timed(c, b"SELECT INBOX", 5, expect_exists)
    out["select_s"] = median(t)

    def expect_all(data: bytes) -> None:
        got = data.count(b" FETCH (")
        if got != messages:
            raise ImapError(f"FETCH 1:* returned {got} responses, expected {messages}")

    t, _ = _timed(c, b"FETCH 1:* (FLAGS)", runs, expect_all)
    out["fetch_flags_s"] = median(t)

    k = min(10_000, messages // 10)
    rng = random.Random(42)
    slots = sorted(rng.sample(range(messages // 5), k // 5))
    scattered = [s * 5 + 1 + j for s in slots for j in range(5)]

    def expect_k(data: bytes) -> None:
        got = data.count(b" FETCH (")
        if got != k:
            raise ImapError(f"UID FETCH returned {got} responses, expected {k}")

    t, _ = _timed(
        c, b"UID FETCH " + uid_set(scattered) + b" (ENVELOPE BODYSTRUCTURE)", runs, expect_k
    )
    out["uid_fetch_n"] = k
    out["uid_fetch_s"] = median(t)

    unseen_expected = sum(1 for i in range(messages) if not i < messages * 0.97)
    counts: dict[str, int] = {}

    def count_hits(name: str) -> Any:
        def check(data: bytes) -> None:
            m = re.search(rb"\* SEARCH([ \d]*)\r\n", data)
            if m is None:
                raise ImapError(f"no SEARCH response to {name}")
            counts[name] = len(m.group(1).split())

        return check

    t, _ = _timed(c, b"UID SEARCH UNSEEN", runs, count_hits("unseen"))
    out["search_unseen_s"] = median(t)
    out["search_unseen_hits"] = counts["unseen"]
    out["search_unseen_expected"] = unseen_expected

    word, _ = search_word(sample_messages())
    t, _ = _timed(c, b'UID SEARCH TEXT "%s"' % word.encode(), runs, count_hits("text"))
    out["search_text_word"] = word
    out["search_text_s"] = median(t)
    out["search_text_hits"] = counts["text"]
    # a rare token (a message's X-Bench-Seq and ten others): a ticket number, an address
    token = f"p-{messages // 23}"
    t, _ = _timed(c, b'UID SEARCH TEXT "%s"' % token.encode(), runs, count_hits("rare"))
    out["search_rare_token"] = token
    out["search_rare_s"] = median(t)
    out["search_rare_hits"] = counts["rare"]
    t, _ = _timed(c, b'UID SEARCH TEXT "qzxjvw-nowhere"', runs, count_hits("none"))
    out["search_text_none_s"] = median(t)
    out["search_text_none_hits"] = counts["none"]
    out["server_cpu_s"] = server.cpu() - cpu0
    out["server_pss_mib"] = server.pss_kib() / 1024
    c.close()
    return out


# --- idle sessions ---------------------------------------------------------------------
async def _open_idle(
    port: int, users: Sequence[str], indices: range, concurrency: int, deadline: float
) -> tuple[list[asyncio.StreamWriter], list[str]]:
    sem = asyncio.Semaphore(concurrency)
    writers: list[asyncio.StreamWriter] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        user = users[i % len(users)]
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), deadline - time.monotonic()
                )
                await r.readuntil(b"\r\n")
                w.write(b'a LOGIN "%s" "%s"\r\nb SELECT INBOX\r\nc IDLE\r\n' % (
                    user.encode(), PASSWORD.encode()))  # fmt: skip
                while True:
                    line = await asyncio.wait_for(
                        r.readuntil(b"\r\n"), max(0.1, deadline - time.monotonic())
                    )
                    if line.startswith(b"+ "):
                        break
                    if line[:2] in (b"a ", b"b ", b"c ") and b" OK" not in line[:6]:
                        raise ImapError(line.decode(errors="replace").strip())
                writers.append(w)
            except (OSError, ImapError, TimeoutError, asyncio.IncompleteReadError) as e:
                if len(errors) < 10:
                    errors.append(f"{type(e).__name__}: {e}")
                else:
                    errors.append("")

    await asyncio.gather(*(one(i) for i in indices))
    return writers, errors


def _idle_worker(port: int, users: list[str], indices: range, pipe: Any) -> None:
    from common import raise_fd_limit

    raise_fd_limit(20000)

    async def main() -> None:
        t0 = time.monotonic()
        writers, errors = await _open_idle(port, users, indices, 32, t0 + 1200)
        pipe.send({"open": len(writers), "errors": errors, "seconds": time.monotonic() - t0})
        pipe.recv()  # hold them until told
        for w in writers:
            w.close()
        pipe.send("closed")

    asyncio.run(main())


def idle(server: Server, users: Sequence[str], sessions: int, settle: float = 5.0,
         window: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """Opens ``sessions`` sessions (LOGIN, SELECT INBOX, IDLE), then measures the server's
    memory (PSS of its process tree) and CPU while they idle."""
    time.sleep(1.0)
    pss0 = server.pss_kib()
    cpu0 = server.cpu()
    procs = 2
    ctx = mp.get_context("fork")
    workers = []
    for p in range(procs):
        a, b = ctx.Pipe()
        proc = ctx.Process(
            target=_idle_worker, args=(server.imap_port, list(users), range(p, sessions, procs), b),
            daemon=True,
        )  # fmt: skip
        proc.start()
        workers.append((proc, a))
    out: dict[str, Any] = {"sessions": sessions}
    try:
        reports = []
        for _proc, a in workers:
            if not a.poll(1500):
                raise RuntimeError("idle sessions did not open in time")
            reports.append(a.recv())
        opened = sum(r["open"] for r in reports)
        out["opened"] = opened
        out["open_seconds"] = max(r["seconds"] for r in reports)
        out["open_cpu_s"] = server.cpu() - cpu0
        out["errors"] = [e for r in reports for e in r["errors"] if e][:10]
        out["error_count"] = sum(len(r["errors"]) for r in reports)
        time.sleep(settle)
        c1 = server.cpu()
        time.sleep(window)
        out["idle_cpu_s"] = server.cpu() - c1
        out["idle_window_s"] = window
        pss1 = server.pss_kib()
        out["pss_before_mib"] = pss0 / 1024
        out["pss_after_mib"] = pss1 / 1024
        out["pss_per_session_kib"] = (pss1 - pss0) / max(1, opened)
        for _, a in workers:
            a.send("close")
        for proc, a in workers:
            if a.poll(120):
                a.recv()
            proc.join(30)
    finally:
        for proc, _ in workers:
            if proc.is_alive():
                proc.kill()  # our own client process
                proc.join(5)
    return out


# --- delivery over LMTP ------------------------------------------------------------------
def _dot_stuff(data: bytes) -> bytes:
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


async def _lmtp_session(
    port: int, rcpt: str, msgs: list[bytes], lat: list[float], refused: list[str]
) -> int:
    r, w = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        while True:
            line = await r.readuntil(b"\r\n")
            if line[3:4] != b"-":
                return line

    if not (await reply()).startswith(b"220"):
        raise ImapError("no LMTP greeting")
    w.write(b"LHLO bench.test\r\n")
    if not (await reply()).startswith(b"250"):
        raise ImapError("LHLO refused")
    ok = 0
    for m in msgs:
        t0 = time.perf_counter()
        # the sample messages carry raw UTF-8 (RFC 6152: say so)
        w.write(
            b"MAIL FROM:<sender@bench.test> BODY=8BITMIME\r\nRCPT TO:<%s>\r\nDATA\r\n"
            % rcpt.encode()
        )
        a, b, c = await reply(), await reply(), await reply()
        if not (a.startswith(b"250") and b.startswith(b"250") and c.startswith(b"354")):
            raise ImapError(f"LMTP refused: {a!r} {b!r} {c!r}")
        w.write(_dot_stuff(m) + b".\r\n")
        final = await reply()
        if final.startswith(b"250"):
            ok += 1
        elif not refused:
            refused.append(final.decode(errors="replace").strip())
        lat.append(time.perf_counter() - t0)
    w.write(b"QUIT\r\n")
    await w.drain()
    w.close()
    return ok


def delivery(server: Server, rcpt: str, count: int, sessions: int = 10,
             timeout: float = 600) -> dict[str, Any]:  # fmt: skip
    """``count`` messages over LMTP from ``sessions`` connections to ``rcpt``'s INBOX; the
    time from the first MAIL until an IDLE session has seen all of them."""
    samples = sample_messages()
    msgs = [make_variant(samples, i, "D") for i in range(count)]
    watcher = Imap(server.imap_port, timeout=timeout)
    watcher.login(rcpt, PASSWORD)
    sel = watcher.ok(b"SELECT INBOX").data
    m = re.search(rb"\* (\d+) EXISTS", sel)
    assert m is not None
    base = int(m.group(1))
    target = base + count
    watcher.sock.sendall(b"W IDLE\r\n")
    line = watcher.readline()
    if not line.startswith(b"+"):
        raise ImapError(f"IDLE refused: {line!r}")
    cpu0 = server.cpu()
    lat: list[float] = []
    refused: list[str] = []
    result: dict[str, Any] = {}

    def send_all() -> None:
        async def main() -> int:
            chunks = [msgs[i::sessions] for i in range(sessions)]
            done = await asyncio.gather(
                *(_lmtp_session(server.lmtp_port, rcpt, ch, lat, refused) for ch in chunks)
            )
            return sum(done)

        try:
            result["accepted"] = asyncio.run(main())
        except (OSError, ImapError, asyncio.IncompleteReadError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
        result["sent_at"] = time.monotonic()

    t0 = time.monotonic()
    th = threading.Thread(target=send_all)
    th.start()
    seen = base
    deadline = t0 + timeout
    buf = b""
    watcher.sock.settimeout(1.0)
    while seen < target and time.monotonic() < deadline:
        if "sent_at" in result and seen >= base + result.get("accepted", 0):
            break  # the senders are done and everything accepted is visible
        try:
            data = watcher.sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
        lines = buf.split(b"\r\n")
        buf = lines.pop()
        for ln in lines:
            mm = re.match(rb"\* (\d+) EXISTS", ln)
            if mm:
                seen = max(seen, int(mm.group(1)))
    t_visible = time.monotonic()
    th.join(timeout)
    watcher.sock.settimeout(60)
    watcher.sock.sendall(b"DONE\r\n")
    status = watcher.ok(b"STATUS INBOX (MESSAGES)").data
    watcher.close()
    mm = re.search(rb"MESSAGES (\d+)", status)
    return {
        "messages": count,
        "sessions": sessions,
        "accepted": result.get("accepted", 0),
        "all_visible_s": t_visible - t0 if seen >= target else float("nan"),
        "accept_s": result.get("sent_at", float("nan")) - t0,
        "per_s": count / (t_visible - t0) if seen >= target else 0.0,
        "lmtp_p50_ms": percentile(lat, 50) * 1000,
        "lmtp_p99_ms": percentile(lat, 99) * 1000,
        "final_messages": int(mm.group(1)) if mm else -1,
        "refused_sample": refused[:1],
        "sender_error": result.get("error", ""),
        "expected_messages": target,
        "server_cpu_s": server.cpu() - cpu0,
    }


# --- APPEND at 10 clients ---------------------------------------------------------------
_APPENDUID = re.compile(rb"\[APPENDUID \d+ \d+\]")


def _append_worker(
    port: int, users: list[str], password: str, messages: list[bytes], deadline: float,
    ready: Any, go: Any, out: Any,
) -> None:  # fmt: skip
    """One process of the APPEND workload: one session per user, each APPENDing every
    message in ``messages`` to its INBOX, the next as soon as the last was answered."""

    async def session(
        user: str, start: asyncio.Event, ready: asyncio.Queue[bool], lat: list[float]
    ) -> int:
        async def ok(conn: Conn, line: bytes, literal: bytes | None = None) -> bytes:
            _, status, _ = await conn.command(line, literal)
            if not _ok(status):
                raise ImapError(status.decode("latin-1").strip())
            return status

        try:  # told once per session either way
            conn = await Conn.open("127.0.0.1", port)  # LITERAL+ when the greeting has it
            await ok(conn, b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        except BaseException:
            ready.put_nowait(False)
            raise
        ready.put_nowait(True)
        await start.wait()
        errors = 0
        for m in messages:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            status = await ok(conn, b"APPEND INBOX (\\Seen)", m)
            end[0] = time.perf_counter()
            lat.append(end[0] - t0)
            if _APPENDUID.search(status) is None:
                errors += 1
        await ok(conn, b"LOGOUT")
        conn.close()
        return errors

    async def main() -> dict[str, Any]:
        start = asyncio.Event()
        lat: list[float] = []
        end[0] = time.perf_counter()
        logged_in: asyncio.Queue[bool] = asyncio.Queue()
        tasks = [asyncio.create_task(session(u, start, logged_in, lat)) for u in users]
        # every session logged in and waiting, or failed: LOGIN is not timed
        for _ in users:
            await asyncio.wait_for(logged_in.get(), 60)
        ready.send(True)
        await asyncio.get_running_loop().run_in_executor(None, go.recv)
        cpu0 = os.times()
        start.set()
        errors = 0
        for t in tasks:
            try:
                errors += await t
            except (OSError, ImapError, ProtocolError, asyncio.IncompleteReadError):
                errors += 1
        cpu1 = os.times()
        return {
            "lat": lat,
            "end": end[0],
            "errors": errors,
            "cpu": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
        }

    end = [0.0]  # when the last APPEND was answered (CLOCK_MONOTONIC, as in the parent)
    out.send(asyncio.run(main()))


def append_storm(server: Server, users: Sequence[str], clients: int = 10, per_client: int = 300,
                 procs: int = 2, timeout: float = 120.0,
                 password: str = PASSWORD) -> dict[str, Any]:  # fmt: skip
    """``clients`` sessions (one user each) APPEND ``per_client`` messages of ~8 KB to
    their INBOX, each the next as soon as the last is answered (LITERAL+ where the
    server's greeting has it, else a synchronizing literal; the mixed workload's client,
    ``loadgen.Conn``); APPEND latency and server CPU per message."""
    samples = sample_messages()
    ctx = mp.get_context("fork")
    workers = []
    deadline = time.monotonic() + timeout
    for p in range(procs):
        mine = [users[i] for i in range(p, clients, procs)]
        first = 1_000_000 + p * per_client
        msgs = [make_variant(samples, first + i, "A") for i in range(per_client)]
        ready_r, ready_w = ctx.Pipe(duplex=False)
        go_r, go_w = ctx.Pipe(duplex=False)
        out_r, out_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_append_worker,
            args=(server.imap_port, mine, password, msgs, deadline, ready_w, go_r, out_w),
            daemon=True,
        )
        proc.start()
        workers.append((proc, ready_r, go_w, out_r))
    for _, ready_r, _, _ in workers:
        if not ready_r.poll(60):
            raise RuntimeError("APPEND workers did not log in")
        ready_r.recv()
    cpu0 = server.cpu()
    t0 = time.perf_counter()
    for _, _, go_w, _ in workers:
        go_w.send(True)
    reports = []
    for proc, _, _, out_r in workers:
        if out_r.poll(timeout + 60):
            reports.append(out_r.recv())
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    server_cpu = server.cpu() - cpu0
    # to the last APPEND's answer: LOGOUT and the workers' exit are not APPEND time
    elapsed = max([r["end"] for r in reports], default=time.perf_counter()) - t0
    lat = [x for r in reports for x in r["lat"]]
    missing = clients * per_client - len(lat)
    return {
        "clients": clients,
        "appends": len(lat),
        "per_s": len(lat) / max(elapsed, 1e-6),
        "p50_ms": percentile(lat, 50) * 1000,
        "mean_ms": sum(lat) / max(1, len(lat)) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "errors": sum(r["errors"] for r in reports) + missing,
        "server_cpu_ms_per_append": 1000 * server_cpu / max(1, len(lat)),
        "client_cpu_s": sum(r["cpu"] for r in reports),
    }


# --- TLS handshakes ---------------------------------------------------------------------
def _tls_worker(port: int, duration: float, concurrency: int, pipe: Any) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    async def main() -> dict[str, Any]:
        end = time.monotonic() + duration
        lat: list[float] = []
        errors = 0
        versions: Counter[str] = Counter()

        async def loop() -> None:
            nonlocal errors
            while time.monotonic() < end:
                t0 = time.perf_counter()
                try:
                    r, w = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port, ssl=ctx), 30
                    )
                    greeting = await asyncio.wait_for(r.readuntil(b"\r\n"), 30)
                    if not greeting.startswith(b"* OK"):
                        errors += 1
                    obj = w.get_extra_info("ssl_object")
                    versions[f"{obj.version()} {obj.cipher()[0]}" if obj else "?"] += 1
                    w.close()
                    lat.append(time.perf_counter() - t0)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
                    errors += 1
                    await asyncio.sleep(0.05)

        cpu0 = os.times()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        cpu1 = os.times()
        return {
            "lat": lat,
            "errors": errors,
            "versions": dict(versions),
            "cpu": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
        }

    pipe.send(asyncio.run(main()))


def tls(server: Server, duration: float = 10.0, procs: int = 2,
        concurrency: int = 8) -> dict[str, Any]:  # fmt: skip
    """Full handshakes per second on the implicit-TLS port (connect, handshake, read the
    greeting, close), from ``procs`` processes with ``concurrency`` connections each."""
    ctx = mp.get_context("fork")
    cpu0 = server.cpu()
    workers = []
    for _ in range(procs):
        a, b = ctx.Pipe()
        proc = ctx.Process(
            target=_tls_worker, args=(server.imaps_port, duration, concurrency, b), daemon=True
        )
        proc.start()
        workers.append((proc, a))
    reports = []
    for proc, a in workers:
        if a.poll(duration + 120):
            reports.append(a.recv())
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    lat = [x for r in reports for x in r["lat"]]
    versions: Counter[str] = Counter()
    for r in reports:
        versions.update(r["versions"])
    return {
        "handshakes": len(lat),
        "per_s": len(lat) / duration,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "errors": sum(r["errors"] for r in reports),
        "versions": dict(versions),
        "client_cpu_s": sum(r["cpu"] for r in reports),
        "server_cpu_s": server.cpu() - cpu0,
    }


# --- QRESYNC reconnect ------------------------------------------------------------------
def qresync(server: Server, messages: int, changes: int = 100) -> dict[str, Any]:
    """A client that knew the big INBOX reconnects after ``changes`` changes made
    elsewhere (90 % flag changes, 10 % expunges): time and bytes of LOGIN + ENABLE +
    SELECT (QRESYNC ...)."""
    a = Imap(server.imap_port, timeout=600)
    a.login(USER, PASSWORD)
    a.ok(b"ENABLE QRESYNC")
    sel = a.ok(b"SELECT INBOX").data
    validity = int(re.search(rb"UIDVALIDITY (\d+)", sel).group(1))  # type: ignore[union-attr]
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))  # type: ignore[union-attr]
    rng = random.Random(7)
    uids = sorted(rng.sample(range(1, messages + 1), changes))
    n_expunge = changes // 10
    for u in uids[n_expunge:]:
        a.ok(b"UID STORE %d +FLAGS (\\Flagged)" % u)
    a.ok(b"UID STORE %s +FLAGS (\\Deleted)" % uid_set(uids[:n_expunge]))
    a.ok(b"UID EXPUNGE %s" % uid_set(uids[:n_expunge]))
    a.close()
    times, sizes = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        c = Imap(server.imap_port)
        n = len(c.greeting)
        r1 = c.ok(b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
        r2 = c.ok(b"ENABLE QRESYNC")
        r3 = c.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (validity, modseq))
        times.append(time.perf_counter() - t0)
        sizes.append(n + r1.nbytes + r2.nbytes + r3.nbytes)
        vanished = re.search(rb"VANISHED \(EARLIER\) ([\d:,]+)", r3.data)
        fetches = r3.data.count(b" FETCH (")
        c.close()
    return {
        "changes": changes,
        "reconnect_s": median(times),
        "bytes": median(sizes),
        "fetches": fetches,
        "vanished": vanished.group(1).decode() if vanished else "",
        "vanished_ok": vanished is not None,
        "fetch_ok": fetches >= changes - n_expunge,
    }
