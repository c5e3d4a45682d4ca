"""A real Carteiro IMAP server on ephemeral 127.0.0.1 ports, in its own thread and loop.

Tests talk to it over real sockets with real clients (imaplib, mbsync, curl).
"""

from __future__ import annotations

import asyncio
import imaplib
import itertools
import ssl
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from carteiro.app import channel_bindings
from carteiro.auth.passwords import hash_password
from carteiro.config import DEFAULT_TRUSTED_NETWORKS, Settings
from carteiro.defence import SecurityOptions, start_security
from carteiro.delivery import deliver
from carteiro.imap.config import ImapConfig
from carteiro.imap.server import ImapServer
from carteiro.net.tls import ensure_certificate, server_context
from carteiro.pop3.server import Pop3Config, Pop3Server
from carteiro.smtp.hooks import make_hooks
from carteiro.smtp.queue import Outbox, QueueConfig
from carteiro.smtp.server import SmtpConfig, SmtpServer
from carteiro.store.sqlite import SqliteStore

T = TypeVar("T")
_counter = itertools.count(1)


class ServerThread:
    """``config``: ImapConfig fields; ``security``: SecurityOptions fields (the defence
    layer is the one the server runs: guard, limits, audit log, detectors)."""

    def __init__(
        self,
        data_dir: Path,
        security: dict[str, Any] | None = None,
        smtp: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        self.data_dir = data_dir
        settings = Settings(data_dir=data_dir, hostname="localhost")
        self.cert = ensure_certificate(settings).cert
        self.tls = server_context(settings)
        config.setdefault("auth_failure_delay", 0.01)
        config.setdefault("channel_bindings", channel_bindings(self.cert))
        self.config = ImapConfig(hostname="localhost", tls_context=self.tls, **config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.store = SqliteStore(data_dir / "carteiro.db")
        self.call(self.store.open())
        options: dict[str, Any] = {
            "trusted": DEFAULT_TRUSTED_NETWORKS,
            "failure_delay": self.config.auth_failure_delay,
        }
        options.update(security or {})
        self.security = self.call(start_security(self.store, SecurityOptions(data_dir, **options)))
        self.audit_path = data_dir / "audit.jsonl"
        self.server = ImapServer(self.store, self.config, self.security.auth)
        self.pop3 = Pop3Server(
            self.store,
            Pop3Config(
                tls_context=self.tls,
                is_trusted=self.config.is_trusted,
                channel_bindings=self.config.channel_bindings,
            ),
            self.security.auth,
        )
        self.port = self._listen(implicit_tls=False)
        self.tls_port = self._listen(implicit_tls=True)
        self.pop3_port = self._listen_pop3(implicit_tls=False)
        self.pop3s_port = self._listen_pop3(implicit_tls=True)
        self._hash = hash_password("secret")
        self.smtp: SmtpServer | None = None
        self.outbox: Outbox | None = None
        if smtp is not None:
            self._start_smtp(dict(smtp))

    def _start_smtp(self, options: dict[str, Any]) -> None:
        """SMTP (``smtp_port``), submission (``submission_port``, ``submissions_port``)
        and LMTP (``lmtp_port``). ``options``: SmtpConfig fields, plus ``resolver`` (a
        Resolver), ``queue`` (QueueConfig fields: an Outbox is started) and
        ``mailauth`` (a MailAuthPolicy; default: no checks)."""
        resolver = options.pop("resolver", None)
        queue = options.pop("queue", None)
        mailauth = options.pop("mailauth", None)
        options.setdefault("is_trusted", self.config.is_trusted)
        options.setdefault("channel_bindings", self.config.channel_bindings)
        self.smtp_config = SmtpConfig(hostname="localhost", tls_context=self.tls, **options)
        if queue is not None:
            assert resolver is not None, "the outbound queue needs a resolver"
            self.outbox = Outbox(self.store, resolver, QueueConfig(**queue), "localhost")
            self.call(self.outbox.start())
        hooks = make_hooks(
            self.store,
            self.smtp_config,
            self.security.auth,
            outbox=self.outbox,
            resolver=resolver,
            mailauth=mailauth,
        )
        self.smtp = SmtpServer(self.smtp_config, self.security.auth, hooks)

        def listen(kind: str, implicit: bool = False) -> int:
            assert self.smtp is not None
            srv = self.call(self.smtp.listen(kind, "127.0.0.1", 0, implicit_tls=implicit))
            return int(srv.sockets[0].getsockname()[1])

        self.smtp_port = listen("smtp")
        self.submission_port = listen("submission")
        self.submissions_port = listen("submission", implicit=True)
        self.lmtp_port = listen("lmtp")

    def _listen_pop3(self, implicit_tls: bool) -> int:
        srv = self.call(self.pop3.listen("127.0.0.1", 0, implicit_tls=implicit_tls))
        return int(srv.sockets[0].getsockname()[1])

    def listen_proxy(self, implicit_tls: bool = False) -> int:
        """A listener behind a (pretend) load balancer: PROXY header first."""
        return self._listen(implicit_tls=implicit_tls, proxy=True)

    def _listen(self, implicit_tls: bool, proxy: bool = False) -> int:
        srv = self.call(self.server.listen("127.0.0.1", 0, implicit_tls=implicit_tls, proxy=proxy))
        return int(srv.sockets[0].getsockname()[1])

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def new_user(self, password: str = "secret") -> str:
        address = f"user{next(_counter)}@example.org"
        pw_hash = self._hash if password == "secret" else hash_password(password)
        self.call(self.store.create_account(address, pw_hash))
        return address

    def deliver(self, address: str, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        return self.call(deliver(self.store, address, raw, flags))

    def client_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        ctx.check_hostname = False
        return ctx

    def connect(self, user: str | None = None, password: str = "secret") -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        OPEN.append(conn)
        if user is not None:
            conn.login(user, password)
        return conn

    def connect_tls(self, user: str | None = None, password: str = "secret") -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL(
            "127.0.0.1", self.tls_port, ssl_context=self.client_tls(), timeout=30
        )
        if user is not None:
            conn.login(user, password)
        return conn

    def connect_tls_with(self, ctx: ssl.SSLContext) -> imaplib.IMAP4_SSL:
        conn = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=ctx, timeout=30)
        OPEN.append(conn)
        return conn

    def stop(self) -> None:
        try:
            if self.smtp is not None:
                self.call(self.smtp.shutdown())
            if self.outbox is not None:
                self.call(self.outbox.stop())
            self.call(self.pop3.shutdown(grace=2))
            self.call(self.server.shutdown(grace=2))
            self.call(self.security.close())
            self.call(self.store.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


#: every client socket a test opened, closed by the conftest after each test
OPEN: list[Any] = []


class RawClient:
    """A byte-exact IMAP client for transcript assertions: sends what it is told and
    returns the server's lines (literals inlined) up to the tagged reply."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 30) -> None:
        import socket

        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        OPEN.append(sock)
        self.sock: Any = tls.wrap_socket(sock, server_hostname="localhost") if tls else sock
        OPEN.append(self.sock)
        self.buf = b""
        self.greeting = self.readline()

    def readline(self) -> bytes:
        """One response line; a trailing literal ``{n}`` is read and appended."""
        line = self._rawline()
        while line.endswith(b"}\r\n") and b"{" in line:
            size = int(line[line.rindex(b"{") + 1 : -3].lstrip(b"~"))
            line += self._exact(size) + self._rawline()
        return line

    def _rawline(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(self.buf)
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(self.buf)
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: bytes | str, tag: str | None = None) -> list[bytes]:
        """Sends ``line`` (tag added when ``tag`` is given) and returns every response
        line through the tagged one."""
        data = line.encode() if isinstance(line, str) else line
        if tag is not None:
            data = tag.encode() + b" " + data
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.send(data)
        want = (tag or data.split(b" ", 1)[0].decode()).encode() + b" "
        out = []
        while True:
            line_ = self.readline()
            out.append(line_)
            if line_.startswith(want):
                return out

    def close(self) -> None:
        close_quietly(self.sock)


def close_quietly(obj: Any) -> None:
    """Closes a socket or an imaplib connection, whatever state it is in."""
    try:
        if hasattr(obj, "shutdown") and hasattr(obj, "sock") and hasattr(obj, "state"):
            obj.shutdown()  # imaplib.IMAP4
        else:
            obj.close()
    except (OSError, ValueError, AttributeError):
        pass
