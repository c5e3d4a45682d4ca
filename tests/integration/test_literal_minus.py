"""LITERAL- (RFC 7888) on a server configured with ``literal_plus = false``: only
LITERAL- is advertised, non-synchronising literals up to 4096 octets work, larger ones
get BAD [TOOBIG] without losing the session, synchronising literals are unaffected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


@pytest.fixture(scope="module")
def minus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = ServerThread(Path(tmp_path_factory.mktemp("minus")), literal_plus=False)
    yield srv
    srv.stop()


def test_capability_advertises_literal_minus_only(minus_server: ServerThread) -> None:
    c = RawClient(minus_server.port)
    caps = c.cmd("CAPABILITY", tag="c")[0].split()
    assert b"LITERAL-" in caps and b"LITERAL+" not in caps
    c.close()


def test_default_server_advertises_literal_plus_only(server: ServerThread) -> None:
    c = RawClient(server.port)
    caps = c.cmd("CAPABILITY", tag="c")[0].split()
    assert b"LITERAL+" in caps and b"LITERAL-" not in caps
    c.close()


def test_non_sync_literals_under_literal_minus(minus_server: ServerThread) -> None:
    user = minus_server.new_user()
    c = RawClient(minus_server.port)
    assert c.cmd(b"L LOGIN {%d+}\r\n%s secret" % (len(user), user.encode()))[-1].startswith(b"L OK")
    small = simple("small", "x" * 1000)
    assert len(small) <= 4096
    lines = c.cmd(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(small), small))
    assert lines[-1].startswith(b"a OK"), lines
    big = simple("big", "y" * 6000)
    lines = c.cmd(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(big), big))
    assert lines == [
        b"b BAD [TOOBIG] Non-synchronising literals are limited to 4096 octets (LITERAL-)\r\n"
    ]
    # the same message as a synchronising literal is accepted
    c.send(b"s APPEND INBOX {%d}\r\n" % len(big))
    assert c.readline().startswith(b"+ ")
    c.send(big + b"\r\n")
    reply = c.readline()
    assert reply.startswith(b"s OK"), reply
    status = c.cmd("STATUS INBOX (MESSAGES)", tag="t")
    assert b"(MESSAGES 2)" in status[0]
    c.close()
