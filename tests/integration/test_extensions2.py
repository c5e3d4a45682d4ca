"""UTF8=ACCEPT, INPROGRESS, PARTIAL, REPLACE against the real server."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from carteiro.delivery import new_message
from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def login(server: ServerThread, user: str) -> RawClient:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    return c


def populate(server: ServerThread, user: str, count: int) -> None:
    async def fill() -> None:
        account = await server.store.get_account(user)
        assert account is not None
        box = await server.store.get_mailbox(account.id, "INBOX")
        assert box is not None
        when = datetime.datetime.now().astimezone()
        msgs = [await new_message(simple(f"bulk {i}"), frozenset(), when) for i in range(count)]
        await server.store.append(box.id, msgs)

    server.call(fill())


def test_utf8_accept(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert b"UTF8=ACCEPT" in c.cmd("CAPABILITY", tag="a")[0]
    assert c.cmd("ENABLE UTF8=ACCEPT", tag="b")[0] == b"* ENABLED UTF8=ACCEPT\r\n"
    assert c.cmd('CREATE "Relatórios"'.encode(), tag="c")[-1].startswith(b"c OK")
    assert any("Relatórios".encode() in x for x in c.cmd('LIST "" "R*"', tag="d"))
    raw = "Subject: Olá\r\nFrom: José <jose@exemplo.pt>\r\n\r\nCorpo\r\n".encode()
    out = c.cmd(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")\r\n", tag="e")
    assert out[-1].startswith(b"e OK [APPENDUID")
    c.cmd("SELECT INBOX", tag="f")
    assert raw in c.cmd("FETCH 1 BODY.PEEK[]", tag="g")[0]
    c.close()


def test_inprogress_on_long_commands(server: ServerThread, tmp_path: Path) -> None:
    eager = ServerThread(tmp_path, progress_interval=0.0)
    try:
        user = eager.new_user()
        populate(eager, user, 1200)
        c = login(eager, user)
        assert b"INPROGRESS" in c.cmd("CAPABILITY", tag="a")[0]
        c.cmd("SELECT INBOX", tag="b")
        out = c.cmd("FETCH 1:* (FLAGS)", tag="f1")
        notes = [x for x in out if b"INPROGRESS" in x]
        assert notes
        assert all(re.match(rb'\* OK \[INPROGRESS \("f1" \d+ 1200\)\]', x) for x in notes)
        c.close()
    finally:
        eager.stop()
    # the default interval (1 s) is far longer than a 1,200-message FETCH
    user = server.new_user()
    populate(server, user, 1200)
    c = login(server, user)
    c.cmd("SELECT INBOX", tag="b")
    assert not any(b"INPROGRESS" in x for x in c.cmd("FETCH 1:* (FLAGS)", tag="f2"))
    c.close()


def test_partial_search_and_fetch(server: ServerThread, user: str) -> None:
    populate(server, user, 300)
    c = login(server, user)
    assert b"PARTIAL" in c.cmd("CAPABILITY", tag="a")[0]
    c.cmd("SELECT INBOX", tag="b")
    out = c.cmd("UID SEARCH RETURN (PARTIAL 1:100 COUNT) ALL", tag="c")[0]
    assert out == b'* ESEARCH (TAG "c") UID COUNT 300 PARTIAL (1:100 1:100)\r\n'
    out = c.cmd("SEARCH RETURN (PARTIAL -1:-10) ALL", tag="d")[0]
    assert out == b'* ESEARCH (TAG "d") PARTIAL (-1:-10 291:300)\r\n'
    out = c.cmd("SEARCH RETURN (PARTIAL 301:400) ALL", tag="e")[0]
    assert out == b'* ESEARCH (TAG "e") PARTIAL (301:400 NIL)\r\n'
    fetched = c.cmd("UID FETCH 1:* (UID) (PARTIAL -1:-5)", tag="f")
    assert [x.split()[4].rstrip(b")") for x in fetched[:-1]] == [
        b"296",
        b"297",
        b"298",
        b"299",
        b"300",
    ]
    c.close()


def test_replace(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("draft v1"))
    server.deliver(user, simple("other"))
    c = login(server, user)
    assert b"REPLACE" in c.cmd("CAPABILITY", tag="a")[0]
    c.cmd("SELECT INBOX", tag="b")
    v2 = simple("draft v2")
    out = c.cmd(b"REPLACE 1 Drafts (\\Draft) {%d+}\r\n" % len(v2) + v2 + b"\r\n", tag="c")
    assert out[0].startswith(b"* OK [APPENDUID ") and b"* 1 EXPUNGE\r\n" in out
    assert out[-1].startswith(b"c OK")
    assert b"MESSAGES 1" in c.cmd("STATUS Drafts (MESSAGES)", tag="d")[0]
    v3 = simple("draft v3")
    out = c.cmd(b"UID REPLACE 2 INBOX {%d+}\r\n" % len(v3) + v3 + b"\r\n", tag="e")
    assert out[-1].startswith(b"e OK")
    assert c.cmd(b"UID REPLACE 99 INBOX {%d+}\r\n" % len(v3) + v3 + b"\r\n", tag="f")[
        -1
    ].startswith(b"f NO")
    body = c.cmd("FETCH 1:* BODY.PEEK[]", tag="g")
    assert len(body) == 2 and v3 in body[0]  # only the replacement is left
    c.close()


def test_uidonly_with_imaplib(server: ServerThread) -> None:
    """RFC 9586 end to end with Python's imaplib: UIDFETCH responses are collected by
    name, sequence-number commands are refused, expunges arrive as VANISHED."""
    user = server.new_user()
    for i in range(3):
        server.deliver(user, simple(f"uidonly {i}"))
    conn = server.connect(user)
    try:
        assert "UIDONLY" in conn.capabilities
        typ, data = conn._simple_command("ENABLE", "UIDONLY")
        assert typ == "OK"
        assert conn.untagged_responses.pop("ENABLED") == [b"UIDONLY"]
        conn.select("INBOX")
        typ, _ = conn.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
        assert typ == "OK"
        _, fetched = conn.response("UIDFETCH")
        assert [x.split(b" ", 1)[0] for x in fetched] == [b"1", b"2", b"3"]
        assert all(b"RFC822.SIZE" in x and b"UID " not in x for x in fetched)
        try:
            conn.fetch("1", "(FLAGS)")
        except conn.error as exc:
            assert "UIDREQUIRED" in str(exc)
        else:
            raise AssertionError("FETCH by sequence number was accepted under UIDONLY")
        conn.uid("STORE", "2", "+FLAGS.SILENT", "(\\Deleted)")
        typ, _ = conn.expunge()
        assert typ == "OK"
        _, vanished = conn.response("VANISHED")
        assert vanished == [b"2"]
        _, expunged = conn.response("EXPUNGE")
        assert expunged == [None]
    finally:
        conn.logout()


def test_uidonly_refuses_qresync_sequence_match_data(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("one"))
    c = login(server, user)
    c.cmd("ENABLE QRESYNC UIDONLY", tag="e")
    out = c.cmd("SELECT INBOX (QRESYNC (1 1 1:5 (1 1)))", tag="s")
    assert out[-1].startswith(b"s BAD [UIDREQUIRED]")
    out = c.cmd("SELECT INBOX (QRESYNC (1 1 1:5))", tag="t")
    assert out[-1].startswith(b"t OK")
    c.close()


def test_messagelimit_with_imaplib(tmp_path: Path) -> None:
    """RFC 9738 through imaplib: a limited FETCH returns the highest UIDs and OK, a COPY
    over the limit is refused whole with NO [MESSAGELIMIT n uid]."""
    limited = ServerThread(tmp_path, message_limit=2)
    try:
        user = limited.new_user()
        for i in range(5):
            limited.deliver(user, simple(f"limited {i}"))
        conn = limited.connect(user)
        assert "MESSAGELIMIT=2" in conn.capabilities
        conn.select("INBOX")
        typ, data = conn.uid("FETCH", "1:*", "(UID)")
        assert typ == "OK"
        assert [d for d in data if d] == [b"5 (UID 5)", b"4 (UID 4)"]
        typ, data = conn.uid("COPY", "1:*", "Trash")
        assert typ == "NO" and data[0].startswith(b"[MESSAGELIMIT 2 4]")
        assert conn.status("Trash", "(MESSAGES)")[1] == [b"Trash (MESSAGES 0)"]
        typ, data = conn.uid("COPY", "4:5", "Trash")
        assert typ == "OK"
        conn.logout()
    finally:
        limited.stop()
