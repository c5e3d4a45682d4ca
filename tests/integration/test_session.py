"""Greeting, capabilities, authentication, TLS, bad input: whole sessions over real sockets."""

from __future__ import annotations

import base64
import imaplib
import ssl
import warnings

import pytest

from tests.integration.harness import RawClient, ServerThread


def test_greeting_advertises_capabilities(server: ServerThread) -> None:
    c = RawClient(server.port)
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
    assert b"STARTTLS" in c.greeting and b"AUTH=PLAIN" in c.greeting
    c.close()


def test_capabilities_after_login(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    lines = c.cmd(f"LOGIN {user} secret", tag="a1")
    assert lines[-1].startswith(b"a1 OK [CAPABILITY IMAP4rev2")
    caps = c.cmd("CAPABILITY", tag="a2")[0].split()
    for cap in (
        b"IDLE",
        b"NAMESPACE",
        b"UIDPLUS",
        b"UNSELECT",
        b"CHILDREN",
        b"MULTIAPPEND",
        b"MOVE",
        b"SPECIAL-USE",
        b"BINARY",
        b"ESEARCH",
        b"SEARCHRES",
        b"LIST-EXTENDED",
        b"LIST-STATUS",
        b"STATUS=SIZE",
        b"LITERAL+",
        b"SASL-IR",
        b"ENABLE",
        b"ID",
    ):
        assert cap in caps
    assert any(x.startswith(b"APPENDLIMIT=") for x in caps)
    assert b"STARTTLS" not in caps
    c.close()


def test_login_failure_and_success(server: ServerThread, user: str) -> None:
    conn = server.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(user, "wrong")
    with pytest.raises(imaplib.IMAP4.error):
        conn.login("nobody@example.org", "secret")
    typ, _ = conn.login(user, "secret")
    assert typ == "OK"
    conn.logout()


def test_authenticate_plain_with_and_without_initial_response(
    server: ServerThread, user: str
) -> None:
    token = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    c = RawClient(server.port)
    assert c.cmd(f"AUTHENTICATE PLAIN {token}", tag="a")[-1].startswith(b"a OK")
    c.close()
    c = RawClient(server.port)
    c.send(b"b AUTHENTICATE PLAIN\r\n")
    assert c.readline() == b"+ \r\n"
    c.send(token.encode() + b"\r\n")
    assert c.readline().startswith(b"b OK")
    c.close()
    c = RawClient(server.port)
    c.send(b"c AUTHENTICATE PLAIN\r\n")
    c.readline()
    c.send(b"*\r\n")
    assert c.readline().startswith(b"c BAD")
    # a failed attempt leaves the session usable
    assert c.cmd("NOOP", tag="d")[-1].startswith(b"d OK")
    c.close()


def test_imaplib_over_starttls(server: ServerThread, user: str) -> None:
    conn = server.connect()
    conn.starttls(ssl_context=server.client_tls())
    conn.login(user, "secret")
    typ, data = conn.select("INBOX")
    assert typ == "OK" and data == [b"0"]
    conn.logout()


def test_imaplib_over_implicit_tls(server: ServerThread, user: str) -> None:
    conn = server.connect_tls(user)
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()


def test_tls_below_1_2_is_refused(server: ServerThread) -> None:
    ctx = server.client_tls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError)):
        RawClient(server.tls_port, tls=ctx)


def test_starttls_discards_injected_plaintext(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    # the injected command after STARTTLS must never run (CVE-2011-0411 class)
    c.send(b"s STARTTLS\r\nx LOGOUT\r\n")
    assert c.readline().startswith(b"s OK")
    c.sock = server.client_tls().wrap_socket(c.sock, server_hostname="localhost")
    c.buf = b""
    lines = c.cmd("CAPABILITY", tag="t")
    assert lines[-1].startswith(b"t OK")
    assert not any(line.startswith(b"x ") or b"BYE" in line for line in lines)
    assert b"STARTTLS" not in lines[0]
    c.close()


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory: pytest.TempPathFactory):
    srv = ServerThread(tmp_path_factory.mktemp("untrusted"), trusted_networks=())
    yield srv
    srv.stop()


def test_plaintext_login_refused_without_tls(untrusted: ServerThread) -> None:
    user = untrusted.new_user()
    c = RawClient(untrusted.port)
    assert b"LOGINDISABLED" in c.greeting and b"AUTH=PLAIN" not in c.greeting
    assert c.cmd(f"LOGIN {user} secret", tag="a")[-1].startswith(b"a NO [PRIVACYREQUIRED]")
    token = base64.b64encode(f"\0{user}\0secret".encode()).decode()
    assert c.cmd(f"AUTHENTICATE PLAIN {token}", tag="b")[-1].startswith(b"b NO")
    c.close()
    conn = untrusted.connect()
    conn.starttls(ssl_context=untrusted.client_tls())
    assert b"AUTH=PLAIN" in conn.capability()[1][0]
    assert conn.login(user, "secret")[0] == "OK"
    conn.logout()


def test_bad_commands_keep_the_session_alive(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    assert c.cmd("FROBNICATE", tag="a")[-1].startswith(b"a BAD")
    assert c.cmd("SELECT INBOX", tag="b")[-1].startswith(b"b BAD")  # not authenticated
    assert c.cmd("LOGIN", tag="c")[-1].startswith(b"c BAD")
    c.send(b")(\r\n")
    assert c.readline().startswith(b"* BAD")
    c.cmd(f"LOGIN {user} secret", tag="d")
    assert c.cmd("FETCH 1 FLAGS", tag="e")[-1].startswith(b"e BAD")  # nothing selected
    c.cmd("SELECT INBOX", tag="f")
    assert c.cmd("FETCH 1 FLAGS", tag="g")[-1].startswith(b"g BAD")  # out of range
    assert c.cmd("FETCH 1:* (FLAGS", tag="h")[-1].startswith(b"h BAD")
    assert c.cmd("NOOP", tag="i")[-1].startswith(b"i OK")
    c.close()


def test_literal_too_big_is_refused_before_reading(tmp_path) -> None:
    srv = ServerThread(tmp_path, max_literal=1000)
    try:
        user = srv.new_user()
        c = RawClient(srv.port)
        c.cmd(f"LOGIN {user} secret", tag="a")
        c.send(b"b APPEND INBOX {5000}\r\n")
        assert c.readline().startswith(b"b NO [TOOBIG]")
        assert c.cmd("NOOP", tag="c")[-1].startswith(b"c OK")
        c.send(b"d APPEND INBOX {20+}\r\n")  # non-synchronising within limits
        c.send(b"Subject: x\r\n\r\nhello!\r\n\r\n")
        assert c.readline().startswith(b"d OK [APPENDUID")
        c.close()
    finally:
        srv.stop()


def test_disconnect_mid_literal_stores_nothing(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="a")
    c.send(b"b APPEND INBOX {100}\r\n")
    assert c.readline().startswith(b"+")
    c.send(b"Subject: half\r\n\r\nonly part")
    c.close()
    conn = server.connect(user)
    assert conn.select("INBOX")[1] == [b"0"]
    conn.logout()


def test_logout(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    lines = c.cmd("LOGOUT", tag="z")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"z OK")
    c.close()


def test_id_and_namespace(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    assert b'"name" "Carteiro"' in c.cmd('ID ("name" "test")', tag="a")[0]
    c.cmd(f"LOGIN {user} secret", tag="b")
    assert c.cmd("NAMESPACE", tag="c")[0] == b'* NAMESPACE (("" "/")) NIL NIL\r\n'
    c.close()
