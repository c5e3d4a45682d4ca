"""Typed FETCH attributes (RFC 9051 §6.4.5). Macros ALL/FAST/FULL are expanded by the parser."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Simple(Enum):
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    ENVELOPE = "ENVELOPE"
    BODY = "BODY"  # non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    UID = "UID"
    RFC822 = "RFC822"  # rev1: same as BODY[], sets \Seen
    RFC822_HEADER = "RFC822.HEADER"  # rev1: BODY.PEEK[HEADER]
    RFC822_TEXT = "RFC822.TEXT"  # rev1: BODY[TEXT], sets \Seen
    MODSEQ = "MODSEQ"  # RFC 7162 CONDSTORE
    SAVEDATE = "SAVEDATE"  # RFC 8514
    EMAILID = "EMAILID"  # RFC 8474 OBJECTID
    THREADID = "THREADID"  # RFC 8474 OBJECTID
    PREVIEW = "PREVIEW"  # RFC 8970; ``PREVIEW (LAZY)`` parses to this too


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec``: a part path and an optional text specifier.

    ``part == ()`` addresses the whole message. ``text`` is one of ``None``,
    ``"HEADER"``, ``"HEADER.FIELDS"``, ``"HEADER.FIELDS.NOT"``, ``"TEXT"``, ``"MIME"``
    (upper-cased). ``fields`` holds the header names, upper-cased, for HEADER.FIELDS[.NOT].
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def label(self) -> str:
        """The section as it appears between brackets in the response."""
        parts = ".".join(str(p) for p in self.part)
        if self.text is None:
            return parts
        spec = self.text
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return f"{parts}.{spec}" if parts else spec


@dataclass(frozen=True, slots=True)
class BodySection:
    """``BODY[...]``, ``BODY.PEEK[...]``, ``BINARY[...]`` and ``BINARY.PEEK[...]``.

    ``partial`` is ``(origin, length)`` from ``<origin.length>``.
    """

    section: Section
    peek: bool = False
    partial: tuple[int, int] | None = None
    binary: bool = False

    def response_label(self) -> str:
        name = "BINARY" if self.binary else "BODY"
        label = f"{name}[{self.section.label()}]"
        if self.partial is not None:
            label += f"<{self.partial[0]}>"
        return label


@dataclass(frozen=True, slots=True)
class BinarySize:
    """``BINARY.SIZE[part]`` (RFC 3516)."""

    part: tuple[int, ...]


FetchAttr = Simple | BodySection | BinarySize

MACRO_FAST: tuple[FetchAttr, ...] = (Simple.FLAGS, Simple.INTERNALDATE, Simple.RFC822_SIZE)
MACRO_ALL: tuple[FetchAttr, ...] = (*MACRO_FAST, Simple.ENVELOPE)
MACRO_FULL: tuple[FetchAttr, ...] = (*MACRO_ALL, Simple.BODY)


def sets_seen(attr: FetchAttr) -> bool:
    """Whether fetching ``attr`` implicitly sets ``\\Seen`` (RFC 9051 §6.4.5)."""
    if isinstance(attr, BodySection):
        return not attr.peek
    return attr in (Simple.RFC822, Simple.RFC822_TEXT)
