"""The thin asyncio adapter: bytes ↔ sans-IO receiver ↔ handlers, one task per connection.

Everything protocol-specific lives in ``protocol/`` (parsing, serialising) and
``handlers/`` (semantics); this module only moves bytes, enforces timeouts, wires store
change notifications to the selected mailbox, and keeps one misbehaving session from
affecting any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable

from carteiro.audit.log import AuditLog
from carteiro.auth.service import AuthService, Client, Defence
from carteiro.imap import (
    handlers,  # noqa: F401  (registers every command)
    notify,
)
from carteiro.imap.capabilities import capability_line
from carteiro.imap.config import ImapConfig
from carteiro.imap.handlers.append import MAILBOX_CACHE
from carteiro.imap.handlers.base import TABLE, CommandFailed, Context, map_store_error
from carteiro.imap.handlers.fetch import fetch_messages
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.receiver import (
    CommandError,
    CommandReceived,
    Event,
    FatalError,
    Limits,
    LineReceived,
    LiteralRejected,
    NeedContinuation,
    NeedData,
    Receiver,
)
from carteiro.imap.protocol.responses import tagged
from carteiro.imap.recent import RecentClaims
from carteiro.imap.response_cache import ResponseCache
from carteiro.imap.state import Session, State
from carteiro.imap.uidonly import uses_sequence_numbers
from carteiro.net.limits import ConnectionLimiter, Lease
from carteiro.net.proxy_protocol import Invalid, Parsed, is_trusted, parse_proxy_header
from carteiro.net.stream import AcceptingStream, Stream
from carteiro.net.tls_exporter import connection_bindings
from carteiro.store import errors as se
from carteiro.store.interface import Changes, Store

log = logging.getLogger("carteiro.imap")

#: largest literal accepted before authentication (a LOGIN password)
PREAUTH_MAX_LITERAL = 4096
LITERAL_MINUS_MAX = 4096  # RFC 7888 §4
PROXY_TIMEOUT = 10.0  # seconds for a load balancer to send its header
PROXY_MAX = 4096  # longest PROXY v2 header accepted (addresses plus TLVs)

#: inflated bytes handed to the receiver at a time (COMPRESS=DEFLATE)
_INFLATE_CHUNK = 256 * 1024


class _Closed(Exception):
    """The peer went away or the session must end now."""


#: commands whose own effect a NOTIFY session is not told about (RFC 5465 §5)
_MAILBOX_CHANGES = (c.Create, c.Delete, c.Rename, c.Subscribe, c.Unsubscribe)


class ImapConnection:
    def __init__(
        self, server: ImapServer, stream: Stream, implicit_tls: bool, proxy: bool = False
    ) -> None:
        self.proxy = proxy
        self.server = server
        self.stream = stream
        cfg = server.config
        peer = stream.peer()
        self.peer = peer[0] if peer else "unknown"
        self.session = Session(peer=self.peer, tls=implicit_tls, trusted=cfg.is_trusted(self.peer))
        self._limits = Limits(
            cfg.max_line,
            cfg.max_literal,
            cfg.max_command,
            max_nonsync_literal=None if cfg.literal_plus else LITERAL_MINUS_MAX,
        )
        #: before login only LOGIN/AUTHENTICATE need literals, and only small ones
        self._preauth_limits = Limits(8192, PREAUTH_MAX_LITERAL, 4 * PREAUTH_MAX_LITERAL)
        self.receiver = Receiver(self._preauth_limits)
        self._login_deadline = time.monotonic() + cfg.login_timeout
        self.ctx = Context(
            self.session, server.store, cfg, self, responses=server.responses, recent=server.recent
        )
        #: this connection's place in the per-address and per-account limits
        self.lease: Lease | None = None
        self.session_id = secrets.token_hex(6)
        self.bytes_in = 0
        self.bytes_out = 0
        self.refresh_mechanisms()
        self._out: list[bytes] = []
        self._stash: Event | None = None
        self._line_mode = False
        self._dirty: set[int | None] = set()
        self._change = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._busy = False
        self.closing = False
        self._note_tick = 0
        self._shutdown = asyncio.Event()
        # zlib streams once COMPRESS is on (typeshed names their classes privately)
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        #: compressed input not inflated yet (inflated one piece per receiver pass)
        self._zin = b""

    # --- authentication (carteiro.auth.service) ------------------------------------------
    @property
    def auth(self) -> AuthService:
        return self.server.auth

    def client(self) -> Client:
        bindings = (
            connection_bindings(self.server.config.channel_bindings, self.stream.ssl_object)
            if self.session.tls
            else {}
        )
        return Client(
            protocol="imap",
            address=self.peer,
            tls=self.stream.tls_version,
            plaintext_ok=self.session.plaintext_auth_ok,
            channel_bindings=bindings,
            client_id=self.session.client_id,
        )

    def refresh_mechanisms(self) -> None:
        self.session.mechanisms = tuple(self.auth.mechanisms(self.client()))

    def bind_account(self, address: str) -> bool:
        if self.lease is None:
            return True
        return self.server.auth.defence.limiter.bind_account(self.lease, address)

    def begin_shutdown(self) -> None:
        """End the session at the next command boundary; wakes a session in IDLE."""
        self.closing = True
        self._shutdown.set()

    # --- Connection protocol used by handlers ------------------------------------------
    def send(self, data: bytes) -> None:
        self._out.append(data)

    async def flush(self) -> None:
        transport = self.stream.transport
        if transport is None or transport.is_closing():
            self._out.clear()
            raise ConnectionResetError("the client went away")
        if self._out:
            data = self._encode(b"".join(self._out))
            self.bytes_out += len(data)
            self.stream.write(data)
            self._out.clear()
            self._note_download(len(data))
        try:
            # a timeout only when writing is paused: no extra yield before STARTTLS swaps
            # the protocol (a yield there could let the ClientHello be discarded)
            await self.stream.drain(timeout=self.server.config.idle_timeout)
        except TimeoutError:
            raise ConnectionResetError("the client stopped reading") from None

    def _encode(self, data: bytes) -> bytes:
        if self._deflate is None:
            return data
        # SYNC_FLUSH after every write: the client can decode each response at once
        return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _note_download(self, nbytes: int) -> None:
        detectors = self.auth.defence.detectors
        account = self.session.account
        if detectors is not None and account is not None:
            self.auth.defence.raise_alerts(
                detectors.downloaded(account.address, self.session_id, nbytes)
            )

    def note_deleted(self, mailbox: str, count: int, *, moved_to_trash: bool = False) -> None:
        """Expunges and moves to Trash feed the mass-deletion detector."""
        detectors = self.auth.defence.detectors
        account = self.session.account
        if detectors is not None and account is not None and count:
            self.auth.defence.raise_alerts(
                detectors.deleted(account.address, mailbox, count, moved_to_trash=moved_to_trash)
            )

    def _feed(self, data: bytes) -> None:
        """Bytes from the network into the receiver, inflated when COMPRESS is on. A
        small input may inflate hugely: it goes in bounded pieces, so the receiver's
        line and literal limits apply before memory does."""
        self.bytes_in += len(data)
        if self._inflate is None:
            self.receiver.receive_data(data)
            return
        self._zin += data
        self._inflate_more()

    def _inflate_more(self) -> bool:
        """Inflates at most one piece of pending compressed input into the receiver;
        False when nothing was pending."""
        if self._inflate is None or not self._zin:
            return False
        try:
            out = self._inflate.decompress(self._zin, _INFLATE_CHUNK)
        except zlib.error:
            self.send(b"* BYE Corrupt compressed data\r\n")
            raise _Closed from None
        self._zin = self._inflate.unconsumed_tail
        self.receiver.receive_data(out)
        return True

    @property
    def compressing(self) -> bool:
        return self._deflate is not None

    def start_compression(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)

    async def start_tls(self) -> None:
        assert self.server.config.tls_context is not None
        self.receiver.discard_buffer()
        await self.stream.start_tls(self.server.config.tls_context)

    async def read_line(self, timeout: float) -> bytes | None:
        if self._stash is not None:
            event, self._stash = self._stash, None
        else:
            if not self._line_mode:
                self.receiver.expect_line()
                self._line_mode = True
            try:
                event = await self._next_event(timeout)
            except _Closed:
                # EOF, autologout (BYE already queued) or shutdown: the session is over
                self._line_mode = False
                self.session.state = State.LOGOUT
                return None
        self._line_mode = False
        return event.line if isinstance(event, LineReceived) else None

    async def wait_change(self, timeout: float) -> str:
        """``"input"`` only once a whole line has arrived: a client that sent half of
        ``DONE`` must not stop the pushes while the rest is on its way."""
        deadline = time.monotonic() + timeout
        while True:
            if self._change.is_set():
                self._change.clear()
                return "change"
            if not self._line_mode:
                self.receiver.expect_line()
                self._line_mode = True
            event = self.receiver.next_event()
            while isinstance(event, NeedData) and self._inflate_more():
                event = self.receiver.next_event()
            if not isinstance(event, NeedData):
                self._stash = event
                return "input"
            if self.closing:
                return "shutdown"
            read = asyncio.ensure_future(self.stream.read())
            changed = asyncio.ensure_future(self._change.wait())
            stopping = asyncio.ensure_future(self._shutdown.wait())
            try:
                done, _ = await asyncio.wait(
                    {read, changed, stopping},
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                changed.cancel()
                stopping.cancel()
                if not read.done():
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
            if read.done() and not read.cancelled():
                data = read.result()
                if not data:
                    return "input"  # EOF: read_line reports it
                self._feed(data)
                continue  # a whole line yet? (checked at the top)
            if stopping in done:
                return "shutdown"
            if changed in done:
                self._change.clear()
                return "change"
            return "timeout"

    async def sync(self, allow_expunge: bool, allow_flags: bool = True) -> None:
        sel = self.session.selected
        if sel is None:
            return
        newest_known = sel.max_uid
        if sel.info.id in self._dirty or None in self._dirty:
            self._dirty.clear()
            try:
                changes = await self.server.changes_since(
                    sel.info.id, sel.known_modseq, self._note_tick
                )
            except se.NotFound:
                changes = None
            if changes is None or changes.uidvalidity != sel.info.uidvalidity:
                self.send(b"* BYE The selected mailbox was deleted or renamed\r\n")
                self.session.state = State.LOGOUT
                return
            new_from = None
            newest = changes.updated[-1].uid if changes.updated else 0
            if not sel.readonly and newest > sel.max_uid:
                new_from = await self.server.claim_recent(sel.info.id, newest)
            sel.absorb(changes, new_from)
        for line in sel.drain_updates(
            allow_expunge=allow_expunge,
            rev1=self.session.rev1,
            condstore=self.session.condstore,
            qresync=self.session.vanished,
            uidonly=self.session.uidonly,
            flags=allow_flags,
        ):
            self.send(line)
        watch = self.session.notify
        if watch is not None and watch.selected is not None and watch.selected.fetch_attrs:
            # RFC 5465 §5.2: EXISTS is followed by what the client asked to see of
            # each new message
            fresh = [u for u in sel.uids[bisect_right(sel.uids, newest_known) :]]
            if fresh:
                await fetch_messages(self.ctx, watch.selected.fetch_attrs, fresh)

    async def push_notifications(self, *, in_idle: bool = False, selected: bool = True) -> None:
        """RFC 5465: what the client asked to hear about, sent now: between commands,
        in IDLE, or (``selected=False``: the command's own sync did that part) at the
        end of a command."""
        watch = self.session.notify
        if watch is None or self.session.account is None:
            return
        if selected and watch.selected is not None and self.session.state is State.SELECTED:
            # SELECTED-DELAYED keeps expunges for IDLE and commands that allow them
            await self.sync(
                allow_expunge=in_idle or watch.immediate_expunge,
                allow_flags="FlagChange" in watch.selected.events,
            )
        for line in await notify.mailbox_lines(
            watch, self.session, self.server.store, self.session.account.id
        ):
            self.send(line)
        selected_id = self.session.selected.info.id if self.session.selected else None
        for line in await notify.status_lines(watch, self.session, self.server.store, selected_id):
            self.send(line)

    # --- store notifications ------------------------------------------------------------
    def _on_store_change(self, account_id: int, mailbox_id: int | None) -> None:
        if mailbox_id is None:  # mailboxes created, deleted or renamed
            self.ctx.extra.pop(MAILBOX_CACHE, None)
        self._note_tick = self.server.tick()
        self._dirty.add(mailbox_id)
        if self.session.notify is not None:
            self.session.notify.dirty.add(mailbox_id)
            self._change.set()
            return
        sel = self.session.selected
        if sel is not None and (mailbox_id is None or mailbox_id == sel.info.id):
            self._change.set()

    # --- main loop ----------------------------------------------------------------------
    async def _next_event(self, timeout: float) -> Event:
        """The next event; ``timeout`` bounds the whole wait, so a client dripping a
        byte at a time cannot stretch a command (or a login) forever."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.receiver.next_event()
            if not isinstance(event, NeedData):
                return event
            if self._inflate_more():
                continue
            if self.stream.at_eof or self.closing:
                raise _Closed
            if self._notify_now():
                await self._wait_input_or_change(deadline)
                continue
            try:
                # asyncio.timeout, not wait_for: no task per read (on 3.11 wait_for wraps
                # the read in one), so the command starts a loop pass earlier
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    data = await self.stream.read()
            except TimeoutError:
                self.send(b"* BYE Autologout; idle for too long\r\n")
                raise _Closed from None
            if not data:
                raise _Closed
            self._feed(data)

    def _notify_now(self) -> bool:
        """Between commands of a NOTIFY session: store changes are pushed right away."""
        return (
            self.session.notify is not None
            and not self._busy
            and self.session.state in (State.AUTHENTICATED, State.SELECTED)
            and self.receiver.between_commands
        )

    async def _wait_input_or_change(self, deadline: float) -> None:
        """Reads input into the receiver, or sends pending notifications, whichever
        comes first; raises like :meth:`_next_event` on EOF and autologout."""
        if self._change.is_set():
            self._change.clear()
            await self.push_notifications()
            await self.flush()
            return
        read = asyncio.ensure_future(self.stream.read())
        changed = asyncio.ensure_future(self._change.wait())
        try:
            done, _ = await asyncio.wait(
                {read, changed},
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            changed.cancel()
            if not read.done():
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read
        if read.done() and not read.cancelled():
            data = read.result()
            if not data:
                raise _Closed
            self._feed(data)
            return
        if changed in done:
            self._change.clear()
            await self.push_notifications()
            await self.flush()
            return
        self.send(b"* BYE Autologout; idle for too long\r\n")
        raise _Closed

    def _admit(self) -> str | None:
        self.lease, refusal = self.auth.defence.admit(self.peer)
        return refusal

    async def _read_proxy_header(self) -> str | None:
        """Reads the PROXY header and adopts the client address it names; a refusal
        text when the sender is not a trusted proxy or the header is bad."""
        if not is_trusted(self.peer, self.server.config.proxy_trusted):
            return "PROXY protocol from an untrusted address"
        data = b""
        deadline = time.monotonic() + PROXY_TIMEOUT
        while True:
            result = parse_proxy_header(data, max_length=PROXY_MAX)
            if isinstance(result, Invalid):
                return "Bad PROXY protocol header"
            if isinstance(result, Parsed):
                break
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    chunk = await self.stream.read()
            except TimeoutError:
                return "No PROXY protocol header"
            if not chunk:
                return "No PROXY protocol header"
            data += chunk
        if result.info.source is not None:
            self.peer = result.info.source[0]
            cfg = self.server.config
            self.session.peer = self.peer
            self.session.trusted = cfg.is_trusted(self.peer)
            self.refresh_mechanisms()
        rest = data[result.consumed :]
        if self.session.tls:  # implicit TLS behind the balancer: the handshake comes now
            assert self.server.config.tls_context is not None
            try:
                await self.stream.start_tls(self.server.config.tls_context, initial=rest)
            except (ssl.SSLError, OSError, ConnectionError) as exc:
                log.info("TLS handshake with %s failed: %s", self.peer, exc)
                return "TLS handshake failed"
            self.refresh_mechanisms()
        elif rest:
            self._feed(rest)
        return None

    async def run(self) -> None:
        cfg = self.server.config
        audit = self.auth.defence.audit
        started = time.monotonic()
        refusal = await self._read_proxy_header() if self.proxy else None
        if refusal is None:
            refusal = self._admit()
        if refusal is not None:
            log.info("refused connection from %s: %s", self.peer, refusal)
            self.send(b"* BYE " + refusal.encode("ascii", "replace") + b"\r\n")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 5)
            self.stream.close()
            return
        audit.session_start(
            protocol="imap", session=self.session_id, source=self.peer, tls=self.stream.tls_version
        )
        try:
            self.send(
                b"* OK [CAPABILITY "
                + capability_line(self.session, cfg).encode()
                + b"] Carteiro IMAP4rev2 ready\r\n"
            )
            await self.flush()
            while self.session.state is not State.LOGOUT and not self.closing:
                timeout = (
                    # a deadline for the whole login, not per read: no drip-feeding
                    max(0.0, self._login_deadline - time.monotonic())
                    if self.session.state is State.NOT_AUTHENTICATED
                    else cfg.idle_timeout
                )
                event = await self._next_event(timeout)
                await self._handle_event(event)
                await self.flush()
            if self.closing and self.session.state is not State.LOGOUT:
                self.send(b"* BYE Server shutting down\r\n")
                await self.flush()
        except (_Closed, ConnectionError):
            pass
        except asyncio.CancelledError:
            # shutdown grace period over: still say goodbye
            self.send(b"* BYE Server shutting down\r\n")
            self.stream.write(self._encode(b"".join(self._out)))
            self._out.clear()
            self.stream.close()
            raise
        except Exception:
            log.exception("session with %s failed", self.peer)
            self.send(b"* BYE Internal server error\r\n")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 5)
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.stream.close()
            if self.lease is not None:
                self.auth.defence.limiter.release(self.lease)
            detectors = self.auth.defence.detectors
            if detectors is not None:
                detectors.session_closed(self.session_id)
            audit.session_end(
                protocol="imap",
                session=self.session_id,
                account=self.session.account.address if self.session.account else None,
                source=self.peer,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                duration=time.monotonic() - started,
            )

    async def _handle_event(self, event: Event) -> None:
        if isinstance(event, NeedContinuation):
            self.send(b"+ Ready for literal data\r\n")
        elif isinstance(event, CommandReceived):
            self._busy = True
            try:
                await self._execute(event.command)
            finally:
                self._busy = False
        elif isinstance(event, CommandError):
            status = event.status
            if event.tag is None:
                self.send(tagged("*", status, event.text, event.code))
            else:
                self.send(tagged(event.tag, status, event.text, event.code))
        elif isinstance(event, LiteralRejected):
            self.send(tagged(event.tag or "*", "NO", event.text, "TOOBIG"))
        elif isinstance(event, FatalError):
            self.send(b"* BYE " + event.text.encode("ascii", "replace") + b"\r\n")
            raise _Closed
        elif isinstance(event, LineReceived):
            self.send(b"* BAD Unexpected continuation data\r\n")

    async def _execute(self, cmd: c.Command) -> None:
        spec = TABLE.get(type(cmd))
        if spec is None:
            self.send(tagged(cmd.tag, "BAD", "Command not implemented"))
            return
        session = self.session
        if session.state not in spec.states:
            self.send(
                tagged(
                    cmd.tag, "BAD", f"{cmd.name} is not valid in the {session.state.value} state"
                )
            )
            return
        if session.uidonly and uses_sequence_numbers(cmd):
            self.send(
                tagged(
                    cmd.tag,
                    "BAD",
                    "Message sequence numbers are not allowed once UIDONLY is enabled",
                    "UIDREQUIRED",
                )
            )
            return
        if isinstance(cmd, c.Select):
            self._dirty.clear()
        self.ctx.tag = cmd.tag
        self.ctx.started = time.monotonic()
        try:
            result = await spec.handler(self.ctx, cmd)
        except CommandFailed as exc:
            result = exc.result
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # store errors and server faults, mapped in one place
            result = map_store_error(exc)
        if session.account is not None and self._unsubscribe is None:
            self._unsubscribe = self.server.store.subscribe(
                session.account.id, self._on_store_change
            )
        elif session.account is None and self._unsubscribe is not None:  # UNAUTHENTICATE
            self._unsubscribe()
            self._unsubscribe = None
            self._login_deadline = time.monotonic() + self.server.config.login_timeout
        self.receiver.limits = self._limits if session.account is not None else self._preauth_limits
        if result.silent:
            return
        if session.selected is not None and session.state is State.SELECTED:
            await self.sync(allow_expunge=not spec.uses_msn(cmd))
        if session.notify is not None and session.account is not None:
            if isinstance(cmd, _MAILBOX_CHANGES) and result.status == "OK":
                # RFC 5465 §5: the client's own changes are not announced back
                await notify.mailbox_lines(
                    session.notify, session, self.server.store, session.account.id, quiet=True
                )
            await self.push_notifications(selected=False)
        self.send(tagged(cmd.tag, result.status, result.text, result.code))
        if result.after is not None:
            await self.flush()
            try:
                await result.after()
            except (ssl.SSLError, OSError, ConnectionError) as exc:
                log.info("TLS negotiation with %s failed: %s", self.peer, exc)
                raise _Closed from exc
        self.receiver.utf8 = session.utf8

    @property
    def busy(self) -> bool:
        return self._busy


class ImapServer:
    def __init__(self, store: Store, config: ImapConfig, auth: AuthService | None = None) -> None:
        self.store = store
        self.config = config
        #: FETCH answers shared by the sessions (see carteiro.imap.response_cache)
        self.responses = ResponseCache()
        #: without one, a service with no throttling or limits (embedding, tools)
        self.auth = auth or AuthService(
            store,
            Defence(AuditLog(None), limiter=ConnectionLimiter(per_ip=0, per_account=0)),
            failure_delay=config.auth_failure_delay,
        )
        self.connections: set[ImapConnection] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick = 0
        #: (mailbox_id, modseq) -> (tick at start, the changes_since query in flight)
        self._changes: dict[tuple[int, int], tuple[int, asyncio.Future[Changes]]] = {}
        #: who sees \Recent, decided for every session of this process
        self.recent = RecentClaims(store)

    def tick(self) -> int:
        self._tick += 1
        return self._tick

    async def changes_since(self, mailbox_id: int, modseq: int, noted: int) -> Changes:
        """One store query shared by every session asking for the same mailbox and modseq:
        a delivery wakes all sessions in IDLE on it at once. A session joins a query only
        if it started after the notification the session is answering (``noted``). The
        first session runs the query itself (no task: the store answers small ones
        without a yield, and the command then ends in the same loop pass)."""
        key = (mailbox_id, modseq)
        inflight = self._changes.get(key)
        if inflight is not None and inflight[0] >= noted:
            try:
                return await asyncio.shield(inflight[1])
            except asyncio.CancelledError:
                if not inflight[1].cancelled():
                    raise  # this session is being cancelled
                # the session running the query was cancelled: ask for ourselves
        fut: asyncio.Future[Changes] = asyncio.get_running_loop().create_future()
        entry = (self.tick(), fut)
        self._changes[key] = entry
        try:
            result = await self.store.changes_since(mailbox_id, modseq)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: nobody else may be waiting for it
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            if self._changes.get(key) is entry:
                del self._changes[key]

    async def claim_recent(self, mailbox_id: int, newest_uid: int) -> int | None:
        """\\Recent for messages up to ``newest_uid`` goes to the first session that asks
        (RFC 3501 §2.3.2), decided in memory for the sessions of this process (see
        :mod:`carteiro.imap.recent`): with a thousand sessions in IDLE, one delivery
        costs no commit per session, and SELECT and APPEND wait for no write."""
        return await self.recent.claim(mailbox_id, newest_uid)

    async def listen(
        self, host: str, port: int, *, implicit_tls: bool, proxy: bool = False
    ) -> asyncio.AbstractServer:
        """``proxy``: every connection starts with a PROXY protocol header from one of
        ``config.proxy_trusted``; with implicit TLS the handshake follows the header."""
        loop = asyncio.get_running_loop()
        if implicit_tls and self.config.tls_context is None:
            raise ValueError("implicit TLS needs a TLS context")

        def factory() -> Stream:
            return AcceptingStream(lambda s: self._accept(s, implicit_tls, proxy))

        tls_by_loop = implicit_tls and not proxy  # else the session starts TLS itself
        server = await loop.create_server(
            factory,
            host,
            port,
            ssl=self.config.tls_context if tls_by_loop else None,
            ssl_handshake_timeout=30 if tls_by_loop else None,
            reuse_address=True,
        )
        self._servers.append(server)
        return server

    def _accept(self, stream: Stream, implicit_tls: bool, proxy: bool = False) -> None:
        conn = ImapConnection(self, stream, implicit_tls, proxy)
        self.connections.add(conn)
        task = asyncio.get_running_loop().create_task(conn.run())
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self.connections.discard(conn)

        task.add_done_callback(done)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting; let running commands finish; tell every session BYE."""
        for srv in self._servers:
            srv.close()
        for conn in list(self.connections):
            conn.begin_shutdown()
            if not conn.busy:
                conn.send(b"* BYE Server shutting down\r\n")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.flush(), 1)
                conn.stream.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:  # the cancelled sessions say BYE and close: let them finish
            await asyncio.wait(set(self._tasks), timeout=5)
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        with contextlib.suppress(Exception):  # claims of \Recent not saved yet
            await asyncio.wait_for(self.recent.flush(), 5)
