"""A minimal byte stream over an asyncio transport, shared by every protocol server.

We use a Protocol rather than StreamReader because STARTTLS must discard, exactly, every
byte the client sent before the TLS handshake (RFC 9051 §6.2.1, the CVE-2011-0411 class
of plaintext injection): with our own buffer there is no hidden read-ahead to forget.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

_HIGH_WATER = 256 * 1024  # pause reading above this many unread bytes


class Stream(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self.closed = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol callbacks ------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and self.transport and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake_reader()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake_reader()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    # --- API -----------------------------------------------------------------------
    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    async def read(self) -> bytes:
        """Everything received so far, waiting for at least one byte; ``b""`` at EOF."""
        while not self._chunks:
            if self._eof:
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self, timeout: float | None = None) -> None:
        """Back-pressure: wait while the transport's write buffer is above its limit;
        TimeoutError when the peer has not read for ``timeout`` seconds."""
        while self._write_paused and not self._eof:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._drain_waiter, timeout)
            finally:
                self._drain_waiter = None

    async def start_tls(
        self, context: ssl.SSLContext, timeout: float = 30.0, *, initial: bytes = b""
    ) -> None:
        """Upgrade in place. Bytes received before this call are dropped (STARTTLS:
        RFC 9051 §6.2.1), except ``initial``: the start of the TLS handshake already
        read with a PROXY protocol header, handed to TLS before anything else."""
        assert self.transport is not None
        self._chunks.clear()
        self._buffered = 0
        loop = asyncio.get_running_loop()
        handshake = loop.create_task(
            loop.start_tls(
                self.transport, self, context, server_side=True, ssl_handshake_timeout=timeout
            )
        )
        if initial:
            # start_tls installs its TLS protocol and schedules its connection_made and
            # resume_reading without awaiting; once it has run, a callback queued now
            # runs after those and before any further socket data is delivered
            await asyncio.sleep(0)
            loop.call_soon(self._feed_tls, initial)
        new = await handshake
        if new is None:
            raise ConnectionError("TLS handshake failed")
        self.transport = new

    @property
    def is_tls(self) -> bool:
        return (
            self.transport is not None and self.transport.get_extra_info("sslcontext") is not None
        )

    def _feed_tls(self, data: bytes) -> None:
        assert self.transport is not None
        proto = self.transport.get_protocol()
        view = memoryview(data)
        while view:
            if isinstance(proto, asyncio.BufferedProtocol):
                buf = memoryview(proto.get_buffer(len(view)))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                proto.buffer_updated(n)
            else:
                n = len(view)
                proto.data_received(bytes(view))  # type: ignore[attr-defined]
            view = view[n:]

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        if self.transport is None:
            return None
        obj = self.transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    @property
    def tls_version(self) -> str | None:
        """The negotiated protocol (``"TLSv1.3"``), None on a cleartext link."""
        if self.transport is None:
            return None
        obj = self.transport.get_extra_info("ssl_object")
        version = obj.version() if obj is not None else None
        return str(version) if version else None

    def peer(self) -> tuple[str, int] | None:
        if self.transport is None:
            return None
        name = self.transport.get_extra_info("peername")
        return (str(name[0]), int(name[1])) if name else None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class AcceptingStream(Stream):
    """A listener's stream: hands itself to ``on_made`` once connected (every
    protocol server builds its session there)."""

    def __init__(self, on_made: Callable[[Stream], None]) -> None:
        super().__init__()
        self._on_made = on_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._on_made(self)
