"""The outbound queue runner: takes due recipients from the store, delivers them over
SMTP (:mod:`carteiro.smtp.outbound`), retries temporary failures with exponential backoff
for ``lifetime`` seconds and reports failures and long delays to the sender (RFC 3464,
:mod:`carteiro.smtp.dsn`).

The store is the queue: nothing is in memory alone. A runner *claims* due recipients
(``queue_claim`` leases them for ``lease`` seconds), so a crash loses nothing: the lease
runs out and the recipients are due again. A recipient is marked sent in its own store
transaction right after the remote server's 250; a SIGKILL between the two sends that one
message twice, the one duplicate SMTP cannot rule out (RFC 5321 §6.1). Failed and
warned recipients are recorded only once their notification is durable, so a crash can
repeat a bounce but never lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from carteiro.addresses import resolve
from carteiro.delivery import deliver
from carteiro.smtp import dsn
from carteiro.smtp.dns import Resolver
from carteiro.smtp.outbound import OutboundOptions, Outcome, deliver_domain
from carteiro.store.errors import NotFound, QuotaExceeded, StoreError
from carteiro.store.interface import QueuedMessage, QueuedRecipient, RecipientUpdate, Store

__all__ = ["Outbox", "QueueConfig", "parse_duration", "queue_config_from_settings"]

log = logging.getLogger("carteiro.queue")

#: how long :meth:`Outbox.stop` waits for deliveries in flight before cancelling them
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class QueueConfig:
    port: int = 25
    relay_host: tuple[str, int] | None = None
    lifetime: float = 5 * 86400
    delay_warning: float = 4 * 3600  # 0: never
    retry_first: float = 300  # first retry after 5 min, then doubling ...
    retry_max: float = 4 * 3600  # ... capped at this
    concurrency: int = 20  # deliveries in flight
    poll_interval: float = 5.0  # how often the store is polled (a CLI flush is seen this fast)
    lease: float = 900.0  # claim lease (see Store.queue_claim)
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    tls_verify: bool = False  # verify remote certificates (opportunistic TLS when False)

    def retry_delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt."""
        return min(self.retry_first * 2.0 ** min(max(attempts - 1, 0), 60), self.retry_max)


# --- configuration -------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATIONS = (
    "lifetime",
    "delay_warning",
    "retry_first",
    "retry_max",
    "poll_interval",
    "lease",
    "connect_timeout",
    "command_timeout",
)


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds from a number or a string such as ``"5d"``, ``"4h"``, ``"1h30m"``, ``"10s"``
    or ``"90"``. ValueError (one line) otherwise."""
    hint = f"{key}: expected seconds or a duration such as 5d, 4h, 30m or 10s"
    if isinstance(value, bool):
        raise ValueError(f"{hint}, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(text):
                if text[pos : m.start()].strip():
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(f"{hint}, not {value!r}") from None
    else:
        raise ValueError(f"{hint}, not {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{hint}, not {value!r}")
    return seconds


def _host_port(value: Any, key: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` (port 25 when absent)."""
    hint = f"{key}: expected HOST or HOST:PORT, e.g. smtp.example.net:587"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{hint}, not {value!r}")
    text = value.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, or a bare IPv6 address
        host, port = text, None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{hint}, not {value!r}") from None
    if not host or any(c.isspace() or c in "[]" for c in host):
        raise ValueError(f"{hint}, not {value!r}")
    if port is None:
        return host, 25
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{hint}, not {value!r}")
    return host, int(port)


def queue_config_from_settings(table: Mapping[str, Any]) -> QueueConfig:
    """A :class:`QueueConfig` from the ``[queue]`` table of the TOML config. Keys are the
    field names; durations are seconds or strings such as ``"5d"``; ``relay_host`` is
    ``"host:port"`` (empty: none). ValueError with a one-line message."""
    known = {f.name for f in fields(QueueConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"queue.{unknown[0]}: unknown setting; known ones are {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"queue.{key}"
        if key in _DURATIONS:
            values[key] = parse_duration(value, name)
        elif key in ("port", "concurrency"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: expected a whole number, not {value!r}")
            values[key] = value
        elif key == "relay_host":
            values[key] = None if value in ("", None) else _host_port(value, name)
        elif key == "tls_verify":
            if not isinstance(value, bool):
                raise ValueError(f"{name}: expected true or false, not {value!r}")
            values[key] = value
    config = QueueConfig(**values)
    _check(config)
    return config


def _check(c: QueueConfig) -> None:
    if not 0 < c.port < 65536:
        raise ValueError(f"queue.port: {c.port} is not a TCP port (1-65535)")
    if c.concurrency < 1:
        raise ValueError(f"queue.concurrency: must be at least 1, not {c.concurrency}")
    for key in _DURATIONS:
        if key != "delay_warning" and getattr(c, key) <= 0:
            raise ValueError(f"queue.{key}: must be more than 0 seconds")
    if c.retry_max < c.retry_first:
        raise ValueError("queue.retry_max: must not be less than queue.retry_first")


# --- the runner ----------------------------------------------------------------------


class Outbox:
    """Outbound mail: :meth:`submit` queues durably, the runner (:meth:`start`) delivers."""

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        config: QueueConfig,
        hostname: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.config = config
        self.hostname = hostname
        self._clock = clock
        self._options = OutboundOptions(
            hostname=hostname,
            port=config.port,
            relay_host=config.relay_host,
            connect_timeout=config.connect_timeout,
            command_timeout=config.command_timeout,
            tls_verify=config.tls_verify,
        )
        self._sessions = asyncio.Semaphore(config.concurrency)
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[int]] = set()
        # claimed recipients not yet updated: handed back by stop() when cancelled
        self._claimed: dict[int, QueuedRecipient] = {}

    # --- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Starts the background runner (idempotent)."""
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name="carteiro-queue")

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops claiming, waits up to ``timeout`` for deliveries in flight, cancels the
        rest and makes their recipients due again."""
        runner, self._runner = self._runner, None
        self._stopping = True
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._release()

    def wake(self) -> None:
        """Look at the queue now (a new message, a flush)."""
        self._wake.set()

    async def _run(self) -> None:
        # the flag as well as cancellation: Python 3.11's wait_for could swallow a cancel
        # that coincides with a wake-up, so a runner must not rely on the cancel alone
        while not self._stopping:
            self._wake.clear()
            try:
                await self._fill()
            except Exception:
                log.exception("queue runner: claiming due messages failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await self._wake.wait()

    async def _fill(self) -> None:
        free = self.config.concurrency - len(self._tasks)
        if free <= 0:
            return
        for msg in await self._claim(free):
            task = asyncio.create_task(self._process(msg), name=f"carteiro-queue-{msg.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[int]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("queue: delivery failed", exc_info=task.exception())
        self.wake()

    async def _claim(self, limit: int) -> list[QueuedMessage]:
        now = self._clock()
        out: list[QueuedMessage] = []
        for msg in await self.store.queue_claim(now, self.config.lease, limit):
            # a flush makes recipients due that are in flight here: leave those to the
            # delivery under way, which records their outcome
            fresh = tuple(r for r in msg.recipients if r.id not in self._claimed)
            for r in fresh:
                self._claimed[r.id] = r
            if fresh:
                out.append(replace(msg, recipients=fresh))
        return out

    async def _release(self) -> None:
        """Recipients claimed by deliveries that were cancelled are due again at once
        (rather than when their lease ends)."""
        if not self._claimed:
            return
        now = self._clock()
        updates = [
            RecipientUpdate(r.id, "queued", r.attempts, now, r.last_error, r.warned)
            for r in self._claimed.values()
        ]
        self._claimed.clear()
        try:
            await self.store.queue_update(updates)
        except (StoreError, NotFound):
            log.warning("queue: could not release %d claimed recipients", len(updates))

    async def run_once(self) -> int:
        """Claims due work and delivers it; the number of recipients attempted."""
        claimed = await self._claim(self.config.concurrency)
        counts = await asyncio.gather(*(self._process(m) for m in claimed))
        return sum(counts)

    # --- submission ----------------------------------------------------------------

    async def submit(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        account: str | None = None,
        smtputf8: bool = False,
    ) -> int:
        """Queues a message (durable on return) and wakes the runner; its queue id."""
        queue_id = await self.store.enqueue(
            sender, recipients, data, account=account, smtputf8=smtputf8, now=self._clock()
        )
        log.info(
            "queue %d: from <%s> to %d recipient(s), %d octets",
            queue_id,
            sender,
            len(recipients),
            len(data),
        )
        self.wake()
        return queue_id

    async def report_failures(
        self, sender: str, failures: Sequence[tuple[str, str]], original: bytes
    ) -> None:
        """A bounce for recipients that failed after the message was accepted (local
        delivery: quota, a vanished account); ``failures`` are (recipient, reply)."""
        now = self._clock()
        statuses = [dsn.RecipientStatus(r, reply, None, now) for r, reply in failures]
        if statuses:
            await self._send_bounce(sender, statuses, original, arrival=now, queue_id=None)

    # --- one message ---------------------------------------------------------------

    async def _process(self, msg: QueuedMessage) -> int:
        cancelled = False
        try:
            return await self._attempt(msg)
        except asyncio.CancelledError:
            cancelled = True  # stop() hands the claims back
            raise
        finally:
            if not cancelled:  # done, or failed: then the lease makes them due again
                for r in msg.recipients:
                    self._claimed.pop(r.id, None)

    async def _attempt(self, msg: QueuedMessage) -> int:
        try:
            data = await self.store.queue_data(msg.id)
        except NotFound:  # deleted meanwhile ('carteiro queue delete')
            return 0
        by_domain: dict[str, list[QueuedRecipient]] = {}
        results: dict[int, tuple[Outcome, float]] = {}
        for r in msg.recipients:
            local, at, domain = r.address.rpartition("@")
            if not at or not local or not domain:
                reply = f"553 5.1.3 <{r.address}>: bad recipient address syntax"
                results[r.id] = (Outcome("permanent", reply), self._clock())
                continue
            by_domain.setdefault(domain.lower(), []).append(r)
        await asyncio.gather(
            *(self._deliver(msg, d, rs, data, results) for d, rs in by_domain.items())
        )
        await self._conclude(msg, data, results)
        return len(msg.recipients)

    async def _deliver(
        self,
        msg: QueuedMessage,
        domain: str,
        recipients: list[QueuedRecipient],
        data: bytes,
        results: dict[int, tuple[Outcome, float]],
    ) -> None:
        """One SMTP delivery; sent recipients are recorded at once."""
        addresses = [r.address for r in recipients]
        async with self._sessions:
            try:
                outcomes = await deliver_domain(
                    self.resolver,
                    self._options,
                    domain,
                    msg.sender,
                    addresses,
                    data,
                    smtputf8=msg.smtputf8,
                )
            except Exception:
                log.exception("queue %d: delivery to %s failed unexpectedly", msg.id, domain)
                outcomes = [(a, Outcome("temporary", "451 4.3.0 local error")) for a in addresses]
        now = self._clock()
        sent: list[RecipientUpdate] = []
        for r, (_, outcome) in zip(recipients, outcomes, strict=True):
            log.info(
                "queue %d: <%s> via %s: %s %s",
                msg.id,
                r.address,
                outcome.host or "-",
                outcome.kind,
                outcome.reply,
            )
            results[r.id] = (outcome, now)
            if outcome.kind == "sent":
                sent.append(
                    RecipientUpdate(r.id, "sent", r.attempts + 1, now, outcome.reply, r.warned)
                )
        if sent:
            await self.store.queue_update(sent)
            for u in sent:
                self._claimed.pop(u.id, None)  # a cancel from now on must not re-queue it

    async def _conclude(
        self, msg: QueuedMessage, data: bytes, results: dict[int, tuple[Outcome, float]]
    ) -> None:
        """Backoff for temporary failures, a bounce for permanent ones (and expired
        recipients), a delay warning once; the store is updated after the notices."""
        c = self.config
        now = self._clock()
        expiry = msg.created + c.lifetime
        updates: list[RecipientUpdate] = []
        failed: list[dsn.RecipientStatus] = []
        delayed: list[dsn.RecipientStatus] = []
        for r in msg.recipients:
            if r.id not in results:
                continue
            outcome, when = results[r.id]
            if outcome.kind == "sent":
                continue
            attempts = r.attempts + 1
            status = dsn.RecipientStatus(r.address, outcome.reply, outcome.host, when)
            if outcome.kind == "permanent" or now >= expiry:
                if outcome.kind != "permanent":
                    status = dsn.RecipientStatus(
                        r.address, outcome.reply, outcome.host, when, status="5.4.7"
                    )
                failed.append(status)
                updates.append(
                    RecipientUpdate(r.id, "failed", attempts, now, outcome.reply, r.warned)
                )
                continue
            warned = r.warned
            if not warned and c.delay_warning > 0 and now - msg.created >= c.delay_warning:
                delayed.append(status)
                warned = True
            due = min(now + c.retry_delay(attempts), expiry)
            updates.append(RecipientUpdate(r.id, "queued", attempts, due, outcome.reply, warned))
        if failed:
            await self._send_bounce(msg.sender, failed, data, msg.created, msg.id)
        if delayed:
            report = dsn.delay_warning(
                hostname=self.hostname,
                sender=msg.sender,
                recipients=delayed,
                original=data,
                arrival=msg.created,
                retry_until=expiry,
                now=now,
            )
            await self._notify(msg.sender, report, "delay warning", msg.id)
        if updates:
            await self.store.queue_update(updates)
        for u in updates:
            self._claimed.pop(u.id, None)

    async def _send_bounce(
        self,
        sender: str,
        failed: Sequence[dsn.RecipientStatus],
        original: bytes,
        arrival: float,
        queue_id: int | None,
    ) -> None:
        report = dsn.bounce(
            hostname=self.hostname,
            sender=sender,
            recipients=failed,
            original=original,
            arrival=arrival,
            now=self._clock(),
        )
        await self._notify(sender, report, "bounce", queue_id)

    async def _notify(self, sender: str, report: bytes, what: str, queue_id: int | None) -> None:
        """Delivers a notice to ``sender``: into a local account's INBOX directly, else
        through the queue with the null sender. None for the null sender (a notice about
        a notice would start a loop, RFC 5321 §4.5.5)."""
        prefix = f"queue {queue_id}: " if queue_id is not None else ""
        if not sender:
            log.info("%s%s not sent: the message had the null sender", prefix, what)
            return
        local = await resolve(self.store, sender)
        if local:
            for target in dict.fromkeys(r.account for r in local):
                try:
                    await deliver(self.store, target, report)
                except (QuotaExceeded, NotFound) as e:
                    log.warning("%s%s to %s lost: %s", prefix, what, target, e)
                else:
                    log.info("%s%s delivered to %s", prefix, what, target)
            return
        new_id = await self.store.enqueue(
            "", [sender], report, smtputf8=not sender.isascii(), now=self._clock()
        )
        log.info("%s%s to <%s> queued as %d", prefix, what, sender, new_id)
        self.wake()
