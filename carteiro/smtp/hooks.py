"""Every SMTP and LMTP policy decision, as aiosmtpd handler objects (one per listener
kind); :mod:`carteiro.smtp.server` only adapts the protocol.

* **Inbound (port 25)**: recipients must be local (an account, an alias, plus-addressing,
  a catch-all: :func:`carteiro.addresses.resolve`); anything else is a relay attempt,
  refused ``554 5.7.1``. Messages get SPF/DKIM/DMARC checks and an
  Authentication-Results field (:mod:`carteiro.smtp.mailauth`), then are stored.
* **Submission (587, 465)**: AUTH first (the shared :class:`AuthService`, so the same
  credentials, app passwords, throttling and audit as IMAP); the envelope sender and the
  From field must be the account's own address (or ``+tag`` of it) or one it was
  allowed to use (``carteiro alias allow-sender``); an hourly sending rate per account;
  a missing Date or Message-ID is added (RFC 6409 §8), the message is DKIM-signed,
  local recipients get it at once and remote ones through the outbound queue.
* **LMTP (RFC 2033)**: as inbound, without the mail-authentication checks (the MTA in
  front did them), with one reply per recipient after DATA.

Nothing is acknowledged before it is durable: local copies are committed by the store
and remote ones by the queue before ``250``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime
import logging
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from carteiro.addresses import resolve
from carteiro.auth.service import Authenticated, AuthService, Client, Refused
from carteiro.delivery import new_message
from carteiro.net.tls_exporter import connection_bindings
from carteiro.smtp import envelope as env
from carteiro.smtp.server import SmtpConfig, SmtpEnvelope, SmtpSession
from carteiro.store.errors import NotFound, QuotaExceeded
from carteiro.store.interface import Store

if TYPE_CHECKING:
    from carteiro.smtp.dns import Resolver
    from carteiro.smtp.mailauth import MailAuthPolicy
    from carteiro.smtp.queue import Outbox

__all__ = ["InboundHooks", "LmtpHooks", "SendRates", "SubmissionHooks", "make_hooks"]

log = logging.getLogger("carteiro.smtp")

HOUR = 3600.0

#: IMAP-style refusal codes of the AuthService → SMTP replies (RFC 4954 §6)
_AUTH_REPLIES = {
    "AUTHENTICATIONFAILED": "535 5.7.8 Authentication credentials invalid",
    "AUTHORIZATIONFAILED": "535 5.7.8 Authentication credentials invalid",
    "PRIVACYREQUIRED": "538 5.7.11 Encryption required for requested authentication mechanism",
    "CANNOT": "504 5.5.4 Unrecognized authentication type",
}


class SendRates:
    """Messages each account submitted in the last hour (in memory, per process)."""

    def __init__(self, limit: int, clock: Any = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._sent: dict[str, collections.deque[float]] = {}

    def _window(self, account: str) -> collections.deque[float]:
        times = self._sent.setdefault(account.casefold(), collections.deque())
        cutoff = self.clock() - HOUR
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def exceeded(self, account: str) -> bool:
        return self.limit > 0 and len(self._window(account)) >= self.limit

    def record(self, account: str) -> None:
        if self.limit > 0:
            self._window(account).append(self.clock())


class RouteCache:
    """What one SMTP session learnt about its recipients: an MTA sends many messages to
    the same people over one connection, and each would otherwise cost three store
    reads (routing, quota, mailbox). It lives as long as the session; the quota itself
    is enforced by the store's atomic append whatever this says."""

    LIMIT = 512

    def __init__(self) -> None:
        self.targets: dict[str, list[Any]] = {}  # address (casefolded) → resolve() result
        self.ids: dict[str, int] = {}  # account address → id
        self.unlimited: set[int] = set()  # accounts without quota limits
        self.boxes: dict[tuple[int, str], int] = {}  # (account id, mailbox) → mailbox id

    def trim(self) -> None:
        for table in (self.targets, self.ids, self.boxes):
            if len(table) > self.LIMIT:
                table.clear()
        if len(self.unlimited) > self.LIMIT:
            self.unlimited.clear()


def _routes(session: SmtpSession) -> RouteCache:
    if session.routes is None:
        session.routes = RouteCache()
    assert isinstance(session.routes, RouteCache)
    return session.routes


class _Hooks:
    """What the three kinds share: address routing and local delivery."""

    kind = "smtp"
    protocol = "ESMTP"

    def __init__(
        self,
        store: Store,
        config: SmtpConfig,
        auth: AuthService,
        *,
        outbox: Outbox | None = None,
        resolver: Resolver | None = None,
        mailauth: MailAuthPolicy | None = None,
        rates: SendRates | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.auth = auth
        self.outbox = outbox
        self.resolver = resolver
        self.mailauth = mailauth
        self.rates = rates or SendRates(config.send_rate)

    # --- greeting -------------------------------------------------------------------------
    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        return f"250 {self.config.hostname}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        lines = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        lines += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        lines += self._auth_line(server, session)
        lines.append(responses[-1])
        return lines

    def _auth_line(self, server: SMTP, session: Session) -> list[str]:
        return []

    # --- MAIL -----------------------------------------------------------------------------
    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        sender = "" if address == "<>" else address
        utf8 = "SMTPUTF8" in mail_options
        if sender and not env.valid_address(sender, utf8):
            return "553 5.1.7 Bad sender address syntax"
        refusal = await self.check_sender(_session(session), sender)
        if refusal is not None:
            return refusal
        envelope.mail_from = sender or "<>"
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def check_sender(self, session: SmtpSession, sender: str) -> str | None:
        return None

    # --- RCPT -----------------------------------------------------------------------------
    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        box = _envelope(envelope)
        if len(box.rcpt_tos) >= self.config.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not env.valid_address(address, box.smtp_utf8):
            return "501 5.1.3 Bad recipient address syntax"
        routes = _routes(_session(session))
        routes.trim()
        targets = routes.targets.get(address.casefold())
        if targets is None:
            targets = await resolve(self.store, address)
            if targets:
                routes.targets[address.casefold()] = targets
        if targets:
            accounts = [t.account for t in targets]
            full = await self._quota_full(routes, accounts, _declared_size(box))
            if full:
                return "452 4.2.2 Mailbox full"
            box.local[address] = [(t.account, t.mailbox) for t in targets]
        elif await self._is_local_domain(env.domain_of(address)):
            return f"550 5.1.1 <{address}>: no such user here"
        else:
            refusal = await self.remote_recipient(_session(session), box, address)
            if refusal is not None:
                return refusal
        box.rcpt_tos.append(address)
        box.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def remote_recipient(
        self, session: SmtpSession, box: SmtpEnvelope, address: str
    ) -> str | None:
        return f"554 5.7.1 <{address}>: Relay access denied"

    async def _is_local_domain(self, domain: str) -> bool:
        if not domain:
            return False
        for name, _ in await self.store.list_domains():
            if name.casefold() == domain:
                return True
        return any(env.domain_of(a.address) == domain for a in await self.store.list_accounts())

    async def _quota_full(self, routes: RouteCache, accounts: Iterable[str], size: int) -> bool:
        """True when every target account is over quota already (or would be with the
        declared SIZE): then the recipient is refused at once, before any data. Notes
        the accounts' ids in ``routes`` so DATA does not look them up again."""
        full = True
        for address in accounts:
            account_id = routes.ids.get(address)
            if account_id is None:
                account = await self.store.get_account(address)
                if account is None:
                    continue
                account_id = routes.ids[address] = account.id
            if account_id in routes.unlimited:
                full = False
                continue
            q = await self.store.quota(account_id)
            if q.storage_limit is None and q.messages_limit is None:
                routes.unlimited.add(account_id)
            over_storage = (
                q.storage_limit is not None and q.storage_used + max(size, 1) > q.storage_limit
            )
            over_count = q.messages_limit is not None and q.messages_used + 1 > q.messages_limit
            if not (over_storage or over_count):
                full = False
        return full

    # --- DATA -----------------------------------------------------------------------------
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        box = _envelope(envelope)
        sess = _session(session)
        data = box.original_content or b""
        if not data.strip():
            return self._reply(box, "554 5.6.0 The message is empty")
        eight_bit = "BODY=8BITMIME" in box.mail_options or box.smtp_utf8
        if env.has_8bit(data) and not eight_bit:
            return self._reply(
                box, "554 5.6.1 8-bit content needs BODY=8BITMIME (RFC 6152) or SMTPUTF8"
            )
        if env.received_count(data) > self.config.max_hops:
            return self._reply(box, "554 5.4.6 Too many hops: a mail loop?")
        try:
            replies = await self.accept(sess, box, data)
        except Exception:
            log.exception("message from %s could not be accepted", sess.address or "local")
            return self._reply(box, "451 4.3.0 Local error in processing; try again later")
        sess.messages += 1
        return self.combine(box, replies)

    async def accept(self, session: SmtpSession, box: SmtpEnvelope, data: bytes) -> dict[str, str]:
        """Stores (or queues) the message; one reply per recipient."""
        raise NotImplementedError

    def _reply(self, box: SmtpEnvelope, reply: str) -> str:
        """A reply for the whole message (LMTP repeats it for every recipient)."""
        return reply

    def combine(self, box: SmtpEnvelope, replies: dict[str, str]) -> str:
        """SMTP: one reply. Recipients that failed after the message was accepted for
        others are reported to the sender in a bounce (RFC 5321 §6.1)."""
        failed = [(r, reply) for r, reply in replies.items() if not reply.startswith("2")]
        if len(failed) == len(replies):
            return failed[0][1]
        if failed and self.outbox is not None and box.mail_from not in ("", "<>"):
            task = asyncio.get_running_loop().create_task(
                self.outbox.report_failures(
                    box.mail_from or "", failed, box.original_content or b""
                )
            )
            _background.add(task)
            task.add_done_callback(_background.discard)
        return "250 2.0.0 Message accepted for delivery"

    def trace(self, session: SmtpSession, box: SmtpEnvelope, queue_id: str) -> bytes:
        proto = self.protocol
        if proto == "ESMTP":
            if not session.extended_smtp:
                proto = "SMTP"
            if session.tls_version is not None:
                proto += "S"
            if session.account is not None:
                proto += "A"
        recipient = box.rcpt_tos[0] if len(box.rcpt_tos) == 1 else None
        return env.received_header(
            helo=session.host_name or "unknown",
            address=session.address,
            hostname=self.config.hostname,
            protocol=proto,
            queue_id=queue_id,
            recipient=recipient,
        )

    async def deliver_local(
        self, session: SmtpSession, box: SmtpEnvelope, data: bytes, junk: bool = False
    ) -> dict[str, str]:
        """Stores one copy per distinct (account, mailbox) target; the message metadata
        is computed once. The reply for each recipient address."""
        sender = "" if box.mail_from in (None, "<>") else box.mail_from
        stored = b"Return-Path: <" + sender.encode("utf-8", "replace") + b">\r\n" + data
        now = datetime.datetime.now(datetime.UTC).astimezone().replace(microsecond=0)
        message = await new_message(stored, frozenset(), now)
        routes = _routes(session)
        outcome: dict[tuple[str, str], str] = {}
        targets = {t for address in box.local for t in box.local[address]}

        async def one(account: str, mailbox: str) -> None:
            outcome[(account, mailbox)] = await self._store_one(
                routes, routes.ids.get(account), account, mailbox, message, junk
            )

        await asyncio.gather(*(one(a, m) for a, m in targets))
        replies: dict[str, str] = {}
        for address, places in box.local.items():
            results = [outcome[p] for p in places]
            ok = [r for r in results if r.startswith("2")]
            replies[address] = ok[0] if ok else results[0]
        return replies

    async def _store_one(
        self,
        routes: RouteCache,
        account_id: int | None,
        account: str,
        mailbox: str,
        message: Any,
        junk: bool,
    ) -> str:
        if account_id is None:
            found = await self.store.get_account(account)
            if found is None:
                return "550 5.1.1 No such user"
            account_id = found.id
        place = "\\Junk" if junk else mailbox
        box_id = routes.boxes.get((account_id, place))
        if box_id is None:
            box_id = await self._mailbox_id(account_id, mailbox, junk)
            if box_id is None:
                return "450 4.2.0 Mailbox unavailable"
            routes.boxes[(account_id, place)] = box_id
        try:
            await self.store.append(box_id, [message])
        except QuotaExceeded:
            return "552 5.2.2 Mailbox full"
        except NotFound:  # deleted since it was looked up
            routes.boxes.pop((account_id, place), None)
            return "450 4.2.0 Mailbox unavailable"
        return "250 2.0.0 Delivered"

    async def _mailbox_id(self, account_id: int, mailbox: str, junk: bool) -> int | None:
        box = None
        if junk:
            box = await _special(self.store, account_id, "\\Junk")
        if box is None:
            box = await self.store.get_mailbox(account_id, mailbox)
        if box is None and mailbox != "INBOX":
            box = await self.store.get_mailbox(account_id, "INBOX")
        return None if box is None else int(box.id)


_background: set[asyncio.Task[None]] = set()


async def _special(store: Store, account_id: int, use: str) -> Any:
    for box in await store.list_mailboxes(account_id):
        if use in box.special_use:
            return box
    return None


def _session(session: Session) -> SmtpSession:
    assert isinstance(session, SmtpSession)
    return session


def _envelope(envelope: Envelope) -> SmtpEnvelope:
    assert isinstance(envelope, SmtpEnvelope)
    return envelope


def _declared_size(box: SmtpEnvelope) -> int:
    for option in box.mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _queue_id() -> str:
    return secrets.token_hex(6).upper()


class InboundHooks(_Hooks):
    """Port 25: mail for local recipients from anywhere."""

    kind = "smtp"

    async def accept(self, session: SmtpSession, box: SmtpEnvelope, data: bytes) -> dict[str, str]:
        junk = False
        if self.mailauth is not None and self.mailauth.check and self.resolver is not None:
            from carteiro.smtp.authresults import strip_forged
            from carteiro.smtp.mailauth import authenticate

            verdict = await authenticate(
                self.resolver,
                self.mailauth,
                message=data,
                ip=session.address,
                helo=session.host_name or "",
                mail_from="" if box.mail_from in (None, "<>") else box.mail_from,
                authserv_id=self.config.hostname,
            )
            if verdict.action == "reject":
                reply = f"550 {verdict.reason}"
                return dict.fromkeys(box.rcpt_tos, reply)
            junk = verdict.action == "junk"
            data = verdict.header + strip_forged(data, self.config.hostname)
        data = self.trace(session, box, _queue_id()) + data
        return await self.deliver_local(session, box, data, junk=junk)


class LmtpHooks(InboundHooks):
    """RFC 2033: the MTA in front already did the checks; one reply per recipient."""

    kind = "lmtp"
    protocol = "LMTP"

    async def accept(self, session: SmtpSession, box: SmtpEnvelope, data: bytes) -> dict[str, str]:
        data = self.trace(session, box, _queue_id()) + data
        return await self.deliver_local(session, box, data)

    def _reply(self, box: SmtpEnvelope, reply: str) -> str:
        return "\r\n".join([reply] * max(1, len(box.rcpt_tos)))

    def combine(self, box: SmtpEnvelope, replies: dict[str, str]) -> str:
        # RFC 2033 §4.2: one reply per successful RCPT, in RCPT order
        return "\r\n".join(replies[r] for r in box.rcpt_tos)


class SubmissionHooks(_Hooks):
    """Ports 587 and 465 (RFC 6409, RFC 8314): authenticated users sending mail."""

    kind = "submission"

    # --- AUTH (RFC 4954) through the shared authentication service ---------------------
    def _client(self, server: SMTP, session: SmtpSession) -> Client:
        tls = session.tls_version is not None
        bindings = (
            connection_bindings(self.config.channel_bindings, session.ssl_object) if tls else {}
        )
        return Client(
            protocol="smtp",
            address=session.address,
            tls=session.tls_version,
            plaintext_ok=self._tls_ok(session),
            channel_bindings=bindings,
        )

    def _tls_ok(self, session: SmtpSession) -> bool:
        """The issue's rule: AUTH only after TLS, unless the operator trusts the network."""
        return (
            session.tls_version is not None
            or not session.address
            or (self.config.is_trusted(session.address))
        )

    def _auth_line(self, server: SMTP, session: Session) -> list[str]:
        sess = _session(session)
        if not self._tls_ok(sess):
            return []
        mechanisms = self.auth.mechanisms(self._client(server, sess))
        return ["250-AUTH " + " ".join(mechanisms)] if mechanisms else []

    async def _sasl(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        assert server.session is not None
        session = _session(server.session)
        if not self._tls_ok(session):
            return AuthResult(
                success=False, handled=False, message=_AUTH_REPLIES["PRIVACYREQUIRED"]
            )
        initial: bytes | None = None
        if len(args) == 2:
            if args[1] == "=":
                initial = b""
            else:
                try:
                    initial = base64.b64decode(args[1], validate=True)
                except (binascii.Error, ValueError):
                    return AuthResult(
                        success=False, handled=False, message="501 5.5.2 Cannot decode base64"
                    )
        aborted = False

        class Exchange:
            async def challenge(self, data: bytes) -> bytes | None:
                nonlocal aborted
                reply = await server.challenge_auth(data)
                if reply is MISSING:  # "*" or bad base64: aiosmtpd has answered 501
                    aborted = True
                    return None
                assert isinstance(reply, bytes)
                return reply

        outcome = await self.auth.authenticate(
            self._client(server, session), mechanism, initial, Exchange()
        )
        if isinstance(outcome, Refused):
            if outcome.banned and server.transport is not None:
                await server.push(_AUTH_REPLIES.get(outcome.code, _AUTH_REPLIES["CANNOT"]))
                server.transport.close()
                return AuthResult(success=False, handled=True)
            if aborted:
                return AuthResult(success=False, handled=True)
            if outcome.protocol_error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 " + outcome.text)
            return AuthResult(
                success=False,
                handled=False,
                message=_AUTH_REPLIES.get(outcome.code, _AUTH_REPLIES["AUTHENTICATIONFAILED"]),
            )
        assert isinstance(outcome, Authenticated)
        session.account = outcome.account.address
        return AuthResult(success=True, auth_data=outcome)

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "PLAIN")

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "LOGIN")

    async def auth_SCRAM__SHA__256(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "SCRAM-SHA-256")

    async def auth_SCRAM__SHA__256__PLUS(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "SCRAM-SHA-256-PLUS")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "OAUTHBEARER")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._sasl(server, args, "XOAUTH2")

    # --- who may send as whom ---------------------------------------------------------
    async def may_send_as(self, account: str, address: str) -> bool:
        if not address:
            return False
        if address.casefold() == account.casefold():
            return True
        local, _, domain = address.rpartition("@")
        if "+" in local and f"{local.partition('+')[0]}@{domain}".casefold() == account.casefold():
            return True
        allowed = {a.casefold() for a in await self.store.sender_addresses(account)}
        return address.casefold() in allowed

    async def check_sender(self, session: SmtpSession, sender: str) -> str | None:
        account = session.account
        if account is None:
            return "530 5.7.0 Authentication required"
        if not await self.may_send_as(account, sender):
            return f"553 5.7.1 <{sender}>: sender address not owned by {account}"
        if self.rates.exceeded(account):
            return "451 4.7.1 Sending rate limit reached; try again later"
        return None

    async def remote_recipient(
        self, session: SmtpSession, box: SmtpEnvelope, address: str
    ) -> str | None:
        if self.outbox is None:
            return f"554 5.7.1 <{address}>: this server does not send mail to other domains"
        box.remote.append(address)
        return None

    async def accept(self, session: SmtpSession, box: SmtpEnvelope, data: bytes) -> dict[str, str]:
        account = session.account
        assert account is not None
        for address in env.from_addresses(data):
            if not await self.may_send_as(account, address):
                reply = f"550 5.7.1 From: <{address}> is not an address of {account}"
                return dict.fromkeys(box.rcpt_tos, reply)
        data = env.add_submission_headers(data, self.config.hostname)
        data = await self._sign(data)
        data = self.trace(session, box, _queue_id()) + data
        replies: dict[str, str] = {}
        if box.remote:
            assert self.outbox is not None
            await self.outbox.submit(
                "" if box.mail_from in (None, "<>") else box.mail_from,
                box.remote,
                data,
                account=account,
                smtputf8=box.smtp_utf8,
            )
            replies.update(dict.fromkeys(box.remote, "250 2.0.0 Queued"))
        if box.local:
            replies.update(await self.deliver_local(session, box, data))
        self.rates.record(account)
        return {r: replies[r] for r in box.rcpt_tos if r in replies}

    async def _sign(self, data: bytes) -> bytes:
        senders = env.from_addresses(data)
        if len(senders) != 1:
            return data
        keys = await self.store.dkim_keys(env.domain_of(senders[0]))
        if not keys:
            return data
        from carteiro.smtp.dkim import sign

        try:
            header: bytes = await asyncio.to_thread(sign, data, keys)
        except Exception:
            log.exception("DKIM signing failed; the message goes out unsigned")
            return data
        return header + data


def make_hooks(
    store: Store,
    config: SmtpConfig,
    auth: AuthService,
    *,
    outbox: Outbox | None = None,
    resolver: Resolver | None = None,
    mailauth: MailAuthPolicy | None = None,
) -> Any:
    """The factory :class:`carteiro.smtp.server.SmtpServer` calls per listener kind;
    the rate limits are shared by the submission listeners."""
    rates = SendRates(config.send_rate)
    kinds: dict[str, type[_Hooks]] = {
        "smtp": InboundHooks,
        "submission": SubmissionHooks,
        "lmtp": LmtpHooks,
    }

    def factory(kind: str) -> _Hooks:
        return kinds[kind](
            store,
            config,
            auth,
            outbox=outbox,
            resolver=resolver,
            mailauth=mailauth,
            rates=rates,
        )

    return factory
