"""Commands valid in any state: CAPABILITY, NOOP, LOGOUT, ID; and ENABLE, NAMESPACE."""

from __future__ import annotations

from carteiro import __version__
from carteiro.imap.capabilities import capability_line
from carteiro.imap.handlers.base import ANY, AUTH, Context, Result, bad, command, no, ok
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.wire import quoted
from carteiro.imap.state import State


@command(c.Capability, ANY)
async def capability(ctx: Context, cmd: c.Capability) -> Result:
    ctx.send(b"* CAPABILITY " + capability_line(ctx.session, ctx.config).encode() + b"\r\n")
    return ok("CAPABILITY completed")


@command(c.Noop, ANY)
async def noop(ctx: Context, cmd: c.Noop) -> Result:
    return ok("NOOP completed")


@command(c.Logout, ANY)
async def logout(ctx: Context, cmd: c.Logout) -> Result:
    ctx.send(b"* BYE Carteiro logging out\r\n")
    ctx.session.state = State.LOGOUT
    return ok("LOGOUT completed")


@command(c.Id, ANY)
async def id_(ctx: Context, cmd: c.Id) -> Result:
    if cmd.params is not None:  # kept for the audit log: which client logged in
        ctx.session.client_id = {k[:64]: (v or "")[:256] for k, v in cmd.params[:30]}
    fields = (b"name", b"Carteiro", b"version", __version__.encode())
    ctx.send(b"* ID (" + b" ".join(quoted(f) for f in fields) + b")\r\n")
    return ok("ID completed")


#: what ENABLE accepts (RFC 5161); unknown names are ignored, as the RFC requires
_ENABLEABLE = {
    "IMAP4REV2": "IMAP4rev2",
    "CONDSTORE": "CONDSTORE",
    "QRESYNC": "QRESYNC",
    "UTF8=ACCEPT": "UTF8=ACCEPT",
    "UIDONLY": "UIDONLY",
}


@command(c.Enable, AUTH)
async def enable(ctx: Context, cmd: c.Enable) -> Result:
    newly: list[str] = []
    for cap in cmd.capabilities:
        name = _ENABLEABLE.get(cap.upper())
        if name is None or name in ctx.session.enabled:
            continue
        ctx.session.enabled.add(name)
        newly.append(name)
        if name == "IMAP4rev2":
            ctx.session.rev2 = True
        elif name == "CONDSTORE":
            ctx.session.condstore = True
        elif name == "QRESYNC":  # RFC 7162 §3.2.3: implies CONDSTORE
            ctx.session.qresync = ctx.session.condstore = True
        elif name == "UTF8=ACCEPT":
            ctx.session.utf8_accept = True
        elif name == "UIDONLY":
            ctx.session.uidonly = True
    ctx.send(b"* ENABLED" + b"".join(b" " + n.encode() for n in newly) + b"\r\n")
    return ok("ENABLE completed")


@command(c.Namespace, AUTH)
async def namespace(ctx: Context, cmd: c.Namespace) -> Result:
    ctx.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
    return ok("NAMESPACE completed")


@command(c.Unauthenticate, AUTH)
async def unauthenticate(ctx: Context, cmd: c.Unauthenticate) -> Result:
    """RFC 8437: back to not authenticated; nothing of the old login survives (selected
    mailbox, ENABLEd extensions). TLS and compression stay, as the RFC requires."""
    s = ctx.session
    s.selected = None
    s.account = None
    s.state = State.NOT_AUTHENTICATED
    s.enabled.clear()
    s.rev2 = s.condstore = s.qresync = s.utf8_accept = s.uidonly = False
    s.notify = None
    ctx.extra.clear()  # per-login caches (APPEND's mailbox cache) belong to the old account
    return ok("UNAUTHENTICATE completed")


@command(c.Compress, AUTH)
async def compress(ctx: Context, cmd: c.Compress) -> Result:
    if cmd.mechanism != "DEFLATE":
        return bad("Only DEFLATE is supported")
    if ctx.conn.compressing:
        return no("Compression is already active", "COMPRESSIONACTIVE")

    async def start() -> None:
        ctx.conn.start_compression()

    return Result("OK", "DEFLATE active", after=start)
