"""Regression tests for defects found in review (one test per finding)."""

from __future__ import annotations

import socket

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def test_unauthenticate_does_not_leak_the_previous_accounts_mailboxes(server: ServerThread) -> None:
    a, b = server.new_user(), server.new_user()
    c = RawClient(server.port)
    c.cmd(f"LOGIN {a} secret", tag="1")
    m = simple("for A")
    c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n", tag="2")  # fills APPEND's cache
    c.cmd("UNAUTHENTICATE", tag="3")
    c.cmd(f"LOGIN {b} secret", tag="4")
    m = simple("secret for B only")
    assert c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n", tag="5")[-1].startswith(b"5 OK")
    assert b"MESSAGES 1" in c.cmd("STATUS INBOX (MESSAGES)", tag="6")[0]
    c.close()
    other = RawClient(server.port)
    other.cmd(f"LOGIN {a} secret", tag="7")
    assert b"MESSAGES 1" in other.cmd("STATUS INBOX (MESSAGES)", tag="8")[0]  # only A's own
    other.close()


def test_big_literals_are_refused_before_login(server: ServerThread) -> None:
    c = RawClient(server.port)
    c.send(b"a1 APPEND INBOX {60000000}\r\n")
    assert c.readline().startswith(b"a1 NO [TOOBIG]")
    assert c.cmd("NOOP", tag="a2")[-1].startswith(b"a2 OK")
    c.close()


def test_login_has_one_deadline_not_one_per_read(tmp_path) -> None:
    srv = ServerThread(tmp_path, login_timeout=1.0)
    try:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.recv(4096)
        got = b""
        for _ in range(12):  # drip a byte every 0.3 s: must still be cut off at ~1 s
            try:
                sock.sendall(b"x")
            except OSError:
                break
            sock.settimeout(0.3)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            if not data:
                break
            got += data
        assert b"BYE" in got
        sock.close()
    finally:
        srv.stop()


def test_fetch_caps_the_number_of_body_sections(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("big"))
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    c.cmd("SELECT INBOX", tag="S")
    items = " ".join(f"BODY.PEEK[]<{i}.100>" for i in range(40))
    assert c.cmd(f"FETCH 1 ({items})", tag="a")[-1].startswith(b"a NO [LIMIT]")
    assert c.cmd("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT])", tag="b")[-1].startswith(b"b OK")
    c.close()


def test_authenticate_timeout_ends_the_session(tmp_path) -> None:
    srv = ServerThread(tmp_path, login_timeout=0.5)
    try:
        c = RawClient(srv.port)
        c.send(b"a1 AUTHENTICATE PLAIN\r\n")
        assert c.readline() == b"+ \r\n"
        c.sock.settimeout(5)
        rest = b""
        while True:
            data = c.sock.recv(4096)
            if not data:
                break
            rest += data
        assert b"BYE" in rest  # and the server closed the connection
        c.close()
    finally:
        srv.stop()


def test_deleting_the_selected_mailbox_after_renaming_it(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    c.cmd("CREATE Foo", tag="a")
    c.cmd("SELECT Foo", tag="b")
    c.cmd("RENAME Foo Bar", tag="c")
    out = c.cmd("DELETE Bar", tag="d")
    assert out[-1].startswith(b"d OK") and not any(b"BYE" in x for x in out)
    assert c.cmd("FETCH 1 FLAGS", tag="e")[-1].startswith(b"e BAD")  # nothing selected now
    assert c.cmd("NOOP", tag="f")[-1].startswith(b"f OK")
    c.close()


def test_search_saved_result_on_a_large_mailbox_is_linear(server: ServerThread, user: str) -> None:
    """$ membership is a bisection, not a list scan (was quadratic)."""
    from tests.integration.test_extensions2 import populate

    populate(server, user, 3000)
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    c.cmd("SELECT INBOX", tag="S")
    c.cmd("SEARCH RETURN (SAVE) ALL", tag="a")
    assert c.cmd("SEARCH RETURN (COUNT) $", tag="b")[0] == b'* ESEARCH (TAG "b") COUNT 3000\r\n'
    c.close()


def test_half_sent_done_does_not_stop_idle_pushes(server: ServerThread, user: str) -> None:
    """Review finding: while the client was sending DONE in two pieces, IDLE stopped
    pushing updates until the line was complete."""
    idler = RawClient(server.port)
    idler.cmd(f"LOGIN {user} secret", tag="l")
    idler.cmd("SELECT INBOX", tag="s")
    idler.send(b"i IDLE\r\n")
    assert idler.readline().startswith(b"+ ")
    idler.send(b"DO")  # half of DONE
    server.deliver(user, simple("during a half-sent DONE"))
    assert idler.readline() == b"* 1 EXISTS\r\n"  # still pushed
    idler.send(b"NE\r\n")
    lines = [idler.readline()]
    while not lines[-1].startswith(b"i "):
        lines.append(idler.readline())
    assert lines[-1].startswith(b"i OK")
    idler.close()
