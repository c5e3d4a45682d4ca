"""Many sessions on one mailbox: changes reach IDLE sessions within a second and others
at their next command, with correct EXISTS / EXPUNGE / FETCH responses."""

from __future__ import annotations

import time

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def session(server: ServerThread, user: str) -> RawClient:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    c.cmd("SELECT INBOX", tag="S")
    return c


def read_until(c: RawClient, predicate, timeout: float = 1.0) -> list[bytes]:
    """Untagged lines until ``predicate(line)``; fails after ``timeout`` seconds."""
    c.sock.settimeout(timeout)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = c.readline()
            lines.append(line)
            if predicate(line):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; got {lines}")
    except TimeoutError:
        raise AssertionError(f"no update within {timeout}s; got {lines}") from None
    finally:
        c.sock.settimeout(30)


def test_idle_sessions_see_new_mail_flags_and_expunges_within_a_second(
    server: ServerThread, user: str
) -> None:
    watchers = [session(server, user) for _ in range(3)]
    for w in watchers:
        w.send(b"i IDLE\r\n")
        assert w.readline().startswith(b"+ ")
    actor = session(server, user)
    actor.cmd(b"APPEND INBOX {%d+}\r\n" % len(simple("new")) + simple("new") + b"\r\n", tag="a")
    for w in watchers:
        read_until(w, lambda line: line == b"* 1 EXISTS\r\n")
    actor.cmd("NOOP", tag="n")
    actor.cmd("STORE 1 +FLAGS (\\Flagged)", tag="b")
    for w in watchers:
        lines = read_until(w, lambda line: b"FETCH" in line)
        assert lines[-1] == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n" or b"\\Flagged" in lines[-1]
    actor.cmd("STORE 1 +FLAGS (\\Deleted)", tag="c")
    actor.cmd("EXPUNGE", tag="d")
    for w in watchers:
        read_until(w, lambda line: line == b"* 1 EXPUNGE\r\n")
        w.send(b"DONE\r\n")
        assert read_until(w, lambda line: line.startswith(b"i "))[-1].startswith(b"i OK")
    # new mail delivered from outside IMAP (carteiro deliver) also wakes IDLE
    w = watchers[0]
    w.send(b"j IDLE\r\n")
    w.readline()
    server.deliver(user, simple("external"))
    read_until(w, lambda line: line.endswith(b" EXISTS\r\n"))
    w.send(b"DONE\r\n")
    read_until(w, lambda line: line.startswith(b"j OK"))
    for c in [*watchers, actor]:
        c.close()


def test_non_idle_session_learns_at_next_command(server: ServerThread, user: str) -> None:
    for i in range(3):
        server.deliver(user, simple(f"n{i}"))
    a = session(server, user)
    b = session(server, user)
    b.cmd("STORE 2 +FLAGS (\\Deleted)", tag="x")
    b.cmd("EXPUNGE", tag="y")
    server.deliver(user, simple("late"))
    # FETCH by sequence number must not see the EXPUNGE (RFC 9051 §7.5.1) ...
    out = a.cmd("FETCH 1:* (UID)", tag="f")
    assert not any(b"EXPUNGE" in x for x in out)
    assert b"* 4 EXISTS\r\n" in out
    # 1:* means the messages this session knows of; the new one is announced after
    # (MSN 2 is expunged elsewhere but keeps its number until NOOP; it has no data)
    assert [x for x in out if b"FETCH (UID" in x] == [
        b"* 1 FETCH (UID 1)\r\n",
        b"* 3 FETCH (UID 3)\r\n",
    ]
    # ... but NOOP delivers it, and the numbers shift accordingly
    out = a.cmd("NOOP", tag="g")
    assert out[:-1] == [b"* 2 EXPUNGE\r\n"]
    assert a.cmd("FETCH 3 (UID)", tag="h")[0] == b"* 3 FETCH (UID 4)\r\n"
    # UID commands may see expunges at once
    b.cmd("STORE 1 +FLAGS (\\Deleted)", tag="i")
    b.cmd("EXPUNGE", tag="j")
    out = a.cmd("UID FETCH 1:* (FLAGS)", tag="k")
    assert out[-2] == b"* 1 EXPUNGE\r\n"  # after the FETCH data, before the tagged OK
    a.close()
    b.close()


def test_mailbox_creation_and_deletion_reach_other_sessions(
    server: ServerThread, user: str
) -> None:
    a = session(server, user)
    b = RawClient(server.port)
    b.cmd(f"LOGIN {user} secret", tag="L")
    b.cmd("CREATE Shared", tag="c")
    assert any(x.endswith(b" Shared\r\n") for x in a.cmd('LIST "" "*"', tag="l"))
    a.cmd("SELECT Shared", tag="s")
    b.cmd("DELETE Shared", tag="d")
    out = a.cmd("NOOP", tag="n")
    assert out[0].startswith(b"* BYE")
    a.close()
    b.close()
