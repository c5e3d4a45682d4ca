"""MIME tree with byte offsets (RFC 2045, RFC 2046 §5, RFC 5322).

``parse_message(raw)`` walks the message once and records, for every entity, where its
header starts, where its body starts and where its body ends. Multipart children are
found by their delimiter lines (the line break before a delimiter belongs to the
delimiter, RFC 2046 §5.1.1); ``message/rfc822`` and ``message/global`` bodies are parsed
as nested messages. Preamble and epilogue are kept out of the children; a missing close
delimiter ends the last child at the end of its parent.

The parser never raises: anything it cannot make sense of becomes ``text/plain``.
Nesting depth and the total number of parts are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carteiro.message.headers import HeaderField, first_value, header_end, parse_fields
from carteiro.message.params import Params, get_param, parse_content_type

MAX_DEPTH = 50
"""Deepest nesting of multipart / message entities that is parsed; deeper ones are
leaves (a multipart then has no children, a message/rfc822 no encapsulated message)."""
MAX_PARTS = 2000
"""Most entities recorded for one message; further children are ignored."""

_PASSTHROUGH = frozenset({"7bit", "8bit", "binary"})


@dataclass(slots=True)
class Part:
    """One MIME entity: ``raw[header_start:body_start]`` is its header (blank line
    included), ``raw[body_start:body_end]`` its body.

    ``type``/``subtype`` are lower-case (``text/plain`` when absent or invalid; in a
    multipart/digest the default is ``message/rfc822``). ``encoding`` is the
    Content-Transfer-Encoding, lower-case, ``7bit`` when absent. ``lines`` is counted for
    text and message entities only. ``message`` is the encapsulated message of a
    message/rfc822 or message/global entity (its header starts at ``body_start``).
    ``headers`` is set by the parser for the benefit of :mod:`carteiro.message.meta` and
    is not stored.
    """

    header_start: int
    body_start: int
    body_end: int
    type: str = "text"
    subtype: str = "plain"
    params: Params = ()
    encoding: str = "7bit"
    lines: int = 0
    children: list[Part] = field(default_factory=list)
    message: Part | None = None
    headers: list[HeaderField] | None = field(default=None, compare=False, repr=False)

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    @property
    def charset(self) -> str | None:
        value = get_param(self.params, "charset")
        return value.strip().lower() if value else None

    def param(self, name: str) -> str | None:
        """A Content-Type parameter (lower-case name), RFC 2231 decoded."""
        return get_param(self.params, name)

    def walk(self) -> list[Part]:
        """This entity and all entities below it, depth first in part-number order
        (an encapsulated message comes right after its message/rfc822 entity)."""
        out: list[Part] = []
        stack: list[Part] = [self]
        while stack:
            p = stack.pop()
            out.append(p)
            if p.message is not None:
                stack.append(p.message)
            stack.extend(reversed(p.children))
        return out


def count_lines(raw: bytes, start: int, end: int) -> int:
    """Lines in ``raw[start:end]``: line breaks, plus one for a final unterminated line."""
    if end <= start:
        return 0
    n = raw.count(b"\n", start, end)
    if raw[end - 1] != 0x0A:
        n += 1
    return n


class _Parser:
    __slots__ = ("raw", "count")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0

    def entity(self, start: int, end: int, depth: int, digest: bool) -> Part:
        raw = self.raw
        self.count += 1
        body_start = header_end(raw, start, end)
        fields = parse_fields(raw, start, body_start)
        part = Part(start, body_start, end, headers=fields)
        ctype = first_value(fields, "content-type")
        parsed = parse_content_type(ctype.decode("latin-1")) if ctype is not None else None
        if parsed is not None:
            part.type, part.subtype, part.params = parsed
        elif digest:
            part.type, part.subtype = "message", "rfc822"
        cte = first_value(fields, "content-transfer-encoding")
        if cte:
            token = cte.decode("latin-1").split(None, 1)
            if token:
                part.encoding = token[0].split("(", 1)[0].lower() or "7bit"
        ptype = part.type
        if ptype == "text":
            part.lines = count_lines(raw, body_start, end)
        elif ptype == "multipart":
            boundary = part.param("boundary")
            if boundary and depth < MAX_DEPTH:
                self.multipart(part, boundary.encode("latin-1"), depth)
        elif ptype == "message":
            part.lines = count_lines(raw, body_start, end)
            if (
                part.subtype in ("rfc822", "global")
                and part.encoding in _PASSTHROUGH
                and depth < MAX_DEPTH
                and self.count < MAX_PARTS
            ):
                part.message = self.entity(body_start, end, depth + 1, False)
        return part

    def multipart(self, part: Part, boundary: bytes, depth: int) -> None:
        raw = self.raw
        start = part.body_start
        end = part.body_end
        delim = b"--" + boundary
        line_delim = b"\n" + delim  # a delimiter only counts at the start of a line
        dlen = len(delim)
        digest = part.subtype == "digest"
        children = part.children
        pos = start
        child_start = -1
        while True:
            if pos == start and raw.startswith(delim, start, end):
                i = start
            else:
                i = raw.find(line_delim, pos - 1 if pos > start else start, end)
                if i < 0:
                    break
                i += 1
            j = i + dlen
            close = raw.startswith(b"--", j, end)
            k = j + 2 if close else j
            eol = raw.find(b"\n", k, end)
            line_end = end if eol < 0 else eol
            if k < line_end and raw[k:line_end].strip(b" \t\r"):
                pos = j
                continue
            if child_start >= 0:
                child_end = i
                if child_end > child_start and raw[child_end - 1] == 0x0A:
                    child_end -= 1
                    if child_end > child_start and raw[child_end - 1] == 0x0D:
                        child_end -= 1
                if self.count >= MAX_PARTS:
                    return
                children.append(self.entity(child_start, child_end, depth + 1, digest))
            if close:
                return
            child_start = pos = end if eol < 0 else eol + 1
        if child_start >= 0 and self.count < MAX_PARTS:
            children.append(self.entity(child_start, end, depth + 1, digest))


def parse_message(raw: bytes) -> Part:
    """The part tree of ``raw``; the root spans the whole message."""
    return _Parser(raw).entity(0, len(raw), 0, False)
