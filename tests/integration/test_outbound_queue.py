"""The outbound queue against real peers: aiosmtpd sink servers on 127.0.0.1 that accept,
defer or reject per recipient, and a real DNS server whose MX records point at them."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from carteiro.config import Settings
from carteiro.message.meta import analyse
from carteiro.net.tls import ensure_certificate, server_context
from carteiro.smtp.queue import Outbox, QueueConfig
from carteiro.store.sqlite import SqliteStore
from tests.dns_server import DnsServer

ROOT = Path(__file__).resolve().parents[2]
SENDER = "alice@local.test"
MESSAGE = (
    b"From: Alice <alice@local.test>\r\nTo: bob@example.org\r\nSubject: Hello there\r\n"
    b"Message-ID: <m1@local.test>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\n"
    b"Hi Bob.\r\n.leading dot\r\n"
)


# --- a sink SMTP server in its own thread --------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    helo: str | None
    mail_options: list[str]


def default_policy(address: str) -> str:
    local = address.split("@")[0]
    if local.startswith("reject"):
        return f"550 5.1.1 <{address}>: no such user"
    if local.startswith("defer"):
        return f"451 4.2.0 <{address}>: try again later"
    return "250 OK"


@dataclass
class Sink:
    """``policy(address)`` gives the RCPT reply; ``mail_reply``/``data_reply`` override
    the replies to MAIL and to the end of DATA; ``gate`` (if set) holds DATA until set."""

    host: str = "127.0.0.1"
    port: int = 0
    tls: ssl.SSLContext | None = None
    smtputf8: bool = True
    policy: Callable[[str], str] = default_policy
    mail_reply: str | None = None
    data_reply: str | None = None
    gate: threading.Event | None = None
    received: list[Received] = field(default_factory=list)
    rcpts: list[tuple[str, str]] = field(default_factory=list)
    in_data: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Sink:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def serve() -> asyncio.Server:
            return await asyncio.get_running_loop().create_server(
                lambda: SMTP(
                    self,
                    hostname="sink.test",
                    tls_context=self.tls,
                    enable_SMTPUTF8=self.smtputf8,
                    loop=self.loop,
                ),
                self.host,
                self.port,
            )

        self.server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # aiosmtpd handler hooks
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.policy(address)
        self.rcpts.append((address, reply))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_data.set()
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 20)
        if self.data_reply:
            return self.data_reply
        self.received.append(
            Received(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                bytes(envelope.content or b""),  # type: ignore[arg-type]
                session.ssl is not None,
                session.host_name,
                list(envelope.mail_options),
            )
        )
        return "250 2.0.0 queued as 42"

    def delivered(self) -> list[str]:
        return [r for m in self.received for r in m.rcpt_tos]


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    settings = Settings(data_dir=tmp_path_factory.mktemp("sink-cert"), hostname="sink.test")
    ensure_certificate(settings)
    return server_context(settings)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


def records(port_host: str = "127.0.0.1") -> dict[str, dict[str, list[str]]]:
    return {
        "example.org": {"MX": ["10 mx.example.org"]},
        "mx.example.org": {"A": [port_host]},
        "remote.test": {"MX": ["10 mx.example.org"]},
        "local.test": {"MX": ["10 mx.example.org"]},
    }


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(records()) as server:
        yield server


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def outbox(
    tmp_path: Path, dns: DnsServer, port: int, clock: Callable[[], float] = time.time, **config: Any
) -> AsyncIterator[Outbox]:
    config.setdefault("connect_timeout", 5)
    config.setdefault("command_timeout", 5)
    async with opened(tmp_path / "carteiro.db") as store:
        await store.create_account(SENDER, "not-a-real-hash")
        box = Outbox(
            store, dns.resolver(), QueueConfig(port=port, **config), "out.test", clock=clock
        )
        try:
            yield box
        finally:
            await box.stop()


async def inbox(store: SqliteStore, address: str = SENDER) -> list[bytes]:
    account = await store.get_account(address)
    assert account is not None
    box = await store.get_mailbox(account.id, "INBOX")
    assert box is not None
    recs = await store.records(box.id, await store.uids(box.id))
    return [await store.read_blob(r.blob_id) for r in recs]


def report(raw: bytes) -> tuple[email.message.EmailMessage, list[dict[str, str]]]:
    """The parsed notification and its per-recipient delivery-status blocks."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    blocks = parts[1].get_payload()
    per_rcpt = [dict(b.items()) for b in blocks[1:]]
    assert not analyse(raw).tree.children[0].is_multipart
    assert [c.subtype for c in analyse(raw).tree.children] == [
        "plain",
        "delivery-status",
        "rfc822-headers",
    ]
    return msg, per_rcpt


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# --- delivery and routing ------------------------------------------------------------


def test_delivered_with_starttls(tmp_path, dns, tls_context):
    sink = Sink(tls=tls_context).start()
    try:

        async def go() -> None:
            async with outbox(tmp_path, dns, sink.port) as box:
                qid = await box.submit(SENDER, ["bob@example.org"], MESSAGE, account=SENDER)
                assert await box.store.queue_get(qid) is not None
                assert await box.run_once() == 1
                assert await box.store.queue_list() == []
                assert await box.run_once() == 0

        run(go())
        [got] = sink.received
        assert got.tls
        assert got.helo == "out.test"
        assert got.mail_from == SENDER and got.rcpt_tos == ["bob@example.org"]
        assert got.content == MESSAGE
        assert any(o.startswith("SIZE=") for o in got.mail_options)
    finally:
        sink.stop()


def test_mx_preference_fallback_and_421(tmp_path, dns):
    a = Sink().start()
    b = Sink(host="127.0.0.3", port=a.port).start()
    dns.set(
        "pref.test",
        "MX",
        ["30 a.pref.test", "10 b.pref.test", "5 noaddr.pref.test", "7 dead.pref.test"],
    )
    dns.set("a.pref.test", "A", ["127.0.0.1"])
    dns.set("b.pref.test", "A", ["127.0.0.3"])
    dns.set("noaddr.pref.test", "TXT", ["no address here"])
    dns.set("dead.pref.test", "A", ["127.0.0.2"])  # nothing listens there: refused
    try:

        async def go() -> None:
            async with outbox(tmp_path, dns, a.port) as box:
                await box.submit(SENDER, ["one@pref.test"], MESSAGE)
                assert await box.run_once() == 1
                assert b.delivered() == ["one@pref.test"] and a.delivered() == []
                # the preferred host says 421 (closing): the next one gets it
                b.policy = lambda addr: "421 4.3.2 shutting down"
                await box.submit(SENDER, ["two@pref.test"], MESSAGE)
                assert await box.run_once() == 1
                assert a.delivered() == ["two@pref.test"]
                # the preferred host is gone altogether
                b.stop()
                await box.submit(SENDER, ["three@pref.test"], MESSAGE)
                assert await box.run_once() == 1
                assert a.delivered() == ["two@pref.test", "three@pref.test"]
                assert await box.store.queue_list() == []

        run(go())
    finally:
        a.stop()
        if b.thread.is_alive():
            b.stop()


def test_a_fallback_without_mx(tmp_path, dns, sink):
    dns.set("plain.test", "A", ["127.0.0.1"])

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit(SENDER, ["x@plain.test"], MESSAGE)
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []

    run(go())
    assert sink.delivered() == ["x@plain.test"]


def test_relay_host(tmp_path, dns, sink):
    async def go() -> None:
        # port 1 and a domain without DNS: only the relay can deliver it
        async with outbox(tmp_path, dns, 1, relay_host=("127.0.0.1", sink.port)) as box:
            await box.submit(SENDER, ["far@nowhere.invalid"], MESSAGE)
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []

    run(go())
    assert sink.delivered() == ["far@nowhere.invalid"]


def test_null_mx_bounces(tmp_path, dns, sink):
    dns.set("nomail.test", "MX", ["0 ."])

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit(SENDER, ["x@nomail.test"], MESSAGE)
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []
            [bounce] = await inbox(box.store)
            _, [status] = report(bounce)
            assert status["Status"] == "5.1.10"
            assert status["Action"] == "failed"
            assert status["Final-Recipient"] == "rfc822; x@nomail.test"

    run(go())
    assert sink.received == []


def test_unknown_domain_bounces(tmp_path, dns, sink):
    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit(SENDER, ["x@nxdomain.test"], MESSAGE)
            assert await box.run_once() == 1
            [bounce] = await inbox(box.store)
            assert report(bounce)[1][0]["Status"] == "5.1.2"

    run(go())


def test_mixed_results_one_bounce(tmp_path, dns, sink):
    clock = Clock()
    rcpts = ["ok@example.org", "reject1@example.org", "reject2@example.org", "defer@example.org"]

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port, clock, retry_first=60) as box:
            qid = await box.submit(SENDER, rcpts, MESSAGE, account=SENDER)
            assert await box.run_once() == 4
            assert sink.delivered() == ["ok@example.org"]
            [bounce] = await inbox(box.store)
            msg, statuses = report(bounce)
            assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@out.test>"
            assert msg["To"] == SENDER
            assert msg["Auto-Submitted"] == "auto-replied"
            assert msg["In-Reply-To"] == "<m1@local.test>"
            assert [s["Final-Recipient"] for s in statuses] == [
                "rfc822; reject1@example.org",
                "rfc822; reject2@example.org",
            ]
            assert statuses[0]["Diagnostic-Code"] == (
                "smtp; 550 5.1.1 <reject1@example.org>: no such user"
            )
            assert statuses[0]["Remote-MTA"] == "dns; mx.example.org[127.0.0.1]"
            assert statuses[0]["Status"] == "5.1.1"
            text = msg.get_payload()[0].get_content()
            assert "550 5.1.1 <reject1@example.org>: no such user" in text
            assert "Subject: Hello there" in text
            assert b"Subject: Hello there" in bounce and b"Hi Bob" not in bounce
            [queued] = await box.store.queue_list()
            assert queued.id == qid
            [left] = [r for r in queued.recipients if r.state == "queued"]
            assert sorted(r.state for r in queued.recipients) == [
                "failed",
                "failed",
                "queued",
                "sent",
            ]
            assert (left.address, left.state, left.attempts) == ("defer@example.org", "queued", 1)
            assert left.next_attempt == clock.now + 60
            assert "451 4.2.0" in (left.last_error or "")

    run(go())


def test_mail_and_data_replies_apply_to_all(tmp_path, dns, sink):
    clock = Clock()

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port, clock, delay_warning=0) as box:
            sink.mail_reply = "452 4.3.1 insufficient storage"
            await box.submit(SENDER, ["a@example.org", "b@example.org"], MESSAGE)
            assert await box.run_once() == 2
            [queued] = await box.store.queue_list()
            assert [r.state for r in queued.recipients] == ["queued", "queued"]
            assert await inbox(box.store) == []
            sink.mail_reply = None
            sink.data_reply = "554 5.7.1 looks like spam"
            clock.now += 300
            assert await box.run_once() == 2
            assert await box.store.queue_list() == []
            [bounce] = await inbox(box.store)
            statuses = report(bounce)[1]
            assert [s["Status"] for s in statuses] == ["5.7.1", "5.7.1"]

    run(go())


def test_temporary_failure_retried_with_backoff(tmp_path, dns, sink):
    clock = Clock()
    accept = threading.Event()
    sink.policy = lambda a: "250 OK" if accept.is_set() else "451 4.7.1 greylisted"

    async def go() -> None:
        async with outbox(
            tmp_path, dns, sink.port, clock, retry_first=100, retry_max=250, delay_warning=0
        ) as box:
            t0 = clock.now
            qid = await box.submit(SENDER, ["later@example.org"], MESSAGE)
            expected = [t0 + 100, t0 + 100 + 200, t0 + 300 + 250]
            for due in expected:
                assert await box.run_once() == 1
                msg = await box.store.queue_get(qid)
                assert msg is not None
                [r] = msg.recipients
                assert r.next_attempt == due
                clock.now = due - 1
                assert await box.run_once() == 0
                clock.now = due
            accept.set()
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []
            assert await inbox(box.store) == []

    run(go())
    assert sink.delivered() == ["later@example.org"]


def test_lifetime_expiry_bounces(tmp_path, dns, sink):
    clock = Clock()
    sink.policy = lambda a: "451 4.4.5 still busy"

    async def go() -> None:
        async with outbox(
            tmp_path, dns, sink.port, clock, lifetime=1000, retry_first=150, retry_max=400,
            delay_warning=0,
        ) as box:  # fmt: skip
            t0 = clock.now
            qid = await box.submit(SENDER, ["slow@example.org"], MESSAGE)
            attempts = 0
            for _ in range(20):
                assert await box.run_once() == 1
                attempts += 1
                msg = await box.store.queue_get(qid)
                if msg is None:
                    break
                [r] = msg.recipients
                assert r.next_attempt <= t0 + 1000
                clock.now = r.next_attempt
            assert clock.now == t0 + 1000
            assert attempts == 5  # t0, +150, +450, +850, +1000
            [bounce] = await inbox(box.store)
            [status] = report(bounce)[1]
            assert status["Status"] == "5.4.7"
            assert "451 4.4.5 still busy" in status["Diagnostic-Code"]

    run(go())


def test_delay_warning_sent_once(tmp_path, dns, sink):
    clock = Clock()
    sink.policy = lambda a: "451 4.2.0 mailbox busy"

    async def go() -> None:
        async with outbox(
            tmp_path, dns, sink.port, clock, delay_warning=150, retry_first=100, retry_max=100
        ) as box:
            t0 = clock.now
            await box.submit(SENDER, ["busy@example.org"], MESSAGE)
            for _ in range(5):
                assert await box.run_once() == 1
                clock.now += 100
            [warning] = await inbox(box.store)
            msg, [status] = report(warning)
            assert msg["Subject"] == "Delayed Mail (still being retried)"
            assert status["Action"] == "delayed"
            assert status["Status"] == "4.2.0"
            assert "Will-Retry-Until" in status
            [queued] = await box.store.queue_list()
            assert queued.recipients[0].warned
            assert queued.recipients[0].attempts == 5
            assert t0 + 5 * 86400 == queued.created + box.config.lifetime

    run(go())


def test_no_bounce_for_null_sender(tmp_path, dns, sink):
    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit("", ["reject@example.org"], MESSAGE)
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []
            assert await inbox(box.store) == []

    run(go())
    assert sink.received == []


def test_remote_sender_gets_queued_bounce(tmp_path, dns, sink):
    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit("carol@remote.test", ["reject@example.org"], MESSAGE)
            assert await box.run_once() == 1
            [queued] = await box.store.queue_list()
            assert queued.sender == ""
            assert [r.address for r in queued.recipients] == ["carol@remote.test"]
            assert await box.run_once() == 1
            assert await box.store.queue_list() == []

    run(go())
    [bounce] = sink.received
    assert bounce.mail_from == "<>" and bounce.rcpt_tos == ["carol@remote.test"]
    assert report(bounce.content)[1][0]["Final-Recipient"] == "rfc822; reject@example.org"


def test_report_failures_bounces_to_local_sender(tmp_path, dns, sink):
    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.report_failures(
                SENDER, [("full@local.test", "552 5.2.2 mailbox full")], MESSAGE
            )
            [bounce] = await inbox(box.store)
            [status] = report(bounce)[1]
            assert status["Status"] == "5.2.2"
            assert "Remote-MTA" not in status

    run(go())


def test_smtputf8(tmp_path, dns):
    plain = Sink(smtputf8=False).start()
    try:

        async def go() -> None:
            async with outbox(tmp_path, dns, plain.port) as box:
                await box.submit(SENDER, ["josé@example.org"], MESSAGE, smtputf8=True)
                assert await box.run_once() == 1
                [bounce] = await inbox(box.store)
                [status] = report(bounce)[1]
                assert status["Status"] == "5.6.7"
                assert status["Final-Recipient"] == "utf-8; jos\\x{E9}@example.org"

        run(go())
        assert plain.received == []
    finally:
        plain.stop()
    utf8 = Sink(smtputf8=True).start()
    try:

        async def go2() -> None:
            async with outbox(tmp_path / "2", dns, utf8.port) as box:
                await box.submit(SENDER, ["josé@example.org"], MESSAGE, smtputf8=True)
                assert await box.run_once() == 1
                assert await box.store.queue_list() == []

        (tmp_path / "2").mkdir()
        run(go2())
        [got] = utf8.received
        assert got.rcpt_tos == ["josé@example.org"] and "SMTPUTF8" in got.mail_options
    finally:
        utf8.stop()


def test_tls_failure_falls_back_to_cleartext(tmp_path, dns, tls_context):
    # the server demands a client certificate we do not have: the handshake fails
    settings = Settings(data_dir=tmp_path / "cert", hostname="sink.test")
    files = ensure_certificate(settings)
    strict = server_context(settings)
    strict.verify_mode = ssl.CERT_REQUIRED
    strict.load_verify_locations(cafile=str(files.cert))
    sink = Sink(tls=strict).start()
    try:

        async def go() -> None:
            async with outbox(tmp_path, dns, sink.port) as box:
                await box.submit(SENDER, ["bob@example.org"], MESSAGE)
                assert await box.run_once() == 1
                assert await box.store.queue_list() == []

        run(go())
        [got] = sink.received
        assert not got.tls
    finally:
        sink.stop()


def test_tls_verify_refuses_bad_certificate(tmp_path, dns, tls_context):
    sink = Sink(tls=tls_context).start()  # self-signed: does not verify
    try:

        async def go() -> None:
            async with outbox(tmp_path, dns, sink.port, tls_verify=True) as box:
                await box.submit(SENDER, ["bob@example.org"], MESSAGE)
                assert await box.run_once() == 1
                [queued] = await box.store.queue_list()
                assert "4.7" in (queued.recipients[0].last_error or "")

        run(go())
        assert sink.received == []
    finally:
        sink.stop()


# --- exactly once --------------------------------------------------------------------


def test_run_once_never_delivers_twice(tmp_path, dns, sink):
    sink.gate = threading.Event()

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port) as box:
            await box.submit(SENDER, ["a@example.org", "b@example.org"], MESSAGE)
            await box.submit(SENDER, ["c@example.org"], MESSAGE)
            first = asyncio.create_task(box.run_once())
            await until(lambda: asyncio.sleep(0, sink.in_data.is_set()))
            # a flush while the delivery is in flight makes its recipients due again;
            # neither a second pass nor a concurrent one may take them
            assert await box.store.queue_flush() == 3
            assert await box.run_once() == 0
            second = asyncio.create_task(box.run_once())
            sink.gate.set()
            assert await first + await second == 3
            assert await box.store.queue_list() == []

    run(go())
    assert sorted(sink.delivered()) == ["a@example.org", "b@example.org", "c@example.org"]


def test_queue_claim_leases(tmp_path):
    async def go() -> None:
        async with opened(tmp_path / "carteiro.db") as store:
            qid = await store.enqueue(SENDER, ["a@x.test", "b@x.test"], MESSAGE, now=1000)
            [msg] = await store.queue_claim(1000, 60, 10)
            assert msg.id == qid and len(msg.recipients) == 2
            assert await store.queue_claim(1059, 60, 10) == []
            [again] = await store.queue_claim(1060, 60, 10)
            assert len(again.recipients) == 2

    run(go())


def test_background_runner_and_stop(tmp_path, dns, sink):
    sink.gate = threading.Event()

    async def go() -> None:
        async with outbox(tmp_path, dns, sink.port, poll_interval=30) as box:
            await box.start()
            await box.submit(SENDER, ["bob@example.org"], MESSAGE)  # wakes the runner
            await until(lambda: asyncio.sleep(0, sink.in_data.is_set()))
            before = time.time()
            await box.stop(timeout=0.1)  # the delivery in flight is cancelled ...
            [queued] = await box.store.queue_list()
            # ... and its recipient is due again at once, not when the lease ends
            assert queued.recipients[0].next_attempt <= time.time()
            assert queued.recipients[0].next_attempt >= before
            sink.gate.set()
            sink.gate = None
            sink.in_data.clear()
            await box.start()
            await box.store.queue_flush()
            box.wake()
            await until(lambda: asyncio.sleep(0, sink.received != []))
            await until(lambda: _empty(box))

    run(go())
    assert sink.delivered() == ["bob@example.org"]


async def _empty(box: Outbox) -> bool:
    return await box.store.queue_list() == []


def test_survives_sigkill(tmp_path, dns, sink):
    """SIGKILL a runner while it retries; a second runner delivers every recipient once."""
    accept = threading.Event()

    def policy(address: str) -> str:
        return "250 OK" if accept.is_set() or address.startswith("ok") else "451 4.3.0 later"

    sink.policy = policy
    db = tmp_path / "carteiro.db"
    recipients = [[f"ok{i}@example.org", f"later{i}@example.org"] for i in range(6)]

    async def seed() -> None:
        async with opened(db) as store:
            for rcpts in recipients:
                await store.enqueue("", rcpts, MESSAGE)

    run(seed())

    def start(run: int) -> subprocess.Popen[bytes]:
        args = [str(db), str(dns.port), str(sink.port), "1.0", "0.05"]
        with open(tmp_path / f"outbox-{run}.log", "wb") as log:  # the runner's log, if needed
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.outbox_process", *args],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        return proc

    async def sent_oks() -> bool:
        async with opened(db) as store:
            left = {
                r.address
                for m in await store.queue_list()
                for r in m.recipients
                if r.state == "queued"
            }
        return not any(a.startswith("ok") for a in left)

    first = start(1)
    try:
        run(until(sent_oks, 20))
        retries = sum(1 for a, r in sink.rcpts if a.startswith("later"))
        run(
            until(
                lambda: asyncio.sleep(
                    0, sum(1 for a, _ in sink.rcpts if a.startswith("later")) > retries + 6
                )
            )
        )
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert first.stdout is not None
        first.stdout.close()
    accept.set()
    second = start(2)
    try:
        run(until(lambda: asyncio.sleep(0, len(sink.delivered()) >= 12), 20))
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        if second.poll() is None:
            second.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
            second.kill()
            second.wait(10)
        assert second.stdout is not None
        second.stdout.close()
    expected = sorted(a for rcpts in recipients for a in rcpts)
    assert sorted(sink.delivered()) == expected  # each exactly once

    async def final() -> None:
        async with opened(db) as store:
            assert await store.queue_list() == []

    run(final())
