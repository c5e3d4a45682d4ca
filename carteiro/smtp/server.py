"""The SMTP and LMTP listeners: aiosmtpd speaks the protocol, :mod:`carteiro.smtp.hooks`
holds every policy decision. This module only adapts aiosmtpd to the rest of Carteiro:

* admission at connect (bans, per-address connection limits) by the same
  :class:`~carteiro.auth.service.Defence` as IMAP and POP3, and the audit log's session
  records;
* RFC 2034 enhanced status codes on every reply (aiosmtpd writes some of its own replies
  without them, so a default code for the reply's class is added);
* implicit TLS (port 465, RFC 8314), STARTTLS (587 and 25), a Unix socket for LMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import ssl
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from carteiro.auth.service import AuthService
from carteiro.net.limits import Lease

__all__ = ["SmtpConfig", "SmtpEnvelope", "SmtpServer", "SmtpSession"]

log = logging.getLogger("carteiro.smtp")

# aiosmtpd logs every command line at INFO (it masks AUTH data): far too much for a busy
# MX's log; Carteiro logs what matters itself and audits authentication
logging.getLogger("mail.log").setLevel(logging.WARNING)

MiB = 1024 * 1024

#: RFC 3463 default detail per reply code, for replies written without one
_DEFAULT_ENHANCED = {
    "211": "2.0.0",
    "214": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "251": "2.1.5",
    "252": "2.5.0",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
#: characters that send a path to aiosmtpd's full RFC 5322 parser (quoted local parts,
#: source routes, comments, spaces); plain ``<local@domain>`` paths take the fast path
_NOT_PLAIN = frozenset('"(),:;<>[]\\ \t')


@dataclass(frozen=True)
class SmtpConfig:
    hostname: str
    #: for STARTTLS (25, 587) and implicit TLS (465)
    tls_context: ssl.SSLContext | None = None
    #: networks whose clients may authenticate without TLS (as for IMAP)
    is_trusted: Callable[[str], bool] = field(default=lambda _addr: False)
    channel_bindings: tuple[tuple[str, bytes], ...] = ()
    #: SIZE (RFC 1870): the largest message accepted, in octets
    max_message_size: int = 50 * MiB
    #: recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100)
    max_recipients: int = 100
    #: messages an account may submit per hour (0: no limit)
    send_rate: int = 500
    #: seconds of client silence before the connection is dropped (RFC 5321 §4.5.3.2)
    timeout: float = 300.0
    #: Received fields above this mean a mail loop (RFC 5321 §6.3)
    max_hops: int = 50


class SmtpSession(Session):
    """aiosmtpd's session plus what Carteiro tracks per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.address = ""  # the client's IP address ("" on a Unix socket)
        self.session_id = secrets.token_hex(6)
        self.lease: Lease | None = None
        self.refusal: str | None = None
        self.account: str | None = None  # authenticated account (submission)
        self.tls_version: str | None = None
        self.ssl_object: ssl.SSLObject | None = None
        self.started = time.monotonic()
        self.messages = 0
        #: what the hooks learnt about recipients during this session (hooks.RouteCache)
        self.routes: Any = None

    # aiosmtpd logs a deprecation warning on every use of this property; we do not use it
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class SmtpEnvelope(Envelope):
    """aiosmtpd's envelope plus the routing decided at RCPT time."""

    def __init__(self) -> None:
        super().__init__()
        #: recipient address → the local (account, mailbox) pairs it delivers to
        self.local: dict[str, list[tuple[str, str]]] = {}
        #: recipients handed to the outbound queue (submission only)
        self.remote: list[str] = []


class _Adapter:
    """Overrides shared by the SMTP and LMTP protocol classes."""

    kind = "smtp"
    defence_auth: AuthService
    implicit_tls = False
    session: Session | None
    transport: asyncio.BaseTransport | None
    _in_ehlo = False

    def _create_session(self) -> SmtpSession:
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[attr-defined]
        return SmtpSession(loop)

    def _create_envelope(self) -> SmtpEnvelope:
        return SmtpEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)  # type: ignore[misc]
        session = self.session
        assert isinstance(session, SmtpSession)
        peer = transport.get_extra_info("peername")
        session.address = peer[0] if isinstance(peer, tuple) and peer else ""
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            session.ssl_object = ssl_object
            session.tls_version = ssl_object.version()
        if first:
            defence = self.defence_auth.defence
            session.lease, session.refusal = defence.admit(session.address)
            if session.refusal is None:
                defence.audit.session_start(
                    protocol=self.kind,
                    session=session.session_id,
                    source=session.address or "local",
                    tls=session.tls_version,
                )

    def connection_lost(self, error: Exception | None) -> None:
        session = self.session
        if isinstance(session, SmtpSession) and session.refusal is None:
            defence = self.defence_auth.defence
            if session.lease is not None:
                defence.limiter.release(session.lease)
                session.lease = None
            defence.audit.session_end(
                protocol=self.kind,
                session=session.session_id,
                account=session.account,
                source=session.address or "local",
                bytes_in=0,
                bytes_out=0,
                duration=time.monotonic() - session.started,
            )
            session.refusal = "closed"  # recorded once
        super().connection_lost(error)  # type: ignore[misc]

    async def _handle_client(self) -> None:
        session = self.session
        if isinstance(session, SmtpSession) and session.refusal is not None:
            await self.push(f"554 5.7.1 {session.refusal}")
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()  # type: ignore[misc]

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)  # type: ignore[misc]
        finally:
            self._in_ehlo = False

    async def smtp_LHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_LHLO(hostname)  # type: ignore[misc]
        finally:
            self._in_ehlo = False

    async def push(self, status: str | bytes) -> None:
        data = status.encode("utf-8") if isinstance(status, str) else status
        await super().push(_with_enhanced_code(data, self._in_ehlo))  # type: ignore[misc]

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's version defines a ``typing.Protocol`` class and runs the RFC 5322
        header parser on every MAIL and RCPT (~0.2 ms each); the usual ``<local@domain>``
        needs neither."""
        text = arg.lstrip() if arg else ""
        end = text.find(">")
        if text.startswith("<") and end > 1 and not _NOT_PLAIN.intersection(text[1:end]):
            return text[1:end], text[end + 1 :]
        result: tuple[str | None, str | None] = super()._getaddr(arg)  # type: ignore[misc]
        return result

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA awaits ``readuntil`` once per line (~135 times for 10 KB);
        this reads up to each ``.CRLF`` instead and removes dot-stuffing in one pass
        (RFC 5321 §4.5.2), with the same replies for too much data (552) and too long
        lines (500), sent after the data as aiosmtpd does."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):  # type: ignore[attr-defined]
            return
        envelope: Envelope = self.envelope  # type: ignore[attr-defined]
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader: asyncio.StreamReader = self._reader  # type: ignore[attr-defined]
        limit: int | None = self.data_size_limit  # type: ignore[attr-defined]
        parts: list[bytes] = []
        size = 0
        tail = b""  # the last octets read, to find CRLF . CRLF across reads
        too_much = False
        try:
            while True:
                try:
                    chunk = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError as e:
                    chunk = await reader.readexactly(e.consumed)
                size += len(chunk)
                if limit and size > limit + 3:
                    too_much = True
                    parts.clear()
                elif not too_much:
                    parts.append(chunk)
                tail = (tail + chunk)[-5:]
                if size == 3 and tail == b".\r\n" or tail == b"\r\n.\r\n":
                    break
        except asyncio.CancelledError:
            self._writer.close()  # type: ignore[attr-defined]
            raise
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[attr-defined]
            return
        data = b"".join(parts)[:-3]  # without the final ".CRLF"
        parts.clear()
        line_limit: int = self.line_length_limit  # type: ignore[attr-defined]
        if len(data) > line_limit and max(map(len, data.split(b"\r\n"))) + 2 > line_limit:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()  # type: ignore[attr-defined]
            return
        if data.startswith(b"."):
            data = data[1:]
        data = data.replace(b"\r\n.", b"\r\n")
        envelope.content = envelope.original_content = data
        status = MISSING
        if "DATA" in self._handle_hooks:  # type: ignore[attr-defined]
            status = await self._call_handler_hook("DATA")  # type: ignore[attr-defined]
        self._set_post_data_state()  # type: ignore[attr-defined]
        await self.push("250 OK" if status is MISSING else status)


def _with_enhanced_code(line: bytes, in_ehlo: bool) -> bytes:
    """RFC 2034 §4: every reply but the greeting and the EHLO/LHLO reply carries an
    enhanced code; 334 and 354 are intermediate replies without one."""
    code = line[:3].decode("ascii", "replace")
    if in_ehlo or code in ("220", "334", "354") or _HAS_ENHANCED.match(line):
        return line
    detail = _DEFAULT_ENHANCED.get(code)
    if detail is None or len(line) < 3:
        return line
    rest = line[4:] if len(line) > 3 else b""
    sep = line[3:4] or b" "
    return line[:3] + sep + detail.encode() + (b" " + rest if rest else b"")


class _SmtpProtocol(_Adapter, SMTP):
    # RFC 5321 allows 1000 octets per text line; real mail is sometimes longer and
    # refusing it helps nobody, so lines up to this length pass
    line_length_limit = 16 * 1024

    async def smtp_AUTH(self, arg: str) -> None:
        if self.kind != "submission":
            await self.push("502 5.5.1 AUTH is not available on this port; use submission")
            return
        await super().smtp_AUTH(arg)


class _LmtpProtocol(_Adapter, LMTP):
    kind = "lmtp"
    line_length_limit = 16 * 1024

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH is not available over LMTP")


class SmtpServer:
    """Creates the listeners; ``hooks`` is a factory of the policy handler per kind
    (``"smtp"``, ``"submission"``, ``"lmtp"``)."""

    def __init__(
        self, config: SmtpConfig, auth: AuthService, hooks: Callable[[str], object]
    ) -> None:
        self.config = config
        self.auth = auth
        self.hooks = hooks
        self._servers: list[asyncio.AbstractServer] = []
        self._protocols: weakref.WeakSet[_Adapter] = weakref.WeakSet()

    def _factory(self, kind: str, implicit_tls: bool) -> Callable[[], asyncio.Protocol]:
        handler = self.hooks(kind)
        loop = asyncio.get_running_loop()
        cls: type[Any] = _LmtpProtocol if kind == "lmtp" else _SmtpProtocol
        starttls = self.config.tls_context if not implicit_tls and kind != "lmtp" else None

        def make() -> asyncio.Protocol:
            proto = cls(
                handler,
                data_size_limit=self.config.max_message_size,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=self.config.hostname,
                ident="Carteiro ESMTP" if kind != "lmtp" else "Carteiro LMTP",
                tls_context=starttls,
                timeout=self.config.timeout,
                # AUTH before MAIL and TLS before AUTH are the hooks' decisions (per
                # listener and per client network)
                auth_require_tls=False,
                loop=loop,
            )
            proto.kind = kind
            proto.defence_auth = self.auth
            proto.implicit_tls = implicit_tls
            self._protocols.add(proto)
            assert isinstance(proto, asyncio.Protocol)
            return proto

        return make

    async def listen(
        self, kind: str, host: str, port: int, *, implicit_tls: bool = False
    ) -> asyncio.AbstractServer:
        if implicit_tls and self.config.tls_context is None:
            raise ValueError("implicit TLS needs a TLS context")
        server = await asyncio.get_running_loop().create_server(
            self._factory(kind, implicit_tls),
            host,
            port,
            ssl=self.config.tls_context if implicit_tls else None,
            reuse_address=True,
        )
        self._servers.append(server)
        return server

    async def listen_unix(self, kind: str, path: Path) -> asyncio.AbstractServer:
        """LMTP on a Unix socket (Postfix ``lmtp:unix:...``); a stale socket file from a
        previous run is replaced."""
        _remove_stale_socket(path)
        server = await asyncio.get_running_loop().create_unix_server(
            self._factory(kind, False), str(path)
        )
        self._servers.append(server)
        return server

    async def shutdown(self) -> None:
        """Stops listening and closes the sessions (a message not yet acknowledged is
        not stored: the client retries it, as RFC 5321 §4.1.1.4 expects)."""
        for server in self._servers:
            server.close()
        for proto in list(self._protocols):
            if proto.transport is not None:
                proto.transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()


def _remove_stale_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
