"""Primitive IMAP grammar readers (RFC 9051 §9) over a received command.

A command reaches the parser as a list of *segments* built by the receiver: line
fragments (without CRLF) alternating with literal payloads.  Every line fragment
except the last ends with a literal announcement (``{n}``, ``{n+}``, ``~{n}``) and the
segment after it holds exactly the announced bytes.  :class:`Cursor` walks these
segments once, left to right; nothing is ever re-read.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence

from carteiro.imap.protocol.sequence_set import Bound, SequenceSet

MAX_NUMBER = 2**32 - 1
MAX_NUMBER64 = 2**63 - 1

# ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ]
_ATOM = re.compile(rb'[^(){ %*"\\\]\x00-\x1f\x7f-\xff]+')
# ASTRING-CHAR = ATOM-CHAR / "]"
_ASTRING_ATOM = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f-\xff]+')
# With UTF8=ACCEPT we tolerate 8-bit bytes in atoms too (validated as UTF-8 afterwards).
_ASTRING_ATOM_8 = re.compile(rb'[^(){ %*"\\\x00-\x1f\x7f]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials
_LIST_ATOM = re.compile(rb'[^(){ "\\\x00-\x1f\x7f-\xff]+')
_LIST_ATOM_8 = re.compile(rb'[^(){ "\\\x00-\x1f\x7f]+')
# tag = 1*<any ASTRING-CHAR except "+">
TAG = re.compile(rb'[^(){ %*"\\+\x00-\x1f\x7f-\xff]+')
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE = re.compile(rb"\\(.)")
_LITERAL = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}")
LITERAL_AT_END = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
_DIGITS = re.compile(rb"[0-9]+")
_SEQ_TOKEN = re.compile(rb"[0-9:*,$]+")
_SEQ_ITEM = re.compile(rb"(\*|[1-9][0-9]*)(?::(\*|[1-9][0-9]*))?\Z")
# RFC 9394 partial-range, up to the next delimiter (validated afterwards)
_PARTIAL = re.compile(rb"(-?)([0-9]+):(-?)([0-9]+)(?![^ )])")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME = re.compile(
    rb'" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})'
    rb' ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
MONTHS = {
    m: i + 1
    for i, m in enumerate(
        (
            b"JAN",
            b"FEB",
            b"MAR",
            b"APR",
            b"MAY",
            b"JUN",
            b"JUL",
            b"AUG",
            b"SEP",
            b"OCT",
            b"NOV",
            b"DEC",
        )
    )
}

SYSTEM_FLAGS = {
    f.lower(): f for f in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")
}


class ParseError(Exception):
    """A syntax (``BAD``) or parse-time (``NO [code]``) rejection with a client-safe text."""

    def __init__(self, text: str, code: str | None = None, status: str = "BAD") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


class Cursor:
    """Reads grammar productions from the segments of one command."""

    def __init__(
        self,
        segments: Sequence[bytes],
        *,
        utf8: bool = False,
        max_depth: int = 16,
        max_search_depth: int = 64,
    ) -> None:
        if not segments:
            raise ParseError("Empty command")
        self._segs = segments
        self._i = 0
        self.line = segments[0]
        self.pos = 0
        self.utf8 = utf8
        self.max_depth = max_depth
        self.max_search_depth = max_search_depth
        self.depth = 0
        self.search_depth = 0
        #: Accept 8-bit quoted strings even without UTF-8 (SEARCH values; many clients
        #: send them under ``CHARSET UTF-8``). They still have to be valid UTF-8.
        self.allow_8bit = False

    # --- positioning -----------------------------------------------------------------

    def peek(self) -> int | None:
        """The next byte of the current line fragment, or None at its end."""
        return self.line[self.pos] if self.pos < len(self.line) else None

    def peek_bytes(self, n: int) -> bytes:
        return self.line[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self._i == len(self._segs) - 1

    def end(self) -> None:
        if not self.at_end():
            if self.pos >= len(self.line) or self.peek() == ord("{"):
                raise ParseError("Unexpected literal")
            raise ParseError("Unexpected characters after command")

    def maybe(self, token: bytes) -> bool:
        if self.line.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def maybe_word(self, word: bytes) -> bool:
        """Consume ``word`` case-insensitively if it is followed by SP, ``)`` or the end."""
        end = self.pos + len(word)
        if self.line[self.pos : end].upper() != word:
            return False
        if end < len(self.line) and self.line[end] not in b" )":
            return False
        self.pos = end
        return True

    def expect(self, token: bytes, what: str) -> None:
        if not self.maybe(token):
            raise ParseError(f"Expected {what}")

    def sp(self) -> None:
        if not self.maybe(b" "):
            if self.pos >= len(self.line):
                raise ParseError("Missing argument")
            raise ParseError("Expected a single space")

    def match(self, regex: re.Pattern[bytes]) -> re.Match[bytes] | None:
        m = regex.match(self.line, self.pos)
        if m is not None:
            self.pos = m.end()
        return m

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("Too deeply nested")

    def leave(self) -> None:
        self.depth -= 1

    # --- tokens ----------------------------------------------------------------------

    def atom(self, what: str = "atom") -> bytes:
        m = self.match(_ATOM)
        if m is None:
            raise ParseError(f"Expected {what}")
        return m.group()

    def word(self, what: str = "keyword") -> str:
        """An atom, upper-cased (command names, option names)."""
        return self.atom(what).decode("ascii").upper()

    def literal(self, *, allow8: bool = False) -> bytes:
        m = self.match(_LITERAL)
        if m is None:
            raise ParseError("Expected literal")
        if self.pos != len(self.line) or self._i + 2 >= len(self._segs):
            raise ParseError("Literal must be followed by CRLF")
        if m.group(1) and not allow8:
            raise ParseError("literal8 not allowed here")
        data = self._segs[self._i + 1]
        self._i += 2
        self.line = self._segs[self._i]
        self.pos = 0
        return data

    def at_literal(self) -> bool:
        c = self.peek()
        return c == ord("{") or (c == ord("~") and self.peek_bytes(2) == b"~{")

    def _check_text(self, data: bytes, what: str) -> bytes:
        if not data.isascii():
            if not (self.utf8 or self.allow_8bit):
                raise ParseError(f"8-bit characters not allowed in {what}")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError(f"Invalid UTF-8 in {what}") from None
        return data

    def quoted(self) -> bytes:
        m = self.match(_QUOTED)
        if m is None:
            raise ParseError("Invalid quoted string")
        raw = m.group(1)
        if b"\\" in raw:
            raw = _UNESCAPE.sub(rb"\1", raw)
        return self._check_text(raw, "quoted string")

    def string(self) -> bytes:
        c = self.peek()
        if c == ord('"'):
            return self.quoted()
        if self.at_literal():
            data = self.literal()
            if b"\x00" in data:
                raise ParseError("NUL in literal")
            return data
        raise ParseError("Expected string")

    def astring(self, what: str = "string") -> bytes:
        c = self.peek()
        if c == ord('"') or self.at_literal():
            return self.string()
        m = self.match(_ASTRING_ATOM_8 if self.utf8 else _ASTRING_ATOM)
        if m is None:
            raise ParseError(f"Expected {what}")
        return self._check_text(m.group(), what)

    def nstring(self) -> bytes | None:
        if self.maybe_word(b"NIL"):
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        c = self.peek()
        if c == ord('"') or self.at_literal():
            return self.string()
        m = self.match(_LIST_ATOM_8 if self.utf8 else _LIST_ATOM)
        if m is None:
            raise ParseError("Expected mailbox pattern")
        return self._check_text(m.group(), "mailbox pattern")

    def mailbox(self) -> str:
        data = self.astring("mailbox name")
        return decode_utf8(data, "mailbox name")

    def number(self, *, limit: int = MAX_NUMBER, nonzero: bool = False) -> int:
        m = self.match(_DIGITS)
        if m is None:
            raise ParseError("Expected number")
        digits = m.group()
        if len(digits) > 20 or int(digits) > limit:
            raise ParseError("Number too large")
        value = int(digits)
        if nonzero and (value == 0 or digits[0] == ord("0")):
            raise ParseError("Expected non-zero number")
        return value

    def sequence_set(self) -> SequenceSet:
        m = self.match(_SEQ_TOKEN)
        if m is None:
            raise ParseError("Expected sequence set")
        return parse_sequence_set(m.group())

    def partial_range(self) -> tuple[int, int]:
        """RFC 9394 ``partial-range``: ``nz-number ":" nz-number`` (from the first
        match) or ``"-" nz-number ":" "-" nz-number`` (from the last match).

        A range and its reverse mean the same, so the result is normalised: the end
        nearer the start of the results comes first, e.g. ``(1, 100)`` for ``100:1``
        and ``(-1, -100)`` for ``-100:-1``."""
        m = self.match(_PARTIAL)
        if m is None:
            raise ParseError("Invalid PARTIAL range")
        sign1, first, sign2, last = m.groups()
        if sign1 != sign2:
            raise ParseError("PARTIAL range mixes signs")
        values: list[int] = []
        for digits in (first, last):
            if digits[0] == ord("0"):
                raise ParseError("Invalid PARTIAL range")
            if len(digits) > 10 or int(digits) > MAX_NUMBER:
                raise ParseError("Number too large")
            values.append(int(digits))
        lo, hi = min(values), max(values)
        return (-lo, -hi) if sign1 else (lo, hi)

    def date(self) -> datetime.date:
        quoted = self.maybe(b'"')
        m = self.match(_DATE)
        if m is None or (quoted and not self.maybe(b'"')):
            raise ParseError("Invalid date")
        month = MONTHS.get(m.group(2).upper())
        if month is None:
            raise ParseError("Invalid date")
        try:
            return datetime.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise ParseError("Invalid date") from None

    def date_time(self) -> datetime.datetime:
        m = self.match(_DATE_TIME)
        if m is None:
            raise ParseError("Invalid date-time")
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = MONTHS.get(mon.upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError
            offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
            tz = datetime.timezone(-offset if sign == b"-" else offset)
            return datetime.datetime(
                int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz
            )
        except ValueError:
            raise ParseError("Invalid date-time") from None

    def flag(self, *, allow_recent: bool = False) -> str:
        if self.maybe(b"\\"):
            name = "\\" + self.atom("flag").decode("ascii")
            canon = SYSTEM_FLAGS.get(name.lower())
            if canon is None:
                raise ParseError("Unknown system flag")
            if canon == "\\Recent" and not allow_recent:
                raise ParseError("\\Recent cannot be set by the client")
            return canon
        return self.atom("flag").decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(", "flag list")
        flags: list[str] = []
        if not self.maybe(b")"):
            flags.append(self.flag())
            while not self.maybe(b")"):
                self.sp()
                flags.append(self.flag())
        return tuple(dict.fromkeys(flags))

    def tagged_ext_val(self) -> object:
        """RFC 4466 ``tagged-ext-val``: a number (int), a sequence set or other simple
        value (str), or a parenthesised list (tuple) of those."""
        if self.maybe(b"("):
            self.enter()
            items: list[object] = []
            if not self.maybe(b")"):
                items.append(self.tagged_ext_val())
                while not self.maybe(b")"):
                    self.sp()
                    items.append(self.tagged_ext_val())
            self.leave()
            return tuple(items)
        m = self.match(_SEQ_TOKEN)
        if m is not None:
            token = m.group()
            if token.isdigit():
                if len(token) > 20 or int(token) > MAX_NUMBER64:
                    raise ParseError("Number too large")
                return int(token)
            parse_sequence_set(token)
            return token.decode("ascii")
        return decode_utf8(self.astring("value"), "value")

    def ext_params(
        self, readers: Mapping[str, Callable[[Cursor], object]] | None = None
    ) -> tuple[tuple[str, object], ...]:
        """``"(" name [SP value] *(SP name [SP value]) ")"`` (select/fetch/store modifiers).

        ``readers`` maps (upper-case) parameter names whose value has its own grammar
        to a reader; such a parameter must have a value."""
        self.expect(b"(", "parameter list")
        self.enter()
        params: list[tuple[str, object]] = []
        while True:
            name = self.word("parameter name")
            value: object = None
            nxt = self.line[self.pos + 1 : self.pos + 2]
            reader = readers.get(name) if readers else None
            if reader is not None:
                if self.peek() != ord(" ") or not nxt or nxt in b" )":
                    raise ParseError(f"Missing {name} value")
                self.sp()
                value = reader(self)
            elif self.peek() == ord(" ") and nxt and nxt in b"(0123456789*$-":
                self.sp()
                value = self.tagged_ext_val()
            params.append((name, value))
            if self.maybe(b")"):
                break
            self.sp()
        self.leave()
        return tuple(params)


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(f"Invalid UTF-8 in {what}") from None


def _seq_number(token: bytes) -> Bound:
    if token == b"*":
        return None
    if len(token) > 10 or int(token) > MAX_NUMBER:
        raise ParseError("Sequence number too large")
    return int(token)


def parse_sequence_set(data: bytes) -> SequenceSet:
    """Parse ``sequence-set`` (or ``$``, RFC 5182); raise :class:`ParseError` if invalid."""
    if data == b"$":
        return SequenceSet((), saved=True)
    ranges: list[tuple[Bound, Bound]] = []
    for item in data.split(b","):
        m = _SEQ_ITEM.match(item)
        if m is None:
            raise ParseError("Invalid sequence set")
        lo = _seq_number(m.group(1))
        hi = lo if m.group(2) is None else _seq_number(m.group(2))
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))
