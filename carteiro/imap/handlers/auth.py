"""STARTTLS, LOGIN and AUTHENTICATE (RFC 9051 §6.2, RFC 4959 SASL-IR).

Who may log in is decided by :class:`carteiro.auth.service.AuthService`, shared with
the other protocols; this module only carries SASL messages in IMAP's framing and turns
the outcome into IMAP responses.
"""

from __future__ import annotations

import base64
import binascii

from carteiro.auth.service import Authenticated, Refused
from carteiro.imap.capabilities import capability_line
from carteiro.imap.handlers.base import (
    NOT_AUTH,
    CommandFailed,
    Context,
    Result,
    bad,
    command,
    no,
    ok,
)
from carteiro.imap.protocol import commands as c
from carteiro.imap.state import State


@command(c.StartTLS, NOT_AUTH)
async def starttls(ctx: Context, cmd: c.StartTLS) -> Result:
    if ctx.session.tls:
        return bad("TLS is already active")
    if ctx.config.tls_context is None:
        return no("TLS is not configured")

    async def handshake() -> None:
        await ctx.conn.start_tls()
        ctx.session.tls = True
        ctx.conn.refresh_mechanisms()  # PLAIN and -PLUS appear with TLS

    return Result("OK", "Begin TLS negotiation now", after=handshake)


async def _finish(ctx: Context, outcome: Authenticated | Refused) -> Result:
    if isinstance(outcome, Refused):
        if outcome.banned:
            ctx.send(b"* BYE Too many failed logins from your address\r\n")
            ctx.session.state = State.LOGOUT
        if outcome.protocol_error:
            return bad(outcome.text)
        return no(outcome.text, outcome.code)
    if not ctx.conn.bind_account(outcome.account.address):
        return no("Too many sessions for this account", "LIMIT")
    ctx.session.account = outcome.account
    ctx.session.state = State.AUTHENTICATED
    return ok("Logged in", "CAPABILITY " + capability_line(ctx.session, ctx.config))


@command(c.Login, NOT_AUTH)
async def login(ctx: Context, cmd: c.Login) -> Result:
    if not ctx.session.plaintext_auth_ok:
        return no(
            "Plaintext authentication is disabled without TLS: use STARTTLS", "PRIVACYREQUIRED"
        )
    return await _finish(
        ctx, await ctx.conn.auth.login(ctx.conn.client(), cmd.username, cmd.password)
    )


class _Exchange:
    """SASL challenges as ``+ base64`` lines, replies as base64 lines (RFC 9051 §6.2.2)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def challenge(self, data: bytes) -> bytes | None:
        ctx = self.ctx
        ctx.send(b"+ " + base64.b64encode(data) + b"\r\n")
        await ctx.conn.flush()
        line = await ctx.conn.read_line(ctx.config.login_timeout)
        if line is None:  # gone, or too slow: the session is over
            ctx.session.state = State.LOGOUT
            return None
        line = line.strip()
        if line == b"*":
            return None
        try:
            return base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise CommandFailed(bad("Invalid base64 in authentication response")) from None


@command(c.Authenticate, NOT_AUTH)
async def authenticate(ctx: Context, cmd: c.Authenticate) -> Result:
    outcome = await ctx.conn.auth.authenticate(
        ctx.conn.client(), cmd.mechanism, cmd.initial_response, _Exchange(ctx)
    )
    if ctx.session.state is State.LOGOUT and isinstance(outcome, Refused) and not outcome.banned:
        return Result("NO", "Connection closed", silent=True)
    return await _finish(ctx, outcome)
