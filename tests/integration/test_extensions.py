"""COMPRESS=DEFLATE, UNAUTHENTICATE, OBJECTID, SAVEDATE, WITHIN, PREVIEW,
CREATE-SPECIAL-USE, STATUS MAILBOXID/APPENDLIMIT, against the real server."""

from __future__ import annotations

import re
import zlib
from typing import Any

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple
from tests.integration.test_sync import read_until


class DeflateSocket:
    """The client half of RFC 4978: raw DEFLATE both ways, sync-flushed per write."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.inp = zlib.decompressobj(-15)
        self.raw_in = 0

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def recv(self, n: int) -> bytes:
        while True:
            data = self.sock.recv(n)
            if not data:
                return b""
            self.raw_in += len(data)
            out = self.inp.decompress(data)
            if out:
                return out

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def close(self) -> None:
        self.sock.close()


def login(server: ServerThread, user: str, tls: bool = False) -> RawClient:
    c = RawClient(server.tls_port if tls else server.port, tls=server.client_tls() if tls else None)
    c.cmd(f"LOGIN {user} secret", tag="L")
    return c


def compress(c: RawClient) -> DeflateSocket:
    assert c.cmd("COMPRESS DEFLATE", tag="z")[-1].startswith(b"z OK")
    c.sock = DeflateSocket(c.sock)
    return c.sock


def test_compress_deflate_with_idle_and_over_tls(server: ServerThread, user: str) -> None:
    for i in range(20):
        server.deliver(user, simple(f"compressed {i}", body="same words again and again\r\n" * 40))
    for tls in (False, True):
        c = login(server, user, tls=tls)
        assert b"COMPRESS=DEFLATE" in c.cmd("CAPABILITY", tag="a")[0]
        sock = compress(c)
        c.cmd("SELECT INBOX", tag="b")
        out = c.cmd("FETCH 1:* (BODY.PEEK[])", tag="c")
        assert out[-1].startswith(b"c OK") and len(out) >= 21  # 20, +1 per earlier round
        plain = sum(len(x) for x in out)
        assert sock.raw_in < plain / 4  # it really is compressed
        assert c.cmd("COMPRESS DEFLATE", tag="d")[-1].startswith(b"d NO [COMPRESSIONACTIVE]")
        # IDLE still delivers at once: every response is flushed
        c.send(b"i IDLE\r\n")
        assert c.readline().startswith(b"+ ")
        server.deliver(user, simple("wake up"))
        read_until(c, lambda line: line.endswith(b" EXISTS\r\n"))
        c.send(b"DONE\r\n")
        read_until(c, lambda line: line.startswith(b"i OK"))
        c.close()


def test_corrupt_compressed_input_ends_only_that_session(server: ServerThread, user: str) -> None:
    c = login(server, user)
    c.cmd("COMPRESS DEFLATE", tag="z")
    c.sock.sendall(b"\xff\xff\xff not deflate at all")
    other = login(server, user)
    assert other.cmd("NOOP", tag="n")[-1].startswith(b"n OK")
    other.close()
    c.close()


def test_unauthenticate(server: ServerThread, user: str) -> None:
    c = login(server, user)
    c.cmd("ENABLE IMAP4rev2", tag="a")
    c.cmd("SELECT INBOX", tag="b")
    assert c.cmd("UNAUTHENTICATE", tag="c")[-1].startswith(b"c OK")
    assert c.cmd("SELECT INBOX", tag="d")[-1].startswith(b"d BAD")  # not authenticated
    other = server.new_user()
    assert c.cmd(f"LOGIN {other} secret", tag="e")[-1].startswith(b"e OK")
    # nothing of the first login survives: not rev2 any more, so a rev1 SEARCH reply
    c.cmd("SELECT INBOX", tag="f")
    assert c.cmd("SEARCH ALL", tag="g")[0] == b"* SEARCH\r\n"
    c.close()


def test_objectid(server: ServerThread, user: str) -> None:
    root = b"Message-ID: <root@x>\r\nSubject: start\r\n\r\nhello\r\n"
    reply = b"Message-ID: <reply@x>\r\nIn-Reply-To: <root@x>\r\nSubject: Re: start\r\n\r\nhi\r\n"
    other = b"Message-ID: <other@x>\r\nSubject: unrelated\r\n\r\nbye\r\n"
    for raw in (root, reply, other):
        server.deliver(user, raw)
    c = login(server, user)
    created = c.cmd("CREATE Projects", tag="a")[-1]
    box_id = re.search(rb"\[MAILBOXID \((F\d+)\)\]", created)[1]
    assert box_id in c.cmd("STATUS Projects (MAILBOXID)", tag="b")[0]
    c.cmd("RENAME Projects Work", tag="c")
    assert box_id in c.cmd("STATUS Work (MAILBOXID)", tag="d")[0]  # stable across RENAME
    sel = b"".join(c.cmd("SELECT INBOX", tag="e"))
    assert re.search(rb"\* OK \[MAILBOXID \(F\d+\)\]", sel)
    out = c.cmd("FETCH 1:3 (EMAILID THREADID)", tag="f")
    ids = [
        re.search(rb"EMAILID \(([^)\s]+)\) THREADID \(([^)\s]+)\)", x).groups() for x in out[:-1]
    ]
    assert len({e for e, _ in ids}) == 3
    assert ids[0][1] == ids[1][1] != ids[2][1]  # the reply joins its parent's thread
    c.cmd("COPY 1 Work", tag="g")
    c.cmd("SELECT Work", tag="h")
    copied = c.cmd("FETCH 1 (EMAILID THREADID)", tag="i")[0]
    assert ids[0][0] in copied and ids[0][1] in copied  # same content, same ids
    c.cmd("SELECT INBOX", tag="j")
    found = c.cmd(f"SEARCH THREADID {ids[0][1].decode()}", tag="k")[0]
    assert found == b"* SEARCH 1 2\r\n"
    assert c.cmd(f"SEARCH EMAILID {ids[2][0].decode()}", tag="l")[0] == b"* SEARCH 3\r\n"
    c.close()


def test_savedate_within_and_status_appendlimit(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("new"))
    c = login(server, user)
    c.cmd("SELECT INBOX", tag="a")
    # an internal date in the past, but saved now
    m = simple("old")
    c.cmd(b'APPEND INBOX "01-Jan-2001 10:00:00 +0000" {%d+}\r\n' % len(m) + m + b"\r\n", tag="b")
    out = c.cmd("FETCH 1:2 (SAVEDATE INTERNALDATE)", tag="c")
    assert all(b'SAVEDATE "' in x for x in out[:-1])
    assert c.cmd("SEARCH SAVEDATESUPPORTED", tag="d")[0] == b"* SEARCH 1 2\r\n"
    assert c.cmd("SEARCH SAVEDBEFORE 1-Jan-2002", tag="e")[0] == b"* SEARCH\r\n"
    assert c.cmd("SEARCH BEFORE 1-Jan-2002", tag="f")[0] == b"* SEARCH 2\r\n"
    assert c.cmd("SEARCH YOUNGER 3600", tag="g")[0] == b"* SEARCH 1\r\n"
    assert c.cmd("SEARCH OLDER 3600", tag="h")[0] == b"* SEARCH 2\r\n"
    st = c.cmd("STATUS INBOX (APPENDLIMIT MESSAGES)", tag="i")[0]
    assert re.search(rb"APPENDLIMIT \d+ MESSAGES 2", st)
    c.close()


def test_preview(server: ServerThread, user: str) -> None:
    html = (
        b"Subject: html\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>Ol\xc3\xa1 <b>mundo</b></p><script>x()</script></body></html>\r\n"
    )
    server.deliver(user, simple("plain", body="First line.\r\n\r\nSecond   line.\r\n"))
    server.deliver(user, html)
    c = login(server, user)
    c.cmd("SELECT INBOX", tag="a")
    out = c.cmd("FETCH 1:2 (PREVIEW)", tag="b")
    assert out[0] == b'* 1 FETCH (PREVIEW "First line. Second line.")\r\n'
    assert b"Ol\xc3\xa1 mundo" in out[1] and b"x()" not in out[1]
    assert c.cmd("FETCH 2 (PREVIEW (LAZY))", tag="c")[0] == out[1]
    c.close()


def test_create_special_use(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert b"CREATE-SPECIAL-USE" in c.cmd("CAPABILITY", tag="a")[0]
    assert c.cmd("CREATE Everything (USE (\\All))", tag="b")[-1].startswith(b"b OK")
    assert b"\\All" in c.cmd('LIST "" Everything', tag="c")[0]
    assert c.cmd("CREATE Odd (USE (\\Bogus))", tag="d")[-1].startswith(b"d NO [USEATTR]")
    c.close()
