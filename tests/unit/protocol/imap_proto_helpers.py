"""Helpers shared by the IMAP protocol tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from carteiro.imap.protocol.commands import Command, Noop
from carteiro.imap.protocol.receiver import (
    CommandError,
    CommandReceived,
    Event,
    Limits,
    NeedData,
    Receiver,
)


def drain(rx: Receiver, hook: Callable[[Receiver, Event], None] | None = None) -> list[Event]:
    out: list[Event] = []
    while not isinstance(ev := rx.next_event(), NeedData):
        out.append(ev)
        if hook is not None:
            hook(rx, ev)
    return out


def feed(
    data: bytes | Iterable[bytes],
    *,
    step: int | None = None,
    limits: Limits | None = None,
    utf8: bool = False,
    hook: Callable[[Receiver, Event], None] | None = None,
) -> list[Event]:
    rx = Receiver(limits or Limits())
    rx.utf8 = utf8
    if isinstance(data, bytes):
        chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    else:
        chunks = list(data)
    out: list[Event] = []
    for chunk in chunks:
        rx.receive_data(chunk)
        out.extend(drain(rx, hook))
    return out


def parse(line: bytes, *, utf8: bool = False) -> Command:
    """Parse one command given without CRLF; literals are sent as they come."""
    events = [e for e in feed(line + b"\r\n", utf8=utf8) if not _is_continuation(e)]
    assert len(events) == 1, events
    ev = events[0]
    assert isinstance(ev, CommandReceived), ev
    return ev.command


def error(line: bytes, *, utf8: bool = False) -> CommandError:
    """The error for ``line``; also checks that a following command still parses."""
    data = line + b"\r\nz NOOP\r\n"
    events = [e for e in feed(data, utf8=utf8) if not _is_continuation(e)]
    assert len(events) == 2, events
    ev = events[0]
    assert isinstance(ev, CommandError), ev
    assert events[1] == CommandReceived(Noop("z")), events
    return ev


def _is_continuation(ev: Event) -> bool:
    return type(ev).__name__ == "NeedContinuation"


def assert_split_anywhere_is_the_same(script: bytes, limits: Limits | None = None) -> None:
    """Cutting the input in two at any byte yields exactly the events of the whole."""
    whole = feed(script, limits=limits)
    for i in range(len(script)):
        assert feed([script[:i], script[i:]], limits=limits) == whole, i
