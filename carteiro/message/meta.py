"""Per-message metadata computed once at delivery/APPEND and served by FETCH.

Stored form (``MessageMeta.to_bytes``)::

    b"CMM2" + 6 x uint32 LE lengths
            + envelope + body + bodystructure + sent_date + preview + tree

``sent_date`` is ``YYYY-MM-DD`` or empty; ``preview`` is the RFC 8970 preview in UTF-8
(see :mod:`carteiro.message.preview`); ``tree`` is compact JSON (decoded only when
``MessageMeta.tree`` is first used). The three FETCH items are plain slices, so loading
one costs a struct unpack; :func:`stored_segment` reads one without building an object.

The previous form, ``b"CMM1" + 5 x uint32 LE lengths`` and the same segments without
``preview``, is still read: such metadata has ``preview`` None (the preview is computed
from the message when asked for, :meth:`MessageMeta.preview_text`) and is written back
unchanged in that form.
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
from carteiro.message.preview import preview as compute_preview

MAGIC = b"CMM2"
MAGIC_V1 = b"CMM1"
"""Metadata written before previews were stored (no ``preview`` segment)."""
_LENGTHS = struct.Struct("<6I")
_LENGTHS_V1 = struct.Struct("<5I")
#: the first three lengths of either form: ENVELOPE, BODY, BODYSTRUCTURE
_THREE = struct.Struct("<3I")
_HEAD = len(MAGIC) + _LENGTHS.size
_HEAD_V1 = len(MAGIC_V1) + _LENGTHS_V1.size

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
    """ENVELOPE, BODY, BODYSTRUCTURE (serialised IMAP bytes), the part tree, the sent
    date and the RFC 8970 preview of one message.

    ``preview`` is None when it is not known: metadata stored before previews were
    computed. :meth:`preview_text` then computes it from the message."""

    __slots__ = (
        "envelope",
        "body",
        "bodystructure",
        "sent_date",
        "preview",
        "_tree",
        "_tree_json",
    )

    def __init__(
        self,
        envelope: bytes,
        body: bytes,
        bodystructure: bytes,
        sent_date: datetime.date | None,
        tree: Part | None = None,
        *,
        tree_json: bytes | None = None,
        preview: str | None = None,
    ) -> None:
        if tree is None and tree_json is None:
            raise ValueError("MessageMeta needs a tree")
        self.envelope = envelope
        self.body = body
        self.bodystructure = bodystructure
        self.sent_date = sent_date
        self.preview = preview
        self._tree = tree
        self._tree_json = tree_json

    @property
    def tree(self) -> Part:
        """The root entity (decoded from storage on first use)."""
        if self._tree is None:
            assert self._tree_json is not None
            self._tree = _tree_from_json(json.loads(self._tree_json))
        return self._tree

    def preview_text(self, raw: bytes) -> str:
        """The RFC 8970 preview: the stored one, or computed from ``raw`` (the message
        this metadata describes) when it was stored before previews were."""
        if self.preview is not None:
            return self.preview
        return compute_preview(raw, self.tree)

    def to_bytes(self) -> bytes:
        """The stored form; metadata without a preview keeps the previous form."""
        tree_json = self._tree_json
        if tree_json is None:
            tree_json = json.dumps(_tree_to_json(self.tree), separators=(",", ":")).encode()
        date = b"" if self.sent_date is None else self.sent_date.isoformat().encode()
        if self.preview is None:
            segs: tuple[bytes, ...] = (
                self.envelope,
                self.body,
                self.bodystructure,
                date,
                tree_json,
            )
            return MAGIC_V1 + _LENGTHS_V1.pack(*(len(s) for s in segs)) + b"".join(segs)
        text = self.preview.encode("utf-8", "replace")
        segs = (self.envelope, self.body, self.bodystructure, date, text, tree_json)
        return MAGIC + _LENGTHS.pack(*(len(s) for s in segs)) + b"".join(segs)

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageMeta:
        """Load a stored form (current or previous); raises ValueError if it is not one."""
        lens = _lengths(data)
        head = _head(data)
        if head + sum(lens) != len(data):
            raise ValueError("truncated message metadata")
        a = head + lens[0]
        b = a + lens[1]
        c = b + lens[2]
        d = c + lens[3]
        date = data[c:d]
        try:
            sent = datetime.date.fromisoformat(date.decode()) if date else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("bad sent date in message metadata") from exc
        text: str | None = None
        if len(lens) == 6:
            e = d + lens[4]
            try:
                text = data[d:e].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError("bad preview in message metadata") from exc
            d = e
        return cls(data[head:a], data[a:b], data[b:c], sent, tree_json=data[d:], preview=text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageMeta):
            return NotImplemented
        return (
            self.envelope == other.envelope
            and self.body == other.body
            and self.bodystructure == other.bodystructure
            and self.sent_date == other.sent_date
            and self.preview == other.preview
            and self.tree == other.tree
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MessageMeta(envelope={self.envelope!r}, sent_date={self.sent_date!r})"


def _head(data: bytes) -> int:
    return _HEAD if data.startswith(MAGIC) else _HEAD_V1


def _lengths(data: bytes) -> tuple[int, ...]:
    if data.startswith(MAGIC) and len(data) >= _HEAD:
        return _LENGTHS.unpack_from(data, len(MAGIC))
    if data.startswith(MAGIC_V1) and len(data) >= _HEAD_V1:
        return _LENGTHS_V1.unpack_from(data, len(MAGIC_V1))
    raise ValueError("not message metadata")


def stored_segment(data: bytes, which: int) -> bytes:
    """One of ENVELOPE, BODY, BODYSTRUCTURE straight from the stored form."""
    if which not in (ENVELOPE, BODY, BODYSTRUCTURE):
        raise ValueError("unknown segment")
    lens = _lengths(data)
    start = _head(data) + sum(lens[:which])
    return data[start : start + lens[which]]


def stored_segments(data: bytes) -> tuple[bytes, bytes, bytes]:
    """ENVELOPE, BODY and BODYSTRUCTURE straight from the stored form, with one unpack:
    FETCH of these over thousands of messages."""
    if data.startswith(MAGIC) and len(data) >= _HEAD:
        e, b, s = _THREE.unpack_from(data, len(MAGIC))
        head = _HEAD
    else:
        e, b, s = _lengths(data)[:3]
        head = _HEAD_V1
    if head + e + b + s > len(data):
        raise ValueError("truncated message metadata")
    a = head + e
    return data[head:a], data[a : a + b], data[a + b : a + b + s]


def stored_preview(data: bytes) -> str | None:
    """The preview straight from the stored form; None for the previous form (no
    preview stored: compute it with :func:`carteiro.message.preview.preview`)."""
    lens = _lengths(data)
    if len(lens) != 6:
        return None
    start = _HEAD + sum(lens[:4])
    return data[start : start + lens[4]].decode("utf-8", "replace")


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
        preview=compute_preview(raw, root),
    )
