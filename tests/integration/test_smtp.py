"""SMTP inbound (25), submission (587/465) and LMTP policy, over real sockets with
smtplib and a raw client: who may send what to whom, and every bad input answered with
the right code (issue 6)."""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carteiro.auth.guard import GuardPolicy
from carteiro.auth.service import app_password_digest
from tests.integration.harness import OPEN, ServerThread


@pytest.fixture(scope="module")
def mx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = ServerThread(
        tmp_path_factory.mktemp("smtp"),
        smtp={"max_message_size": 64 * 1024, "send_rate": 1000},
    )
    srv.call(srv.store.add_domain("example.org"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """No trusted networks: 127.0.0.1 is treated like any client on the Internet."""
    srv = ServerThread(
        tmp_path_factory.mktemp("smtp-strict"),
        trusted_networks=(),
        smtp={"send_rate": 2},
    )
    yield srv
    srv.stop()


def smtp(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    OPEN.append(client)
    return client


def inbox(srv: ServerThread, user: str) -> list[bytes]:
    return mailbox(srv, user, "INBOX")


def mailbox(srv: ServerThread, user: str, name: str) -> list[bytes]:
    conn = srv.connect_tls(user)
    try:
        typ, exists = conn.select(name, readonly=True)
        assert typ == "OK"
        if exists == [b"0"]:
            return []
        typ, data = conn.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        conn.logout()


class Raw:
    """Line-level SMTP client: sends exactly what it is given, reads whole replies."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock: socket.socket = tls.wrap_socket(sock) if tls else sock
        OPEN.append(self.sock)
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; unread {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self) -> list[bytes]:
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> list[bytes]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()


def message(sender: str, to: str, subject: str = "hi", body: str = "hello") -> bytes:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


# --- inbound (port 25) -------------------------------------------------------------------


def test_inbound_delivery_is_exact_with_trace_fields(mx: ServerThread) -> None:
    user = mx.new_user()
    raw = message("someone@remote.test", user, body="line one\r\n.leading dot\r\n..two dots")
    with smtp(mx.smtp_port) as client:
        assert client.sendmail("someone@remote.test", [user], raw) == {}
    [stored] = inbox(mx, user)
    head, sep, original = stored.partition(b"From: someone@remote.test")
    assert sep and sep + original == raw  # the client's bytes, dot-stuffing undone
    assert head.startswith(b"Return-Path: <someone@remote.test>\r\nReceived: from ")
    assert b"by localhost (Carteiro) with ESMTP id " in head
    assert f"for <{user}>;".encode() in head


def test_relay_attempts_are_refused(mx: ServerThread) -> None:
    user = mx.new_user()
    with smtp(mx.smtp_port) as client:
        client.ehlo("relay.test")
        client.mail("spammer@remote.test")
        code, text = client.rcpt("victim@elsewhere.test")
        assert (code, text[:5]) == (554, b"5.7.1")
        code, text = client.rcpt("victim%elsewhere.test@example.org")
        assert code == 550  # not an open relay through %-hacks either
        code, text = client.rcpt("nobody@example.org")
        assert (code, text[:5]) == (550, b"5.1.1")
        assert client.rcpt(user)[0] == 250
    assert inbox(mx, user) == []  # nothing sent: no DATA


def test_auth_is_not_offered_or_accepted_on_port_25(mx: ServerThread) -> None:
    with smtp(mx.smtp_port) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.has_extn("starttls") and client.has_extn("pipelining")
        assert client.has_extn("enhancedstatuscodes") and client.has_extn("8bitmime")
        code, text = client.docmd("AUTH", "PLAIN AGEAYg==")
        assert (code, text[:5]) == (502, b"5.5.1")


def test_starttls_on_port_25(mx: ServerThread) -> None:
    user = mx.new_user()
    with smtp(mx.smtp_port) as client:
        client.starttls(context=mx.client_tls())
        client.sendmail("a@remote.test", [user], message("a@remote.test", user))
    [stored] = inbox(mx, user)
    assert b"with ESMTPS id" in stored


def test_alias_plus_addressing_and_catch_all(mx: ServerThread) -> None:
    alice, bob = mx.new_user(), mx.new_user()
    conn = mx.connect(alice)
    conn.create("lists")
    conn.logout()
    mx.call(mx.store.add_alias("team@example.org", [alice, bob]))
    local = alice.split("@")[0]
    with smtp(mx.smtp_port) as client:
        client.sendmail("x@remote.test", ["team@example.org"], message("x@remote.test", "team"))
        client.sendmail("x@remote.test", [f"{local}+lists@example.org"], message("x@r.t", "l"))
    assert len(inbox(mx, alice)) == 1 and len(inbox(mx, bob)) == 1
    assert len(mailbox(mx, alice, "lists")) == 1


def test_bad_addresses(mx: ServerThread) -> None:
    user = mx.new_user()
    c = Raw(mx.smtp_port)
    assert c.reply()[0].startswith(b"220 ")
    assert c.cmd("EHLO test")[-1].startswith(b"250 ")
    assert c.cmd("RCPT TO:<a@example.org>")[0].startswith(b"503 5.5.1")
    assert c.cmd("MAIL FROM:<not an address>")[0][:3] in (b"501", b"553")
    assert c.cmd("MAIL FROM:<a..b@remote.test>")[0].startswith(b"553 5.1.7")
    assert c.cmd("MAIL FROM:<ok@remote.test> FOO=BAR")[0].startswith(b"555 5.5.4")
    assert c.cmd("MAIL FROM:<ok@remote.test>")[0].startswith(b"250 2.1.0")
    assert c.cmd("MAIL FROM:<again@remote.test>")[0].startswith(b"503 5.5.1")
    assert c.cmd("RCPT TO:<no-domain>")[0].startswith(b"501 5.1.3")
    assert c.cmd("RCPT TO:<x@-bad-.example>")[0].startswith(b"501 5.1.3")
    assert c.cmd(f"RCPT TO:<{user}> NOTIFY=NEVER")[0].startswith(b"555 5.5.4")
    assert c.cmd("DATA")[0].startswith(b"503 5.5.1")  # no recipient yet
    assert c.cmd("FOO bar")[0].startswith(b"500 5.5.2")
    assert c.cmd("QUIT")[0].startswith(b"221 2.0.0")


def test_null_sender_accepted_for_bounces(mx: ServerThread) -> None:
    user = mx.new_user()
    c = Raw(mx.smtp_port)
    c.reply()
    c.cmd("EHLO mailer.remote.test")
    assert c.cmd("MAIL FROM:<>")[0].startswith(b"250")
    assert c.cmd(f"RCPT TO:<{user}>")[0].startswith(b"250")
    assert c.cmd("DATA")[0].startswith(b"354")
    assert c.cmd(b"Subject: bounce\r\n\r\nfailed\r\n.")[0].startswith(b"250 2.0.0")
    [stored] = inbox(mx, user)
    assert stored.startswith(b"Return-Path: <>\r\n")


def test_size_limits(mx: ServerThread) -> None:
    user = mx.new_user()
    c = Raw(mx.smtp_port)
    c.reply()
    assert b"250-SIZE 65536" in c.cmd("EHLO test")
    assert c.cmd("MAIL FROM:<a@remote.test> SIZE=70000")[0].startswith(b"552 5.3.4")
    assert c.cmd("MAIL FROM:<a@remote.test> SIZE=1000")[0].startswith(b"250")
    assert c.cmd(f"RCPT TO:<{user}>")[0].startswith(b"250")
    assert c.cmd("DATA")[0].startswith(b"354")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 70
    c.send(big)
    assert c.cmd(".")[0].startswith(b"552 5.3.4")
    # the session goes on, and nothing was stored
    assert c.cmd("NOOP")[0].startswith(b"250 2.0.0")
    assert inbox(mx, user) == []


def test_eight_bit_needs_8bitmime(mx: ServerThread) -> None:
    user = mx.new_user()
    body = "Subject: caf\u00e9\r\n\r\nol\u00e1\r\n".encode()
    c = Raw(mx.smtp_port)
    c.reply()
    c.cmd("EHLO test")
    for params, expect in (("", b"554 5.6.1"), (" BODY=8BITMIME", b"250 2.0.0")):
        assert c.cmd(f"MAIL FROM:<a@remote.test>{params}")[0].startswith(b"250")
        assert c.cmd(f"RCPT TO:<{user}>")[0].startswith(b"250")
        assert c.cmd("DATA")[0].startswith(b"354")
        c.send(body)
        assert c.cmd(".")[0].startswith(expect)
    [stored] = inbox(mx, user)
    assert stored.endswith(body)


def test_smtputf8_address(mx: ServerThread) -> None:
    mx.call(mx.store.add_alias("jos\u00e9@example.org", [user := mx.new_user()]))
    c = Raw(mx.smtp_port)
    c.reply()
    assert b"250-SMTPUTF8" in c.cmd("EHLO test")
    # without SMTPUTF8 a non-ASCII address is refused
    assert c.cmd("MAIL FROM:<a@remote.test>")[0].startswith(b"250")
    assert c.cmd("RCPT TO:<jos\u00e9@example.org>".encode())[0].startswith(b"501 5.1.3")
    c.cmd("RSET")
    assert c.cmd("MAIL FROM:<ren\u00e9@remote.test> SMTPUTF8".encode())[0].startswith(b"250")
    assert c.cmd("RCPT TO:<jos\u00e9@example.org>".encode())[0].startswith(b"250")
    assert c.cmd("DATA")[0].startswith(b"354")
    assert c.cmd("Subject: ol\u00e1\r\n\r\nx\r\n.".encode())[0].startswith(b"250")
    assert len(inbox(mx, user)) == 1


def test_mail_loop_is_refused(mx: ServerThread) -> None:
    user = mx.new_user()
    looped = b"Received: from a by b; Mon, 1 Jan 2026 00:00:00 +0000\r\n" * 51
    with smtp(mx.smtp_port) as client:
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("a@remote.test", [user], looped + b"Subject: x\r\n\r\nx\r\n")
    assert err.value.smtp_code == 554 and err.value.smtp_error.startswith(b"5.4.6")


def test_quota_full_at_rcpt(mx: ServerThread) -> None:
    user = mx.new_user()
    mx.deliver(user, message("a@remote.test", user))
    mx.call(mx.store.set_quota(user, storage=len(inbox(mx, user)[0]), messages=None))
    with smtp(mx.smtp_port) as client:
        client.ehlo()
        client.mail("a@remote.test")
        code, text = client.rcpt(user)
    assert (code, text[:5]) == (452, b"4.2.2")


def test_disconnect_mid_data_stores_nothing(mx: ServerThread) -> None:
    user = mx.new_user()
    c = Raw(mx.smtp_port)
    c.reply()
    c.cmd("EHLO test")
    c.cmd("MAIL FROM:<a@remote.test>")
    c.cmd(f"RCPT TO:<{user}>")
    assert c.cmd("DATA")[0].startswith(b"354")
    c.send(b"Subject: cut\r\n\r\nhalf a mess")
    c.sock.close()
    # the server is fine and the user got nothing
    with smtp(mx.smtp_port) as client:
        assert client.noop()[0] == 250
    assert inbox(mx, user) == []


# --- LMTP --------------------------------------------------------------------------------


def test_lmtp_replies_per_recipient(mx: ServerThread) -> None:
    ok, full = mx.new_user(), mx.new_user()
    mx.call(mx.store.set_quota(full, storage=300, messages=None))
    c = Raw(mx.lmtp_port)
    assert c.reply()[0].startswith(b"220 ")
    assert c.cmd("EHLO x")[0].startswith(b"500")  # LMTP speaks LHLO only
    assert c.cmd("LHLO mta.example.org")[-1].startswith(b"250 ")
    assert c.cmd("MAIL FROM:<a@remote.test>")[0].startswith(b"250")
    assert c.cmd(f"RCPT TO:<{ok}>")[0].startswith(b"250")
    assert c.cmd("RCPT TO:<nobody@example.org>")[0].startswith(b"550 5.1.1")
    assert c.cmd(f"RCPT TO:<{full}>")[0].startswith(b"250")
    assert c.cmd("DATA")[0].startswith(b"354")
    c.send(b"Subject: lmtp\r\n\r\n" + b"y" * 400 + b"\r\n.\r\n")
    first, second = c.line(), c.line()  # one reply per accepted recipient, in order
    assert first.startswith(b"250 2.0.0"), first
    assert second.startswith(b"552 5.2.2"), second
    assert len(inbox(mx, ok)) == 1 and inbox(mx, full) == []
    assert c.cmd("QUIT")[0].startswith(b"221")


# --- submission ----------------------------------------------------------------------------


def test_submission_needs_auth(mx: ServerThread) -> None:
    user = mx.new_user()
    with smtp(mx.submission_port) as client:
        client.ehlo()
        code, text = client.mail(user)
    assert (code, text[:5]) == (530, b"5.7.0")


def test_submission_local_delivery_and_headers(mx: ServerThread) -> None:
    alice, bob = mx.new_user(), mx.new_user()
    with smtp(mx.submission_port) as client:
        client.starttls(context=mx.client_tls())
        client.login(alice, "secret")
        client.sendmail(alice, [bob], b"From: " + alice.encode() + b"\r\nSubject: s\r\n\r\nx\r\n")
    [stored] = inbox(mx, bob)
    assert b"with ESMTPSA id" in stored
    assert b"\r\nDate: " in stored and b"\r\nMessage-ID: <" in stored


def test_submission_sender_rules(mx: ServerThread) -> None:
    alice, bob = mx.new_user(), mx.new_user()
    local, _, domain = alice.partition("@")
    mx.call(mx.store.add_alias("sales@example.org", [alice, bob]))
    with smtp(mx.submission_port) as client:
        client.login(alice, "secret")
        # someone else's address, an alias not granted, the null sender: refused
        for sender in (bob, "sales@example.org", "<>"):
            code, text = client.mail(sender)
            assert (code, text[:5]) == (553, b"5.7.1"), (sender, code, text)
        mx.call(mx.store.allow_sender("sales@example.org", alice))
        ok = [alice, f"{local}+news@{domain}", "sales@example.org"]
        for sender in ok:
            client.sendmail(sender, [bob], message(sender, bob))
        # the From field must be the account's too
        with pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail(alice, [bob], message("ceo@example.org", bob))
        assert err.value.smtp_code == 550 and err.value.smtp_error.startswith(b"5.7.1")
    assert len(inbox(mx, bob)) == len(ok)


def test_submission_without_queue_refuses_remote_recipients(mx: ServerThread) -> None:
    alice = mx.new_user()
    with smtp(mx.submission_port) as client:
        client.login(alice, "secret")
        client.mail(alice)
        code, text = client.rcpt("friend@elsewhere.test")
    assert (code, text[:5]) == (554, b"5.7.1")


def test_submission_implicit_tls_and_app_password(mx: ServerThread) -> None:
    alice, bob = mx.new_user(), mx.new_user()
    secret = "app-secret-for-smtp"
    mx.call(mx.store.add_app_password(alice, "phone", app_password_digest(secret), ["smtp"]))
    with smtplib.SMTP_SSL(
        "127.0.0.1", mx.submissions_port, context=mx.client_tls(), timeout=30
    ) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            client.login(alice, "wrong")
        assert err.value.smtp_code == 535 and err.value.smtp_error.startswith(b"5.7.8")
        client.login(alice, secret)
        client.sendmail(alice, [bob], message(alice, bob))
    assert len(inbox(mx, bob)) == 1


def test_auth_needs_tls_from_untrusted_networks(strict: ServerThread) -> None:
    alice = strict.new_user()
    with smtp(strict.submission_port) as client:
        client.ehlo()
        assert not client.has_extn("auth")  # nothing offered before TLS
        code, text = client.docmd("AUTH", "PLAIN AGEAYg==")
        assert (code, text[:6]) == (538, b"5.7.11")
        client.starttls(context=strict.client_tls())
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        assert "SCRAM-SHA-256-PLUS" in client.esmtp_features["auth"]
        client.login(alice, "secret")


def test_sending_rate_limit(strict: ServerThread) -> None:
    alice, bob = strict.new_user(), strict.new_user()
    with smtp(strict.submission_port) as client:
        client.starttls(context=strict.client_tls())
        client.login(alice, "secret")
        for _ in range(2):
            client.sendmail(alice, [bob], message(alice, bob))
        code, text = client.mail(alice)
    assert (code, text[:5]) == (451, b"4.7.1")
    assert len(inbox(strict, bob)) == 2


def test_banned_source_is_refused_at_connect(tmp_path: Path) -> None:
    srv = ServerThread(
        tmp_path,
        security={"guard": GuardPolicy(deny=(ipaddress.ip_network("127.0.0.0/8"),))},
        smtp={},
    )
    try:
        c = Raw(srv.smtp_port)
        greeting = c.line()
        assert greeting.startswith(b"554 5.7.1"), greeting
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not c.sock.recv(1024):
                break
    finally:
        srv.stop()


def test_credentials_never_reach_the_log(
    mx: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import logging

    caplog.set_level(logging.DEBUG)
    alice = mx.new_user()
    token = base64.b64encode(f"\0{alice}\0secret".encode()).decode()
    c = Raw(mx.submission_port)
    c.reply()
    c.cmd("EHLO test")
    assert c.cmd(f"AUTH PLAIN {token}")[0].startswith(b"235 2.7.0")
    assert c.cmd("QUIT")[0].startswith(b"221")
    assert token not in caplog.text and "secret" not in caplog.text


def test_quota_set_during_a_session_is_still_enforced(mx: ServerThread) -> None:
    """The session's route cache remembers that the account had no quota; the store's
    atomic check at DATA still refuses what does not fit."""
    user = mx.new_user()
    with smtp(mx.smtp_port) as client:
        client.ehlo()
        assert client.sendmail("a@remote.test", [user], message("a@remote.test", user)) == {}
        used = len(inbox(mx, user)[0])
        mx.call(mx.store.set_quota(user, storage=used + 5, messages=None))
        assert client.mail("a@remote.test")[0] == 250
        assert client.rcpt(user)[0] == 250  # remembered: no quota read at RCPT
        code, text = client.data(message("a@remote.test", user, body="x" * 200))
    assert (code, text[:5]) == (552, b"5.2.2")
    assert len(inbox(mx, user)) == 1
