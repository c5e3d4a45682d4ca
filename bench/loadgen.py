"""The mixed-workload load generator: many IMAP clients that behave like real ones and
check what the server tells them.

Each client owns one mailbox of one user (client ``c`` logs in as ``users[c % U]`` and
works in ``INBOX`` when ``c < U``, else in ``Load<c // U>``), so it can keep an exact
model of that mailbox: UIDs, flags, sizes and, for what it appended itself, the bytes.
One loop is

    LOGIN, LIST, STATUS, SELECT, UID FETCH new (FLAGS + header fields),
    UID FETCH BODY.PEEK[] x N, UID STORE flags x N, APPEND x N,
    UID STORE +FLAGS.SILENT (\\Deleted) + EXPUNGE (one out for each one in), LOGOUT

(the N are the ``--mix``). Every reply is checked against the model: counts in STATUS and
SELECT, flags in FETCH and STORE replies, APPENDUID, the expunged sequence numbers, the
exact bytes of messages this client appended, the size of the others. A mismatch is an
error (reported with its first examples) and the client re-reads the mailbox to carry on.

Clients are spread over ``--procs`` processes, each an asyncio loop over raw streams, so
that the generator is not the bottleneck on 2 cores; its own CPU is reported. Commands
count when their tagged reply arrives inside the measured window; the loop in progress
at the end is finished (not counted) so the model stays exact.

    python bench/loadgen.py --port 1143 --user-fmt 'load{n}@example.org' --users 50 \
        --password PW --clients 50 --duration 30

Only 127.0.0.1; bounded by ``--duration`` (plus a grace period for the last loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, sample_messages  # noqa: E402

DEFAULT_MIX = {"fetch_body": 1, "store": 1, "append": 1}
HEADER_FIELDS = b"(FROM TO SUBJECT DATE MESSAGE-ID)"
MAX_ERRORS_KEPT = 20
GRACE = 30.0  # seconds a client may take to finish its last loop


class ProtocolError(Exception):
    """The server said something a correct server would not: a generator error."""


# --- a minimal IMAP response reader --------------------------------------------------
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


class Conn:
    """One IMAP connection: commands out, untagged lines (with literals inlined) in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r = reader
        self.w = writer
        self.n = 0
        self.literal_plus = False

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        conn = cls(reader, writer)
        greeting = await conn.read_response()
        if not greeting.startswith(b"* OK"):
            raise ProtocolError(f"greeting {greeting[:80]!r}")
        conn.literal_plus = b"LITERAL+" in greeting
        return conn

    async def read_response(self) -> bytes:
        """One response line, literals included in place."""
        line = await self.r.readuntil(b"\r\n")
        m = _LITERAL.search(line)
        if m is None:
            return line
        parts = [line]
        while m is not None:
            parts.append(await self.r.readexactly(int(m.group(1))))
            more = await self.r.readuntil(b"\r\n")
            parts.append(more)
            m = _LITERAL.search(more)
        return b"".join(parts)

    async def command(
        self, line: bytes, literal: bytes | None = None
    ) -> tuple[list[bytes], bytes, float]:
        """(untagged responses, tagged status line, seconds)."""
        self.n += 1
        tag = b"L%d" % self.n
        t0 = time.perf_counter()
        if literal is None:
            self.w.write(tag + b" " + line + b"\r\n")
        elif self.literal_plus:
            self.w.write(tag + b" " + line + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        else:
            self.w.write(tag + b" " + line + b" {%d}\r\n" % len(literal))
            cont = await self.read_response()
            if not cont.startswith(b"+"):
                raise ProtocolError(f"no continuation for APPEND: {cont[:80]!r}")
            self.w.write(literal + b"\r\n")
        untagged: list[bytes] = []
        want = tag + b" "
        while True:
            resp = await self.read_response()
            if resp.startswith(want):
                return untagged, resp, time.perf_counter() - t0
            untagged.append(resp)

    def close(self) -> None:
        self.w.close()


def _ok(status: bytes) -> bool:
    return status.split(b" ", 2)[1:2] == [b"OK"]


# --- FETCH parsing (only the items this generator asks for) ----------------------------
_FETCH_HEAD = re.compile(rb"^\* (\d+) FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_BODY_LIT = re.compile(rb"BODY\[([^\]]*)\] \{(\d+)\}\r\n")


@dataclass
class FetchItem:
    msn: int
    uid: int | None
    flags: frozenset[str] | None
    size: int | None
    body: bytes | None  # the first BODY[...] literal


def parse_fetch(resp: bytes) -> FetchItem | None:
    m = _FETCH_HEAD.match(resp)
    if m is None:
        return None
    body = None
    head = resp
    lit = _BODY_LIT.search(resp)
    if lit is not None:
        start = lit.end()
        body = resp[start : start + int(lit.group(2))]
        head = resp[: lit.start()] + resp[start + len(body) :]
    uid = _UID.search(head)
    flags = _FLAGS.search(head)
    size = _SIZE.search(head)
    return FetchItem(
        int(m.group(1)),
        int(uid.group(1)) if uid else None,
        frozenset(flags.group(1).decode().split()) if flags else None,
        int(size.group(1)) if size else None,
        body,
    )


# --- the model of one mailbox ----------------------------------------------------------
@dataclass
class Message:
    flags: set[str]
    size: int
    content: bytes | None = None  # known exactly when this client appended it
    message_id: bytes | None = None


@dataclass
class Model:
    uidvalidity: int = 0
    uidnext: int = 0
    msgs: dict[int, Message] = field(default_factory=dict)
    seen_up_to: int = 0  # highest UID whose headers were fetched

    def uids(self) -> list[int]:
        return sorted(self.msgs)

    def unseen(self) -> int:
        return sum(1 for m in self.msgs.values() if "\\Seen" not in m.flags)


def _flagset(flags: frozenset[str]) -> set[str]:
    return {f for f in flags if f != "\\Recent"}


# --- statistics --------------------------------------------------------------------------
@dataclass
class Stats:
    lat: dict[str, list[float]] = field(default_factory=dict)
    #: TCP connect to greeting, once per loop: not a command (not in commands/s), but
    #: what a server that starts a process per connection spends there shows here
    connect: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    loops: int = 0
    failed_loops: int = 0

    def add(self, name: str, seconds: float) -> None:
        self.lat.setdefault(name, []).append(seconds)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERRORS_KEPT:
            self.error_samples.append(text)


# --- one client --------------------------------------------------------------------------
class Client:
    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        users: Sequence[str],
        password: str,
        mix: dict[str, int],
        samples: list[bytes],
        stats: Stats,
        seed: int,
        interval: float | None = None,
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.user = users[index % len(users)]
        k = index // len(users)
        self.mailbox = "INBOX" if k == 0 else f"Load{k}"
        self.password = password
        self.mix = mix
        self.samples = samples
        self.stats = stats
        self.rng = random.Random(seed)
        self.model = Model()
        self.window: tuple[float, float] = (0.0, 0.0)
        self.appended = 0
        #: paced mode: seconds between this client's commands (None: closed loop)
        self.interval = interval
        self.next_due: float | None = None

    # -- helpers
    async def _pace(self) -> float | None:
        """Paced mode: waits for this command's turn; returns when latency counts from.

        A command sent late because the previous reply came late counts from its due
        time (no coordinated omission); one sent late only by the sleep's granularity
        counts from when it was sent."""
        if self.interval is None:
            return None
        ready = time.perf_counter()
        if self.next_due is None:
            self.next_due = ready + self.rng.uniform(0, self.interval)
        due = self.next_due
        self.next_due = due + self.interval
        if due <= ready:
            return due
        await asyncio.sleep(due - ready)
        return time.perf_counter()

    def _quoted(self, s: str) -> bytes:
        return b'"' + s.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'

    async def _cmd(
        self, conn: Conn, name: str, line: bytes, literal: bytes | None = None
    ) -> list[bytes]:
        since = await self._pace()
        untagged, status, seconds = await conn.command(line, literal)
        if since is not None:
            seconds = time.perf_counter() - since
        if not _ok(status):
            raise ProtocolError(f"{name}: {status[:120]!r}")
        done = time.monotonic()
        if self.window[0] <= done <= self.window[1]:
            self.stats.add(name, seconds)
        self._status_line = status
        return untagged

    async def _login(self) -> Conn:
        t0 = time.perf_counter()
        conn = await Conn.open(self.host, self.port)
        if self.window[0] <= time.monotonic() <= self.window[1]:
            self.stats.connect.append(time.perf_counter() - t0)
        await self._cmd(
            conn, "LOGIN", b"LOGIN " + self._quoted(self.user) + b" " + self._quoted(self.password)
        )
        return conn

    async def _logout(self, conn: Conn) -> None:
        try:
            await self._cmd(conn, "LOGOUT", b"LOGOUT")
        finally:
            conn.close()

    async def resync(self, conn: Conn) -> None:
        """Reads the mailbox's whole state into the model (setup, and after an error)."""
        untagged = await self._cmd(conn, "SELECT(sync)", b"SELECT " + self._quoted(self.mailbox))
        self.model = Model()
        for r in untagged:
            if m := re.search(rb"\[UIDVALIDITY (\d+)\]", r):
                self.model.uidvalidity = int(m.group(1))
            if m := re.search(rb"\[UIDNEXT (\d+)\]", r):
                self.model.uidnext = int(m.group(1))
        untagged = await self._cmd(conn, "FETCH(sync)", b"UID FETCH 1:* (UID FLAGS RFC822.SIZE)")
        for r in untagged:
            item = parse_fetch(r)
            if item is None or item.uid is None or item.flags is None or item.size is None:
                continue
            self.model.msgs[item.uid] = Message(_flagset(item.flags), item.size)
        self.model.seen_up_to = max(self.model.msgs, default=0)

    async def setup(self) -> None:
        conn = await self._login()
        try:
            if self.mailbox != "INBOX":
                untagged, status, _ = await conn.command(b"CREATE " + self._quoted(self.mailbox))
                # an existing mailbox is fine ([ALREADYEXISTS] or a plain NO)
            await self.resync(conn)
            if len(self.model.msgs) < 20:  # a mailbox to work in: seed it
                for _ in range(20 - len(self.model.msgs)):
                    await self._append(conn, record=False)
                await self.resync(conn)
        finally:
            await self._logout(conn)

    def _new_message(self) -> tuple[bytes, bytes]:
        self.appended += 1
        msgid = b"<load-%d-%d-%d@bench.test>" % (
            self.index,
            self.appended,
            self.rng.getrandbits(32),
        )
        base = self.samples[self.rng.randrange(len(self.samples))]
        head, _, body = base.partition(b"\r\n\r\n")
        lines = [
            ln
            for ln in head.split(b"\r\n")
            if not ln.lower().startswith((b"message-id:", b"x-bench-seq:"))
        ]
        msg = b"Message-ID: " + msgid + b"\r\n" + b"\r\n".join(lines) + b"\r\n\r\n" + body
        return msg, msgid

    async def _append(self, conn: Conn, record: bool = True) -> None:
        data, msgid = self._new_message()
        flags = self.rng.choice(["", "\\Seen", "\\Seen \\Answered", "$Label1"])
        await self._cmd(
            conn,
            "APPEND",
            b"APPEND " + self._quoted(self.mailbox) + b" (" + flags.encode() + b")",
            literal=data,
        )
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", self._status_line)
        if not record:
            return
        if m is None:
            raise ProtocolError(f"APPEND without APPENDUID: {self._status_line!r}")
        validity, uid = int(m.group(1)), int(m.group(2))
        if validity != self.model.uidvalidity:
            raise ProtocolError(f"APPENDUID validity {validity} != {self.model.uidvalidity}")
        if uid in self.model.msgs or uid < self.model.uidnext:
            raise ProtocolError(f"APPENDUID {uid} reused (UIDNEXT was {self.model.uidnext})")
        self.model.msgs[uid] = Message(set(flags.split()), len(data), data, msgid)
        self.model.uidnext = uid + 1

    # -- one loop of the mixed workload
    async def loop_once(self) -> None:
        model = self.model
        conn = await self._login()
        try:
            untagged = await self._cmd(conn, "LIST", b'LIST "" "*"')
            names = b"".join(untagged)
            if self.mailbox.encode() not in names:
                raise ProtocolError(f"LIST lacks {self.mailbox}")

            untagged = await self._cmd(
                conn,
                "STATUS",
                b"STATUS " + self._quoted(self.mailbox) + b" (MESSAGES UIDNEXT UNSEEN)",
            )
            st = b"".join(untagged)
            want = (len(model.msgs), model.uidnext, model.unseen())
            got = tuple(
                int(m.group(1)) if (m := re.search(k + rb" (\d+)", st)) else -1
                for k in (b"MESSAGES", b"UIDNEXT", b"UNSEEN")
            )
            if got != want:
                raise ProtocolError(f"STATUS {got} != model {want}")

            untagged = await self._cmd(conn, "SELECT", b"SELECT " + self._quoted(self.mailbox))
            sel = b"".join(untagged)
            exists = re.search(rb"\* (\d+) EXISTS", sel)
            if exists is None or int(exists.group(1)) != len(model.msgs):
                raise ProtocolError(
                    f"SELECT EXISTS {exists and exists.group(1)!r} != {len(model.msgs)}"
                )
            validity = re.search(rb"\[UIDVALIDITY (\d+)\]", sel)
            if validity is None or int(validity.group(1)) != model.uidvalidity:
                raise ProtocolError("SELECT UIDVALIDITY changed")

            await self._fetch_new(conn)
            for _ in range(self.mix.get("fetch_body", 1)):
                await self._fetch_body(conn)
            for _ in range(self.mix.get("store", 1)):
                await self._store(conn)
            for _ in range(self.mix.get("append", 1)):
                await self._append(conn)
            # keep the mailbox's size steady: one out for each one in
            excess = len(model.msgs) - max(20, len(model.msgs) - self.mix.get("append", 1))
            if excess > 0:
                await self._expunge(conn, model.uids()[:excess])
        finally:
            await self._logout(conn)

    async def _fetch_new(self, conn: Conn) -> None:
        model = self.model
        first = model.seen_up_to + 1
        untagged = await self._cmd(
            conn,
            "FETCH(new)",
            b"UID FETCH %d:* (UID FLAGS BODY.PEEK[HEADER.FIELDS %s])" % (first, HEADER_FIELDS),
        )
        got: set[int] = set()
        for r in untagged:
            item = parse_fetch(r)
            if item is None:
                continue
            if item.uid is None or item.flags is None or item.body is None:
                raise ProtocolError(f"FETCH(new) incomplete: {r[:100]!r}")
            msg = model.msgs.get(item.uid)
            if msg is None:
                raise ProtocolError(f"FETCH(new) returned unknown UID {item.uid}")
            if _flagset(item.flags) != msg.flags:
                raise ProtocolError(
                    f"UID {item.uid} flags {sorted(item.flags)} != {sorted(msg.flags)}"
                )
            if msg.message_id is not None and msg.message_id not in item.body:
                raise ProtocolError(f"UID {item.uid} header lacks its Message-ID")
            got.add(item.uid)
        expected = {u for u in model.msgs if u >= first}
        if not expected <= got:
            raise ProtocolError(f"FETCH(new) missed UIDs {sorted(expected - got)[:5]}")
        model.seen_up_to = max(model.msgs, default=0)

    async def _fetch_body(self, conn: Conn) -> None:
        model = self.model
        if not model.msgs:
            return
        uid = self.rng.choice(model.uids())
        msg = model.msgs[uid]
        untagged = await self._cmd(conn, "FETCH(body)", b"UID FETCH %d (UID BODY.PEEK[])" % uid)
        items = [i for r in untagged if (i := parse_fetch(r)) is not None and i.body is not None]
        if len(items) != 1 or items[0].uid != uid:
            raise ProtocolError(f"FETCH(body) of UID {uid}: {len(items)} bodies")
        body = items[0].body
        assert body is not None
        if msg.content is not None and body != msg.content:
            raise ProtocolError(f"UID {uid}: body differs from what was appended")
        if len(body) != msg.size:
            raise ProtocolError(f"UID {uid}: body of {len(body)} octets, RFC822.SIZE {msg.size}")

    async def _store(self, conn: Conn) -> None:
        model = self.model
        if not model.msgs:
            return
        uid = self.rng.choice(model.uids())
        msg = model.msgs[uid]
        flag = self.rng.choice(["\\Flagged", "\\Seen", "$Work"])
        op = b"-FLAGS" if flag in msg.flags else b"+FLAGS"
        untagged = await self._cmd(
            conn, "STORE", b"UID STORE %d %s (%s)" % (uid, op, flag.encode())
        )
        if op == b"+FLAGS":
            msg.flags.add(flag)
        else:
            msg.flags.discard(flag)
        items = [i for r in untagged if (i := parse_fetch(r)) is not None and i.flags is not None]
        if not items:
            raise ProtocolError(f"STORE on UID {uid} sent no FETCH")
        if _flagset(items[-1].flags or frozenset()) != msg.flags:
            raise ProtocolError(f"STORE on UID {uid}: flags {items[-1].flags} != {msg.flags}")

    async def _expunge(self, conn: Conn, uids: list[int]) -> None:
        model = self.model
        order = model.uids()
        await self._cmd(
            conn,
            "STORE(deleted)",
            b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % b",".join(b"%d" % u for u in uids),
        )
        untagged = await self._cmd(conn, "EXPUNGE", b"EXPUNGE")
        got = [int(m.group(1)) for r in untagged if (m := re.match(rb"\* (\d+) EXPUNGE", r))]
        for u in uids:
            del model.msgs[u]
        # each EXPUNGE renumbers those after it: replay them on the UID list
        removed = []
        for msn in got:
            if not 1 <= msn <= len(order):
                raise ProtocolError(f"EXPUNGE of MSN {msn} beyond {len(order)} messages")
            removed.append(order.pop(msn - 1))
        if sorted(removed) != sorted(uids):
            raise ProtocolError(f"EXPUNGE removed UIDs {sorted(removed)} != {sorted(uids)}")

    async def run(self, start: float, end: float) -> None:
        self.window = (start, end)
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        self.next_due = None  # the pace starts now, not at setup
        hard_end = end + GRACE
        while time.monotonic() < end:
            try:
                await asyncio.wait_for(self.loop_once(), hard_end - time.monotonic())
                self.stats.loops += 1
            except (ProtocolError, OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                self.stats.failed_loops += 1
                self.stats.error(f"client {self.index} ({self.user} {self.mailbox}): {e}")
                if time.monotonic() >= hard_end:
                    return
                try:
                    conn = await self._login()
                    try:
                        await self.resync(conn)
                    finally:
                        await self._logout(conn)
                except (ProtocolError, OSError, asyncio.IncompleteReadError) as e2:
                    self.stats.error(f"client {self.index}: resync failed: {e2}")
                    await asyncio.sleep(0.5)


# --- a worker process ------------------------------------------------------------------
def _worker(
    indices: list[int],
    cfg: dict[str, Any],
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    async def main() -> dict[str, Any]:
        stats = Stats()
        samples = sample_messages()
        clients = [
            Client(
                i,
                cfg["host"],
                cfg["port"],
                cfg["users"],
                cfg["password"],
                cfg["mix"],
                samples,
                stats,
                cfg["seed"] * 100_003 + i,
                cfg["clients"] / cfg["rate"] if cfg["rate"] else None,
            )  # fmt: skip
            for i in indices
        ]
        sem = asyncio.Semaphore(16)

        async def setup(c: Client) -> None:
            async with sem:
                await c.setup()

        await asyncio.gather(*(setup(c) for c in clients))
        ready.send("ready")
        start, end = go.recv()
        cpu0 = os.times()
        await asyncio.gather(*(c.run(start, end) for c in clients))
        cpu1 = os.times()
        return {
            "lat": stats.lat,
            "connect": stats.connect,
            "errors": stats.errors,
            "error_samples": stats.error_samples,
            "loops": stats.loops,
            "failed_loops": stats.failed_loops,
            "cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        }

    try:
        result = asyncio.run(main())
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        result = {"fatal": f"{type(e).__name__}: {e}"}
        try:
            ready.send("failed")
        except OSError:
            pass
    out.send(result)


def run_mixed(
    port: int,
    users: Sequence[str],
    password: str,
    *,
    clients: int,
    duration: float,
    procs: int = 2,
    mix: dict[str, int] | None = None,
    host: str = "127.0.0.1",
    seed: int = 1,
    on_start: Any = None,
    rate: float | None = None,
) -> dict[str, Any]:
    """Runs the mixed workload; returns the figures (see :func:`summarise`).

    By default each client sends its next command as soon as the last reply is in (a
    closed loop: the server runs flat out). With ``rate`` the clients together offer
    that many commands per second at a steady pace, each on its own schedule, and a
    command's latency counts from when it was due."""
    if host not in ("127.0.0.1", "::1"):
        raise ValueError("benchmark traffic stays on loopback")
    cfg = {
        "host": host,
        "port": port,
        "users": list(users),
        "password": password,
        "mix": {**DEFAULT_MIX, **(mix or {})},
        "seed": seed,
        "clients": clients,
        "rate": rate,
    }
    procs = max(1, min(procs, clients))
    ctx = mp.get_context("fork")
    workers = []
    for p in range(procs):
        indices = list(range(p, clients, procs))
        ready_r, ready_w = ctx.Pipe(duplex=False)
        go_r, go_w = ctx.Pipe(duplex=False)
        out_r, out_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(indices, cfg, ready_w, go_r, out_w), daemon=True)
        proc.start()
        workers.append((proc, ready_r, go_w, out_r))
    try:
        for _proc, ready_r, _, _ in workers:
            if not ready_r.poll(600) or ready_r.recv() != "ready":
                raise RuntimeError("a load worker failed during setup")
        start = time.monotonic() + 0.5
        end = start + duration
        if on_start is not None:
            on_start(start, end)
        for _, _, go_w, _ in workers:
            go_w.send((start, end))
        results = []
        for proc, _, _, out_r in workers:
            if not out_r.poll(duration + GRACE + 60):
                raise RuntimeError("a load worker did not finish in time")
            results.append(out_r.recv())
            proc.join(10)
    finally:
        for proc, *_ in workers:
            if proc.is_alive():
                proc.kill()  # our own worker process
                proc.join(5)
    fatal = [r["fatal"] for r in results if "fatal" in r]
    if fatal:
        raise RuntimeError(f"load worker failed: {fatal[0]}")
    out = summarise(results, duration, clients, procs, cfg["mix"])
    out["offered_per_s"] = rate
    return out


def summarise(
    results: list[dict[str, Any]], duration: float, clients: int, procs: int, mix: dict[str, int]
) -> dict[str, Any]:
    lat: dict[str, list[float]] = {}
    for r in results:
        for name, values in r["lat"].items():
            lat.setdefault(name, []).extend(values)
    total = sum(len(v) for v in lat.values())
    every = [x for v in lat.values() for x in v]
    connect = [x for r in results for x in r.get("connect", ())]
    per_command = {
        name: {
            "count": len(v),
            "per_s": len(v) / duration,
            "p50_ms": percentile(v, 50) * 1000,
            "p99_ms": percentile(v, 99) * 1000,
        }
        for name, v in sorted(lat.items())
    }
    return {
        "clients": clients,
        "procs": procs,
        "duration_s": duration,
        "mix": mix,
        "commands": total,
        "commands_per_s": total / duration,
        "p50_ms": percentile(every, 50) * 1000,
        "p99_ms": percentile(every, 99) * 1000,
        "per_command": per_command,
        "connect": {
            "count": len(connect),
            "p50_ms": percentile(connect, 50) * 1000,
            "p99_ms": percentile(connect, 99) * 1000,
        },
        "loops": sum(r["loops"] for r in results),
        "failed_loops": sum(r["failed_loops"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "error_samples": [e for r in results for e in r["error_samples"]][:MAX_ERRORS_KEPT],
        "generator_cpu_s": sum(r["cpu"] for r in results),
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"{s['clients']} clients ({s['procs']} processes), {s['duration_s']:.0f} s"
        + (f", paced at {s['offered_per_s']:,.0f}/s" if s.get("offered_per_s") else "")
        + ": "
        f"{s['commands_per_s']:,.0f} commands/s, p50 {s['p50_ms']:.2f} ms, "
        f"p99 {s['p99_ms']:.2f} ms, {s['loops']} loops, errors {s['errors']}, "
        f"generator CPU {s['generator_cpu_s']:.1f} s",
    ]
    for name, c in s["per_command"].items():
        lines.append(
            f"  {name:<16} {c['count']:>8} {c['per_s']:>9,.0f}/s  "
            f"p50 {c['p50_ms']:7.2f} ms  p99 {c['p99_ms']:7.2f} ms"
        )
    k = s["connect"]
    if k["count"]:
        lines.append(
            f"  {'(connect)':<16} {k['count']:>8} {'':>11}  "
            f"p50 {k['p50_ms']:7.2f} ms  p99 {k['p99_ms']:7.2f} ms"
        )
    for e in s["error_samples"]:
        lines.append(f"  ERROR {e}")
    return "\n".join(lines)


def parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in DEFAULT_MIX:
            raise argparse.ArgumentTypeError(
                f"unknown mix step {name!r} ({', '.join(DEFAULT_MIX)})"
            )
        mix[name] = int(value)
    return mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user-fmt", default="load{n}@example.org")
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--password", required=True)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--mix", type=parse_mix, default={}, help="e.g. fetch_body=2,store=1,append=1")
    ap.add_argument("--rate", type=float, help="paced: commands/s offered by all clients")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    users = [a.user_fmt.format(n=n) for n in range(a.users)]
    s = run_mixed(
        a.port,
        users,
        a.password,
        clients=a.clients,
        duration=a.duration,
        procs=a.procs,
        mix=a.mix,
        rate=a.rate,
    )
    print(format_summary(s))
    if a.json:
        a.json.write_text(json.dumps(s, indent=1))


if __name__ == "__main__":
    main()
