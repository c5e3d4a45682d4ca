"""Messages of the sample mbox, as CRLF wire bytes."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-100.mbox"


@lru_cache(maxsize=1)
def sample_messages() -> tuple[bytes, ...]:
    data = SAMPLE.read_bytes()
    parts = re.split(rb"(?m)^From [^\n]*\n", data)
    msgs = []
    for p in parts:
        if not p.strip():
            continue
        p = re.sub(rb"(?m)^>(>*From )", rb"\1", p)  # mboxrd unquoting
        if p.endswith(b"\n\n"):
            p = p[:-1]
        msgs.append(p.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return tuple(msgs)


def simple(
    subject: str = "hello", body: str = "Hi there.\r\n", sender: str = "a@example.com"
) -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n\r\n{body}"
    ).encode()
