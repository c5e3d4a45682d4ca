"""RFC 9208 QUOTA against the real server: GETQUOTAROOT, GETQUOTA, SETQUOTA, and
NO [OVERQUOTA] on APPEND, COPY and delivery, with byte-exact responses."""

from __future__ import annotations

import re

import pytest

from carteiro.store.errors import QuotaExceeded
from carteiro.store.interface import Quota
from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def login(server: ServerThread, user: str) -> RawClient:
    c = RawClient(server.port)
    assert c.cmd(f"LOGIN {user} secret", tag="L")[-1].startswith(b"L OK")
    return c


def set_quota(server: ServerThread, user: str, storage: int | None, messages: int | None) -> None:
    server.call(server.store.set_quota(user, storage, messages))


def quota(server: ServerThread, user: str) -> Quota:
    account = server.call(server.store.get_account(user))
    assert account is not None
    return server.call(server.store.quota(account.id))


def kib(octets: int) -> int:
    return -(-octets // 1024)


def append(c: RawClient, tag: str, *messages: bytes, mailbox: str = "INBOX") -> list[bytes]:
    """APPEND (MULTIAPPEND for several) with non-synchronising literals."""
    line = f"{tag} APPEND {mailbox}".encode()
    for m in messages:
        line += b" {%d+}\r\n" % len(m) + m
    return c.cmd(line + b"\r\n")


def status_messages(c: RawClient, mailbox: str) -> int:
    lines = c.cmd(f"STATUS {mailbox} (MESSAGES)", tag="st")
    match = re.search(rb"MESSAGES (\d+)", b"".join(lines))
    assert match is not None, lines
    return int(match.group(1))


# --- bad syntax and states first ------------------------------------------------------


def test_quota_commands_syntax_and_state(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    assert c.cmd('GETQUOTA ""', tag="a")[-1].startswith(b"a BAD")  # not authenticated
    assert c.cmd("GETQUOTAROOT INBOX", tag="b")[-1].startswith(b"b BAD")
    assert c.cmd(f"LOGIN {user} secret", tag="L")[-1].startswith(b"L OK")
    assert c.cmd("GETQUOTA", tag="c")[-1].startswith(b"c BAD")
    assert c.cmd("GETQUOTAROOT", tag="d")[-1].startswith(b"d BAD")
    assert c.cmd('SETQUOTA "" STORAGE', tag="e")[-1].startswith(b"e BAD")
    assert c.cmd("NOOP", tag="f")[-1].startswith(b"f OK")  # the connection lives on


# --- GETQUOTAROOT / GETQUOTA / SETQUOTA -------------------------------------------------


def test_getquotaroot_and_getquota(server: ServerThread, user: str) -> None:
    m1, m2 = simple("one"), simple("two", body="x" * 3000 + "\r\n")
    server.deliver(user, m1)
    server.deliver(user, m2)
    used = len(m1) + len(m2)
    set_quota(server, user, 2 * 1024 * 1024, 100)
    c = login(server, user)
    assert c.cmd("GETQUOTAROOT INBOX", tag="q1") == [
        b'* QUOTAROOT INBOX ""\r\n',
        b'* QUOTA "" (STORAGE %d 2048 MESSAGE 2 100)\r\n' % kib(used),
        b"q1 OK GETQUOTAROOT completed\r\n",
    ]
    assert c.cmd('GETQUOTA ""', tag="q2") == [
        b'* QUOTA "" (STORAGE %d 2048 MESSAGE 2 100)\r\n' % kib(used),
        b"q2 OK GETQUOTA completed\r\n",
    ]
    # every mailbox of the account shares the one root, whatever its name
    assert c.cmd("CREATE Work/Entw&APw-rfe", tag="cr")[-1].startswith(b"cr OK")
    assert c.cmd('GETQUOTAROOT "Work/Entw&APw-rfe"', tag="q3")[:2] == [
        b'* QUOTAROOT Work/Entw&APw-rfe ""\r\n',
        b'* QUOTA "" (STORAGE %d 2048 MESSAGE 2 100)\r\n' % kib(used),
    ]
    assert c.cmd("GETQUOTAROOT Nope", tag="q4") == [b"q4 NO [NONEXISTENT] No such mailbox\r\n"]
    assert c.cmd("GETQUOTA INBOX", tag="q5") == [b"q5 NO [NONEXISTENT] No such quota root\r\n"]
    assert c.cmd('SETQUOTA "" (STORAGE 1)', tag="q6") == [
        b"q6 NO [NOPERM] Quota limits are set by the administrator\r\n"
    ]
    assert quota(server, user).storage_limit == 2 * 1024 * 1024  # unchanged


def test_only_limited_resources_are_listed(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("a"))
    c = login(server, user)
    # no limit at all: no quota root applies (RFC 9208 allows an empty list)
    assert c.cmd("GETQUOTAROOT INBOX", tag="a") == [
        b"* QUOTAROOT INBOX\r\n",
        b"a OK GETQUOTAROOT completed\r\n",
    ]
    assert c.cmd('GETQUOTA ""', tag="b")[-1].startswith(b"b NO [NONEXISTENT]")
    set_quota(server, user, None, 10)
    assert c.cmd('GETQUOTA ""', tag="c")[0] == b'* QUOTA "" (MESSAGE 1 10)\r\n'
    set_quota(server, user, 1536, None)  # not a whole KiB: rounded up, as usage is
    assert c.cmd("GETQUOTAROOT INBOX", tag="d")[:2] == [
        b'* QUOTAROOT INBOX ""\r\n',
        b'* QUOTA "" (STORAGE 1 2)\r\n',
    ]


# --- enforcement ----------------------------------------------------------------------


def test_append_over_quota_is_refused_storing_nothing(server: ServerThread, user: str) -> None:
    first = simple("first", body="a" * 900 + "\r\n")
    set_quota(server, user, len(first) + 1000, None)
    c = login(server, user)
    assert b"OK [APPENDUID" in append(c, "a1", first)[-1]
    big = simple("big", body="b" * 1000 + "\r\n")
    assert append(c, "a2", big) == [b"a2 NO [OVERQUOTA] Quota exceeded\r\n"]
    # MULTIAPPEND whose first message fits but not both: all or nothing
    small = simple("s", body="c" * 100 + "\r\n")
    assert append(c, "a3", small, big)[-1] == b"a3 NO [OVERQUOTA] Quota exceeded\r\n"
    assert status_messages(c, "INBOX") == 1
    assert quota(server, user).storage_used == len(first)
    # exactly up to the limit is fine
    rest = len(first) + 1000 - quota(server, user).storage_used
    filler = simple("f", body="d" * (rest - len(simple("f", body="")) - 2) + "\r\n")
    assert len(filler) == rest
    assert b"OK [APPENDUID" in append(c, "a4", filler)[-1]
    assert quota(server, user).storage_used == len(first) + 1000
    assert append(c, "a5", simple("x", body=""))[-1].startswith(b"a5 NO [OVERQUOTA]")
    assert status_messages(c, "INBOX") == 2


def test_copy_over_quota_refused_move_allowed(server: ServerThread, user: str) -> None:
    for i in range(3):
        server.deliver(user, simple(f"m{i}"))
    set_quota(server, user, None, 3)  # exactly full
    c = login(server, user)
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    assert c.cmd("COPY 1 Archive", tag="c1") == [b"c1 NO [OVERQUOTA] Quota exceeded\r\n"]
    assert c.cmd("UID COPY 1:3 Archive", tag="c2") == [b"c2 NO [OVERQUOTA] Quota exceeded\r\n"]
    assert status_messages(c, "Archive") == 0
    before = quota(server, user)
    moved = c.cmd("MOVE 1:2 Archive", tag="m1")
    assert moved[-1] == b"m1 OK MOVE completed\r\n", moved
    assert b"* OK [COPYUID " in moved[0]
    assert status_messages(c, "Archive") == 2
    assert quota(server, user) == before  # moving within the account changes nothing
    assert c.cmd("UID MOVE 3 Trash", tag="m2")[-1] == b"m2 OK MOVE completed\r\n"
    assert (status_messages(c, "INBOX"), quota(server, user).messages_used) == (0, 3)


def test_delivery_over_quota_is_refused(server: ServerThread, user: str) -> None:
    set_quota(server, user, None, 1)
    server.deliver(user, simple("fits"))
    with pytest.raises(QuotaExceeded):
        server.deliver(user, simple("does not fit"))
    c = login(server, user)
    assert status_messages(c, "INBOX") == 1
    assert c.cmd('GETQUOTA ""', tag="g")[0] == b'* QUOTA "" (MESSAGE 1 1)\r\n'


def test_usage_exact_after_expunge(server: ServerThread, user: str) -> None:
    msgs = [simple(f"e{i}", body="z" * (500 * i) + "\r\n") for i in range(1, 5)]
    for m in msgs:
        server.deliver(user, m)
    total = sum(map(len, msgs))
    set_quota(server, user, total, 4)
    c = login(server, user)
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    assert append(c, "full", simple("no room"))[-1].startswith(b"full NO [OVERQUOTA]")
    assert c.cmd("STORE 2,4 +FLAGS.SILENT (\\Deleted)", tag="f")[-1].startswith(b"f OK")
    assert c.cmd("EXPUNGE", tag="x")[-1].startswith(b"x OK")
    left = len(msgs[0]) + len(msgs[2])
    assert quota(server, user) == Quota(total, left, 4, 2)
    assert c.cmd('GETQUOTA ""', tag="g")[0] == (
        b'* QUOTA "" (STORAGE %d %d MESSAGE 2 4)\r\n' % (kib(left), kib(total))
    )
    # the room freed is usable again, to the octet
    assert b"OK [APPENDUID" in append(c, "again", msgs[1])[-1]
    assert b"OK [APPENDUID" in append(c, "again2", msgs[3])[-1]
    assert quota(server, user) == Quota(total, total, 4, 4)


def test_replace_at_full_quota_saves_the_smaller_draft(server: ServerThread, user: str) -> None:
    """REPLACE is one transaction: a draft shrinking at full quota is not refused, and a
    draft growing past the quota is refused with the old version kept."""
    c = login(server, user)
    old = simple("draft v1", "x" * 2000)
    assert append(c, "a", old)[-1].startswith(b"a OK")
    used = quota(server, user).storage_used
    set_quota(server, user, used, 1)
    assert c.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    assert b"[OVERQUOTA]" in append(c, "b", simple("other", "y"))[-1]
    smaller = simple("draft v2", "x" * 1000)
    lines = c.cmd(b"r1 UID REPLACE 1 INBOX {%d+}\r\n%s\r\n" % (len(smaller), smaller))
    assert lines[-1].startswith(b"r1 OK"), lines
    assert b"* OK [APPENDUID " in lines[0] and b" 2] " in lines[0]
    assert b"* 1 EXPUNGE\r\n" in lines
    bigger = simple("draft v3", "x" * 5000)
    lines = c.cmd(b"r2 UID REPLACE 2 INBOX {%d+}\r\n%s\r\n" % (len(bigger), bigger))
    assert lines[-1].startswith(b"r2 NO [OVERQUOTA]"), lines
    fetched = c.cmd("UID FETCH 1:* (UID RFC822.SIZE)", tag="f")
    assert fetched[0] == b"* 1 FETCH (UID 2 RFC822.SIZE %d)\r\n" % len(smaller)
    assert len(fetched) == 2
    c.close()
