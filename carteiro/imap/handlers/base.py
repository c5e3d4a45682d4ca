"""What every command handler gets and returns, and the command table.

Handlers are plain coroutines ``handler(ctx, command) -> Result``. Untagged data goes
through ``ctx.send``; the adapter adds pending mailbox updates and the tagged reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from carteiro.auth.service import AuthService, Client
from carteiro.imap.config import ImapConfig
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.wire import quoted
from carteiro.imap.recent import RecentClaims
from carteiro.imap.response_cache import ResponseCache
from carteiro.imap.state import BadMailboxName, Session, State
from carteiro.store import errors as se
from carteiro.store.interface import Store

log = logging.getLogger("carteiro.imap")


class Connection(Protocol):
    """What handlers may do with the connection beyond sending responses."""

    def send(self, data: bytes) -> None: ...
    async def flush(self) -> None: ...
    async def read_line(self, timeout: float) -> bytes | None:
        """The next raw line (without CRLF), or None on EOF/timeout."""

    async def wait_change(self, timeout: float) -> str:
        """Waits until the selected mailbox changes (``"change"``), the client sends
        something (``"input"``), ``timeout`` passes (``"timeout"``) or the server is
        shutting down (``"shutdown"``)."""

    async def sync(self, allow_expunge: bool) -> None:
        """Sends pending EXISTS/EXPUNGE/FETCH updates of the selected mailbox."""

    async def push_notifications(self, *, in_idle: bool = False, selected: bool = True) -> None:
        """Sends what an RFC 5465 NOTIFY SET asked for (nothing without one)."""

    async def start_tls(self) -> None: ...

    @property
    def auth(self) -> AuthService:
        """The authentication service shared by every protocol."""

    def client(self) -> Client:
        """Who is on the other end, for the authentication service."""

    def refresh_mechanisms(self) -> None:
        """Recomputes the SASL mechanisms to advertise (after STARTTLS)."""

    def note_deleted(self, mailbox: str, count: int, *, moved_to_trash: bool = False) -> None:
        """Feeds the mass-deletion detector."""

    def bind_account(self, address: str) -> bool:
        """Counts this session against the account's connection limit; False: over it."""

    def start_compression(self) -> None:
        """RFC 4978 DEFLATE from the next byte on, both ways."""

    @property
    def compressing(self) -> bool: ...


@dataclass
class Result:
    status: str = "OK"
    text: str = "Completed"
    code: str | None = None
    #: runs after the tagged reply is flushed (STARTTLS handshake)
    after: Callable[[], Awaitable[None]] | None = None
    #: no tagged reply at all (the connection is going away)
    silent: bool = False


def ok(text: str = "Completed", code: str | None = None) -> Result:
    return Result("OK", text, code)


def no(text: str, code: str | None = None) -> Result:
    return Result("NO", text, code)


def bad(text: str, code: str | None = None) -> Result:
    return Result("BAD", text, code)


@dataclass
class Context:
    session: Session
    store: Store
    config: ImapConfig
    conn: Connection
    extra: dict[str, Any] = field(default_factory=dict)
    #: serialised answers shared by the server's sessions (None: not kept)
    responses: ResponseCache | None = None
    #: who sees \Recent, shared by the server's sessions (None: the store decides)
    recent: RecentClaims | None = None
    #: the running command's tag and start (monotonic), set by the adapter
    tag: str = ""
    started: float = 0.0
    _last_progress: float = 0.0

    def send(self, data: bytes) -> None:
        self.conn.send(data)

    def progress(self, done: int, total: int | None) -> None:
        """RFC 9585: ``* OK [INPROGRESS ("tag" done total)]`` at most once per
        ``config.progress_interval``, once the command has run that long."""
        now = time.monotonic()
        every = self.config.progress_interval
        if now - self.started < every or now - self._last_progress < every:
            return
        self._last_progress = now
        goal = b"NIL" if total is None else b"%d" % total
        self.send(
            b"* OK [INPROGRESS ("
            + quoted(self.tag.encode())
            + b" %d %s)] Working\r\n" % (done, goal)
        )


class CommandFailed(Exception):
    """Raised inside a handler to end the command with a NO/BAD result."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.text)
        self.result = result


Handler = Callable[[Context, Any], Awaitable[Result]]
C = TypeVar("C", bound=c.Command)


@dataclass(frozen=True)
class Spec:
    handler: Handler
    states: frozenset[State]
    #: uses message sequence numbers: no untagged EXPUNGE while it runs (RFC 9051 §7.5.1)
    uses_msn: Callable[[Any], bool]


ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})

TABLE: dict[type[c.Command], Spec] = {}


def _never(_: Any) -> bool:
    return False


def command(
    cls: type[C],
    states: frozenset[State],
    uses_msn: Callable[[Any], bool] = _never,
) -> Callable[
    [Callable[[Context, C], Awaitable[Result]]], Callable[[Context, C], Awaitable[Result]]
]:
    def register(
        fn: Callable[[Context, C], Awaitable[Result]],
    ) -> Callable[[Context, C], Awaitable[Result]]:
        TABLE[cls] = Spec(fn, states, uses_msn)
        return fn

    return register


def not_uid(cmd: Any) -> bool:
    return not getattr(cmd, "uid", False)


def map_store_error(exc: Exception) -> Result:
    """The one place where storage errors become IMAP responses (DESIGN principle 5)."""
    if isinstance(exc, BadMailboxName):
        return no("Mailbox name is not valid modified UTF-7", "CANNOT")
    if isinstance(exc, se.NotFound):
        return no("No such mailbox", "NONEXISTENT")
    if isinstance(exc, se.AlreadyExists):
        return no("Mailbox already exists", "ALREADYEXISTS")
    if isinstance(exc, se.HasChildren):
        return no("Mailbox has children, delete them first", "HASCHILDREN")
    if isinstance(exc, se.InvalidName):
        return no("Invalid mailbox name", "CANNOT")
    if isinstance(exc, se.NotAllowed):
        return no("Not allowed on this mailbox", "CANNOT")
    if isinstance(exc, se.QuotaExceeded):
        return no("Quota exceeded", "OVERQUOTA")
    log.exception("internal error", exc_info=exc)
    return no("Internal error, the incident was logged", "SERVERBUG")
