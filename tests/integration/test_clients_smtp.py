"""Real SMTP clients from Debian against the SMTP listeners, each an implementation
independent of ours and of aiosmtpd's client side:

* msmtp (GnuTLS): submission with STARTTLS (587) and implicit TLS (465), AUTH PLAIN and
  LOGIN, the message read by ``msmtp -t`` from stdin, then read back over IMAP;
* swaks (Perl Net::SSLeay): the same listeners, inbound delivery on port 25 without AUTH,
  an open-relay attempt, SIZE, 8-bit content without 8BITMIME;
* gsasl: SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (tls-exporter binding) over STARTTLS;
* an IMAP session in IDLE woken by a message that arrives over port 25.

The certificate is for "localhost" and every listener is on 127.0.0.1: msmtp connects to
the address and checks the name with ``tls_host_override localhost`` (so the certificate
really is verified); swaks and gsasl are given it as their trust anchor.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.integration.test_clients_gsasl import gsasl as gsasl_client

T = TypeVar("T")
MAX_SIZE = 20000


def needs(tool: str) -> Callable[[T], T]:
    """Marks a test ``external`` and skips it when the Debian client is missing (the
    tests that only use smtplib and imaplib run everywhere)."""

    def mark(test: T) -> T:
        skip = pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed")
        return cast(T, pytest.mark.external(skip(test)))

    return mark


needs_msmtp = needs("msmtp")
needs_swaks = needs("swaks")
needs_gsasl = needs("gsasl")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Overrides the conftest's: this module needs the SMTP listeners. The SMTP side
    trusts no network (as for clients on the internet), so AUTH needs TLS even from
    127.0.0.1."""
    srv = ServerThread(
        tmp_path_factory.mktemp("carteiro"),
        smtp={"max_message_size": MAX_SIZE, "is_trusted": lambda _address: False},
    )
    yield srv
    srv.stop()


def token() -> str:
    return uuid.uuid4().hex[:12]


def find(server: ServerThread, user: str, marker: str) -> bytes:
    """The full text of the one message in ``user``'s INBOX whose Subject holds
    ``marker`` (delivery is acknowledged only once durable, so no waiting is needed)."""
    conn = server.connect(user)
    conn.select("INBOX", readonly=True)
    typ, hits = conn.uid("SEARCH", "SUBJECT", marker)
    assert typ == "OK"
    uids = hits[0].split()
    assert len(uids) == 1, f"{len(uids)} messages with {marker!r}"
    typ, data = conn.uid("FETCH", uids[0], "(BODY.PEEK[])")
    conn.logout()
    assert typ == "OK" and isinstance(data[0], tuple)
    return bytes(data[0][1])


def inbox_size(server: ServerThread, user: str) -> int:
    conn = server.connect(user)
    typ, data = conn.select("INBOX", readonly=True)
    conn.logout()
    assert typ == "OK" and data[0] is not None
    return int(data[0])


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"


# --- msmtp -----------------------------------------------------------------------------
def msmtp(
    server: ServerThread,
    tmp_path: Path,
    user: str,
    message: str,
    *,
    auth: str = "plain",
    implicit: bool = False,
    password: str = "secret",
    sender: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``msmtp -t -v`` with a private configuration file; the message on stdin; the
    transcript and any error in ``stdout``."""
    rc = tmp_path / f"msmtprc-{token()}"
    rc.write_text(
        "account default\n"
        "host 127.0.0.1\n"
        f"port {server.submissions_port if implicit else server.submission_port}\n"
        "tls on\n"
        f"tls_starttls {'off' if implicit else 'on'}\n"
        f"tls_trust_file {server.cert}\n"
        "tls_host_override localhost\n"
        f"auth {auth}\n"
        f"user {user}\n"
        f"password {password}\n"
        f"from {sender or user}\n"
        # leave Date and Message-ID to the server (RFC 6409 §8)
        "set_date_header off\n"
        "set_msgid_header off\n"
    )
    rc.chmod(0o600)
    return subprocess.run(
        ["msmtp", "-C", str(rc), "-t", "-v"], input=message, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=60, check=False,
    )  # fmt: skip


@needs_msmtp
@pytest.mark.parametrize(
    ("auth", "implicit"),
    [("plain", False), ("login", False), ("plain", True)],
    ids=["starttls-plain", "starttls-login", "implicit-tls-plain"],
)
def test_msmtp_submits(
    server: ServerThread, user: str, tmp_path: Path, auth: str, implicit: bool
) -> None:
    mark = token()
    body = "".join(f"line {i}: the quick brown fox\n" for i in range(50)) + ".starts with a dot\n"
    message = f"From: Sender <{user}>\nTo: {user}\nSubject: msmtp {mark}\n\n{body}"
    done = msmtp(server, tmp_path, user, message, auth=auth, implicit=implicit)
    assert done.returncode == 0, done.stdout
    assert f"AUTH {auth.upper()}" in done.stdout
    assert "250 2.0.0" in done.stdout
    raw = find(server, user, mark)
    head = header_block(raw)
    assert raw.startswith(f"Return-Path: <{user}>\r\nReceived: from ".encode())
    assert b"with ESMTPSA id " in head and f"for <{user}>".encode() in head
    # a missing Date and Message-ID are added by the submission server
    assert re.search(rb"\r\nDate: [A-Z][a-z]{2}, \d", head)
    assert re.search(rb"\r\nMessage-ID: <[0-9a-f]+@localhost>\r\n", head)
    # the body arrives intact, dot-stuffing undone, CRLF line ends
    assert raw.endswith(body.replace("\n", "\r\n").encode())
    assert f"Subject: msmtp {mark}\r\n".encode() in head


@needs_msmtp
def test_msmtp_wrong_password(server: ServerThread, user: str, tmp_path: Path) -> None:
    message = f"From: {user}\nTo: {user}\nSubject: never\n\nno\n"
    done = msmtp(server, tmp_path, user, message, password="not-the-password")
    assert done.returncode != 0
    assert "535 5.7.8" in done.stdout
    assert inbox_size(server, user) == 0


@needs_msmtp
def test_msmtp_sender_not_owned(server: ServerThread, user: str, tmp_path: Path) -> None:
    other = server.new_user()
    # envelope sender of another account: refused at MAIL
    message = f"From: {other}\nTo: {user}\nSubject: spoof\n\nno\n"
    done = msmtp(server, tmp_path, user, message, sender=other)
    assert done.returncode != 0
    assert "553 5.7.1" in done.stdout
    # own envelope sender, another account's From field: refused after DATA
    done = msmtp(server, tmp_path, user, message)
    assert done.returncode != 0
    assert f"550 5.7.1 From: <{other}> is not an address of {user}" in done.stdout
    assert inbox_size(server, user) == 0


# --- swaks -----------------------------------------------------------------------------
def swaks(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """swaks with its transcript on stdout (``<**`` marks an error reply)."""
    extra = ["--data", "-"] if data is not None else []
    return subprocess.run(
        ["swaks", "--helo", "client.test", *args, *extra],
        input=data, capture_output=True, timeout=60, check=False,
    )  # fmt: skip


@needs_swaks
@pytest.mark.parametrize(
    ("auth", "tls"),
    [("PLAIN", "--tls"), ("LOGIN", "--tls"), ("PLAIN", "--tls-on-connect")],
    ids=["starttls-plain", "starttls-login", "tls-on-connect-plain"],
)
def test_swaks_submission(server: ServerThread, user: str, auth: str, tls: str) -> None:
    mark = token()
    port = server.submissions_port if tls == "--tls-on-connect" else server.submission_port
    done = swaks(
        "--server", f"127.0.0.1:{port}", tls, "--tls-verify", "--tls-ca-path", str(server.cert),
        "--auth", auth, "--auth-user", user, "--auth-password", "secret",
        "--from", user, "--to", user, "--header", f"Subject: swaks {mark}",
        "--body", "Sent by swaks.",
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "235 2.7.0" in out and "250 2.0.0 Message accepted" in out
    raw = find(server, user, mark)
    assert b"with ESMTPSA id " in header_block(raw)
    assert b"Sent by swaks." in raw


@needs_swaks
def test_swaks_auth_needs_tls(server: ServerThread, user: str) -> None:
    """Without TLS AUTH is not offered, and refused when tried anyway."""
    done = swaks(
        "--server", f"127.0.0.1:{server.submission_port}", "--auth", "PLAIN",
        "--auth-user", user, "--auth-password", "secret", "--from", user, "--to", user,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode != 0
    assert "250-AUTH" not in out
    assert "did not advertise authentication" in done.stderr.decode()
    with smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.docmd("AUTH", "PLAIN AHVzZXIAc2VjcmV0")
        assert code == 538 and text.startswith(b"5.7.11"), text
        code, text = client.mail(user)
        assert code == 530, text
    assert inbox_size(server, user) == 0


@needs_swaks
@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
def test_swaks_inbound_delivery(server: ServerThread, user: str, starttls: bool) -> None:
    mark = token()
    tls = ["--tls", "--tls-verify", "--tls-ca-path", str(server.cert)] if starttls else []
    done = swaks(
        "--server", f"127.0.0.1:{server.smtp_port}", *tls,
        "--from", "alice@elsewhere.test", "--to", user,
        "--header", f"Subject: inbound {mark}", "--body", "From the outside.",
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "250-AUTH" not in out  # no AUTH on the MX port
    raw = find(server, user, mark)
    head = header_block(raw)
    assert raw.startswith(b"Return-Path: <alice@elsewhere.test>\r\n")
    proto = b"ESMTPS" if starttls else b"ESMTP"
    assert b"Received: from client.test ([127.0.0.1])" in head
    assert b"with " + proto + b" id " in head


@needs_swaks
def test_swaks_open_relay_refused(server: ServerThread) -> None:
    done = swaks(
        "--server", f"127.0.0.1:{server.smtp_port}",
        "--from", "spammer@elsewhere.test", "--to", "someone@elsewhere.test",
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 24, out  # swaks: error at RCPT
    assert "<** 554 5.7.1 <someone@elsewhere.test>: Relay access denied" in out
    assert " -> DATA" not in out


@needs_swaks
def test_swaks_unknown_local_user(server: ServerThread) -> None:
    done = swaks(
        "--server", f"127.0.0.1:{server.smtp_port}",
        "--from", "a@elsewhere.test", "--to", "nobody-here@example.org",
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 24, out
    assert "<** 550 5.1.1" in out


@needs_swaks
def test_swaks_message_too_big(server: ServerThread, user: str) -> None:
    body = (b"x" * 76 + b"\r\n") * (2 * MAX_SIZE // 78)
    data = f"From: a@elsewhere.test\r\nTo: {user}\r\nSubject: big\r\n\r\n".encode() + body
    done = swaks(
        "--server", f"127.0.0.1:{server.smtp_port}",
        "--from", "a@elsewhere.test", "--to", user, data=data,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode != 0
    assert f"250-SIZE {MAX_SIZE}" in out
    assert re.search(r"<\*\* 552 5\.3\.4 ", out), out[-2000:]
    assert inbox_size(server, user) == 0


def test_declared_size_too_big(server: ServerThread, user: str) -> None:
    """SIZE= in MAIL (RFC 1870) above the limit is refused before any data."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        code, text = client.mail("a@elsewhere.test", [f"SIZE={MAX_SIZE + 1}"])
        assert code == 552 and text.startswith(b"5.3.4"), text


@needs_swaks
def test_swaks_8bit_without_8bitmime(server: ServerThread, user: str) -> None:
    data = (
        f"From: a@elsewhere.test\r\nTo: {user}\r\nSubject: eight\r\n\r\n".encode()
        + "café, olá\r\n".encode()
    )
    done = swaks(
        "--server", f"127.0.0.1:{server.smtp_port}",
        "--from", "a@elsewhere.test", "--to", user, data=data,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode != 0
    assert "<** 554 5.6.1 8-bit content needs BODY=8BITMIME" in out
    assert inbox_size(server, user) == 0


def test_8bit_with_8bitmime_is_stored_intact(server: ServerThread, user: str) -> None:
    """The other side of the previous test (swaks cannot send BODY=8BITMIME)."""
    mark = token()
    body = "café, olá, Grüße\r\n".encode()
    data = f"From: a@elsewhere.test\r\nTo: {user}\r\nSubject: eight {mark}\r\n\r\n".encode() + body
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        assert client.has_extn("8bitmime")
        refused = client.sendmail("a@elsewhere.test", [user], data, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    assert find(server, user, mark).endswith(body)


# --- gsasl -----------------------------------------------------------------------------
def gsasl(
    server: ServerThread, mechanism: str, user: str, password: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return gsasl_client(
        server, mechanism, user, password, *extra, protocol="smtp", port=server.submission_port
    )


@needs_gsasl
def test_gsasl_scram_plus(server: ServerThread, scram_user: str) -> None:
    done = gsasl(server, "SCRAM-SHA-256-PLUS", scram_user, "secret")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250-AUTH SCRAM-SHA-256-PLUS" in done.stdout
    assert "235 2.7.0" in done.stdout
    assert "(TLS1.3)" in done.stderr
    # the first client message names the binding: p=tls-exporter (base64 "cD10bHMtZXhwb3J0ZXIs")
    assert "cD10bHMtZXhwb3J0ZXIs" in done.stdout


@needs_gsasl
def test_gsasl_scram_without_channel_binding(server: ServerThread, scram_user: str) -> None:
    done = gsasl(server, "SCRAM-SHA-256", scram_user, "secret", "--no-cb")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "235 2.7.0" in done.stdout


@needs_gsasl
def test_gsasl_scram_wrong_password(server: ServerThread, scram_user: str) -> None:
    done = gsasl(server, "SCRAM-SHA-256-PLUS", scram_user, "not-the-password")
    assert done.returncode != 0
    assert "535 5.7.8" in done.stdout


# --- IDLE woken by SMTP ----------------------------------------------------------------
def test_idle_sees_smtp_delivery(server: ServerThread, user: str) -> None:
    imap = RawClient(server.port, timeout=10)
    assert imap.cmd(f'LOGIN "{user}" "secret"', tag="a")[-1].startswith(b"a OK")
    assert b"* 0 EXISTS\r\n" in imap.cmd("SELECT INBOX", tag="b")
    imap.send(b"c IDLE\r\n")
    assert imap.readline().startswith(b"+ ")
    mark = token()
    message = f"From: a@elsewhere.test\r\nTo: {user}\r\nSubject: wake {mark}\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as client:
        assert client.sendmail("a@elsewhere.test", [user], message) == {}
    # the push arrives without polling; the socket timeout bounds each wait
    seen = [imap.readline()]
    while seen[-1] != b"* 1 EXISTS\r\n":
        assert len(seen) < 10, seen
        seen.append(imap.readline())
    imap.send(b"DONE\r\n")
    done = [imap.readline()]
    while not done[-1].startswith(b"c "):
        assert len(done) < 10, done
        done.append(imap.readline())
    assert done[-1].startswith(b"c OK")
    imap.close()
