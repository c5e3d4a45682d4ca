"""POP3 transcripts (``*.pop3`` next to this file) replayed against the real server.

Format, one item per line: ``C: line`` is sent by the client; ``S: pattern`` must match
the next server line, where a ``*`` standing alone (or inside ``[...]``) matches any
text and ``{user}`` is the account; ``@deliver SUBJECT`` stores a simple message in the
account's INBOX before the next line; ``#`` starts a comment.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.integration.harness import OPEN, ServerThread
from tests.integration.mbox import simple

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*.pop3"))


def pattern(text: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in text.split("*")]
    return re.compile(".*".join(parts), re.DOTALL)


def test_enough_cases() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_pop3_transcript(case: Path, server: ServerThread) -> None:
    user = server.new_user()
    sock = socket.create_connection(("127.0.0.1", server.pop3_port), timeout=10)
    OPEN.append(sock)
    reader = sock.makefile("rb")
    for lineno, raw in enumerate(case.read_text().splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        text = raw.replace("{user}", user)
        if text.startswith("@deliver "):
            server.deliver(user, simple(text[len("@deliver ") :]))
        elif text.startswith("C: "):
            sock.sendall(text[3:].encode() + b"\r\n")
        elif text.startswith("S: "):
            got = reader.readline().decode("utf-8", "replace").rstrip("\r\n")
            assert pattern(text[3:]).fullmatch(got), f"{case.name}:{lineno}: {got!r}"
        else:
            raise AssertionError(f"{case.name}:{lineno}: cannot parse {raw!r}")
    reader.close()
