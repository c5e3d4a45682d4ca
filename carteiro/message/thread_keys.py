"""The ids a message is threaded by (RFC 8474 THREADID): its own Message-ID, then the
ids in In-Reply-To and References, newest reference first."""

from __future__ import annotations

import re

from carteiro.message.meta import MessageMeta
from carteiro.message.search import header_values

_MSGID = re.compile(r"<([^<>\s]{1,250})>")


def thread_keys(raw: bytes, meta: MessageMeta) -> tuple[str, ...]:
    own = [m.lower() for v in header_values(raw, meta, "Message-ID") for m in _MSGID.findall(v)]
    refs: list[str] = []
    for field in ("In-Reply-To", "References"):
        for value in header_values(raw, meta, field):
            refs.extend(m.lower() for m in _MSGID.findall(value))
    # the own id must come first; with no Message-ID at all the message starts a thread
    keys = own[:1] + list(reversed(refs[-32:])) if own else list(reversed(refs[-32:]))
    return tuple(dict.fromkeys(keys))
