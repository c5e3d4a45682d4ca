"""Transcript tests: scripted IMAP sessions replayed against the sans-IO receiver and
against the real server.

A transcript (``cases/*.imap``) is a small text file, one item per line::

    # a comment (only at the start of a line); blank lines are ignored
    @xfail server: reason     the server replay is expected to fail (strict: an
                              unexpected pass fails too); "engine:" for the engine
                              replay, no prefix for both
    @message NAME             a message fixture: the following lines up to "@end",
    ...                       joined with CRLF (a final CRLF is added unless the block
    @end                      ends with an empty line, which then stands for it)
    @deliver NAME [flags=\\Seen,$Foo] [mailbox=Archive] [date="01-Jan-2024 10:00:00 +0000"]
                              delivers fixture NAME to the user before the next line
                              runs; "@deliver simple some subject" uses mbox.simple()
    @quota STORAGE_KB MESSAGES
                              sets the user's quota (RFC 9208) before the next line
                              runs: STORAGE in units of 1024 octets, MESSAGE a count,
                              "-" for unlimited (the engine replay ignores it)
    @server KEY=VALUE ...     ImapConfig settings for this transcript: the server
                              replay runs on a server started for it alone
    @session B                switches to session B (opened on first use); the lines
                              that follow talk on B's connection. The first session
                              is "A". When a session's first item is an S line, it
                              matches the greeting; otherwise the greeting is skipped.
    @parses                   the next C command is syntactically valid although its
                              tagged reply is BAD (state or semantic errors)
    @syntax-error             the next C command must fail in the receiver although
                              its tagged reply is not BAD (e.g. NO [BADCHARSET])

    C: a1 LOGIN {user} secret  a command line sent by the client
    R: DONE                   a raw client line that is not a command (SASL response,
                              IDLE's DONE); the engine receives it in expect_line mode
    D: text                   one line of literal data (client or server), with CRLF
    D-: text                  literal data without the final CRLF
    Dx: 00 01 ff              literal data given in hexadecimal, no CRLF
    C+: text                  the command line that continues after a client literal
                              (optional after the last literal: the command then ends
                              right after the literal data)
    S: pattern                one server line (without CRLF)
    S~: regex                 one server line, as a Python regular expression
    S*: pattern               any number (0+) of consecutive server lines matching
    S|: pattern               consecutive S| (and S|?) lines form a group matching
                              server lines in any order; an S|? member may be absent
    S+: pattern               the rest of a server line after a literal

A literal announcement ``{n}``, ``{n+}`` or ``~{n}`` at the end of a C, C+, S or S+
line is followed by its D/D- lines; ``#`` in place of ``n`` stands for the size of the
data as written. A synchronising client literal waits for the server's ``+``.

In patterns, ``*`` standing alone (after a space, ``(`` or ``[``; before a space, ``)``,
``]`` or the end) or written ``{*}`` matches anything; ``{set:a b c}`` matches the
same words in any order (flag lists); ``{=name}`` captures a token and
``{name}`` inserts a variable: ``user``, ``pass``, ``plain`` (the SASL PLAIN response,
base64) or a capture. Variables are substituted in C, C+, R and D lines too. The engine
replay, which has no server, sees every capture as ``1``.

Engine replay: every C command (with its literals) must give ``CommandReceived`` with
the same tag, or ``CommandError`` with that tag when its tagged reply (the next line of
the same session starting with the tag) is BAD; fed whole and one byte at a time.
Server replay: the same bytes over a socket; the server's lines must match in order.
"""

from __future__ import annotations

import base64
import datetime
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from carteiro.imap.protocol import commands as cmds
from carteiro.imap.protocol.receiver import (
    CommandError,
    CommandReceived,
    Event,
    LineReceived,
    NeedContinuation,
    NeedData,
    Receiver,
)

CASES = Path(__file__).resolve().parent / "cases"
PASSWORD = "secret"
READ_TIMEOUT = 5.0


class TranscriptError(Exception):
    """The transcript file itself is malformed."""


class Mismatch(AssertionError):
    """The server or the engine did not do what the transcript says."""


# --- model ------------------------------------------------------------------------------


@dataclass
class Literal:
    lines: list[tuple[str | bytes, bool]]  # (text, with CRLF); bytes from Dx lines
    size: int | None  # None for "#"
    sync: bool
    binary: bool


@dataclass
class Part:
    text: str
    literal: Literal | None = None


@dataclass
class Send:
    lineno: int
    session: str
    parts: list[Part]
    raw: bool = False  # R: line
    engine: str | None = None  # "received" / "error" forced by @parses / @syntax-error


@dataclass
class Expect:
    lineno: int
    kind: str  # "one", "regex", "star", "any-order"
    parts: list[Part]  # for "one"/"star"/"regex" (regex: a single part)
    group: list[Expect] = field(default_factory=list)  # for "any-order"
    optional: bool = False  # an S|? member of an any-order group


@dataclass
class ExpectBlock:
    lineno: int
    session: str
    items: list[Expect]


@dataclass
class Deliver:
    lineno: int
    message: bytes
    flags: tuple[str, ...]
    mailbox: str
    date: datetime.datetime | None


@dataclass
class SetQuota:
    lineno: int
    storage: int | None  # octets
    messages: int | None


@dataclass
class Transcript:
    name: str
    path: Path
    steps: list[Send | ExpectBlock | Deliver | SetQuota]
    xfail_server: str | None = None
    xfail_engine: str | None = None
    #: ImapConfig overrides: the server replay then runs on a server of its own
    server_config: dict[str, float | int | bool] = field(default_factory=dict)

    def sessions(self) -> list[str]:
        seen: list[str] = []
        for s in self.steps:
            if isinstance(s, (Send, ExpectBlock)) and s.session not in seen:
                seen.append(s.session)
        return seen


# --- parsing ------------------------------------------------------------------------------

_LITERAL = re.compile(r"(~?)\{(\d+|#)(\+?)\}$")
_PREFIX = re.compile(r"^(C\+|C|R|Dx|D-|D|S\+|S~|S\*|S\|\?|S\||S):(?: (.*)|)$")
_IMAP_DATE = "%d-%b-%Y %H:%M:%S %z"


def _config_value(value: str) -> float | int | bool:
    if value in ("true", "false"):
        return value == "true"
    try:
        return int(value)
    except ValueError:
        return float(value)


def _literal_of(text: str) -> Literal | None:
    m = _LITERAL.search(text)
    if m is None:
        return None
    size = None if m.group(2) == "#" else int(m.group(2))
    return Literal([], size, sync=not m.group(3), binary=bool(m.group(1)))


def parse(path: Path) -> Transcript:
    lines = path.read_text(encoding="utf-8").split("\n")
    t = Transcript(path.stem, path, [])
    messages: dict[str, bytes] = {}
    session = "A"
    pending_engine: str | None = None
    current_send: Send | None = None  # the send a C+/D line may extend
    current_expect: Expect | None = None  # the expectation an S+/D line may extend
    i = 0

    def fail(msg: str) -> TranscriptError:
        return TranscriptError(f"{path.name}:{i + 1}: {msg}")

    def open_literal(parts: list[Part]) -> Literal | None:
        return parts[-1].literal if parts and parts[-1].literal is not None else None

    while i < len(lines):
        raw = lines[i].rstrip("\r")
        lineno = i + 1
        if not raw.strip() or raw.startswith("#"):
            i += 1
            continue
        if raw.startswith("@"):
            current_send = current_expect = None
            lexer = shlex.shlex(raw[1:], posix=True)
            lexer.whitespace_split = True
            lexer.escape = ""  # keep the backslash of \Seen
            words = list(lexer)
            name, args = words[0], words[1:]
            if name == "xfail":
                reason = " ".join(args)
                target = "both"
                if args and args[0] in ("server:", "engine:"):
                    target, reason = args[0][:-1], " ".join(args[1:])
                if target in ("server", "both"):
                    t.xfail_server = reason
                if target in ("engine", "both"):
                    t.xfail_engine = reason
            elif name == "message":
                if len(args) != 1:
                    raise fail("@message takes one name")
                body: list[str] = []
                i += 1
                while i < len(lines) and lines[i].rstrip("\r") != "@end":
                    body.append(lines[i].rstrip("\r"))
                    i += 1
                if i == len(lines):
                    raise fail("@message without @end")
                if body and body[-1] == "":
                    text = "\r\n".join(body)
                else:
                    text = "\r\n".join(body) + "\r\n"
                messages[args[0]] = text.encode("utf-8")
            elif name == "deliver":
                t.steps.append(_deliver(args, messages, lineno, fail))
            elif name == "quota":
                t.steps.append(_quota(args, lineno, fail))
            elif name == "server":
                for arg in args:
                    key, sep, value = arg.partition("=")
                    if not sep or not key:
                        raise fail("@server takes key=value settings")
                    t.server_config[key] = _config_value(value)
            elif name == "session":
                if len(args) != 1:
                    raise fail("@session takes one name")
                session = args[0]
            elif name == "parses":
                pending_engine = "received"
            elif name == "syntax-error":
                pending_engine = "error"
            else:
                raise fail(f"unknown directive @{name}")
            i += 1
            continue
        m = _PREFIX.match(raw)
        if m is None:
            raise fail(f"cannot parse line {raw!r}")
        kind, text = m.group(1), m.group(2) or ""
        if kind in ("C", "R"):
            current_expect = None
            part = Part(text, _literal_of(text) if kind == "C" else None)
            current_send = Send(lineno, session, [part], raw=kind == "R", engine=pending_engine)
            if kind == "C":
                pending_engine = None
            t.steps.append(current_send)
        elif kind == "C+":
            if current_send is None or open_literal(current_send.parts) is None:
                raise fail("C+ must follow a client literal")
            current_send.parts.append(Part(text, _literal_of(text)))
        elif kind in ("D", "D-", "Dx"):
            target = current_send or current_expect
            lit = open_literal(target.parts) if target is not None else None
            if lit is None:
                raise fail("D line outside a literal")
            if kind == "Dx":
                try:
                    lit.lines.append((bytes.fromhex(text), False))
                except ValueError:
                    raise fail("Dx needs hexadecimal bytes") from None
            else:
                lit.lines.append((text, kind == "D"))
        elif kind == "S+":
            if current_expect is None or open_literal(current_expect.parts) is None:
                raise fail("S+ must follow a server literal")
            current_expect.parts.append(Part(text, _literal_of(text)))
        else:  # S, S~, S*, S|, S|?
            current_send = None
            block = t.steps[-1] if t.steps else None
            if not isinstance(block, ExpectBlock) or block.session != session:
                block = ExpectBlock(lineno, session, [])
                t.steps.append(block)
            if kind in ("S|", "S|?"):
                exp = Expect(lineno, "one", [Part(text, _literal_of(text))], optional=kind == "S|?")
                last = block.items[-1] if block.items else None
                if last is None or last.kind != "any-order":
                    last = Expect(lineno, "any-order", [])
                    block.items.append(last)
                last.group.append(exp)
            else:
                k = {"S": "one", "S~": "regex", "S*": "star"}[kind]
                exp = Expect(lineno, k, [Part(text, _literal_of(text) if k == "one" else None)])
                block.items.append(exp)
            current_expect = exp
        i += 1
    _check(t)
    return t


def _deliver(
    args: list[str],
    messages: dict[str, bytes],
    lineno: int,
    fail: Callable[[str], TranscriptError],
) -> Deliver:
    from tests.integration.mbox import simple

    opts = {}
    rest = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key in ("flags", "mailbox", "date"):
            opts[key] = value
        else:
            rest.append(a)
    if not rest:
        raise fail("@deliver needs a message name")
    if rest[0] == "simple":
        message = simple(" ".join(rest[1:]) or "hello")
    elif rest[0] in messages and len(rest) == 1:
        message = messages[rest[0]]
    else:
        raise fail(f"@deliver: unknown message {' '.join(rest)!r}")
    flags = tuple(f for f in opts.get("flags", "").split(",") if f)
    date = None
    if "date" in opts:
        date = datetime.datetime.strptime(opts["date"], _IMAP_DATE)
    return Deliver(lineno, message, flags, opts.get("mailbox", "INBOX"), date)


def _quota(args: list[str], lineno: int, fail: Callable[[str], TranscriptError]) -> SetQuota:
    if len(args) != 2:
        raise fail("@quota takes STORAGE_KB and MESSAGES (a number or -)")
    limits: list[int | None] = []
    for a in args:
        if a == "-":
            limits.append(None)
        elif a.isdigit():
            limits.append(int(a))
        else:
            raise fail(f"@quota: {a!r} is not a number or -")
    storage, messages = limits
    return SetQuota(lineno, None if storage is None else storage * 1024, messages)


def _check(t: Transcript) -> None:
    for step in t.steps:
        parts: list[Part] = []
        if isinstance(step, Send):
            parts = step.parts
        elif isinstance(step, ExpectBlock):
            for j, item in enumerate(step.items):
                if item.kind == "star" and j == len(step.items) - 1:
                    raise TranscriptError(
                        f"{t.path.name}:{item.lineno}: S* must be followed by another S line"
                    )
                for sub in [item, *item.group]:
                    parts.extend(sub.parts)
                    last = sub.parts[-1] if sub.parts else None
                    if last is not None and last.literal is not None:
                        raise TranscriptError(
                            f"{t.path.name}:{sub.lineno}: server literal needs an S+ line"
                        )
        for p in parts:
            lit = p.literal
            if lit is not None and lit.size is not None:
                n = len(_literal_data(lit, {}))
                if n != lit.size:
                    raise TranscriptError(
                        f"{t.path.name}:{getattr(step, 'lineno', 0)}: literal "
                        f"announces {lit.size} bytes but holds {n}"
                    )


def load_all() -> list[Transcript]:
    return [parse(p) for p in sorted(CASES.glob("*.imap"))]


# --- substitution and patterns ---------------------------------------------------------------

_VAR = re.compile(r"\{(\w+)\}")


def substitute(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _literal_data(lit: Literal, env: dict[str, str]) -> bytes:
    out = b""
    for text, crlf in lit.lines:
        out += text if isinstance(text, bytes) else substitute(text, env).encode("utf-8")
        out += b"\r\n" if crlf else b""
    return out


def _with_size(text: str, lit: Literal, data: bytes) -> str:
    """``text`` with its ``{#}`` announcement replaced by the real size."""
    return _LITERAL.sub(lambda m: f"{m.group(1)}{{{len(data)}{m.group(3)}}}", text)


def wire_parts(send: Send, env: dict[str, str]) -> list[tuple[bytes, bytes | None, bool]]:
    """``(line, literal data or None, synchronising)`` for each line of a send."""
    out = []
    for p in send.parts:
        text = substitute(p.text, env)
        if p.literal is None:
            out.append((text.encode("utf-8"), None, False))
        else:
            data = _literal_data(p.literal, env)
            out.append((_with_size(text, p.literal, data).encode("utf-8"), data, p.literal.sync))
    if out[-1][1] is not None:
        out.append((b"", None, False))  # the command ends right after its last literal
    return out


def wire_bytes(send: Send, env: dict[str, str]) -> bytes:
    out = b""
    for line, data, _ in wire_parts(send, env):
        out += line + b"\r\n" + (data or b"")
    return out


_TOKEN = re.compile(r"\{=(\w+)\}|\{\*\}|\{(\w+)\}|\{set:([^}]*)\}|\*")


@dataclass
class Pattern:
    """A compiled expectation: a regex plus the unordered sets to check afterwards."""

    regex: re.Pattern[str]
    sets: dict[str, list[str]]

    def fullmatch(self, text: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        for group, items in self.sets.items():
            if sorted(m.group(group).split()) != items:
                return None
        return {k: v for k, v in m.groupdict().items() if not k.startswith("_set")}


def _compile_text(
    text: str, env: dict[str, str], captured: set[str], sets: dict[str, list[str]]
) -> str:
    out = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        pos = m.end()
        tok = m.group(0)
        if m.group(3) is not None:
            group = f"_set{len(sets)}"
            sets[group] = sorted(substitute(m.group(3), env).split())
            out.append(rf"(?P<{group}>[^()]*)")
        elif m.group(1):
            name = m.group(1)
            if name in captured:
                out.append(f"(?P={name})")
            else:
                captured.add(name)
                out.append(rf"(?P<{name}>[^\s()\[\]]+)")
        elif tok == "{*}":
            out.append(".*")
        elif m.group(2):
            out.append(re.escape(env.get(m.group(2), tok)))
        else:  # a bare "*": a wildcard only when it stands alone
            before = text[m.start() - 1] if m.start() > 0 else ""
            after = text[m.end()] if m.end() < len(text) else ""
            if before in (" ", "(", "[") and after in ("", " ", ")", "]"):
                out.append(".*")
            else:
                out.append(re.escape(tok))
    out.append(re.escape(text[pos:]))
    return "".join(out)


def compile_expect(exp: Expect, env: dict[str, str]) -> Pattern:
    if exp.kind == "regex":
        return Pattern(re.compile(substitute(exp.parts[0].text, env), re.DOTALL), {})
    captured: set[str] = set()
    sets: dict[str, list[str]] = {}
    out = []
    for p in exp.parts:
        if p.literal is None:
            out.append(_compile_text(p.text, env, captured, sets))
            continue
        data = _literal_data(p.literal, env)
        head = _LITERAL.sub("", p.text)
        out.append(_compile_text(head, env, captured, sets))
        size = len(data) if p.literal.size is None else p.literal.size
        out.append(re.escape(f"{'~' if p.literal.binary else ''}{{{size}}}\r\n"))
        out.append(re.escape(data.decode("utf-8", "surrogateescape")))
    return Pattern(re.compile("".join(out), re.DOTALL), sets)


def describe(exp: Expect) -> str:
    if exp.kind == "any-order":
        return "any order of:\n" + "\n".join("    " + describe(g) for g in exp.group)
    prefix = {"one": "S|?:" if exp.optional else "S:", "regex": "S~:", "star": "S*:"}[exp.kind]
    text = " ".join(p.text for p in exp.parts)
    return f"{prefix} {text}  (line {exp.lineno})"


# --- engine replay -------------------------------------------------------------------------------


def engine_env() -> dict[str, str]:
    return default_env("user@example.org")


def default_env(user: str) -> dict[str, str]:
    plain = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
    return {"user": user, "pass": PASSWORD, "plain": plain}


def _tagged_reply(t: Transcript, index: int, session: str, tag: str) -> str | None:
    """The text of the first S line of ``session`` after step ``index`` that starts with
    ``tag`` and a space."""
    for step in t.steps[index + 1 :]:
        if not isinstance(step, ExpectBlock) or step.session != session:
            continue
        for item in step.items:
            for sub in item.group or [item]:
                text = sub.parts[0].text if sub.parts else ""
                if text.startswith(tag + " "):
                    return text
    return None


def _drain(rx: Receiver) -> list[Event]:
    events = []
    while not isinstance(ev := rx.next_event(), NeedData):
        events.append(ev)
    return events


def _feed(rx: Receiver, data: bytes, bytewise: bool) -> list[Event]:
    if not bytewise:
        rx.receive_data(data)
        return _drain(rx)
    events = []
    for b in data:
        rx.receive_data(bytes([b]))
        events.extend(_drain(rx))
    return events


def replay_engine(t: Transcript) -> None:
    env = {**engine_env(), **_capture_names(t)}
    for bytewise in (False, True):
        receivers: dict[str, Receiver] = {}
        for index, step in enumerate(t.steps):
            if not isinstance(step, Send):
                continue
            rx = receivers.setdefault(step.session, Receiver())
            data = wire_bytes(step, env)
            where = f"{t.path.name}:{step.lineno} ({'byte by byte' if bytewise else 'whole'})"
            if step.raw:
                rx.expect_line()
                events = _feed(rx, data, bytewise)
                want = LineReceived(data.removesuffix(b"\r\n"))
                if events != [want]:
                    raise Mismatch(f"{where}: raw line gave {events!r}, expected {want!r}")
                continue
            events = _feed(rx, data, bytewise)
            syncs = sum(1 for _, d, s in wire_parts(step, env) if d is not None and s)
            conts = [e for e in events if isinstance(e, NeedContinuation)]
            final = [e for e in events if not isinstance(e, NeedContinuation)]
            if len(conts) != syncs or len(final) != 1:
                raise Mismatch(f"{where}: {data!r} gave events {events!r}")
            ev = final[0]
            tag = data.split(b" ", 1)[0].split(b"\r", 1)[0].decode("utf-8", "replace")
            reply = _tagged_reply(t, index, step.session, tag)
            if reply is None:  # "* BAD" for a command whose tag is unusable
                reply = _tagged_reply(t, index, step.session, "*")
                tag = "*" if reply is not None and reply.startswith("* BAD") else tag
            status = reply.split(" ")[1] if reply and " " in reply else None
            want_error = step.engine == "error" or (step.engine is None and status == "BAD")
            if want_error:
                # an unusable tag is answered "* BAD": the receiver reports tag None
                if not isinstance(ev, CommandError) or (ev.tag or "*") != tag:
                    raise Mismatch(f"{where}: expected CommandError({tag!r}), got {ev!r}")
                if status is not None and ev.status != status:
                    raise Mismatch(f"{where}: CommandError status {ev.status}, reply {status}")
            else:
                if not isinstance(ev, CommandReceived) or ev.command.tag != tag:
                    raise Mismatch(f"{where}: expected CommandReceived({tag!r}), got {ev!r}")
                if (
                    isinstance(ev.command, cmds.Enable)
                    and {"IMAP4REV2", "UTF8=ACCEPT"} & set(ev.command.capabilities)
                    and status == "OK"
                ):
                    rx.utf8 = True  # as the server does after a successful ENABLE
        if bytewise:
            return


def _capture_names(t: Transcript) -> dict[str, str]:
    names: dict[str, str] = {}
    for step in t.steps:
        if isinstance(step, ExpectBlock):
            for item in step.items:
                for sub in [item, *item.group]:
                    for p in sub.parts:
                        for m in re.finditer(r"\{=(\w+)\}|\(\?P<(\w+)>", p.text):
                            names[m.group(1) or m.group(2)] = "1"
    return names


# --- server replay -------------------------------------------------------------------------------


class Conversation:
    """One session's socket, with a push-back line and a log for failure messages."""

    def __init__(self, client: object, log: list[str], name: str) -> None:
        self.client = client
        self.pushback: list[bytes] = []
        self.log = log
        self.name = name

    def send(self, data: bytes) -> None:
        self.log.append(f"{self.name} C: {data!r}")
        self.client.send(data)  # type: ignore[attr-defined]

    def read(self) -> bytes:
        if self.pushback:
            return self.pushback.pop()
        try:
            line = self.client.readline()  # type: ignore[attr-defined]
        except TimeoutError as exc:
            raise Mismatch(self.context("timed out waiting for a server line")) from exc
        except EOFError as exc:
            raise Mismatch(self.context(f"connection closed (unread {exc.args[0]!r})")) from exc
        self.log.append(f"{self.name} S: {line!r}")
        return line

    def unread(self, line: bytes) -> None:
        self.pushback.append(line)

    def context(self, msg: str) -> str:
        tail = "\n".join("    " + x for x in self.log[-25:])
        return f"{msg}\n  conversation so far:\n{tail}"

    def leftover(self) -> bytes:
        if self.pushback:
            return b"".join(self.pushback)
        data: bytes = self.client.buf  # type: ignore[attr-defined]
        sock = self.client.sock  # type: ignore[attr-defined]
        timeout = sock.gettimeout()
        sock.settimeout(0)  # look at what has already arrived, without waiting
        try:
            data += sock.recv(65536)
        except OSError:  # BlockingIOError: nothing there
            pass
        finally:
            sock.settimeout(timeout)
        return data


def _text(line: bytes) -> str:
    return line.removesuffix(b"\r\n").decode("utf-8", "surrogateescape")


def _match_block(
    t: Transcript, block: ExpectBlock, conv: Conversation, env: dict[str, str]
) -> None:
    for item in block.items:
        if item.kind == "any-order":
            _match_any_order(t, item, conv, env)
            continue
        rx = compile_expect(item, env)
        if item.kind == "star":
            while True:
                line = conv.read()
                m = rx.fullmatch(_text(line))
                if m is None:
                    conv.unread(line)
                    break
                env.update(m)
            continue
        line = conv.read()
        m = rx.fullmatch(_text(line))
        if m is None:
            raise Mismatch(
                conv.context(
                    f"{t.path.name}:{item.lineno}: server line does not match\n"
                    f"  expected {describe(item)}\n  got      {line!r}"
                )
            )
        env.update(m)


def _match_any_order(t: Transcript, item: Expect, conv: Conversation, env: dict[str, str]) -> None:
    """Reads lines while each fits a member not yet used (bipartite matching, so the
    order of the members does not matter); the first line that fits none is pushed
    back. Every member that is not optional must have been used."""
    patterns = [compile_expect(g, env) for g in item.group]
    lines: list[bytes] = []
    fits: list[list[dict[str, str] | None]] = []
    assignment: dict[int, int] = {}  # pattern -> line

    def place(li: int, seen: set[int]) -> bool:  # augmenting path
        for pi in range(len(patterns)):
            if fits[li][pi] is None or pi in seen:
                continue
            seen.add(pi)
            if pi not in assignment or place(assignment[pi], seen):
                assignment[pi] = li
                return True
        return False

    stopped_at = None
    while len(lines) < len(patterns):
        line = conv.read()
        lines.append(line)
        fits.append([p.fullmatch(_text(line)) for p in patterns])
        if not place(len(lines) - 1, set()):
            lines.pop()
            fits.pop()
            conv.unread(line)
            stopped_at = line
            break
    missing = [g for pi, g in enumerate(item.group) if pi not in assignment and not g.optional]
    if missing:
        got = "\n".join(f"    {x!r}" for x in lines)
        raise Mismatch(
            conv.context(
                f"{t.path.name}:{item.lineno}: server lines do not match\n"
                f"  expected {describe(item)}\n  matched\n{got}\n"
                f"  then     {stopped_at!r}, which fits no remaining line\n"
                f"  missing  {'; '.join(describe(g) for g in missing)}"
            )
        )
    for pi, li in assignment.items():
        m = fits[li][pi]
        assert m is not None
        env.update(m)


def replay_server(t: Transcript, server: object, connect: Callable[[], object]) -> None:
    """Runs ``t`` against ``server`` (a ServerThread); ``connect()`` opens a RawClient."""
    from carteiro.delivery import deliver

    user = server.new_user()  # type: ignore[attr-defined]
    env = default_env(user)
    convs: dict[str, Conversation] = {}
    log: list[str] = []

    def conversation(step: Send | ExpectBlock) -> Conversation:
        conv = convs.get(step.session)
        if conv is None:
            client = connect()
            conv = convs[step.session] = Conversation(client, log, step.session)
            greeting: bytes = client.greeting  # type: ignore[attr-defined]
            log.append(f"{step.session} S: {greeting!r}")
            if isinstance(step, ExpectBlock):
                conv.unread(greeting)
        return conv

    for step in t.steps:
        if isinstance(step, Deliver):
            server.call(  # type: ignore[attr-defined]
                deliver(
                    server.store,  # type: ignore[attr-defined]
                    user,
                    step.message,
                    step.flags,
                    step.mailbox,
                    step.date,
                )
            )
            server.call(_loop_turn())  # type: ignore[attr-defined]  # store notifications
            log.append(f"(delivered a message to {step.mailbox})")
            continue
        if isinstance(step, SetQuota):
            server.call(  # type: ignore[attr-defined]
                server.store.set_quota(user, step.storage, step.messages)  # type: ignore[attr-defined]
            )
            log.append(f"(quota set: {step.storage} octets, {step.messages} messages)")
            continue
        conv = conversation(step)
        if isinstance(step, ExpectBlock):
            _match_block(t, step, conv, env)
            continue
        pending = b""
        for line, data, sync in wire_parts(step, env):
            pending += line + b"\r\n"
            if data is None:
                continue
            if sync:
                conv.send(pending)
                pending = b""
                cont = conv.read()
                if not cont.startswith(b"+"):
                    raise Mismatch(
                        conv.context(
                            f"{t.path.name}:{step.lineno}: expected a continuation request "
                            f"for the literal, got {cont!r}"
                        )
                    )
            pending += data
        conv.send(pending)
    for name, conv in convs.items():
        extra = conv.leftover()
        if extra:
            raise Mismatch(conv.context(f"session {name}: unexpected server data {extra!r}"))


async def _loop_turn() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)


def iter_cases() -> Iterator[Transcript]:
    yield from load_all()
