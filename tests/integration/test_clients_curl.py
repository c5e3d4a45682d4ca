"""curl's IMAP client against the real server, over implicit TLS (imaps://) and STARTTLS
(imap:// with --ssl-reqd), verifying the certificate: listing, fetching whole messages,
sections and partial ranges by URL (RFC 5092), custom commands, APPEND by upload, and
failed logins."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import ServerThread
from tests.integration.mbox import sample_messages, simple

pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed"),
]

BOXES = [b"INBOX", b"Archive", b"Drafts", b"Junk", b"Sent", b"Trash"]


def curl(
    server: ServerThread, user: str, url: str, *args: str, password: str = "secret"
) -> subprocess.CompletedProcess[bytes]:
    """Runs curl on ``url`` (a path such as ``/INBOX;UID=1``, or a full URL) and returns
    the finished process; stdout is the payload, stderr the -v transcript if asked."""
    if url.startswith("/"):
        url = f"imaps://127.0.0.1:{server.tls_port}{url}"
    return subprocess.run(  # noqa: S603
        [
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "30",
            "--cacert",
            str(server.cert),
            "--user",
            f"{user}:{password}",
            *args,
            url,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == 0, (
        f"curl exited {proc.returncode}\nargs: {proc.args}\n"
        f"stderr:\n{proc.stderr.decode(errors='replace')[-4000:]}"
    )
    return proc.stdout


def sent(proc: subprocess.CompletedProcess[bytes]) -> list[bytes]:
    """The commands curl sent, from its -v transcript (``> A002 LOGIN ...``)."""
    return re.findall(rb"^> (A\d+ [^\r\n]*)", proc.stderr, re.M)


def mime_parts(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(header incl. the blank line, body) of each part of a multipart message, split on
    its boundary independently of the server's parser."""
    head, body = raw.split(b"\r\n\r\n", 1)
    boundary = re.search(rb'boundary="?([^";\r\n]+)"?', head).group(1)
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    parts = []
    for chunk in chunks[1:-1]:
        part = chunk.split(b"\r\n", 1)[1]  # after the rest of the delimiter line
        phead, pbody = part.split(b"\r\n\r\n", 1)
        parts.append((phead + b"\r\n\r\n", pbody))
    assert chunks[-1].startswith(b"--")
    return parts


@pytest.fixture(scope="module")
def mailbox(server: ServerThread) -> Iterator[str]:
    """An account with the first ten sample messages, UIDs 1..10; tests here only read."""
    user = server.new_user()
    for raw in sample_messages()[:10]:
        server.deliver(user, raw)
    yield user


def test_list_mailboxes_over_implicit_tls(server: ServerThread, mailbox: str) -> None:
    out = ok(curl(server, mailbox, "/"))
    lines = out.splitlines()
    assert [line.rsplit(b" ", 1)[1] for line in lines] == BOXES
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" INBOX'
    assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent' in lines


def test_list_mailboxes_over_starttls(server: ServerThread, mailbox: str) -> None:
    proc = curl(server, mailbox, f"imap://127.0.0.1:{server.port}/", "--ssl-reqd", "-v")
    out = ok(proc)
    assert [line.rsplit(b" ", 1)[1] for line in out.splitlines()] == BOXES
    commands = [c.split(b" ", 2)[1] for c in sent(proc)]
    # STARTTLS comes before any credentials, and the session goes on inside TLS
    assert commands.index(b"STARTTLS") < commands.index(b"AUTHENTICATE")
    assert b"SSL certificate verify ok" in proc.stderr


def test_certificate_is_verified_by_name(server: ServerThread, mailbox: str) -> None:
    out = ok(curl(server, mailbox, f"imaps://localhost:{server.tls_port}/"))
    assert out.startswith(b"* LIST ")
    # without the certificate curl refuses the self-signed one (exit 60)
    proc = subprocess.run(  # noqa: S603
        ["curl", "-sS", "-u", f"{mailbox}:secret", f"imaps://127.0.0.1:{server.tls_port}/"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 60, proc.stderr


@pytest.mark.parametrize("uid", [1, 2, 3, 6, 10])
def test_fetch_message_by_uid_is_byte_exact(server: ServerThread, mailbox: str, uid: int) -> None:
    assert ok(curl(server, mailbox, f"/INBOX;UID={uid}")) == sample_messages()[uid - 1]


def test_fetch_over_starttls_and_by_sequence_number(server: ServerThread, mailbox: str) -> None:
    url = f"imap://127.0.0.1:{server.port}/INBOX;UID=4"
    assert ok(curl(server, mailbox, url, "--ssl-reqd")) == sample_messages()[3]
    assert ok(curl(server, mailbox, "/INBOX;MAILINDEX=5")) == sample_messages()[4]


def test_fetch_header_text_and_partial(server: ServerThread, mailbox: str) -> None:
    raw = sample_messages()[0]
    head, body = raw.split(b"\r\n\r\n", 1)
    assert ok(curl(server, mailbox, "/INBOX;UID=1;SECTION=HEADER")) == head + b"\r\n\r\n"
    assert ok(curl(server, mailbox, "/INBOX;UID=1;SECTION=TEXT")) == body
    assert ok(curl(server, mailbox, "/INBOX;UID=1;PARTIAL=0.20")) == raw[:20]
    assert ok(curl(server, mailbox, "/INBOX;UID=1;PARTIAL=100.50")) == raw[100:150]
    out = ok(curl(server, mailbox, "/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT%20DATE)"))
    assert out == b"Date: Mon, 01 Jan 2024 02:41:02 +0200\r\nSubject: Lunch on Friday?\r\n\r\n"


def test_fetch_parts_of_multipart_messages(server: ServerThread, mailbox: str) -> None:
    # UID 3: multipart/alternative, text/plain then text/html
    raw = sample_messages()[2]
    parts = mime_parts(raw)
    assert len(parts) == 2 and b"text/html" in parts[1][0]
    for n, (phead, pbody) in enumerate(parts, 1):
        assert ok(curl(server, mailbox, f"/INBOX;UID=3;SECTION={n}")) == pbody
        assert ok(curl(server, mailbox, f"/INBOX;UID=3;SECTION={n}.MIME")) == phead
    # UID 6: multipart/mixed with an attached message/rfc822
    raw = sample_messages()[5]
    (_, text), (ahead, inner) = mime_parts(raw)
    assert b"message/rfc822" in ahead
    inner_head, inner_body = inner.split(b"\r\n\r\n", 1)
    assert ok(curl(server, mailbox, "/INBOX;UID=6;SECTION=1")) == text
    assert ok(curl(server, mailbox, "/INBOX;UID=6;SECTION=2")) == inner
    assert ok(curl(server, mailbox, "/INBOX;UID=6;SECTION=2.HEADER")) == inner_head + b"\r\n\r\n"
    assert ok(curl(server, mailbox, "/INBOX;UID=6;SECTION=2.TEXT")) == inner_body
    assert ok(curl(server, mailbox, "/INBOX;UID=6;SECTION=2.1")) == inner_body


def test_fetch_errors(server: ServerThread, mailbox: str) -> None:
    # no such UID: curl reports the remote file missing (78)
    proc = curl(server, mailbox, "/INBOX;UID=99")
    assert proc.returncode == 78, proc.stderr
    # UIDVALIDITY in the URL checked against the one SELECT reports
    proc = curl(server, mailbox, "/INBOX;UIDVALIDITY=5/;UID=1")
    assert proc.returncode == 78 and b"UIDVALIDITY" in proc.stderr, proc.stderr
    conn = server.connect(mailbox)
    typ, data = conn.status("INBOX", "(UIDVALIDITY)")
    assert typ == "OK"
    conn.logout()
    validity = int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))
    url = f"/INBOX;UIDVALIDITY={validity}/;UID=1"
    assert ok(curl(server, mailbox, url)) == sample_messages()[0]
    # no such mailbox
    proc = curl(server, mailbox, "/Nonexistent;UID=1")
    assert proc.returncode != 0


def test_url_search(server: ServerThread, mailbox: str) -> None:
    assert ok(curl(server, mailbox, "/INBOX?ALL")) == b"* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n"
    out = ok(curl(server, mailbox, "/INBOX?SUBJECT%20%22Build%20failure%22"))
    assert out == b"* SEARCH 3\r\n"


def test_custom_requests(server: ServerThread, mailbox: str) -> None:
    out = ok(curl(server, mailbox, "/INBOX", "-X", "EXAMINE INBOX"))
    assert b"* 10 EXISTS\r\n" in out
    assert re.search(rb"^\* OK \[UIDVALIDITY \d+\]", out, re.M)
    assert re.search(rb"^\* OK \[UIDNEXT 11\]", out, re.M)
    assert b"* OK [PERMANENTFLAGS ()]" in out  # EXAMINE is read-only
    assert ok(curl(server, mailbox, "/INBOX", "-X", "UID SEARCH ALL")) == (
        b"* SEARCH 1 2 3 4 5 6 7 8 9 10\r\n"
    )
    out = ok(curl(server, mailbox, "/", "-X", "STATUS INBOX (MESSAGES UIDNEXT)"))
    assert out == b"* STATUS INBOX (MESSAGES 10 UIDNEXT 11)\r\n"
    out = ok(curl(server, mailbox, "/INBOX", "-X", "UID FETCH 3 (UID RFC822.SIZE)"))
    assert out == b"* 3 FETCH (UID 3 RFC822.SIZE %d)\r\n" % len(sample_messages()[2])
    out = ok(curl(server, mailbox, "/", "-X", 'LIST "" "S*"'))
    assert out == b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
    out = ok(curl(server, mailbox, "/", "-X", "NAMESPACE"))
    assert out == b'* NAMESPACE (("" "/")) NIL NIL\r\n'


def test_store_and_fetch_sets_seen(server: ServerThread, user: str) -> None:
    """curl fetches with BODY[] (not PEEK), which sets \\Seen; STORE by custom request."""
    server.deliver(user, simple("one"))
    server.deliver(user, simple("two"))
    proc = curl(server, user, "/INBOX;UID=1", "-v")
    assert ok(proc) == simple("one")
    # the implicit \Seen is reported in the same FETCH response (RFC 9051 6.4.5)
    assert re.search(
        rb"^< \* 1 FETCH \(.*FLAGS \((\\Recent )?\\Seen\).*BODY\[\] \{", proc.stderr, re.M
    )
    out = ok(curl(server, user, "/INBOX", "-X", "UID STORE 2 +FLAGS (\\Flagged $Work)"))
    # a new keyword: FLAGS and PERMANENTFLAGS announce it before the FETCH (RFC 9051 7.3.5)
    lines = out.splitlines()
    assert lines[0] == b"* FLAGS (\\Answered \\Deleted \\Draft \\Flagged \\Seen $Work)"
    assert lines[1].startswith(b"* OK [PERMANENTFLAGS (") and b"$Work" in lines[1]
    assert lines[2:] == [b"* 2 FETCH (UID 2 FLAGS (\\Flagged $Work))"]
    conn = server.connect(user)
    conn.select("INBOX", readonly=True)
    typ, data = conn.fetch("1:2", "(FLAGS)")
    assert typ == "OK"
    assert data == [b"1 (FLAGS (\\Seen))", b"2 (FLAGS (\\Flagged $Work))"]
    conn.logout()


def test_upload_appends_byte_for_byte(server: ServerThread, user: str, tmp_path: Path) -> None:
    small = simple("uploaded by curl")
    big = max(sample_messages(), key=len)  # several TLS records and socket reads
    for i, raw in enumerate([small, big]):
        f = tmp_path / f"m{i}.eml"
        f.write_bytes(raw)
        proc = curl(server, user, "/INBOX", "-T", str(f), "-v")
        assert ok(proc) == b""
        assert sent(proc)[-1].endswith(b"APPEND INBOX (\\Seen) {%d}" % len(raw))
    url = f"imap://127.0.0.1:{server.port}/Sent"
    f = tmp_path / "sent.eml"
    f.write_bytes(simple("sent over starttls"))
    assert ok(curl(server, user, url, "--ssl-reqd", "-T", str(f))) == b""

    conn = server.connect(user)
    conn.select("INBOX", readonly=True)
    typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
    assert typ == "OK"
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert bodies == [small, big]
    # curl appends with "(\\Seen)", which the server keeps (EXAMINE also shows \Recent:
    # nobody has selected INBOX since, RFC 3501 §6.3.2)
    flags = [re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1) for item in data[::2]]
    assert [f.replace(b"\\Recent ", b"") for f in flags] == [b"\\Seen", b"\\Seen"]
    conn.select("Sent", readonly=True)
    typ, data = conn.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == simple("sent over starttls")
    conn.logout()
    # and curl reads back what it wrote
    assert ok(curl(server, user, "/INBOX;UID=2")) == big


def test_upload_to_missing_mailbox_fails(server: ServerThread, user: str, tmp_path: Path) -> None:
    f = tmp_path / "m.eml"
    f.write_bytes(simple("lost"))
    proc = curl(server, user, "/NoSuchBox", "-T", str(f), "-v")
    assert proc.returncode != 0
    assert re.search(rb"^< A\d+ NO \[TRYCREATE\]", proc.stderr, re.M), proc.stderr[-2000:]


def test_mailbox_names_with_spaces_and_non_ascii(server: ServerThread, user: str) -> None:
    conn = server.connect(user)
    for name in ('"My Folder"', "Caf&AOk-"):  # "Café" in modified UTF-7
        typ, data = conn.create(name)
        assert typ == "OK", data
        typ, data = conn.append(name, None, None, simple(f"in {name}"))
        assert typ == "OK", data
    conn.logout()
    assert ok(curl(server, user, "/My%20Folder;UID=1")) == simple('in "My Folder"')
    assert ok(curl(server, user, "/Caf&AOk-;UID=1")) == simple("in Caf&AOk-")
    out = ok(curl(server, user, "/"))
    assert b'* LIST (\\HasNoChildren) "/" "My Folder"\r\n' in out
    assert b'* LIST (\\HasNoChildren) "/" Caf&AOk-\r\n' in out


def test_wrong_password_fails(server: ServerThread, user: str) -> None:
    proc = curl(server, user, "/", "-v", password="not-the-password")
    assert proc.returncode == 67, proc.stderr  # CURLE_LOGIN_DENIED
    assert proc.stdout == b""
    assert re.search(rb"^< A\d+ NO \[AUTHENTICATIONFAILED\]", proc.stderr, re.M), proc.stderr
    url = f"imap://127.0.0.1:{server.port}/INBOX;UID=1"
    proc = curl(server, user, url, "--ssl-reqd", password="")
    assert proc.returncode == 67, proc.stderr
    proc = curl(server, "nobody@example.org", "/")
    assert proc.returncode == 67, proc.stderr


def test_plaintext_login_refused_outside_trusted_networks(tmp_path: Path) -> None:
    """With no trusted network, curl on imap:// without TLS gets LOGINDISABLED and sends
    no credentials; with --ssl-reqd it upgrades and logs in."""
    srv = ServerThread(tmp_path, trusted_networks=())
    try:
        user = srv.new_user()
        srv.deliver(user, simple("private"))
        url = f"imap://127.0.0.1:{srv.port}/INBOX;UID=1"
        proc = curl(srv, user, url, "-v")
        assert proc.returncode != 0 and proc.stdout == b""
        assert b"LOGINDISABLED" in proc.stderr
        assert not [c for c in sent(proc) if b"LOGIN " in c or b"AUTHENTICATE" in c]
        assert ok(curl(srv, user, url, "--ssl-reqd")) == simple("private")
    finally:
        srv.stop()
