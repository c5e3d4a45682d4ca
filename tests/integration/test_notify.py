"""RFC 5465 NOTIFY against the real server, beyond the transcript: immediate versus
delayed expunges, NOTIFY NONE, IDLE reporting other mailboxes, UIDONLY together with
NOTIFY, and imaplib issuing the command."""

from __future__ import annotations

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple

#: how long a test waits to be sure that nothing arrives (absence cannot be awaited)
QUIET = 0.4


def login(server: ServerThread, user: str, tag: str = "L") -> RawClient:
    c = RawClient(server.port)
    assert c.cmd(f"LOGIN {user} secret", tag=tag)[-1].startswith(tag.encode() + b" OK")
    return c


def nothing_arrives(c: RawClient) -> bool:
    c.sock.settimeout(QUIET)
    try:
        c.readline()
    except TimeoutError:
        return True
    finally:
        c.sock.settimeout(30)
    return False


@pytest.fixture
def pair(server: ServerThread, user: str) -> tuple[RawClient, RawClient]:
    for i in range(3):
        server.deliver(user, simple(f"notify {i}"))
    a, b = login(server, user, "A"), login(server, user, "B")
    assert b.cmd("SELECT INBOX", tag="bs")[-1].startswith(b"bs OK")
    return a, b


def test_selected_filter_pushes_expunges_at_once(pair: tuple[RawClient, RawClient]) -> None:
    a, b = pair
    assert a.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    out = a.cmd("NOTIFY SET (selected (MessageNew MessageExpunge FlagChange))", tag="n")
    assert out[-1].startswith(b"n OK")
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)", tag="b1")
    assert a.readline() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted))\r\n"
    b.cmd("EXPUNGE", tag="b2")
    assert a.readline() == b"* 1 EXPUNGE\r\n"


def test_selected_delayed_keeps_expunges_for_a_command(pair: tuple[RawClient, RawClient]) -> None:
    a, b = pair
    assert a.cmd("SELECT INBOX", tag="s")[-1].startswith(b"s OK")
    a.cmd("NOTIFY SET (selected-delayed (MessageNew MessageExpunge))", tag="n")
    b.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)", tag="b1")
    b.cmd("EXPUNGE", tag="b2")
    assert nothing_arrives(a)
    # a new message is announced at once, the expunge still waits
    b.cmd(b"b3 APPEND INBOX {%d+}\r\n%s\r\n" % (len(simple("x")), simple("x")))
    assert a.readline() == b"* 4 EXISTS\r\n"
    # \Recent goes to whichever session looks first: B's own APPEND may claim it
    assert a.readline() in (b"* 0 RECENT\r\n", b"* 1 RECENT\r\n")
    assert nothing_arrives(a)
    out = a.cmd("NOOP", tag="p")
    assert b"* 1 EXPUNGE\r\n" in out and out[-1].startswith(b"p OK")


def test_notify_none_silences_the_session(server: ServerThread, user: str) -> None:
    a, b = login(server, user, "A"), login(server, user, "B")
    a.cmd("SELECT INBOX", tag="s")
    a.cmd("NOTIFY NONE", tag="n")
    b.cmd(b"b1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(simple("y")), simple("y")))
    b.cmd("CREATE Quiet", tag="b2")
    assert nothing_arrives(a)
    # the selected mailbox still follows RFC 9051 at command time
    assert b"* 1 EXISTS\r\n" in a.cmd("NOOP", tag="p")


def test_idle_reports_other_mailboxes(server: ServerThread, user: str) -> None:
    a, b = login(server, user, "A"), login(server, user, "B")
    a.cmd("CREATE Archive", tag="c")
    a.cmd("SELECT INBOX", tag="s")
    a.cmd("NOTIFY SET (personal (MessageNew MessageExpunge))", tag="n")
    a.send(b"i IDLE\r\n")
    assert a.readline().startswith(b"+ ")
    b.cmd(b"b1 APPEND Archive {%d+}\r\n%s\r\n" % (len(simple("z")), simple("z")))
    assert a.readline() == b"* STATUS Archive (MESSAGES 1 UIDNEXT 2)\r\n"
    # INBOX is selected and SELECTED was not asked for: IDLE stays silent about it
    b.cmd(b"b2 APPEND INBOX {%d+}\r\n%s\r\n" % (len(simple("w")), simple("w")))
    assert nothing_arrives(a)
    a.send(b"DONE\r\n")
    # the tagged reply to IDLE brings the selected mailbox up to date (RFC 9051)
    assert a.readline() == b"* 1 EXISTS\r\n"
    assert a.readline() == b"* 1 RECENT\r\n"
    assert a.readline().startswith(b"i OK")


def test_uidonly_and_notify_fetch_new_messages_as_uidfetch(server: ServerThread, user: str) -> None:
    a, b = login(server, user, "A"), login(server, user, "B")
    a.cmd("ENABLE UIDONLY", tag="e")
    a.cmd("SELECT INBOX", tag="s")
    a.cmd("NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge))", tag="n")
    msg = simple("uidonly")
    b.cmd(b"b1 APPEND INBOX (\\Flagged) {%d+}\r\n%s\r\n" % (len(msg), msg))
    assert a.readline() == b"* 1 EXISTS\r\n"
    assert a.readline() == b"* 1 RECENT\r\n"
    assert a.readline() == b"* 1 UIDFETCH (UID 1 FLAGS (\\Flagged \\Recent))\r\n"


def test_imaplib_issues_notify(
    server: ServerThread, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imaplib

    monkeypatch.setitem(imaplib.Commands, "NOTIFY", ("AUTH", "SELECTED"))
    conn = server.connect(user)
    try:
        assert "NOTIFY" in conn.capabilities
        typ, _ = conn._simple_command(
            "NOTIFY", "SET", "STATUS", "(personal", "(MessageNew", "MessageExpunge))"
        )
        assert typ == "OK"
        _, statuses = conn.response("STATUS")
        assert b"INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY " in b" ".join(statuses)
        with pytest.raises(conn.error, match="FlagChange needs MessageNew"):
            conn._simple_command("NOTIFY", "SET", "(personal", "(FlagChange))")
        typ, data = conn._simple_command(
            "NOTIFY", "SET", "(personal", "(AnnotationChange", "MessageNew", "MessageExpunge))"
        )
        assert typ == "NO" and data[0].startswith(b"[BADEVENT (MessageNew")
    finally:
        conn.logout()
