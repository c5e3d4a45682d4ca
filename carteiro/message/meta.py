"""Per-message metadata computed once at delivery/APPEND and served by FETCH.

Stored form (``MessageMeta.to_bytes``)::

    b"CMM1" + 5 x uint32 LE lengths + envelope + body + bodystructure + sent_date + tree

``sent_date`` is ``YYYY-MM-DD`` or empty; ``tree`` is compact JSON (decoded only when
``MessageMeta.tree`` is first used). The three FETCH items are plain slices, so loading
one costs a struct unpack; :func:`stored_segment` reads one without building an object.
"""

from __future__ import annotations

import datetime
import json
import struct
from email.utils import parsedate_tz
from typing import Any

from carteiro.message.bodystructure import structures
from carteiro.message.envelope import envelope
from carteiro.message.headers import first_value, parse_fields
from carteiro.message.parse import Part, parse_message

MAGIC = b"CMM1"
_LENGTHS = struct.Struct("<5I")
_HEAD = len(MAGIC) + _LENGTHS.size

ENVELOPE, BODY, BODYSTRUCTURE = 0, 1, 2


def sent_date_of(value: bytes | None) -> datetime.date | None:
    """The calendar date of a Date: header in the header's own zone (RFC 9051 SENT*)."""
    if not value:
        return None
    try:
        parsed = parsedate_tz(value.decode("latin-1"))
        if parsed is None:
            return None
        return datetime.date(parsed[0], parsed[1], parsed[2])
    except (ValueError, TypeError, OverflowError, IndexError):
        return None


def _tree_to_json(p: Part) -> list[Any]:
    return [
        p.header_start,
        p.body_start,
        p.body_end,
        p.type,
        p.subtype,
        [list(kv) for kv in p.params],
        p.encoding,
        p.lines,
        [_tree_to_json(c) for c in p.children],
        None if p.message is None else _tree_to_json(p.message),
    ]


def _tree_from_json(d: list[Any]) -> Part:
    return Part(
        d[0],
        d[1],
        d[2],
        d[3],
        d[4],
        tuple((k, v) for k, v in d[5]),
        d[6],
        d[7],
        [_tree_from_json(c) for c in d[8]],
        None if d[9] is None else _tree_from_json(d[9]),
    )


class MessageMeta:
    """ENVELOPE, BODY, BODYSTRUCTURE (serialised IMAP bytes), the part tree and the
    sent date of one message."""

    __slots__ = ("envelope", "body", "bodystructure", "sent_date", "_tree", "_tree_json")

    def __init__(
        self,
        envelope: bytes,
        body: bytes,
        bodystructure: bytes,
        sent_date: datetime.date | None,
        tree: Part | None = None,
        *,
        tree_json: bytes | None = None,
    ) -> None:
        if tree is None and tree_json is None:
            raise ValueError("MessageMeta needs a tree")
        self.envelope = envelope
        self.body = body
        self.bodystructure = bodystructure
        self.sent_date = sent_date
        self._tree = tree
        self._tree_json = tree_json

    @property
    def tree(self) -> Part:
        """The root entity (decoded from storage on first use)."""
        if self._tree is None:
            assert self._tree_json is not None
            self._tree = _tree_from_json(json.loads(self._tree_json))
        return self._tree

    def to_bytes(self) -> bytes:
        tree_json = self._tree_json
        if tree_json is None:
            tree_json = json.dumps(_tree_to_json(self.tree), separators=(",", ":")).encode()
        date = b"" if self.sent_date is None else self.sent_date.isoformat().encode()
        segs = (self.envelope, self.body, self.bodystructure, date, tree_json)
        return MAGIC + _LENGTHS.pack(*(len(s) for s in segs)) + b"".join(segs)

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageMeta:
        """Load a stored form; raises ValueError if it is not one."""
        lens = _lengths(data)
        if _HEAD + sum(lens) != len(data):
            raise ValueError("truncated message metadata")
        a = _HEAD + lens[0]
        b = a + lens[1]
        c = b + lens[2]
        d = c + lens[3]
        date = data[c:d]
        try:
            sent = datetime.date.fromisoformat(date.decode()) if date else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("bad sent date in message metadata") from exc
        return cls(data[_HEAD:a], data[a:b], data[b:c], sent, tree_json=data[d:])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageMeta):
            return NotImplemented
        return (
            self.envelope == other.envelope
            and self.body == other.body
            and self.bodystructure == other.bodystructure
            and self.sent_date == other.sent_date
            and self.tree == other.tree
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageMeta(envelope={self.envelope!r}, sent_date={self.sent_date!r})"


def _lengths(data: bytes) -> tuple[int, ...]:
    if len(data) < _HEAD or not data.startswith(MAGIC):
        raise ValueError("not message metadata")
    return _LENGTHS.unpack_from(data, len(MAGIC))


def stored_segment(data: bytes, which: int) -> bytes:
    """One of ENVELOPE, BODY, BODYSTRUCTURE straight from the stored form."""
    if which not in (ENVELOPE, BODY, BODYSTRUCTURE):
        raise ValueError("unknown segment")
    lens = _lengths(data)
    start = _HEAD + sum(lens[:which])
    return data[start : start + lens[which]]


def analyse(raw: bytes) -> MessageMeta:
    """Parse ``raw`` once and compute everything FETCH and SEARCH need. Never raises."""
    root = parse_message(raw)
    fields = root.headers if root.headers is not None else parse_fields(raw, 0, root.body_start)
    body, bodystructure = structures(raw, root)
    return MessageMeta(
        envelope(fields),
        body,
        bodystructure,
        sent_date_of(first_value(fields, "date")),
        root,
    )
