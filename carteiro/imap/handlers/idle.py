"""IDLE (RFC 2177, RFC 9051 §6.3.13): push mailbox changes until the client says DONE."""

from __future__ import annotations

import time

from carteiro.imap.handlers.base import AUTH, Context, Result, bad, command, ok
from carteiro.imap.protocol import commands as c
from carteiro.imap.state import State


@command(c.Idle, AUTH)
async def idle(ctx: Context, cmd: c.Idle) -> Result:
    ctx.send(b"+ idling\r\n")
    await ctx.conn.sync(allow_expunge=True)
    await ctx.conn.flush()
    # the limit counts from IDLE itself: updates we push do not keep a dead client alive
    deadline = time.monotonic() + ctx.config.idle_timeout
    while True:
        event = await ctx.conn.wait_change(max(0.0, deadline - time.monotonic()))
        if event == "change":
            if ctx.session.notify is None:
                await ctx.conn.sync(allow_expunge=True)
            else:  # RFC 5465 §4: IDLE reports exactly what NOTIFY asked for
                await ctx.conn.push_notifications(in_idle=True)
            await ctx.conn.flush()
            continue
        if event == "shutdown":
            ctx.send(b"* BYE Server shutting down\r\n")
            ctx.session.state = State.LOGOUT
            return Result("NO", "Server shutting down", silent=True)
        if event == "timeout":
            ctx.send(b"* BYE Idle for too long, logging out\r\n")
            ctx.session.state = State.LOGOUT
            return Result("NO", "IDLE timed out", silent=True)
        line = await ctx.conn.read_line(ctx.config.idle_timeout)
        if line is None:
            ctx.session.state = State.LOGOUT
            return Result("NO", "Connection closed", silent=True)
        if line.strip().upper() == b"DONE":
            return ok("IDLE terminated")
        return bad("Expected DONE")
