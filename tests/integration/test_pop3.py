"""POP3 against the real server with Python's poplib, over STLS and implicit TLS:
the maildrop is INBOX, UIDL is stable, DELE takes effect at QUIT only, one session per
maildrop, IMAP alongside, and the shared authentication rules."""

from __future__ import annotations

import dataclasses
import poplib
import socket
import time

import pytest

from carteiro.auth.service import app_password_digest
from tests.integration.harness import OPEN, ServerThread
from tests.integration.mbox import simple


def pop(server: ServerThread, user: str | None = None, *, implicit: bool = False) -> poplib.POP3:
    ctx = server.client_tls()
    if implicit:
        conn: poplib.POP3 = poplib.POP3_SSL("127.0.0.1", server.pop3s_port, context=ctx, timeout=30)
    else:
        conn = poplib.POP3("127.0.0.1", server.pop3_port, timeout=30)
        conn.stls(context=ctx)
    OPEN.append(conn.sock)
    if user is not None:
        conn.user(user)
        conn.pass_("secret")
    return conn


@pytest.fixture
def filled(server: ServerThread) -> str:
    user = server.new_user()
    for i in range(3):
        server.deliver(user, simple(f"pop {i}", f"body {i}\r\n.dot line\r\n"))
    return user


def test_capabilities_and_plaintext_policy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    strict = ServerThread(tmp_path, trusted_networks=())
    try:
        conn = poplib.POP3("127.0.0.1", strict.pop3_port, timeout=30)
        caps = conn.capa()
        assert "STLS" in caps and "USER" not in caps and "RESP-CODES" in caps
        assert caps["SASL"] == ["SCRAM-SHA-256"]
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            conn.user("someone@example.org")
        conn.stls(context=strict.client_tls())
        caps = conn.capa()
        assert "STLS" not in caps and "USER" in caps and "PLAIN" in caps["SASL"]
        conn.quit()
    finally:
        strict.stop()


def test_stat_list_uidl_retr_top(server: ServerThread, filled: str) -> None:
    conn = pop(server, filled)
    count, size = conn.stat()
    assert count == 3
    _, listing, _ = conn.list()
    sizes = [int(x.split()[1]) for x in listing]
    assert sum(sizes) == size
    _, uidls, _ = conn.uidl()
    ids = [x.split()[1] for x in uidls]
    assert len(set(ids)) == 3 and all(b"." in i for i in ids)
    _, lines, octets = conn.retr(2)
    assert b"Subject: pop 1" in lines and b".dot line" in lines  # dot-unstuffed by poplib
    assert octets >= sizes[1]
    _, top, _ = conn.top(1, 0)
    assert b"Subject: pop 0" in top and b"body 0" not in top
    conn.quit()
    again = pop(server, filled, implicit=True)
    assert [x.split()[1] for x in again.uidl()[1]] == ids  # stable across sessions
    again.quit()


def test_dele_applies_at_quit_and_imap_sees_it(server: ServerThread, filled: str) -> None:
    imap = server.connect(filled)
    imap.select("INBOX")
    conn = pop(server, filled)
    conn.dele(1)
    with pytest.raises(poplib.error_proto):
        conn.retr(1)
    conn.rset()
    conn.dele(2)
    assert server.call(_count(server, filled)) == 3  # nothing removed before QUIT
    conn.quit()
    assert server.call(_count(server, filled)) == 2
    imap.noop()
    assert imap.response("EXPUNGE")[1] == [b"2"]
    imap.logout()


def test_a_dropped_connection_deletes_nothing(server: ServerThread, filled: str) -> None:
    conn = pop(server, filled)
    conn.dele(1)
    conn.dele(2)
    conn.close()  # gone without QUIT
    # the maildrop is free once the server has seen the connection go
    for _ in range(100):
        conn2 = pop(server)
        conn2.user(filled)
        try:
            conn2.pass_("secret")
            break
        except poplib.error_proto as exc:
            assert b"IN-USE" in exc.args[0]
            conn2.close()
            time.sleep(0.05)
    else:
        raise AssertionError("the maildrop stayed locked")
    assert conn2.stat()[0] == 3
    conn2.quit()


def test_one_session_per_maildrop(server: ServerThread, filled: str) -> None:
    first = pop(server, filled)
    second = pop(server)
    second.user(filled)
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        second.pass_("secret")
    first.quit()
    second.user(filled)  # a failed PASS needs USER again (RFC 1939 §7)
    second.pass_("secret")  # free again
    second.quit()


def test_new_mail_appears_in_the_next_session(server: ServerThread, filled: str) -> None:
    conn = pop(server, filled)
    server.deliver(filled, simple("late"))
    assert conn.stat()[0] == 3
    conn.quit()
    conn = pop(server, filled)
    assert conn.stat()[0] == 4
    conn.quit()


def test_sasl_and_app_passwords(server: ServerThread) -> None:
    user = server.new_user()
    server.call(
        server.store.add_app_password(
            user, "Mailer", app_password_digest("imap-only-secret"), ["imap"]
        )
    )
    server.call(server.store.add_app_password(user, "Fetch", app_password_digest("pop-secret-0")))
    conn = pop(server)
    conn.user(user)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        conn.pass_("imap-only-secret")  # limited to IMAP
    conn.user(user)
    conn.pass_("pop-secret-0")
    conn.quit()
    import base64

    conn = pop(server)
    plain = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    assert conn._shortcmd(f"AUTH PLAIN {plain}").startswith(b"+OK")
    conn.quit()


def test_errors_never_crash(server: ServerThread, filled: str) -> None:
    sock = socket.create_connection(("127.0.0.1", server.pop3_port), timeout=10)
    OPEN.append(sock)
    f = sock.makefile("rb")
    assert f.readline().startswith(b"+OK")
    for line in (b"FROB", b"RETR 1", b"X" * 400, b"STAT", b"\xff\xfe"):
        sock.sendall(line + b"\r\n")
        assert f.readline().startswith(b"-ERR"), line
    sock.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"+OK")


async def _count(server: ServerThread, user: str) -> int:
    account = await server.store.get_account(user)
    assert account is not None
    inbox = await server.store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    return len(await server.store.uids(inbox.id))


def test_pipelined_retr_and_seen_flags(server: ServerThread, filled: str) -> None:
    """RFC 2449 PIPELINING: commands sent together get their answers in order (the
    server reads their messages together); retrieved mail shows as read over IMAP."""
    conn = pop(server, filled)
    conn._putline(b"RETR 3")
    conn._putline(b"RETR 1")
    conn._putline(b"TOP 2 0")
    conn._putline(b"NOOP")
    first = conn._getlongresp()[1]
    second = conn._getlongresp()[1]
    third = conn._getlongresp()[1]
    assert b"Subject: pop 2" in first and b"Subject: pop 0" in second
    assert b"Subject: pop 1" in third and b"body 1" not in third
    assert conn._getresp().startswith(b"+OK")
    conn.quit()
    imap = server.connect(filled)
    imap.select("INBOX")
    _, seen = imap.search(None, "SEEN")
    assert seen[0].split() == [b"1", b"3"]  # TOP does not mark a message read
    imap.logout()


def test_account_choices_delete_retrieved_and_new_only(server: ServerThread) -> None:
    """Per account: retrieved mail deleted at QUIT (EXPIRE 0), and "only mail POP3 has
    not downloaded yet" (a second client sees nothing twice)."""
    user = server.new_user()
    for i in range(3):
        server.deliver(user, simple(f"choice {i}"))
    server.call(server.store.set_pop3_options(user, None, True))  # only new mail
    conn = pop(server, user)
    assert conn.stat()[0] == 3
    conn.retr(1)
    conn.retr(2)
    conn.quit()
    conn = pop(server, user)
    assert conn.stat()[0] == 1  # the two downloaded ones are no longer shown
    assert b"Subject: choice 2" in b"\r\n".join(conn.retr(1)[1])
    conn.quit()
    server.call(server.store.set_pop3_options(user, "delete", False))
    conn = pop(server, user)
    assert conn.capa()["EXPIRE"] == ["0"]
    assert conn.stat()[0] == 3  # new-only off: everything again
    conn.retr(3)
    conn.top(1, 0)  # TOP is not a retrieval
    conn.quit()
    conn = pop(server, user)
    assert conn.stat()[0] == 2 and conn.capa()["EXPIRE"] == ["0"]
    conn.quit()
    # a dropped connection deletes nothing, even what it retrieved
    conn = pop(server, user)
    conn.retr(1)
    conn.close()
    for _ in range(100):
        try:
            conn = pop(server, user)
            break
        except poplib.error_proto:
            time.sleep(0.05)
    assert conn.stat()[0] == 2
    conn.quit()


def test_login_delay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = ServerThread(tmp_path)
    try:
        srv.pop3.config = dataclasses.replace(srv.pop3.config, login_delay=300)
        user = srv.new_user()
        conn = pop(srv)
        assert conn.capa()["LOGIN-DELAY"] == ["300"]
        conn.user(user)
        conn.pass_("secret")
        conn.quit()
        again = pop(srv)
        again.user(user)
        with pytest.raises(poplib.error_proto, match=r"\[LOGIN-DELAY\]"):
            again.pass_("secret")
        again.quit()
    finally:
        srv.stop()


def test_pop3_failures_ban_the_source_for_every_protocol(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The guard is shared: guessing over POP3 bans the address for IMAP too."""
    from carteiro.auth.guard import GuardPolicy

    policy = GuardPolicy(ip_delay_after=0, account_delay_after=0, ip_ban_after=2, never_ban=())
    srv = ServerThread(tmp_path, security={"guard": policy})
    try:
        user = srv.new_user()
        for _ in range(2):
            conn = pop(srv)
            conn.user(user)
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
                conn.pass_("guess")
            conn.close()
        refused = socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10)
        OPEN.append(refused)
        assert refused.makefile("rb").readline().startswith(b"-ERR [SYS/TEMP]")
        imap = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        OPEN.append(imap)
        assert imap.makefile("rb").readline().startswith(b"* BYE")
        events = srv.audit_path.read_text()
        assert '"protocol": "pop3"' in events and '"event": "ban"' in events
    finally:
        srv.stop()
