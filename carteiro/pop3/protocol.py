"""POP3 (RFC 1939, RFC 2449, RFC 5034) as pure functions over bytes: command lines in,
response bytes out. No I/O, no store: the server adapter drives it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_LINE",
    "Command",
    "LineReader",
    "LineTooLong",
    "ParseError",
    "err",
    "multiline",
    "ok",
    "parse",
]

#: RFC 2449 §4: a command line is at most 255 octets, CRLF included
MAX_LINE = 255

#: commands and how many arguments each takes (min, max)
_ARITY: dict[str, tuple[int, int]] = {
    "USER": (1, 1),
    "PASS": (1, 1),  # the password may contain spaces: the rest of the line
    "AUTH": (0, 2),
    "STLS": (0, 0),
    "CAPA": (0, 0),
    "QUIT": (0, 0),
    "STAT": (0, 0),
    "LIST": (0, 1),
    "RETR": (1, 1),
    "DELE": (1, 1),
    "NOOP": (0, 0),
    "RSET": (0, 0),
    "TOP": (2, 2),
    "UIDL": (0, 1),
    "UTF8": (0, 0),
}


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...]


class ParseError(ValueError):
    """The line is not a command we know, or has the wrong arguments."""


class LineTooLong(ValueError):
    """A line over :data:`MAX_LINE`; it has been skipped up to its end."""


class LineReader:
    """Splits input into lines (CRLF or bare LF), refusing over-long ones without
    buffering them: at most :data:`MAX_LINE` octets are kept while a line is pending."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | LineTooLong]:
        out: list[bytes | LineTooLong] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_line:
                    if not self._skipping:
                        out.append(LineTooLong("line too long"))
                    self._skipping = True
                    self._buf.clear()
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._skipping:
                self._skipping = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 2 > self.max_line:
                out.append(LineTooLong("line too long"))
                continue
            out.append(line)

    @property
    def pending(self) -> bool:
        """Part of a line has arrived."""
        return bool(self._buf) or self._skipping


def parse(line: bytes) -> Command:
    """One command line (without CRLF). Keywords are case-insensitive (RFC 1939 §3)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("Command line is not UTF-8") from None
    if any(ord(c) < 32 and c != "\t" for c in text):
        raise ParseError("Control characters in the command line")
    name, _, rest = text.partition(" ")
    name = name.upper()
    arity = _ARITY.get(name)
    if arity is None:
        raise ParseError("Unknown command")
    if name == "PASS":
        if not rest:
            raise ParseError("PASS needs a password")
        return Command(name, (rest,))
    args = tuple(rest.split(" ")) if rest else ()
    if any(not a for a in args):
        raise ParseError("Arguments are separated by single spaces")
    lo, hi = arity
    if not lo <= len(args) <= hi:
        raise ParseError(f"{name} takes {lo if lo == hi else f'{lo} to {hi}'} argument(s)")
    return Command(name, args)


def _status(word: bytes, text: str, code: str | None) -> bytes:
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    prefix = f"[{code}] " if code else ""
    return word + b" " + (prefix + clean).encode("ascii") + b"\r\n"


def ok(text: str = "", code: str | None = None) -> bytes:
    return _status(b"+OK", text, code) if text or code else b"+OK\r\n"


def err(text: str, code: str | None = None) -> bytes:
    """``-ERR [CODE] text`` (RFC 2449 §8 response codes)."""
    return _status(b"-ERR", text, code)


def multiline(first: bytes, body: bytes) -> bytes:
    """``first`` (a +OK line) then ``body`` dot-stuffed (RFC 1939 §3), each line ending
    with CRLF, then the terminating ``.``. Whole-buffer replaces, not a loop per line:
    RETR of large messages stays fast."""
    if body.count(b"\n") != body.count(b"\r\n"):  # bare LF line ends: make them CRLF
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = body.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    return first + body + b".\r\n"
