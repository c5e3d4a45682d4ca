"""The server's life: graceful shutdown, startup errors, autologout, clients that vanish
mid-command, hostile input, and what must survive a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import OPEN, RawClient, ServerThread
from tests.integration.mbox import simple
from tests.integration.server_process import ServerProcess, add_user, run_cli

ADDRESS = "life@example.org"
PASSWORD = "life-pw"


# --- helpers -------------------------------------------------------------------------


def login(
    port: int, user: str = ADDRESS, password: str = PASSWORD, timeout: float = 10
) -> RawClient:
    c = RawClient(port, timeout=timeout)
    assert c.greeting.startswith(b"* OK"), c.greeting
    reply = c.cmd(f"LOGIN {user} {password}", tag="L")[-1]
    assert reply.startswith(b"L OK"), reply
    return c


def append(c: RawClient, data: bytes, flags: str = "", tag: str = "AP") -> int:
    opt = f" ({flags})" if flags else ""
    reply = c.cmd(f"APPEND INBOX{opt} {{{len(data)}+}}\r\n".encode() + data + b"\r\n", tag=tag)
    match = re.match(rb"\S+ OK \[APPENDUID \d+ (\d+)\]", reply[-1])
    assert match is not None, reply
    return int(match.group(1))


def status(c: RawClient, items: str = "MESSAGES UIDNEXT UIDVALIDITY") -> dict[str, int]:
    lines = c.cmd(f"STATUS INBOX ({items})", tag="ST")
    assert lines[-1].startswith(b"ST OK"), lines
    line = next(x for x in lines if x.startswith(b"* STATUS"))
    inner = line[line.index(b"(") + 1 : line.rindex(b")")].split()
    return {inner[i].decode(): int(inner[i + 1]) for i in range(0, len(inner), 2)}


def fetch_bodies(c: RawClient) -> dict[int, tuple[bytes, bytes]]:
    """UID → (FLAGS list, BODY[]) of every message in the selected mailbox."""
    lines = c.cmd("UID FETCH 1:* (UID FLAGS BODY.PEEK[])", tag="FB")
    assert lines[-1].startswith(b"FB OK"), lines[-1]
    out = {}
    for line in lines[:-1]:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) BODY\[\] \{(\d+)\}\r\n", line)
        assert m is not None, line[:200]
        body = line[m.end() : m.end() + int(m.group(3))]
        flags = b" ".join(sorted(f for f in m.group(2).split() if f != b"\\Recent"))
        out[int(m.group(1))] = (flags, body)
    return out


def read_until_eof(c: RawClient) -> tuple[list[bytes], str]:
    """Every line the server sends until it closes: (lines, how it ended)."""
    lines: list[bytes] = []
    try:
        while True:
            lines.append(c.readline())
    except EOFError:
        return lines, "eof"
    except TimeoutError:
        return lines, "timeout"
    except OSError as exc:  # a reset after the server closed: closed all the same
        return lines, type(exc).__name__


def expect_bye_and_close(c: RawClient) -> list[bytes]:
    lines, end = read_until_eof(c)
    assert any(x.startswith(b"* BYE") for x in lines), lines
    assert end != "timeout", f"connection left open after {lines}"
    return lines


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    add_user(d, ADDRESS, PASSWORD)
    return d


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    """Every server process a test starts; each is stopped (by PID) afterwards."""
    started: list[ServerProcess] = []
    yield started
    for p in started:
        p.stop()


def serve(procs: list[ServerProcess], data_dir: Path) -> ServerProcess:
    proc = ServerProcess(data_dir, data_dir.parent / f"serve{len(procs)}.log")
    procs.append(proc)
    return proc.start()


# --- (a) SIGTERM: graceful shutdown ----------------------------------------------------


def test_sigterm_says_bye_to_every_session_and_exits_0(data_dir: Path, procs) -> None:
    srv = serve(procs, data_dir)
    setup = login(srv.port)
    messages = [simple(f"keep {i}", body=f"body {i}\r\n" * (i + 1)) for i in range(3)]
    uids = [append(setup, m, "\\Seen" if i == 1 else "") for i, m in enumerate(messages)]
    setup.cmd("LOGOUT", tag="LO")

    idling = login(srv.port, timeout=8)
    assert idling.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    idling.send(b"i IDLE\r\n")
    assert idling.readline().startswith(b"+ ")
    selected = login(srv.port, timeout=8)
    assert selected.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    midway = login(srv.port, timeout=8)
    midway.send(b"m1 UID FETCH 1:* (FL")  # half a command line, then nothing
    unauthenticated = RawClient(srv.port, timeout=8)
    # the server answers NOOP after reading what came before it: every session is set up
    for c in (selected, unauthenticated):
        assert c.cmd("NOOP", tag="n")[-1].startswith(b"n OK")
    sessions = {
        "in IDLE": idling,
        "selected": selected,
        "mid-command": midway,
        "not authenticated": unauthenticated,
    }

    results: dict[str, tuple[list[bytes], str, float]] = {}
    start = time.monotonic()

    def reader(name: str, c: RawClient) -> None:
        lines, end = read_until_eof(c)
        results[name] = (lines, end, time.monotonic() - start)

    threads = [threading.Thread(target=reader, args=kv, daemon=True) for kv in sessions.items()]
    for t in threads:
        t.start()
    code = srv.terminate(timeout=30)
    exit_after = time.monotonic() - start
    for t in threads:
        t.join(15)
    assert code == 0, srv.log()
    assert "carteiro: shutting down" in srv.lines
    assert "Traceback" not in srv.log()

    # the data is intact after a restart
    again = serve(procs, data_dir)
    c = login(again.port)
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    stored = fetch_bodies(c)
    assert sorted(stored) == uids
    for i, uid in enumerate(uids):
        assert stored[uid] == (b"\\Seen" if i == 1 else b"", messages[i])
    c.cmd("LOGOUT", tag="LO")
    assert again.terminate() == 0

    problems = [
        f"{name}: {'no * BYE' if not any(x.startswith(b'* BYE') for x in lines) else 'BYE'}, "
        f"ended by {end} after {took:.1f}s"
        for name, (lines, end, took) in sorted(results.items())
        if not any(x.startswith(b"* BYE") for x in lines) or end == "timeout" or took > 5
    ]
    assert not problems and exit_after < 5, (f"exit after {exit_after:.1f}s", problems)


# --- (b) the port is taken -------------------------------------------------------------


@pytest.mark.parametrize("which", ["imap", "imaps", "submission"])
def test_port_in_use_is_one_error_line(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listeners = {"imap": "127.0.0.1:0", "imaps": "127.0.0.1:0", "smtp": "off",
                     "submission": "off", "submissions": "off"}  # fmt: skip
        listeners[which] = f"127.0.0.1:{port}"
        options = [x for k, v in listeners.items() for x in (f"--{k}", v)]
        r = run_cli("serve", "--data-dir", tmp_path / "data", *options, timeout=30)
    stderr = r.stderr.decode()
    errors = [line for line in stderr.splitlines() if line.startswith("carteiro: error: ")]
    assert r.returncode == 1, (r.returncode, stderr)
    assert len(errors) == 1, stderr
    assert stderr.endswith(errors[0] + "\n"), stderr  # the last thing printed
    assert f"127.0.0.1:{port}" in errors[0] and "already in use" in errors[0], errors
    assert f"--{which}" in errors[0], errors
    assert "Traceback" not in stderr and "Traceback" not in r.stdout.decode()


# --- (c) autologout ----------------------------------------------------------------------


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[ServerThread]:
    srv = ServerThread(tmp_path, idle_timeout=1.0, login_timeout=1.0)
    yield srv
    srv.stop()


def test_autologout_of_silent_sessions(quick: ServerThread) -> None:
    user = quick.new_user()
    start = time.monotonic()
    unauthenticated = RawClient(quick.port, timeout=10)
    authenticated = login(quick.port, user, "secret")
    idling = login(quick.port, user, "secret")
    assert idling.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    idling.send(b"i IDLE\r\n")
    assert idling.readline().startswith(b"+ ")
    for name, c in (("unauth", unauthenticated), ("auth", authenticated), ("idle", idling)):
        lines = expect_bye_and_close(c)
        assert not any(x.startswith((b"s ", b"i ")) for x in lines), (name, lines)
    took = time.monotonic() - start
    assert 0.9 <= took < 6, took


def test_activity_postpones_autologout(quick: ServerThread) -> None:
    user = quick.new_user()
    c = login(quick.port, user, "secret")
    # five NOOPs 0.4 s apart span twice the idle timeout; nothing may arrive in between
    for i in range(5):
        readable, _, _ = select.select([c.sock], [], [], 0.4)
        assert not readable, c.sock.recv(1000)
        assert c.cmd("NOOP", tag=f"n{i}")[-1].startswith(f"n{i} OK".encode())
    expect_bye_and_close(c)


# --- (d) clients that vanish mid-command --------------------------------------------------


def wait_disconnected(server: ServerThread, client: RawClient, timeout: float = 10) -> None:
    """Until the server has noticed that ``client`` is gone (bounded)."""
    port = client.sock.getsockname()[1]
    client.close()

    def here() -> bool:
        return any((c.stream.peer() or ("", 0))[1] == port for c in server.server.connections)

    async def gone() -> None:  # the connection set has no event to wait on: poll, bounded
        while here():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    server.call(asyncio.wait_for(gone(), timeout))


def test_disconnect_mid_command_leaves_no_trace(server: ServerThread, user: str) -> None:
    watcher = login(server.port, user, "secret")
    append(watcher, simple("first"))
    assert watcher.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    before = status(watcher, "MESSAGES UIDNEXT SIZE")
    one, two = simple("multi one"), simple("multi two", body="x" * 5000)

    # MULTIAPPEND: the first message complete, the second literal half sent
    c = login(server.port, user, "secret")
    c.send(
        b"m1 APPEND INBOX {%d+}\r\n%s (\\Seen) {%d+}\r\n%s" % (len(one), one, len(two), two[:2000])
    )
    wait_disconnected(server, c)
    # the same with synchronising literals: the server said "+" for the second one
    c = login(server.port, user, "secret")
    c.send(b"m2 APPEND INBOX {%d}\r\n" % len(one))
    assert c.readline().startswith(b"+ ")
    c.send(one + b" {%d}\r\n" % len(two))
    assert c.readline().startswith(b"+ ")
    c.send(two[:100])
    wait_disconnected(server, c)
    # half a command line, authenticated and not
    c = login(server.port, user, "secret")
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    c.send(b"x1 UID STORE 1:* +FLAGS (\\Deleted")
    wait_disconnected(server, c)
    c = RawClient(server.port)
    c.send(b"a1 LOGIN " + user.encode() + b" sec")
    wait_disconnected(server, c)
    assert watcher.cmd("NOOP", tag="n")[-1].startswith(b"n OK")
    flags = watcher.cmd("FETCH 1:* (FLAGS)", tag="f")
    assert flags[-1].startswith(b"f OK") and not any(b"\\Deleted" in x for x in flags), flags
    # an EXPUNGE line without its CRLF is not executed
    c = login(server.port, user, "secret")
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    assert c.cmd("UID STORE 1:* +FLAGS.SILENT (\\Deleted)", tag="x2")[-1].startswith(b"x2 OK")
    c.send(b"x3 EXPUNGE")
    wait_disconnected(server, c)
    assert status(watcher, "MESSAGES UIDNEXT SIZE") == before
    reply = watcher.cmd("STORE 1:* -FLAGS.SILENT (\\Deleted)", tag="x4")
    assert reply[-1].startswith(b"x4 OK"), reply

    assert watcher.cmd("NOOP", tag="n")[-1].startswith(b"n OK")
    assert status(watcher, "MESSAGES UIDNEXT SIZE") == before
    # the server keeps serving: a complete MULTIAPPEND from a new session works
    c = login(server.port, user, "secret")
    reply = c.cmd(b"m3 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(one), one, len(two), two))
    assert reply[-1].startswith(b"m3 OK [APPENDUID"), reply
    after = status(watcher, "MESSAGES UIDNEXT SIZE")
    assert after["MESSAGES"] == before["MESSAGES"] + 2
    assert after["SIZE"] == before["SIZE"] + len(one) + len(two)


# --- (e) hostile input -----------------------------------------------------------------


class Hostile:
    """A raw connection whose replies are drained by a thread (so a flood never
    deadlocks on a full socket buffer) and kept for inspection."""

    def __init__(self, port: int, user: str | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        OPEN.append(self.sock)
        self.data = b""
        self.closed = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()
        self.wait(b"* OK")
        if user is not None:
            self.send(f"h0 LOGIN {user} secret\r\nh00 SELECT INBOX\r\n".encode())
            self.wait(b"h00 OK")

    def _drain(self) -> None:
        try:
            while chunk := self.sock.recv(1 << 20):
                with self.cond:
                    self.data += chunk
                    self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, data: bytes) -> bool:
        """False if the server closed the connection while we were sending."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def wait(self, needle: bytes, timeout: float = 30) -> bool:
        """Until ``needle`` arrived (True) or the connection closed (False)."""
        with self.cond:
            self.cond.wait_for(lambda: needle in self.data or self.closed, timeout)
            if needle not in self.data and not self.closed:
                raise AssertionError(f"no {needle!r} within {timeout}s: {self.data[-500:]!r}")
            return needle in self.data

    def wait_closed(self, timeout: float = 30) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.closed, timeout), self.data[-500:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.sock.close()

    def works(self, tag: str) -> bool:
        return self.send(f"{tag} NOOP\r\n".encode()) and self.wait(f"{tag} OK".encode())


class Victim(threading.Thread):
    """A normal session doing NOOP and FETCH in a loop while the attacks run."""

    def __init__(self, port: int, user: str) -> None:
        super().__init__(daemon=True)
        self.client = login(port, user, "secret", timeout=10)
        assert self.client.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
        self.stop = threading.Event()
        self.rounds = 0
        self.slowest = 0.0
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.check()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def check(self) -> None:
        t = time.monotonic()
        assert self.client.cmd("NOOP", tag="v1")[-1].startswith(b"v1 OK")
        lines = self.client.cmd("FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])", tag="v2")
        assert lines[-1].startswith(b"v2 OK"), lines
        assert any(b"Subject: victim" in x for x in lines), lines
        self.slowest = max(self.slowest, time.monotonic() - t)
        self.rounds += 1


def test_hostile_input_harms_no_other_session(
    server: ServerThread, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server.deliver(user, simple("victim"))
    victim = Victim(server.port, user)
    before = status(victim.client, "MESSAGES UIDNEXT")
    victim.start()
    rng = random.Random(4242)
    seen: list[bytes] = []
    try:
        # random binary garbage, before and after login
        for who in (None, user):
            h = Hostile(server.port, who)
            h.send(rng.randbytes(1 << 20))
            h.send(b"\r\n")
            h.close()
            seen.append(h.data)

        # a 10 MB line without CRLF: refused, and the session goes on
        h = Hostile(server.port, user)
        h.send(b"big1 NOOP " + b"A" * (10 * 1024 * 1024))
        h.send(b"\r\n")
        assert h.wait(b"big1 BAD") and h.works("big2"), h.data[-300:]
        seen.append(h.data)

        # deeply nested parentheses: BAD, and the session goes on
        h = Hostile(server.port, user)
        depth = 30000
        for i, line in enumerate(
            (
                b"FETCH 1 " + b"(" * depth + b"FLAGS" + b")" * depth,
                b"SEARCH " + b"(" * depth + b"ALL" + b")" * depth,
                b"SEARCH " + b"NOT " * depth + b"ALL",
                b"SEARCH " + b"OR " * 8000 + b"ALL " * 8001,
                b"APPEND INBOX " + b"(" * depth + b" {1+}\r\nx",
                b"STORE 1 FLAGS " + b"(" * depth + b")" * depth,
                b"SEARCH " + b"(" * depth,
                b"FETCH 1 " + b")" * depth,
            )
        ):
            tag = f"deep{i}".encode()
            assert h.send(tag + b" " + line + b"\r\n")
            assert h.wait(tag + b" BAD"), h.data[-300:]
        assert h.works("deep-ok"), h.data[-300:]
        seen.append(h.data)

        # 10,000 pipelined NOOPs, each answered, in order
        h = Hostile(server.port, user)
        assert h.send(b"".join(b"p%d NOOP\r\n" % i for i in range(10000)))
        assert h.wait(b"p9999 OK")
        tags = re.findall(rb"(?m)^(p\d+) OK", h.data)
        assert tags == [b"p%d" % i for i in range(10000)]
        seen.append(h.data)

        # a literal announcing 2^63 bytes (and more): refused without a "+"
        big = 2**63
        h = Hostile(server.port)
        for i, line in enumerate((b"LOGIN {%d}" % big, b"LOGIN a {%d}" % (big * 1000))):
            tag = b"lit%d" % i
            assert h.send(tag + b" " + line + b"\r\n")
            assert h.wait(tag + b" "), h.data[-300:]
        assert h.works("lit-ok")
        h = Hostile(server.port, user)
        for i, line in enumerate(
            (b"APPEND INBOX {%d}" % big, b"APPEND INBOX (\\Seen) {%d}" % (big - 1))
        ):
            tag = b"lit%d" % i
            assert h.send(tag + b" " + line + b"\r\n")
            assert h.wait(tag + b" "), h.data[-300:]
            assert re.search(rb"(?m)^" + tag + rb" (NO|BAD) ", h.data), h.data[-300:]
        assert b"\r\n+ " not in h.data
        assert h.works("lit-ok")
        seen.append(h.data)
        # non-synchronising: the server cannot skip 2^63 bytes, so it must hang up
        h = Hostile(server.port, user)
        h.send(b"nsl APPEND INBOX {%d+}\r\n" % big + b"x" * 1000)
        h.wait_closed()
        assert b"* BYE" in h.data, h.data[-300:]
        seen.append(h.data)
    finally:
        victim.stop.set()
        victim.join(30)
    assert victim.error is None, victim.error
    assert victim.rounds > 0
    assert victim.slowest < 5, f"a victim round took {victim.slowest:.1f}s"
    victim.check()
    assert status(victim.client, "MESSAGES UIDNEXT") == before  # nothing was appended
    fresh = login(server.port, user, "secret")
    assert fresh.cmd("NOOP", tag="n")[-1].startswith(b"n OK")
    for data in seen:
        assert b"Internal server error" not in data and b"SERVERBUG" not in data
    faults = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not faults, [r.getMessage() for r in faults]


# --- (f) what a restart keeps ----------------------------------------------------------


def test_restart_keeps_uidvalidity_and_uidnext(data_dir: Path, procs) -> None:
    srv = serve(procs, data_dir)
    c = login(srv.port)
    uids = [append(c, simple(f"restart {i}")) for i in range(3)]
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    # expunging the highest UID: UIDNEXT must not fall back to max(UID) + 1
    assert c.cmd(f"UID STORE {uids[-1]} +FLAGS.SILENT (\\Deleted)", tag="d")[-1].startswith(b"d OK")
    assert c.cmd(f"UID EXPUNGE {uids[-1]}", tag="e")[-1].startswith(b"e OK")
    assert c.cmd("UNSELECT", tag="u")[-1].startswith(b"u OK")
    before = status(c)
    assert before["UIDNEXT"] > uids[-1]
    c.cmd("LOGOUT", tag="LO")
    assert srv.terminate() == 0

    again = serve(procs, data_dir)
    c = login(again.port)
    assert status(c) == before
    lines = c.cmd("SELECT INBOX", tag="s")
    text = b"".join(lines)
    assert f"[UIDVALIDITY {before['UIDVALIDITY']}]".encode() in text, lines
    assert f"[UIDNEXT {before['UIDNEXT']}]".encode() in text, lines
    assert append(c, simple("after restart")) == before["UIDNEXT"]
    c.cmd("LOGOUT", tag="LO")
    assert again.terminate() == 0
