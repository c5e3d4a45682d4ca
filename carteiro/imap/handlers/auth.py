"""STARTTLS, LOGIN and AUTHENTICATE PLAIN (RFC 9051 §6.2, RFC 4616)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging

from carteiro.auth.passwords import verify_password_async
from carteiro.imap.capabilities import capability_line
from carteiro.imap.handlers.base import NOT_AUTH, Context, Result, bad, command, no, ok
from carteiro.imap.protocol import commands as c
from carteiro.imap.state import State

log = logging.getLogger("carteiro.imap.auth")


@command(c.StartTLS, NOT_AUTH)
async def starttls(ctx: Context, cmd: c.StartTLS) -> Result:
    if ctx.session.tls:
        return bad("TLS is already active")
    if ctx.config.tls_context is None:
        return no("TLS is not configured")

    async def handshake() -> None:
        await ctx.conn.start_tls()
        ctx.session.tls = True

    return Result("OK", "Begin TLS negotiation now", after=handshake)


async def _authenticate(ctx: Context, username: str, password: str) -> Result:
    account = await ctx.store.get_account(username)
    # unknown accounts verify a dummy hash: refusing takes the same time either way
    pw_hash = account.password_hash if account is not None else None
    good = await verify_password_async(pw_hash, password) and account is not None
    if not good or account is None:
        log.info("authentication failed for %r from %s", username, ctx.session.peer)
        await asyncio.sleep(ctx.config.auth_failure_delay)
        return no("Authentication failed", "AUTHENTICATIONFAILED")
    ctx.session.account = account
    ctx.session.state = State.AUTHENTICATED
    log.info("login %s from %s", account.address, ctx.session.peer)
    return ok("Logged in", "CAPABILITY " + capability_line(ctx.session, ctx.config))


@command(c.Login, NOT_AUTH)
async def login(ctx: Context, cmd: c.Login) -> Result:
    if not ctx.session.plaintext_auth_ok:
        return no(
            "Plaintext authentication is disabled without TLS: use STARTTLS", "PRIVACYREQUIRED"
        )
    return await _authenticate(ctx, cmd.username, cmd.password)


def parse_plain(response: bytes) -> tuple[str, str, str] | None:
    """RFC 4616 message: [authzid] NUL authcid NUL passwd, UTF-8."""
    parts = response.split(b"\0")
    if len(parts) != 3:
        return None
    try:
        authz, authc, pw = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        return None
    if not authc:
        return None
    return authz, authc, pw


@command(c.Authenticate, NOT_AUTH)
async def authenticate(ctx: Context, cmd: c.Authenticate) -> Result:
    if cmd.mechanism != "PLAIN":
        return no("Unsupported authentication mechanism", "CANNOT")
    if not ctx.session.plaintext_auth_ok:
        return no(
            "Plaintext authentication is disabled without TLS: use STARTTLS", "PRIVACYREQUIRED"
        )
    response = cmd.initial_response
    if response is None:
        ctx.send(b"+ \r\n")
        await ctx.conn.flush()
        line = await ctx.conn.read_line(ctx.config.login_timeout)
        if line is None:
            return bad("No authentication response")
        if line.strip() == b"*":
            return bad("Authentication cancelled")
        try:
            response = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            return bad("Invalid base64 in authentication response")
    creds = parse_plain(response)
    if creds is None:
        return bad("Malformed PLAIN authentication message")
    authz, authc, password = creds
    if authz and authz.lower() != authc.lower():
        await asyncio.sleep(ctx.config.auth_failure_delay)
        return no("Not authorised to act as another user", "AUTHORIZATIONFAILED")
    return await _authenticate(ctx, authc, password)
