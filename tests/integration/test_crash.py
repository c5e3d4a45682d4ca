"""Crash safety of the whole server: SIGKILL ``carteiro serve`` under heavy IMAP traffic,
restart it on the same data directory and find every change a client was told about.

Only acknowledged operations count: an APPEND counts once its tagged ``OK [APPENDUID]``
arrived, a STORE once its ``OK`` arrived, an EXPUNGE likewise. A command whose reply
never came may or may not have happened; the checks allow both outcomes for it (and for
nothing else). Each worker thread owns the messages it appends, so no other session ever
changes them, and a worker stops at its first lost reply: at most its last operation is
uncertain.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.integration.harness import RawClient
from tests.integration.server_process import ServerProcess, add_user

ADDRESS = "crash@example.org"
PASSWORD = "crash-test-pw"
WORKERS = 4
ROUNDS = 3
FLAG_POOL = ("\\Seen", "\\Flagged", "\\Answered", "\\Draft", "$Work", "$Label1")

APPENDUID = re.compile(rb"^\S+ OK \[APPENDUID (\d+) ([\d:,]+)\]")
FETCH_BODY = re.compile(rb"BODY\[\] ~?\{(\d+)\}\r\n")
CRASH_ID = re.compile(rb"(?m)^X-Crash-Id: (\S+)\r$")


@dataclass(frozen=True)
class Msg:
    ident: str
    data: bytes
    uid: int | None = None  # None: the APPEND was sent but never acknowledged
    flags: frozenset[str] | None = frozenset()  # None: an unacknowledged STORE
    expunged: bool | None = False  # None: an unacknowledged UID EXPUNGE


def uid_set(text: bytes) -> list[int]:
    out: list[int] = []
    for part in text.decode().split(","):
        a, _, b = part.partition(":")
        lo, hi = int(a), int(b or a)
        out.extend(range(lo, hi + 1) if lo <= hi else range(lo, hi - 1, -1))
    return out


def make_message(ident: str, rng: random.Random) -> bytes:
    size = rng.choice((100, 1500, 6000, 20000, 45000))  # some above the 32 KiB thread path
    lines = []
    while sum(map(len, lines)) < size:
        lines.append(rng.randbytes(38).hex().encode() + b"\r\n")
    head = (
        f"From: Crash Test <crash@example.org>\r\nTo: <{ADDRESS}>\r\n"
        f"Subject: crash {ident}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        f"Message-ID: <{ident}@crash.test>\r\nX-Crash-Id: {ident}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    return head + "Olá, ação — ünïcödé ✉\r\n".encode() + b"".join(lines)


def flag_list(flags: frozenset[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


def login(port: int, timeout: float = 15) -> RawClient:
    c = RawClient(port, timeout=timeout)
    assert c.greeting.startswith(b"* OK"), c.greeting
    reply = c.cmd(f"LOGIN {ADDRESS} {PASSWORD}", tag="L1")[-1]
    assert reply.startswith(b"L1 OK"), reply
    return c


class Ledger:
    """Counts acknowledged appends across workers; the main thread waits on it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.appends = 0
        self.finished = 0

    def acked(self, n: int) -> None:
        with self.cond:
            self.appends += n
            self.cond.notify_all()

    def done(self) -> None:
        with self.cond:
            self.finished += 1
            self.cond.notify_all()


class Worker(threading.Thread):
    def __init__(self, name: str, port: int, seed: int, ledger: Ledger, uidvalidity: int) -> None:
        super().__init__(name=name, daemon=True)
        self.port = port
        self.rng = random.Random(seed)
        self.ledger = ledger
        self.uidvalidity = uidvalidity
        self.msgs: dict[str, Msg] = {}
        self.error: str | None = None
        self.ops = 0
        self.lost_reply = False
        self._n = 0
        self._tag = 0

    def tag(self) -> str:
        self._tag += 1
        return f"W{self._tag}"

    def run(self) -> None:
        try:
            c = login(self.port)
            reply = c.cmd("SELECT INBOX", tag="S1")[-1]
            assert reply.startswith(b"S1 OK"), reply
            deadline = time.monotonic() + 30  # a bound: the main thread kills long before
            while time.monotonic() < deadline:
                self.step(c)
                self.ops += 1
            self.error = "never killed"
        except TimeoutError:
            self.error = "no reply in time"
        except (EOFError, OSError):
            self.lost_reply = True  # the server died under us: the normal ending
        except Exception as exc:  # an assertion about a reply: reported by the test
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ledger.done()

    def live(self) -> list[Msg]:
        return [m for m in self.msgs.values() if m.uid is not None and m.expunged is False]

    def step(self, c: RawClient) -> None:
        r = self.rng.random()
        live = self.live()
        if r < 0.55 or len(live) < 3:
            self.append(c, 1 if self.rng.random() < 0.8 else self.rng.randint(2, 3))
        elif r < 0.85:
            m = self.rng.choice(live)
            flags = frozenset(f for f in FLAG_POOL if self.rng.random() < 0.4)
            self.msgs[m.ident] = replace(m, flags=None)
            tag = self.tag()
            reply = c.cmd(f"UID STORE {m.uid} FLAGS.SILENT {flag_list(flags)}", tag=tag)[-1]
            assert reply.startswith(f"{tag} OK".encode()), reply
            self.msgs[m.ident] = replace(m, flags=flags)
        else:
            m = self.rng.choice(live)
            assert m.flags is not None
            self.msgs[m.ident] = replace(m, flags=None)
            tag = self.tag()
            reply = c.cmd(f"UID STORE {m.uid} +FLAGS.SILENT (\\Deleted)", tag=tag)[-1]
            assert reply.startswith(f"{tag} OK".encode()), reply
            m = replace(m, flags=m.flags | {"\\Deleted"})
            self.msgs[m.ident] = replace(m, expunged=None)
            tag = self.tag()
            reply = c.cmd(f"UID EXPUNGE {m.uid}", tag=tag)[-1]
            assert reply.startswith(f"{tag} OK".encode()), reply
            self.msgs[m.ident] = replace(m, expunged=True)

    def append(self, c: RawClient, count: int) -> None:
        batch: list[Msg] = []
        command = b"APPEND INBOX"
        for _ in range(count):
            self._n += 1
            ident = f"{self.name}-{self._n}"
            data = make_message(ident, self.rng)
            flags = frozenset(f for f in FLAG_POOL[:3] if self.rng.random() < 0.3)
            batch.append(Msg(ident, data, flags=flags))
            self.msgs[ident] = batch[-1]  # sent, not yet acknowledged
            if flags:
                command += b" " + flag_list(flags).encode()
            command += b" {%d+}\r\n" % len(data) + data
        tag = self.tag()
        reply = c.cmd(command + b"\r\n", tag=tag)[-1]
        match = APPENDUID.match(reply)
        assert match is not None and reply.startswith(f"{tag} OK".encode()), reply
        assert int(match.group(1)) == self.uidvalidity, reply
        uids = uid_set(match.group(2))
        assert len(uids) == count, reply
        for m, uid in zip(batch, uids, strict=True):
            self.msgs[m.ident] = replace(m, uid=uid)
        self.ledger.acked(count)


@dataclass
class Found:
    uid: int
    flags: frozenset[str]
    size: int
    body: bytes


def parse_fetch(line: bytes) -> Found:
    lit = FETCH_BODY.search(line)
    assert lit is not None, line[:200]
    n = int(lit.group(1))
    body = line[lit.end() : lit.end() + n]
    rest = line[: lit.start()] + line[lit.end() + n :]
    uid = re.search(rb"\bUID (\d+)", rest)
    flags = re.search(rb"\bFLAGS \(([^)]*)\)", rest)
    size = re.search(rb"\bRFC822\.SIZE (\d+)", rest)
    assert uid and flags and size, rest
    return Found(
        int(uid.group(1)),
        frozenset(f.decode() for f in flags.group(1).split()) - {"\\Recent"},
        int(size.group(1)),
        body,
    )


def status_numbers(line: bytes) -> dict[str, int]:
    inner = line[line.index(b"(") + 1 : line.rindex(b")")].split()
    return {inner[i].decode().upper(): int(inner[i + 1]) for i in range(0, len(inner), 2)}


@dataclass
class Model:
    """What the mailbox must hold: every message known for certain, by X-Crash-Id."""

    uidvalidity: int
    msgs: dict[str, Msg]
    max_uid: int = 0  # the highest UID ever acknowledged or seen


def verify(port: int, model: Model, sent: dict[str, Msg], why: str) -> Model:
    """Checks the restarted server against ``model`` plus this round's ``sent``
    messages and returns the new model (the state found, which is now durable)."""
    c = login(port)
    lines = c.cmd("STATUS INBOX (MESSAGES UNSEEN SIZE UIDNEXT UIDVALIDITY)", tag="V1")
    assert lines[-1].startswith(b"V1 OK"), lines
    status = status_numbers(next(x for x in lines if x.startswith(b"* STATUS")))
    lines = c.cmd("SELECT INBOX", tag="V2")
    assert lines[-1].startswith(b"V2 OK"), lines
    text = b"".join(lines)
    exists = int(re.search(rb"\* (\d+) EXISTS", text).group(1))  # type: ignore[union-attr]
    uidnext = int(re.search(rb"UIDNEXT (\d+)", text).group(1))  # type: ignore[union-attr]
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))  # type: ignore[union-attr]
    lines = c.cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[])", tag="V3")
    assert lines[-1].startswith(b"V3 OK"), lines[-1]
    found_list = [parse_fetch(x) for x in lines[:-1] if b" FETCH (" in x[:20]]

    assert uidvalidity == model.uidvalidity == status["UIDVALIDITY"], why
    uids = [f.uid for f in found_list]
    assert uids == sorted(set(uids)), f"{why}: UIDs not strictly ascending: {uids}"
    assert len(found_list) == exists, why
    assert all(u < uidnext for u in uids), f"{why}: UIDNEXT {uidnext} <= a UID"
    assert status["UIDNEXT"] == uidnext, why
    # the counters equal a recount
    assert status["MESSAGES"] == len(found_list), (why, status)
    assert status["UNSEEN"] == sum("\\Seen" not in f.flags for f in found_list), (why, status)
    assert status["SIZE"] == sum(f.size for f in found_list), (why, status)

    found: dict[str, Found] = {}
    for f in found_list:
        assert f.size == len(f.body), f"{why}: RFC822.SIZE {f.size} != {len(f.body)}"
        ident = CRASH_ID.search(f.body)
        assert ident is not None, f"{why}: a message nobody appended: {f.body[:300]!r}"
        key = ident.group(1).decode()
        assert key not in found, f"{why}: {key} is stored twice (UIDs {found[key].uid}, {f.uid})"
        found[key] = f

    expected = {**model.msgs, **sent}
    for key, m in expected.items():
        f = found.get(key)
        if m.uid is None:  # never acknowledged: either absent or stored intact
            assert f is None or f.body == m.data, f"{why}: unacknowledged {key} is corrupt"
            continue
        if m.expunged is True:
            assert f is None, f"{why}: acknowledged UID EXPUNGE of {m.uid} ({key}) undone"
            continue
        if f is None:
            assert m.expunged is None, f"{why}: acknowledged APPEND {key} UID {m.uid} lost"
            continue
        assert f.uid == m.uid, f"{why}: {key} has UID {f.uid}, APPENDUID said {m.uid}"
        assert f.body == m.data, f"{why}: {key} (UID {m.uid}) differs from what was sent"
        if m.flags is not None:
            assert f.flags == m.flags, f"{why}: {key} UID {m.uid} flags {f.flags} != {m.flags}"
    for key in found.keys() - expected.keys():
        raise AssertionError(f"{why}: {key} (UID {found[key].uid}) appeared from nowhere")
    for key in model.msgs:  # from earlier rounds: nothing touches them now
        assert key in found, f"{why}: {key} of an earlier round is gone"

    # an APPEND after the restart gets a UID above every one seen before
    max_uid = max([model.max_uid, *uids, *(m.uid for m in sent.values() if m.uid is not None)])
    ident = f"after-{why.replace(' ', '-')}"
    data = make_message(ident, random.Random(ident))
    reply = c.cmd(b"APPEND INBOX (\\Seen) {%d+}\r\n%s\r\n" % (len(data), data), tag="V4")[-1]
    match = APPENDUID.match(reply)
    assert match is not None, reply
    assert int(match.group(1)) == model.uidvalidity, reply
    new_uid = uid_set(match.group(2))[0]
    assert new_uid > max_uid and new_uid >= uidnext, f"{why}: UID {new_uid} reused"
    assert c.cmd("LOGOUT", tag="V5")[-1].startswith(b"V5 OK")
    c.close()

    now = {
        key: Msg(key, f.body, uid=f.uid, flags=f.flags, expunged=False) for key, f in found.items()
    }
    now[ident] = Msg(ident, data, uid=new_uid, flags=frozenset({"\\Seen"}))
    return Model(model.uidvalidity, now, new_uid)


def integrity_check(db: Path) -> None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


@pytest.mark.slow
def test_sigkill_under_traffic_loses_no_acknowledged_change(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    add_user(data_dir, ADDRESS, PASSWORD)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    logs: list[Path] = []

    def start(n: int) -> ServerProcess:
        logs.append(tmp_path / f"serve{n}.log")
        return ServerProcess(data_dir, logs[-1]).start()

    server = start(0)
    try:
        c = login(server.port)
        text = b"".join(c.cmd("SELECT INBOX", tag="a1"))
        c.close()
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))  # type: ignore[union-attr]
        model = Model(uidvalidity, {})
        stats = []
        for round_ in range(ROUNDS):
            why = f"round {round_} (seed {seed})"
            ledger = Ledger()
            workers = [
                Worker(f"r{round_}w{i}", server.port, rng.randrange(2**32), ledger, uidvalidity)
                for i in range(WORKERS)
            ]
            for w in workers:
                w.start()
            target = rng.randint(150, 450)
            with ledger.cond:
                reached = ledger.cond.wait_for(
                    lambda: ledger.appends >= target or ledger.finished == WORKERS,  # noqa: B023
                    timeout=30,
                )
            server.kill()  # SIGKILL at a random moment: after `target` acknowledged appends
            for w in workers:
                w.join(20)
            assert reached and ledger.appends >= target, (why, [w.error for w in workers])
            assert not any(w.is_alive() for w in workers), why
            assert [w.error for w in workers] == [None] * WORKERS, why
            assert all(w.lost_reply for w in workers), f"{why}: a worker was not cut off"
            sent = {k: m for w in workers for k, m in w.msgs.items()}
            acked = [m.uid for m in sent.values() if m.uid is not None]
            assert min(acked) > model.max_uid, f"{why}: a UID was reused across the crash"
            stats.append((len(acked), sum(w.ops for w in workers)))

            server = start(round_ + 1)
            model = verify(server.port, model, sent, why)
            integrity_check(data_dir / "carteiro.db")
        assert server.terminate() == 0
    finally:
        server.stop()
    for log in logs:
        text_log = log.read_text(errors="replace")
        assert "Traceback" not in text_log and " ERROR " not in text_log, text_log[-3000:]
    print(f"crash test: seed {seed}, (acknowledged appends, operations) per round {stats}")
