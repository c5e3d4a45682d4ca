"""POP3 server (RFC 1939) on the IMAP store: the maildrop is the account's INBOX.

* UIDL is ``<UIDVALIDITY>.<UID>``: stable forever for a message, the same in every
  session and after restarts.
* The maildrop is fixed at login: mail delivered meanwhile appears in the next session.
* DELE only marks; the messages are expunged at QUIT (the UPDATE state), so an IMAP
  session with INBOX selected sees ordinary expunges, and a dropped connection deletes
  nothing.
* One POP3 session per maildrop (``-ERR [IN-USE]``, RFC 2449 §8.1.2); IMAP sessions on
  the same account are unaffected.
* Authentication is :class:`carteiro.auth.service.AuthService`, as for IMAP: the same
  mechanisms, throttling, bans, app passwords (with ``--protocols pop3``) and audit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from carteiro.auth.service import Authenticated, AuthService, Client, Refused
from carteiro.net.limits import Lease
from carteiro.net.stream import AcceptingStream, Stream
from carteiro.net.tls_exporter import connection_bindings
from carteiro.pop3 import protocol as p
from carteiro.store import errors as se
from carteiro.store.interface import MessageRecord, Store

__all__ = ["Pop3Config", "Pop3Server"]

log = logging.getLogger("carteiro.pop3")

#: keyword on messages POP3 downloaded, for the "only new mail" mode (visible in IMAP)
DOWNLOADED = "$POP3Downloaded"

#: pipelined RETRs are read from the store together, up to this many octets at once
READ_AHEAD_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Pop3Config:
    tls_context: ssl.SSLContext | None = None
    is_trusted: Callable[[str], bool] = field(default=lambda _addr: False)
    #: RFC 1939 §3: at least 10 minutes of inactivity before the autologout
    idle_timeout: float = 600.0
    channel_bindings: tuple[tuple[str, bytes], ...] = ()
    #: what happens to retrieved mail at QUIT: "keep" (leave on server) or "delete"
    retrieved: str = "keep"
    #: show only mail POP3 has not downloaded yet (marked with :data:`DOWNLOADED`)
    new_only: bool = False
    #: RFC 2449 LOGIN-DELAY: seconds between two POP3 logins of one account (0: none)
    login_delay: int = 0


class _Gone(Exception):
    """The client went away or timed out."""


class Pop3Session:
    def __init__(self, server: Pop3Server, stream: Stream, implicit_tls: bool) -> None:
        self.server = server
        self.stream = stream
        self.tls = implicit_tls
        peer = stream.peer()
        self.peer = peer[0] if peer else "unknown"
        self.reader = p.LineReader()
        self.lines: list[bytes | p.LineTooLong] = []
        self.out: list[bytes] = []
        self.user: str | None = None  # USER given, PASS awaited
        self.account_id: int | None = None
        self.account: str | None = None
        self.mailbox_id = 0
        self.uidvalidity = 0
        self.drop: list[MessageRecord] = []
        self.deleted: set[int] = set()  # message numbers (1-based)
        self.seen: list[int] = []  # UIDs retrieved, not yet marked \Seen
        self.utf8 = False  # RFC 6856 UTF8 command given
        self.delete_retrieved = False  # the account's "delete retrieved mail" choice
        self.new_only = False  # the account's "only mail not downloaded yet" choice
        self.retrieved: set[int] = set()  # message numbers fully retrieved (RETR)
        self.prefetched: dict[int, bytes] = {}  # blob id -> content, for pipelined RETRs
        self.lease: Lease | None = None
        self.session_id = secrets.token_hex(6)
        self.bytes_in = 0
        self.bytes_out = 0

    # --- I/O ---------------------------------------------------------------------------
    @property
    def trusted(self) -> bool:
        return self.server.config.is_trusted(self.peer)

    def client(self) -> Client:
        bindings = (
            connection_bindings(self.server.config.channel_bindings, self.stream.ssl_object)
            if self.tls
            else {}
        )
        return Client(
            protocol="pop3",
            address=self.peer,
            tls=self.stream.tls_version,
            plaintext_ok=self.tls or self.trusted,
            channel_bindings=bindings,
        )

    def send(self, data: bytes) -> None:
        self.out.append(data)

    async def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.bytes_out += len(data)
            self.stream.write(data)
        try:
            await self.stream.drain(timeout=self.server.config.idle_timeout)
        except TimeoutError:
            raise _Gone from None

    async def next_line(self) -> bytes | p.LineTooLong:
        while not self.lines:
            try:
                async with asyncio.timeout(self.server.config.idle_timeout):
                    data = await self.stream.read()
            except TimeoutError:
                self.send(p.err("Autologout: idle for too long"))
                raise _Gone from None
            if not data:
                raise _Gone
            self.bytes_in += len(data)
            self.lines.extend(self.reader.feed(data))
        return self.lines.pop(0)

    # --- main loop ---------------------------------------------------------------------
    async def run(self) -> None:
        auth = self.server.auth
        refusal = self._admit()
        if refusal is not None:
            self.send(p.err(refusal, "SYS/TEMP"))
            with contextlib.suppress(Exception):
                await self.flush()
            self.stream.close()
            return
        started = time.monotonic()
        auth.defence.audit.session_start(
            protocol="pop3", session=self.session_id, source=self.peer, tls=self.stream.tls_version
        )
        try:
            self.send(p.ok("Carteiro POP3 ready"))
            await self.flush()
            while True:
                line = await self.next_line()
                if isinstance(line, p.LineTooLong):
                    self.send(p.err("Line too long (255 octets at most)"))
                else:
                    done = await self.handle(line)
                    if done:
                        await self.flush()
                        return
                if not self.lines:  # PIPELINING: one write for a batch of commands
                    await self.mark_seen()
                    await self.flush()
        except (_Gone, ConnectionError):
            pass
        except Exception:
            log.exception("POP3 session with %s failed", self.peer)
            self.send(p.err("Internal server error", "SYS/TEMP"))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), 5)
            self.stream.close()
            if self.account_id is not None:
                self.server.release(self.account_id)
            if self.lease is not None:
                auth.defence.limiter.release(self.lease)
            auth.defence.audit.session_end(
                protocol="pop3",
                session=self.session_id,
                account=self.account,
                source=self.peer,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                duration=time.monotonic() - started,
            )

    def _admit(self) -> str | None:
        self.lease, refusal = self.server.auth.defence.admit(self.peer)
        return refusal

    async def handle(self, line: bytes) -> bool:
        """One command; True when the session is over."""
        try:
            cmd = p.parse(line)
        except p.ParseError as exc:
            self.send(p.err(str(exc)))
            return False
        if self.account_id is None:
            return await self._authorization(cmd)
        return await self._transaction(cmd)

    # --- AUTHORIZATION state -----------------------------------------------------------
    def capabilities(self) -> list[str]:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        # RFC 2449 §6.7: EXPIRE 0 when retrieved mail is deleted, NEVER when it stays
        expire = "0" if self.account_id is not None and self.delete_retrieved else "NEVER"
        caps += [f"EXPIRE {expire}", "IMPLEMENTATION Carteiro"]
        if self.server.config.login_delay:
            caps.append(f"LOGIN-DELAY {self.server.config.login_delay}")
        caps.append("UTF8 USER")  # RFC 6856: UTF-8 in USER/PASS too
        client = self.client()
        if self.account_id is None:
            if client.plaintext_ok:
                caps.append("USER")
            caps.append("SASL " + " ".join(self.server.auth.mechanisms(client)))
            if not self.tls and self.server.config.tls_context is not None:
                caps.append("STLS")
        return caps

    async def _authorization(self, cmd: p.Command) -> bool:
        name = cmd.name
        if name == "CAPA":
            self.send(
                p.multiline(
                    p.ok("Capability list follows"), "\r\n".join(self.capabilities()).encode()
                )
            )
        elif name == "QUIT":
            self.send(p.ok("Bye"))
            return True
        elif name == "NOOP":
            self.send(p.ok())
        elif name == "STLS":
            await self._stls()
        elif name == "USER":
            if not self.client().plaintext_ok:
                self.send(p.err("Plaintext authentication needs TLS: use STLS", "AUTH"))
            else:
                self.user = cmd.args[0]
                self.send(p.ok("Send PASS"))
        elif name == "PASS":
            if self.user is None:
                self.send(p.err("USER first"))
            else:
                user, self.user = self.user, None
                await self._login(await self.server.auth.login(self.client(), user, cmd.args[0]))
        elif name == "AUTH":
            await self._auth(cmd)
        elif name == "UTF8":
            # RFC 6856 §2: UTF-8 user names and passwords are accepted anyway; messages
            # are sent as stored (8-bit and UTF-8 headers included)
            self.utf8 = True
            self.send(p.ok("UTF8 enabled"))
        else:
            self.send(p.err("Log in first"))
        return False

    async def _stls(self) -> None:
        ctx = self.server.config.tls_context
        if self.tls or ctx is None:
            self.send(p.err("TLS is already active" if self.tls else "TLS is not configured"))
            return
        self.send(p.ok("Begin TLS negotiation"))
        await self.flush()
        self.reader = p.LineReader()  # nothing sent before the handshake is kept
        self.lines.clear()
        try:
            await self.stream.start_tls(ctx)
        except (ssl.SSLError, OSError, ConnectionError) as exc:
            log.info("POP3 TLS handshake with %s failed: %s", self.peer, exc)
            raise _Gone from exc
        self.tls = True

    async def _auth(self, cmd: p.Command) -> None:
        if not cmd.args:  # an old listing form, as clients probe it
            mechs = self.server.auth.mechanisms(self.client())
            self.send(p.multiline(p.ok("Mechanisms follow"), "\r\n".join(mechs).encode()))
            return
        initial: bytes | None = None
        if len(cmd.args) == 2:
            if cmd.args[1] == "=":
                initial = b""
            else:
                try:
                    initial = base64.b64decode(cmd.args[1], validate=True)
                except (binascii.Error, ValueError):
                    self.send(p.err("Invalid base64 initial response"))
                    return
        session = self

        class Exchange:
            async def challenge(self, data: bytes) -> bytes | None:
                session.send(b"+ " + base64.b64encode(data) + b"\r\n")
                await session.flush()
                line = await session.next_line()
                if isinstance(line, p.LineTooLong) or line.strip() == b"*":
                    return None
                try:
                    return base64.b64decode(line.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return None

        outcome = await self.server.auth.authenticate(
            self.client(), cmd.args[0], initial, Exchange()
        )
        await self._login(outcome)

    async def _login(self, outcome: Authenticated | Refused) -> None:
        if isinstance(outcome, Refused):
            self.send(p.err(outcome.text, "AUTH"))  # RFC 3206: a credentials problem
            if outcome.banned:
                raise _Gone
            return
        account = outcome.account
        defence = self.server.auth.defence
        if self.lease is not None and not defence.limiter.bind_account(self.lease, account.address):
            self.send(p.err("Too many sessions for this account", "SYS/TEMP"))
            return
        wait = self.server.login_wait(account.id)
        if wait > 0:
            self.send(p.err(f"Wait {wait:.0f} s between POP3 logins", "LOGIN-DELAY"))
            return
        if not self.server.lock(account.id):
            self.send(p.err("Another POP3 session is using this maildrop", "IN-USE"))
            return
        try:
            inbox = await self.server.store.get_mailbox(account.id, "INBOX")
            if inbox is None:
                raise se.NotFound("no INBOX")
            store = self.server.store
            retrieved, new_only = await store.pop3_options(account.address)
            cfg = self.server.config
            self.delete_retrieved = (retrieved or cfg.retrieved) == "delete"
            self.new_only = cfg.new_only if new_only is None else new_only
            uids = await store.uids(inbox.id)
            self.drop = await store.records(inbox.id, uids) if uids else []
            if self.new_only:
                self.drop = [r for r in self.drop if DOWNLOADED not in r.flags]
        except se.StoreError:
            self.server.release(account.id)
            self.send(p.err("The maildrop cannot be opened", "SYS/TEMP"))
            return
        self.account_id, self.account = account.id, account.address
        self.server.logged_in(account.id)
        self.mailbox_id, self.uidvalidity = inbox.id, inbox.uidvalidity
        self.send(p.ok(f"{len(self.drop)} messages"))

    # --- TRANSACTION state -------------------------------------------------------------
    def _message(self, arg: str) -> int | None:
        """A message number that exists and is not deleted, else None (error sent)."""
        if not arg.isdigit() or not 1 <= int(arg) <= len(self.drop):
            self.send(p.err("No such message"))
            return None
        n = int(arg)
        if n in self.deleted:
            self.send(p.err("Message already deleted"))
            return None
        return n

    def _live(self) -> list[int]:
        """Message numbers not marked deleted (only STAT, LIST and UIDL need them)."""
        return [n for n in range(1, len(self.drop) + 1) if n not in self.deleted]

    def _uidl(self, n: int) -> str:
        return f"{self.uidvalidity}.{self.drop[n - 1].uid}"

    async def _transaction(self, cmd: p.Command) -> bool:
        name = cmd.name
        if name == "STAT":
            live = self._live()
            size = sum(self.drop[n - 1].size for n in live)
            self.send(p.ok(f"{len(live)} {size}"))
        elif name in ("LIST", "UIDL"):

            def item(n: int) -> str:
                return f"{n} {self.drop[n - 1].size if name == 'LIST' else self._uidl(n)}"

            if cmd.args:
                n = self._message(cmd.args[0])
                if n is not None:
                    self.send(p.ok(item(n)))
            else:
                live = self._live()
                body = "".join(item(n) + "\r\n" for n in live).encode()
                self.send(p.multiline(p.ok(f"{len(live)} messages"), body))
        elif name in ("RETR", "TOP"):
            n = self._message(cmd.args[0])
            if n is None:
                return False
            lines = None
            if name == "TOP":
                if not cmd.args[1].isdigit():
                    self.send(p.err("TOP needs a number of lines"))
                    return False
                lines = int(cmd.args[1])
            await self._retrieve(n, lines)
        elif name == "DELE":
            n = self._message(cmd.args[0])
            if n is not None:
                self.deleted.add(n)
                self.send(p.ok(f"Message {n} deleted"))
        elif name == "RSET":
            self.deleted.clear()
            self.retrieved.clear()
            self.send(p.ok(f"{len(self.drop)} messages"))
        elif name == "NOOP":
            self.send(p.ok())
        elif name == "CAPA":
            self.send(
                p.multiline(
                    p.ok("Capability list follows"), "\r\n".join(self.capabilities()).encode()
                )
            )
        elif name == "QUIT":
            await self._update()
            return True
        else:
            self.send(p.err("Not in the TRANSACTION state"))
        return False

    async def _retrieve(self, n: int, lines: int | None) -> None:
        rec = self.drop[n - 1]
        try:
            raw = self.prefetched.pop(rec.blob_id, None)
            if raw is None:
                raw = await self._read_ahead(rec)
        except se.StoreError:
            self.send(p.err("The message cannot be read", "SYS/TEMP"))
            return
        if lines is not None:
            raw = _top(raw, lines)
        else:
            self.retrieved.add(n)
            if "\\Seen" not in rec.flags or self.new_only:
                self.seen.append(rec.uid)  # marked in one write per batch of commands
        self.send(p.multiline(p.ok(f"{rec.size} octets"), raw))

    async def _read_ahead(self, rec: MessageRecord) -> bytes:
        """The message, and those of the RETR commands already waiting in the pipeline,
        in one store read (bounded to :data:`READ_AHEAD_BYTES`)."""
        wanted = {rec.blob_id}
        total = rec.size
        for line in self.lines[:64]:
            if not isinstance(line, bytes) or line[:5].upper() != b"RETR ":
                continue
            arg = line[5:].strip()
            if not arg.isdigit() or not 1 <= int(arg) <= len(self.drop):
                continue
            nxt = self.drop[int(arg) - 1]
            if total + nxt.size > READ_AHEAD_BYTES:
                break
            wanted.add(nxt.blob_id)
            total += nxt.size
        if len(wanted) == 1:
            return await self.server.store.read_blob(rec.blob_id)
        blobs = await self.server.store.read_blobs(sorted(wanted))
        raw = blobs.pop(rec.blob_id)
        self.prefetched.update(blobs)
        return raw

    async def mark_seen(self) -> None:
        """Retrieved mail shows as read to IMAP clients: one store write per pipelined
        batch of commands, not one per RETR."""
        if self.seen:
            uids, self.seen = self.seen, []
            flags = {"\\Seen", DOWNLOADED} if self.new_only else {"\\Seen"}
            with contextlib.suppress(se.StoreError):
                await self.server.store.store_flags(self.mailbox_id, uids, "+", frozenset(flags))

    async def _update(self) -> None:
        """RFC 1939 §6: the UPDATE state, entered by QUIT only."""
        await self.mark_seen()
        if self.delete_retrieved:  # the account chose not to leave mail on the server
            self.deleted |= self.retrieved
        if self.deleted:
            uids = [self.drop[n - 1].uid for n in sorted(self.deleted)]
            store = self.server.store
            try:
                await store.store_flags(self.mailbox_id, uids, "+", frozenset({"\\Deleted"}))
                await store.expunge(self.mailbox_id, uids)
            except se.StoreError:
                self.send(p.err("Some deleted messages were not removed", "SYS/TEMP"))
                return
        self.send(p.ok(f"Bye, {len(self.deleted)} messages deleted"))


def _top(raw: bytes, lines: int) -> bytes:
    """The header, the blank line and the first ``lines`` lines of the body (§7 TOP)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(sep)
        if at >= 0:
            head, body = raw[: at + len(sep)], raw[at + len(sep) :]
            break
    else:
        return raw
    kept = body.split(b"\n")[:lines]
    return head + b"\n".join(kept) + (b"\n" if kept and lines else b"")


class Pop3Server:
    def __init__(self, store: Store, config: Pop3Config, auth: AuthService) -> None:
        self.store = store
        self.config = config
        self.auth = auth
        self._locked: set[int] = set()
        self._last_login: dict[int, float] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def login_wait(self, account_id: int) -> float:
        """Seconds until ``account_id`` may log in again under LOGIN-DELAY (0: now)."""
        delay = self.config.login_delay
        last = self._last_login.get(account_id)
        if not delay or last is None:
            return 0.0
        return max(0.0, last + delay - time.monotonic())

    def logged_in(self, account_id: int) -> None:
        if self.config.login_delay:
            self._last_login[account_id] = time.monotonic()
            if len(self._last_login) > 100_000:  # bounded: forget the oldest
                self._last_login.pop(next(iter(self._last_login)))

    def lock(self, account_id: int) -> bool:
        if account_id in self._locked:
            return False
        self._locked.add(account_id)
        return True

    def release(self, account_id: int) -> None:
        self._locked.discard(account_id)

    async def listen(self, host: str, port: int, *, implicit_tls: bool) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        if implicit_tls and self.config.tls_context is None:
            raise ValueError("implicit TLS needs a TLS context")

        def factory() -> Stream:
            return AcceptingStream(lambda s: self._accept(s, implicit_tls))

        server = await loop.create_server(
            factory,
            host,
            port,
            ssl=self.config.tls_context if implicit_tls else None,
            ssl_handshake_timeout=30 if implicit_tls else None,
            reuse_address=True,
        )
        self._servers.append(server)
        return server

    def _accept(self, stream: Stream, implicit_tls: bool) -> None:
        task = asyncio.get_running_loop().create_task(Pop3Session(self, stream, implicit_tls).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self, grace: float = 5.0) -> None:
        for srv in self._servers:
            srv.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
