"""Wiring: settings → store → listeners, and graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from carteiro.auth.passwords import configure as configure_hashing
from carteiro.auth.sasl import tls_server_end_point
from carteiro.auth.service import AuthService
from carteiro.config import ConfigError, Settings, format_listen
from carteiro.defence import SecurityOptions, start_security
from carteiro.imap.config import ImapConfig
from carteiro.imap.server import ImapServer
from carteiro.loopmon import LoopMonitor
from carteiro.net.tls import (
    certificate_stamp,
    ensure_certificate,
    reload_certificate,
    server_context,
)
from carteiro.pop3.server import Pop3Config, Pop3Server
from carteiro.smtp.dns import Resolver
from carteiro.smtp.hooks import make_hooks
from carteiro.smtp.queue import Outbox, queue_config_from_settings
from carteiro.smtp.server import SmtpConfig, SmtpServer
from carteiro.store.errors import StoreUnavailable
from carteiro.store.interface import Store
from carteiro.store.sqlite import SqliteStore

log = logging.getLogger("carteiro")

CERT_POLL_SECONDS = 30.0


class StartupError(Exception):
    """A problem the operator must fix; the message says what and how."""


def channel_bindings(cert: Path) -> tuple[tuple[str, bytes], ...]:
    """RFC 5929 tls-server-end-point of the server certificate, for SCRAM-SHA-256-PLUS
    (the per-connection tls-exporter comes from :mod:`carteiro.net.tls_exporter`)."""
    try:
        der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
        return (("tls-server-end-point", tls_server_end_point(der)),)
    except (OSError, ValueError) as exc:
        log.warning("no channel binding for %s (%s): SCRAM-SHA-256-PLUS is off", cert, exc)
        return ()


def imap_config(
    settings: Settings, tls: object, bindings: tuple[tuple[str, bytes], ...] = ()
) -> ImapConfig:
    import ssl

    assert tls is None or isinstance(tls, ssl.SSLContext)
    return ImapConfig(
        hostname=settings.hostname,
        tls_context=tls,
        trusted_networks=settings.trusted_networks,
        max_line=settings.max_line,
        max_literal=settings.max_literal,
        max_command=settings.max_command,
        idle_timeout=settings.idle_timeout,
        literal_plus=settings.literal_plus,
        channel_bindings=bindings,
        proxy_trusted=settings.proxy_trusted,
        message_limit=settings.message_limit,
    )


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_hashing(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    files = ensure_certificate(settings)
    if files.generated:
        print(f"carteiro: generated a self-signed TLS certificate: {files.cert}", flush=True)
    tls = server_context(settings)
    store = SqliteStore(settings.data_dir / "carteiro.db", retention=settings.expunge_retention)
    try:
        await store.open()
    except StoreUnavailable as exc:
        raise StartupError(f"{exc}. Check --data-dir and the file's permissions") from None
    monitor = None
    if os.environ.get("CARTEIRO_LOOP_MONITOR", "") not in ("", "0"):
        ms = float(os.environ.get("CARTEIRO_LOOP_MONITOR_MS", "20"))
        monitor = LoopMonitor(threshold=ms / 1000)
        monitor.start()
        log.info("event loop monitor on: stalls over %.0f ms are logged", ms)
    try:
        runtime = await start_security(store, SecurityOptions.from_settings(settings))
    except StoreUnavailable as exc:
        await store.close()
        raise StartupError(f"{exc}. Check --data-dir and the file's permissions") from None
    bindings = channel_bindings(files.cert)
    imap_cfg = imap_config(settings, tls, bindings)
    server = ImapServer(store, imap_cfg, runtime.auth)
    pop3 = Pop3Server(
        store,
        Pop3Config(
            tls_context=tls,
            is_trusted=imap_cfg.is_trusted,
            channel_bindings=bindings,
            retrieved=settings.pop3_retrieved,
            new_only=settings.pop3_new_only,
            login_delay=settings.pop3_login_delay,
        ),
        runtime.auth,
    )
    resolver = Resolver(settings.dns_servers)
    outbox = Outbox(store, resolver, queue_config_from_settings(settings.queue), settings.hostname)
    smtp = smtp_server(settings, tls, imap_cfg.is_trusted, bindings, runtime.auth, store, outbox)
    try:
        await outbox.start()
        listeners = (
            ("imap", settings.imap, False),
            ("imaps", settings.imaps, True),
            ("pop3", settings.pop3, False),
            ("pop3s", settings.pop3s, True),
            ("smtp", settings.smtp, False),
            ("submission", settings.submission, False),
            ("submissions", settings.submissions, True),
            ("lmtp", settings.lmtp, False),
        )
        if settings.lmtp_socket is not None:
            try:
                await smtp.listen_unix("lmtp", settings.lmtp_socket)
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {settings.lmtp_socket}: {exc.strerror or exc}"
                ) from None
            print(f"carteiro: listening on {settings.lmtp_socket} (LMTP)", flush=True)
        for what, listen, implicit in listeners:
            if listen is None:
                continue
            host, port = listen
            try:
                if what.startswith("pop3"):
                    srv = await pop3.listen(host, port, implicit_tls=implicit)
                elif what in ("smtp", "submission", "submissions", "lmtp"):
                    kind = "submission" if what == "submissions" else what
                    srv = await smtp.listen(kind, host, port, implicit_tls=implicit)
                else:
                    proxy = settings.imaps_proxy if implicit else settings.imap_proxy
                    srv = await server.listen(host, port, implicit_tls=implicit, proxy=proxy)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartupError(
                        f"cannot listen on {format_listen(listen)}: the port is already in use. "
                        f"Stop the other server or choose another port with --{what} HOST:PORT"
                    ) from None
                if exc.errno == errno.EACCES:
                    raise StartupError(
                        f"cannot listen on {format_listen(listen)}: permission denied. "
                        f"Run as root or choose a port above 1023 with --{what} HOST:PORT"
                    ) from None
                raise StartupError(
                    f"cannot listen on {format_listen(listen)}: {exc.strerror}"
                ) from None
            for sock in getattr(srv, "sockets", None) or ():
                name = sock.getsockname()
                print(f"carteiro: listening on {name[0]}:{name[1]} ({_KINDS[what]})", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # a renewed certificate (certbot, SIGHUP) is used for new handshakes at once
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_certificate(tls, settings))
        watcher = loop.create_task(_watch_certificate(tls, settings))
        if ready is not None:
            ready.set()
        await stop.wait()
        print("carteiro: shutting down", flush=True)
        watcher.cancel()
        await smtp.shutdown()
        await pop3.shutdown()
        await server.shutdown()
    finally:
        await outbox.stop()
        if monitor is not None:
            await monitor.stop()
        await runtime.close()
        await store.close()


_KINDS = {
    "imap": "IMAP with STARTTLS",
    "imaps": "IMAP with implicit TLS",
    "pop3": "POP3 with STARTTLS",
    "pop3s": "POP3 with implicit TLS",
    "smtp": "SMTP, inbound, with STARTTLS",
    "submission": "SMTP submission with STARTTLS",
    "submissions": "SMTP submission with implicit TLS",
    "lmtp": "LMTP",
}


def smtp_server(
    settings: Settings,
    tls: ssl.SSLContext,
    is_trusted: Callable[[str], bool],
    bindings: tuple[tuple[str, bytes], ...],
    auth: AuthService,
    store: Store,
    outbox: Outbox | None,
) -> SmtpServer:
    """The SMTP/LMTP listeners' server with its policy hooks."""
    from carteiro.smtp.mailauth import mailauth_policy_from_settings

    config = SmtpConfig(
        hostname=settings.hostname,
        tls_context=tls,
        is_trusted=is_trusted,
        channel_bindings=bindings,
        max_message_size=settings.max_message_size,
        max_recipients=settings.max_recipients,
        send_rate=settings.send_rate,
    )
    hooks = make_hooks(
        store,
        config,
        auth,
        outbox=outbox,
        resolver=outbox.resolver if outbox is not None else None,
        mailauth=mailauth_policy_from_settings(settings.inbound),
    )
    return SmtpServer(config, auth, hooks)


async def _watch_certificate(
    tls: ssl.SSLContext, settings: Settings, interval: float = CERT_POLL_SECONDS
) -> None:
    """Reloads the certificate when its files change (no signal needed)."""
    stamp = certificate_stamp(settings)
    while True:
        await asyncio.sleep(interval)
        now = certificate_stamp(settings)
        if now != stamp:
            stamp = now
            reload_certificate(tls, settings)


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(settings))
    except (StartupError, ConfigError) as exc:
        print(f"carteiro: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
