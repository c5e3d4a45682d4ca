"""Sans-IO IMAP command receiver: bytes in, parsed commands (and literal requests) out.

The receiver frames the input into commands without understanding them: a command is
a line, and when a line ends with a literal announcement (``{n}``, ``{n+}``,
``~{n}``, ``~{n+}``) the announced bytes and a further line follow.  Lines are found by
searching each byte for LF once (the search resumes where it stopped), literals are
copied once, and the complete command is handed to the parser once, so every input
byte is examined a bounded number of times however the input is split.

Typical use by the server::

    rx.receive_data(data)
    while not isinstance(ev := rx.next_event(), NeedData):
        ...  # answer ev

A line may end in CRLF or a bare LF.
"""

from __future__ import annotations

from dataclasses import dataclass

from carteiro.imap.protocol.commands import Command
from carteiro.imap.protocol.grammar import ParseError
from carteiro.imap.protocol.parser import parse_command, precheck, read_tag


@dataclass(frozen=True)
class Limits:
    max_line: int = 65536  # bytes of one line (outside literals)
    max_literal: int = 64 * 1024 * 1024
    max_command: int = 80 * 1024 * 1024  # total bytes of one command incl. literals
    max_depth: int = 16  # parenthesis nesting
    #: nesting of search operators (OR/NOT) and parentheses within a SEARCH program
    max_search_depth: int = 64
    #: largest non-synchronising literal; 4096 under LITERAL- (RFC 7888 §4), None: any
    #: size up to ``max_literal`` (LITERAL+)
    max_nonsync_literal: int | None = None


@dataclass(frozen=True)
class NeedData:
    """Nothing complete yet: feed more bytes."""


@dataclass(frozen=True)
class NeedContinuation:
    """A synchronising literal was announced: send ``+ ...`` so the client sends it."""

    tag: str | None
    size: int


@dataclass(frozen=True)
class CommandReceived:
    command: Command


@dataclass(frozen=True)
class CommandError:
    """The command was malformed or unknown; it has been consumed entirely."""

    tag: str | None
    text: str
    code: str | None = None
    status: str = "BAD"


@dataclass(frozen=True)
class LiteralRejected:
    """A synchronising literal over the limits: answer ``tag NO [TOOBIG]`` (no ``+``).
    The command has been dropped."""

    tag: str | None
    size: int
    text: str


@dataclass(frozen=True)
class FatalError:
    """The stream cannot be resynchronised: send ``* BYE`` and close."""

    text: str


@dataclass(frozen=True)
class LineReceived:
    """In :meth:`Receiver.expect_line` mode: the raw line, without CRLF."""

    line: bytes


Event = (
    NeedData
    | NeedContinuation
    | CommandReceived
    | CommandError
    | LiteralRejected
    | FatalError
    | LineReceived
)

_LINE, _LITERAL, _SKIP_LITERAL, _DISCARD, _DEAD = range(5)
_KEEP = 64  # bytes kept of an over-long line: its head (tag) and its tail (literal)


def trailing_literal(line: bytes) -> tuple[int, bool] | None:
    """``(size, synchronising)`` if ``line`` ends with a literal announcement.

    A size with more than 20 digits is reported as ``2**64`` (over any limit).
    """
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{", max(0, len(line) - 32))
    if start < 0:
        return None
    body = line[start + 1 : -1]
    sync = not body.endswith(b"+")
    digits = body if sync else body[:-1]
    if not digits.isdigit() or not digits.isascii():
        return None
    return (int(digits) if len(digits) <= 20 else 2**64), sync


class Receiver:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits if limits is not None else Limits()
        #: True once the session accepts UTF-8 in quoted strings (rev2 / UTF8=ACCEPT).
        self.utf8 = False
        #: Bytes searched, copied or parsed so far (a linear-time witness for tests).
        self.bytes_examined = 0
        self._buf = bytearray()
        self._scan = 0  # how much of _buf is known to hold no LF
        self._state = _LINE
        self._expect_line = False
        self._reset_command()

    def _reset_command(self) -> None:
        self._segments: list[bytes] = []
        self._size = 0
        self._tag: str | None = None
        self._pending: CommandError | None = None  # reported when a skipped command ends
        self._remaining = 0
        self._parts: list[bytes] = []
        self._head = b""
        self._tail = b""

    # --- public API ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self._state != _DEAD:
            self._buf += data

    @property
    def between_commands(self) -> bool:
        """Nothing of a next command has arrived: the moment an unsolicited response
        (RFC 5465 NOTIFY) cannot split anything the client is sending."""
        return self._state == _LINE and not self._segments and not self._buf

    def expect_line(self) -> None:
        """Return the next complete line raw, as :class:`LineReceived` (AUTHENTICATE
        responses, IDLE's ``DONE``). Call between commands only."""
        self._expect_line = True

    def discard_buffer(self) -> None:
        """Drop every buffered unread byte and any partly received command."""
        self._buf.clear()
        self._scan = 0
        self._expect_line = False
        if self._state != _DEAD:
            self._state = _LINE
        self._reset_command()

    def next_event(self) -> Event:
        while True:
            state = self._state
            if state == _DEAD:
                self._buf.clear()
                return NeedData()
            if state in (_LITERAL, _SKIP_LITERAL):
                if not self._read_literal():
                    return NeedData()
                continue
            got = self._take_line()
            if got is None:
                return NeedData()
            event = self._on_line(*got)
            if event is not None:
                return event

    # --- framing ---------------------------------------------------------------------

    def _read_literal(self) -> bool:
        buf = self._buf
        take = min(self._remaining, len(buf))
        if take:
            if self._state == _LITERAL:
                self._parts.append(bytes(buf[:take]))
            del buf[:take]
            self._remaining -= take
            self.bytes_examined += take
        if self._remaining:
            return False
        if self._state == _LITERAL:
            self._segments.append(b"".join(self._parts))
            self._parts = []
        self._state = _LINE
        return True

    def _take_line(self) -> tuple[bytes, bool] | None:
        """The next line without its CRLF and whether it was over-long (then only its
        last bytes are returned), or None if no complete line is buffered."""
        buf = self._buf
        if self._state == _DISCARD:
            idx = buf.find(b"\n")
            if idx < 0:
                self.bytes_examined += len(buf)
                self._tail = (self._tail + bytes(buf[-_KEEP:]))[-_KEEP:]
                buf.clear()
                return None
            self.bytes_examined += idx + 1
            tail = (self._tail + bytes(buf[max(0, idx - _KEEP) : idx]))[-_KEEP:]
            del buf[: idx + 1]
            self._state = _LINE
            return tail.removesuffix(b"\r"), True
        limit = self.limits.max_line + 2  # room for CR LF
        end = min(len(buf), limit)
        idx = buf.find(b"\n", self._scan, end)
        self.bytes_examined += max(0, (end if idx < 0 else idx + 1) - self._scan)
        if idx < 0:
            if len(buf) < limit:
                self._scan = end
                return None
            # Over-long: drop it as it arrives, keeping its head (tag) and tail.
            self._head = bytes(buf[:_KEEP])
            self._tail = b""
            self._scan = 0
            self._state = _DISCARD
            return self._take_line()
        line = bytes(buf[:idx]).removesuffix(b"\r")
        del buf[: idx + 1]
        self._scan = 0
        if len(line) > self.limits.max_line:
            self._head = line[:_KEEP]
            return line[-_KEEP:], True
        return line, False

    def _on_line(self, line: bytes, overflow: bool) -> Event | None:
        if self._expect_line:
            self._expect_line = False
            if overflow:
                return CommandError(None, "Line too long")
            return LineReceived(line)
        if self._pending is not None:
            return self._skip(line)
        first = not self._segments
        if first:
            if not line and not overflow:
                return None  # tolerate empty lines between commands
            if not overflow:
                self._tag = read_tag(line)
            elif b" " in self._head:  # else the kept head may hold only part of the tag
                self._tag = read_tag(self._head[: self._head.index(b" ")])
        if overflow:
            return self._fail(CommandError(self._tag, "Line too long"), line)
        self._size += len(line) + 2
        if self._size > self.limits.max_command:
            return self._fail(CommandError(self._tag, "Command too long"), line)
        if first:
            problem = precheck(line)
            if problem is not None:
                return self._fail(CommandError(self._tag, problem), line)
        literal = trailing_literal(line)
        self._segments.append(line)
        if literal is None:
            return self._complete()
        size, sync = literal
        if size > self.limits.max_literal or self._size + size > self.limits.max_command:
            if sync:
                event = LiteralRejected(self._tag, size, "Literal too big")
                self._reset_command()
                return event
            return self._die("Non-synchronising literal too big")
        if not sync and self.limits.max_nonsync_literal is not None:
            if size > self.limits.max_nonsync_literal:
                # the octets follow anyway: skip them and answer, the stream stays in step
                error = CommandError(
                    self._tag,
                    f"Non-synchronising literals are limited to "
                    f"{self.limits.max_nonsync_literal} octets (LITERAL-)",
                    "TOOBIG",
                )
                return self._fail(error, line)
        self._size += size
        self._remaining = size
        self._state = _LITERAL
        return NeedContinuation(self._tag, size) if sync else None

    def _fail(self, error: CommandError, line: bytes) -> Event | None:
        self._pending = error
        return self._skip(line)

    def _skip(self, line: bytes) -> Event | None:
        """Discard the rest of a failed command: follow its non-synchronising literals
        (the client sends those anyway); a synchronising one is never sent."""
        literal = trailing_literal(line)
        if literal is not None and not literal[1]:
            if literal[0] > self.limits.max_literal:
                return self._die("Non-synchronising literal too big")
            self._remaining = literal[0]
            self._state = _SKIP_LITERAL
            return None
        event = self._pending
        self._reset_command()
        return event

    def _die(self, text: str) -> FatalError:
        self._state = _DEAD
        self._buf.clear()
        self._reset_command()
        return FatalError(text)

    def _complete(self) -> Event:
        segments = self._segments
        tag = self._tag
        self._reset_command()
        self.bytes_examined += sum(len(s) for s in segments[::2])
        try:
            command = parse_command(
                segments,
                utf8=self.utf8,
                max_depth=self.limits.max_depth,
                max_search_depth=self.limits.max_search_depth,
            )
        except ParseError as exc:
            return CommandError(tag, exc.text, exc.code, exc.status)
        return CommandReceived(command)
