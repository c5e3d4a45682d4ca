"""The authentication service every protocol calls: one place that decides who may log
in, with which credential, from where, and what is recorded about it.

A protocol adapter (IMAP now, POP3 and SMTP later) only moves SASL messages: it hands
:meth:`AuthService.authenticate` an :class:`Exchange` that sends challenges and returns
the client's replies. Everything else happens here, the same way for every protocol:
throttling and bans (:class:`~carteiro.auth.guard.Guard`), the concurrent-hashing cap,
app passwords with their protocol, network and expiry limits, the rule that a
two-factor account's main password does not open mail protocols, per-account networks
for the main password, OAuth bearer tokens, the audit log, the login history and the
anomaly detectors. Failures look and take the same whatever the reason, so neither a
response nor its timing reveals whether an account exists. A successful main-password
verification may be remembered for a short while (:mod:`carteiro.auth.cache`) so that
repeated logins skip argon2; every rule above is still applied on every login.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from carteiro.audit.alerts import AlertDispatcher
from carteiro.audit.anomalies import Alert, Detectors
from carteiro.audit.log import AuditLog
from carteiro.auth import sasl
from carteiro.auth.cache import CredentialCache
from carteiro.auth.guard import Guard
from carteiro.auth.passwords import (
    hash_password_async,
    needs_rehash,
    verify_password_async,
)
from carteiro.auth.tokens import TokenValidator
from carteiro.net.limits import AuthGate, ConnectionLimiter, Lease
from carteiro.net.proxy_protocol import is_trusted as address_in
from carteiro.store.interface import Account, AppPassword, Credentials, Store
from carteiro.store.security import LoginRecord, SecurityStore

__all__ = [
    "AuthService",
    "Authenticated",
    "Client",
    "Defence",
    "Exchange",
    "Refused",
    "app_password_digest",
]

log = logging.getLogger("carteiro.auth")


def app_password_digest(secret: str) -> bytes:
    """What is stored of an app password. The secret is server-generated with 120 bits
    of entropy, so a fast hash resists guessing as well as a slow one would, and lets a
    login find the matching app password without an argon2 run per device."""
    return hashlib.sha256(b"carteiro-app-password:" + secret.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Client:
    """Who is authenticating, as the protocol adapter sees it."""

    protocol: str  # "imap", "pop3", "smtp"
    address: str  # the real client address (after PROXY)
    tls: str | None  # negotiated TLS version, None on a cleartext link
    #: cleartext passwords acceptable: TLS, or a network the operator trusts
    plaintext_ok: bool
    channel_bindings: Mapping[str, bytes] = field(default_factory=dict)
    client_id: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Authenticated:
    account: Account
    mechanism: str
    credential: str  # "password", "app-password" or "oauth"
    app_password: str | None = None
    app_password_id: int | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """``code`` uses IMAP's names (RFC 5530); other protocols map them."""

    code: str  # AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, CANNOT, PRIVACYREQUIRED
    text: str
    #: the client's message was malformed or it cancelled: a syntax-level error
    protocol_error: bool = False
    #: this failure banned the source: the adapter should end the session
    banned: bool = False


class Exchange(Protocol):
    async def challenge(self, data: bytes) -> bytes | None:
        """Sends a challenge; the client's decoded reply, or None when it cancelled."""


@dataclass
class Defence:
    """The shared defence state of one server process."""

    audit: AuditLog
    guard: Guard | None = None
    security: SecurityStore | None = None
    detectors: Detectors | None = None
    alerts: AlertDispatcher | None = None
    limiter: ConnectionLimiter = field(default_factory=ConnectionLimiter)
    gate: AuthGate = field(default_factory=AuthGate)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def admit(self, address: str) -> tuple[Lease | None, str | None]:
        """At accept time, for every protocol: (the connection's lease, None), or
        (None, why it is refused: a banned or denied source, too many connections)."""
        try:
            if self.guard is not None:
                refusal = self.guard.check_connection(address)
                if refusal is not None:
                    return None, refusal.reason
            lease = self.limiter.open(address)
        except ValueError:  # not an IP address (a Unix socket): nothing to count it by
            return None, None
        if lease is None:
            return None, "Too many connections from your address"
        return lease, None

    def raise_alerts(self, alerts: list[Alert]) -> None:
        """Alerts go out in the background: a slow webhook must not delay a login."""
        for alert in alerts:
            if self.alerts is None:
                self.audit.alert(alert)
                continue
            task = asyncio.get_running_loop().create_task(self.alerts.dispatch(alert))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Waits for alerts still being sent (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class AuthService:
    def __init__(
        self,
        store: Store,
        defence: Defence,
        *,
        tokens: TokenValidator | None = None,
        failure_delay: float = 1.0,
        scram_iterations: int = 4096,
        clock: Callable[[], float] = time.time,
        cache: CredentialCache | None = None,
    ) -> None:
        self.store = store
        self.defence = defence
        self.tokens = tokens
        self.failure_delay = failure_delay
        self.scram_iterations = scram_iterations
        self.clock = clock
        #: verified main passwords (:mod:`carteiro.auth.cache`); None: verify every time
        self.cache = cache
        #: argon2 verifications run (the dummy one for unknown accounts included)
        self.verifications = 0

    # --- what to advertise ------------------------------------------------------------
    def _options(self, client: Client) -> sasl.MechanismOptions:
        return sasl.MechanismOptions(
            tls=client.tls is not None,
            channel_bindings=client.channel_bindings,
            allow_plaintext=client.plaintext_ok,
            oauth=self.tokens is not None and self.tokens.configured,
            scram_iterations=self.scram_iterations,
        )

    def mechanisms(self, client: Client) -> list[str]:
        return sasl.available(self._options(client))

    # --- entry points -----------------------------------------------------------------
    async def login(self, client: Client, username: str, password: str) -> Authenticated | Refused:
        """A plain username and password (IMAP LOGIN, POP3 USER/PASS)."""
        if not client.plaintext_ok:
            return Refused("PRIVACYREQUIRED", "Plaintext authentication needs TLS")
        outcome = await self._check_password(client, username, password, "LOGIN")
        if isinstance(outcome, Authenticated):
            await self._succeeded(client, outcome)
            return outcome
        return await self._failed(client, username, "LOGIN", outcome)

    async def authenticate(
        self, client: Client, mechanism: str, initial: bytes | None, exchange: Exchange
    ) -> Authenticated | Refused:
        """Runs one SASL exchange (RFC 4422) to its end."""
        mech = sasl.create(mechanism, self._options(client))
        name = mechanism.upper()
        if mech is None:
            known = name in {"PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"}
            if known and not client.plaintext_ok:
                return Refused("PRIVACYREQUIRED", f"{name} needs TLS")
            return Refused("CANNOT", "Unsupported authentication mechanism")
        username = ""
        found: Authenticated | None = None
        reason = "credentials"
        event = mech.start(initial)
        while True:
            if isinstance(event, sasl.Challenge):
                reply = await exchange.challenge(event.data)
                if reply is None:
                    event = mech.cancel()
                    continue
                event = mech.respond(reply)
            elif isinstance(event, sasl.CheckPassword):
                username = event.authcid
                if event.authzid and event.authzid.casefold() != event.authcid.casefold():
                    reason = "authorization"
                outcome = await self._check_password(client, username, event.password, name)
                if isinstance(outcome, Authenticated) and reason != "authorization":
                    found = outcome
                    event = mech.resolve(sasl.PasswordVerdict(True, outcome.account.address))
                else:
                    if isinstance(outcome, str):
                        reason = outcome
                    event = mech.resolve(sasl.PasswordVerdict(False))
            elif isinstance(event, sasl.LookupScram):
                username = event.authcid
                creds, found = await self._scram(client, event.authcid, event.authzid, name)
                event = mech.resolve(creds)
            elif isinstance(event, sasl.CheckToken):
                username = event.user
                verdict, found = await self._check_token(client, event, name)
                event = mech.resolve(verdict)
            elif isinstance(event, sasl.Success):
                if event.final is not None:
                    # IMAP and POP3 carry no data with success: the last server message
                    # is a challenge answered by an empty reply (RFC 4422 §5)
                    reply = await exchange.challenge(event.final)
                    if reply != b"":
                        return await self._failed(client, username, name, "malformed")
                assert found is not None
                await self._succeeded(client, found)
                return found
            else:
                if event.reason == "cancelled":
                    return Refused("AUTHENTICATIONFAILED", "Authentication cancelled", True)
                if event.reason == "malformed":
                    return Refused("AUTHENTICATIONFAILED", event.message, True)
                if event.reason == "authorization":
                    reason = "authorization"
                elif event.reason == "channel-binding":
                    reason = "channel-binding"
                return await self._failed(client, username, name, reason)

    # --- credential checks ------------------------------------------------------------
    async def _pause(self, client: Client, username: str) -> None:
        guard = self.defence.guard
        if guard is not None:
            delay = guard.delay_before(client.address, username)
            if delay > 0:
                await asyncio.sleep(delay)

    async def _check_password(
        self, client: Client, username: str, password: str, mechanism: str
    ) -> Authenticated | str:
        """The account, or a reason for the audit log. Same work whatever the reason.

        The credential cache is consulted only for an account whose policy admits the
        main password from this client, and only a success is remembered: a wrong
        password, an unknown account or a policy refusal always costs one argon2
        verification, so neither the answer nor its timing says more than before.
        """
        await self._pause(client, username)
        cached = False
        async with self.defence.gate():
            creds = await self.store.credentials(username) if username else None
            if creds is not None:
                app = _match_app_password(creds, password)
                if app is not None:
                    problem = self._app_password_problem(app, client)
                    if problem is not None:
                        return problem
                    return Authenticated(creds.account, mechanism, "app-password", app.name, app.id)
            stored = creds.account.password_hash if creds is not None else None
            if self.cache is not None and creds is not None and self._policy(creds, client) is None:
                cached = self.cache.verified(
                    creds.account.id, self._digest(self.cache, creds.account, password)
                )
            if cached:
                good = True
            else:
                self.verifications += 1
                good = await verify_password_async(stored, password)
        if creds is None or not good:
            return "credentials"
        problem = self._policy(creds, client)
        if problem is not None:
            return problem
        account = await self._upgrade_credentials(creds, password)
        if self.cache is not None and (not cached or account is not creds.account):
            self.cache.remember(account.id, self._digest(self.cache, account, password))
        return Authenticated(account, mechanism, "password")

    @staticmethod
    def _digest(cache: CredentialCache, account: Account, password: str) -> bytes:
        return cache.digest(account.id, account.address, account.password_hash, password)

    @staticmethod
    def _policy(creds: Credentials, client: Client) -> str | None:
        """Why the account's main password may not be used by this client, or None."""
        if creds.two_factor:
            # large providers' rule: with two factors, mail clients use app passwords
            return "two-factor-needs-app-password"
        if creds.networks and not _in_networks(client.address, creds.networks):
            return "network"
        return None

    def _app_password_problem(self, app: AppPassword, client: Client) -> str | None:
        if app.expires is not None and app.expires <= self.clock():
            return "app-password-expired"
        if app.protocols and client.protocol not in app.protocols:
            return "app-password-protocol"
        if app.networks and not _in_networks(client.address, app.networks):
            return "app-password-network"
        return None

    async def _upgrade_credentials(self, creds: Credentials, password: str) -> Account:
        """After a main-password login: rehash with today's argon2 parameters, and derive
        the SCRAM keys an account created before SCRAM lacks. Returns the account with
        the hash now stored (the credential cache is keyed on it)."""
        account = creds.account
        address = account.address
        try:
            if needs_rehash(account.password_hash):
                rehashed = await hash_password_async(password)
                await self.store.set_password(address, rehashed)
                account = dataclasses.replace(account, password_hash=rehashed)
                if self.cache is not None:
                    self.cache.forget(account.id)
            if creds.scram is None:
                keys = await asyncio.to_thread(
                    sasl.scram_credentials, password, self.scram_iterations
                )
                await self.store.set_scram(address, sasl.encode_scram_record(keys))
        except (ValueError, LookupError) as exc:  # SASLprep refusal, account just deleted
            log.info("credential upgrade for %s skipped: %s", address, exc)
        return account

    async def _scram(
        self, client: Client, authcid: str, authzid: str, mechanism: str
    ) -> tuple[sasl.ScramCredentials | None, Authenticated | None]:
        """SCRAM checks the main password, so the same rules apply: no two-factor
        account, the account's networks. A refusal looks like an unknown account."""
        await self._pause(client, authcid)
        creds = await self.store.credentials(authcid) if authcid else None
        if creds is None or creds.scram is None or creds.two_factor:
            return None, None
        if creds.networks and not _in_networks(client.address, creds.networks):
            return None, None
        keys = sasl.decode_scram_record(creds.scram)
        if keys is None:
            return None, None
        allowed = not authzid or authzid.casefold() == creds.account.address.casefold()
        keys = dataclasses.replace(keys, authcid=creds.account.address, authzid_allowed=allowed)
        return keys, Authenticated(creds.account, mechanism, "password")

    async def _check_token(
        self, client: Client, event: sasl.CheckToken, mechanism: str
    ) -> tuple[sasl.TokenVerdict, Authenticated | None]:
        if self.tokens is None:
            return sasl.TokenVerdict(False), None
        result = await self.tokens.validate(event.token)
        refusal = sasl.TokenVerdict(False, error_json=self.tokens.error_json(result))
        if not result.ok:
            return refusal, None
        if event.user and event.user.casefold() != result.account.casefold():
            return refusal, None
        account = await self.store.get_account(result.account)
        if account is None:
            return refusal, None
        return sasl.TokenVerdict(True, account.address), Authenticated(account, mechanism, "oauth")

    # --- outcomes ---------------------------------------------------------------------
    async def _succeeded(self, client: Client, who: Authenticated) -> None:
        d = self.defence
        now = self.clock()
        if d.guard is not None:
            await d.guard.success(client.address, who.account.address)
        d.audit.auth_success(
            protocol=client.protocol,
            mechanism=who.mechanism,
            account=who.account.address,
            credential=who.credential,
            source=client.address,
            tls=client.tls,
            client_id=client.client_id,
            app_password=who.app_password,
        )
        credential = who.credential
        if who.app_password_id is not None:
            credential = f"app-password:{who.app_password}"
            await self.store.app_password_used(who.app_password_id, now, client.address)
        await self._history(client, who.account.address, who.mechanism, credential, True)
        if d.detectors is not None:
            try:
                d.raise_alerts(
                    await d.detectors.login_succeeded(who.account.address, client.address)
                )
            except Exception:  # a detector's storage trouble must not fail the login
                log.exception("anomaly detection failed after a login")

    async def _failed(self, client: Client, username: str, mechanism: str, reason: str) -> Refused:
        d = self.defence
        banned = False
        if d.guard is not None:
            with contextlib.suppress(ValueError):  # not an IP address (Unix socket)
                verdict = await d.guard.failure(client.address, username)
                banned = verdict.banned is not None  # the guard's on_ban audits it
        d.audit.auth_failure(
            protocol=client.protocol,
            mechanism=mechanism,
            username=username,
            reason=reason,
            source=client.address,
            tls=client.tls,
            client_id=client.client_id,
        )
        if username and await self.store.get_account(username) is not None:
            await self._history(client, username, mechanism, "", False)
        if d.detectors is not None:
            d.raise_alerts(d.detectors.login_failed(username, client.address))
        log.info("authentication failed for %r from %s (%s)", username, client.address, reason)
        await asyncio.sleep(self.failure_delay)
        if reason == "authorization":
            return Refused("AUTHORIZATIONFAILED", "Not authorised to act as another user")
        return Refused("AUTHENTICATIONFAILED", "Authentication failed", banned=banned)

    async def _history(
        self, client: Client, account: str, mechanism: str, credential: str, success: bool
    ) -> None:
        security = self.defence.security
        if security is None:
            return
        try:
            await security.record_login(
                LoginRecord(
                    account=account.casefold(),
                    when=self.clock(),
                    protocol=client.protocol,
                    source=client.address,
                    mechanism=mechanism,
                    credential=credential,
                    success=success,
                    tls=client.tls or "",
                )
            )
        except Exception:
            log.exception("cannot record a login in the history")


def _match_app_password(creds: Credentials, password: str) -> AppPassword | None:
    digest = app_password_digest(password)
    match = None
    for app in creds.app_passwords:  # compare with all: the time does not tell which
        if hmac.compare_digest(app.secret_hash, digest):
            match = app
    return match


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    """``networks`` as stored (CIDR text); an entry that does not parse matches nothing."""
    parsed = []
    for text in networks:
        with contextlib.suppress(ValueError):
            parsed.append(ipaddress.ip_network(text, strict=False))
    return address_in(address, parsed)
