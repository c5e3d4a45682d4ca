"""Mail in and out end to end (issue 6): submission → DKIM signing → outbound queue → a
remote MX found through DNS; inbound mail checked for SPF/DKIM/DMARC with the outcome in
Authentication-Results and the configured policy applied; bounces for recipients that
failed after the message was accepted. Real sockets, a real DNS server, real SMTP peers."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim as dkimpy
import pytest

from carteiro.smtp.dkim import dns_record, generate_key, sign
from carteiro.smtp.mailauth import MailAuthPolicy
from carteiro.store.interface import DkimKey
from tests.dns_server import DnsServer
from tests.integration.harness import OPEN, ServerThread
from tests.integration.test_outbound_queue import Sink


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mail(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: Sink
) -> Iterator[ServerThread]:
    dns.set("remote.test", "MX", ["10 mx.remote.test"])
    dns.set("mx.remote.test", "A", ["127.0.0.1"])
    srv = ServerThread(
        tmp_path_factory.mktemp("flow"),
        smtp={
            "resolver": dns.resolver(),
            "queue": {"port": sink.port, "retry_first": 0.2, "poll_interval": 0.2},
            "mailauth": MailAuthPolicy(check=True, failure_policy="enforce"),
        },
    )
    srv.call(srv.store.add_domain("example.org"))
    yield srv
    srv.stop()


def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def mailbox(srv: ServerThread, user: str, name: str = "INBOX") -> list[bytes]:
    conn = srv.connect(user)
    try:
        typ, exists = conn.select(name, readonly=True)
        assert typ == "OK", (name, exists)
        if exists == [b"0"]:
            return []
        _, data = conn.fetch("1:*", "(BODY.PEEK[])")
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        conn.logout()


def smtp(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    OPEN.append(client)
    return client


def publish(dns: DnsServer, key: DkimKey) -> None:
    dns.set(f"{key.selector}._domainkey.{key.domain}", "TXT", [dns_record(key)])


def new_key(domain: str, selector: str, algorithm: str = "rsa-sha256") -> DkimKey:
    return DkimKey(domain, selector, algorithm, generate_key(algorithm), time.time())


# --- out ---------------------------------------------------------------------------------


def test_submission_to_remote_is_signed_queued_and_delivered(
    mail: ServerThread, dns: DnsServer, sink: Sink
) -> None:
    alice = mail.new_user()
    keys = [new_key("example.org", "rsa1"), new_key("example.org", "ed1", "ed25519-sha256")]
    for key in keys:
        mail.call(mail.store.add_dkim_key(key))
        publish(dns, key)
    before = len(sink.received)
    with smtp(mail.submission_port) as client:
        client.starttls(context=mail.client_tls())
        client.login(alice, "secret")
        client.sendmail(
            alice,
            ["friend@remote.test"],
            f"From: {alice}\r\nTo: friend@remote.test\r\nSubject: out\r\n\r\nbye\r\n".encode(),
        )
    until(lambda: len(sink.received) > before)
    got = sink.received[-1]
    assert got.mail_from == alice and got.rcpt_tos == ["friend@remote.test"]
    assert got.tls is False  # this sink offers no STARTTLS
    assert got.content.count(b"DKIM-Signature:") == 2

    # an independent verifier (dkimpy) accepts both signatures with the published keys
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        records = dns.resolver().sync_txt(name.decode().rstrip("."))
        return records[0].encode() if records else b""

    for index in range(2):
        assert dkimpy.DKIM(got.content).verify(idx=index, dnsfunc=dnsfunc)
    until(lambda: mail.call(mail.store.queue_list()) == [])


def test_partial_failure_after_data_bounces_to_the_sender(mail: ServerThread) -> None:
    alice, bob, carol = mail.new_user(), mail.new_user(), mail.new_user()
    mail.deliver(bob, b"Subject: filler\r\n\r\nx\r\n")
    used = len(mailbox(mail, bob)[0])
    mail.call(mail.store.set_quota(bob, storage=used + 10, messages=None))
    body = f"From: {alice}\r\nSubject: big news\r\n\r\n{'z' * 500}\r\n".encode()
    with smtp(mail.submission_port) as client:
        client.login(alice, "secret")
        # without SIZE, bob passes the RCPT check (room for 10 more octets) but not DATA
        client.ehlo()
        assert client.mail(alice)[0] == 250
        assert client.rcpt(bob)[0] == 250 and client.rcpt(carol)[0] == 250
        assert client.data(body)[0] == 250
    assert len(mailbox(mail, carol)) == 1
    until(lambda: len(mailbox(mail, alice)) == 1)
    [bounce] = mailbox(mail, alice)
    assert b"multipart/report" in bounce and b"delivery-status" in bounce
    assert f"Final-Recipient: rfc822; {bob}".encode() in bounce
    assert b"5.2.2" in bounce


# --- in ----------------------------------------------------------------------------------


def send_in(srv: ServerThread, sender: str, rcpt: str, raw: bytes, helo: str) -> None:
    with smtp(srv.smtp_port) as client:
        client.ehlo(helo)
        client.sendmail(sender, [rcpt], raw)


def test_inbound_pass_gets_authentication_results(mail: ServerThread, dns: DnsServer) -> None:
    user = mail.new_user()
    key = new_key("good.test", "s1")
    publish(dns, key)
    dns.set("good.test", "TXT", ["v=spf1 ip4:127.0.0.1 -all"])
    dns.set("_dmarc.good.test", "TXT", ["v=DMARC1; p=reject"])
    raw = b"From: news@good.test\r\nTo: x\r\nSubject: signed\r\nAuthentication-Results: localhost; dkim=pass (forged)\r\n\r\nhello\r\n"
    raw = sign(raw, [key]) + raw
    send_in(mail, "bounces@good.test", user, raw, "mta.good.test")
    [stored] = mailbox(mail, user)
    head = stored.split(b"\r\n\r\n")[0]
    assert b"forged" not in head  # a field claiming our authserv-id is removed
    results = head.split(b"Authentication-Results: ")[1].split(b"\r\nReceived:")[0]
    assert results.startswith(b"localhost;")
    for expected in (b"spf=pass", b"dkim=pass", b"dmarc=pass", b"header.d=good.test"):
        assert expected in results, results


def test_inbound_dmarc_reject_and_quarantine(mail: ServerThread, dns: DnsServer) -> None:
    user = mail.new_user()
    dns.set("bank.test", "TXT", ["v=spf1 ip4:192.0.2.1 -all"])
    dns.set("_dmarc.bank.test", "TXT", ["v=DMARC1; p=reject"])
    dns.set("shop.test", "TXT", ["v=spf1 ip4:192.0.2.1 -all"])
    dns.set("_dmarc.shop.test", "TXT", ["v=DMARC1; p=quarantine"])
    spoof = b"From: security@bank.test\r\nSubject: verify your account\r\n\r\nclick\r\n"
    with pytest.raises(smtplib.SMTPDataError) as err:
        send_in(mail, "x@bank.test", user, spoof, "spoofer.test")
    assert err.value.smtp_code == 550 and err.value.smtp_error.startswith(b"5.7.1")
    send_in(mail, "x@shop.test", user, b"From: deals@shop.test\r\nSubject: deal\r\n\r\n!\r\n", "h")
    assert mailbox(mail, user) == []
    [junk] = mailbox(mail, user, "Junk")
    assert b"dmarc=fail" in junk


def test_inbound_without_policy_is_accepted_and_marked(mail: ServerThread, dns: DnsServer) -> None:
    user = mail.new_user()
    send_in(mail, "a@nowhere.test", user, b"From: a@nowhere.test\r\nSubject: x\r\n\r\nx\r\n", "h")
    [stored] = mailbox(mail, user)
    assert b"spf=none" in stored and b"dmarc=none" in stored


def test_submission_and_queue_survive_restart(tmp_path: Path, dns: DnsServer) -> None:
    """Queued mail outlives the server: stopped while the remote defers, delivered once
    by the next server."""
    deferring = Sink(policy=lambda a: "451 4.3.0 later").start()
    try:
        options = {"port": deferring.port, "retry_first": 0.2, "poll_interval": 0.2}
        srv = ServerThread(tmp_path, smtp={"resolver": dns.resolver(), "queue": options})
        alice = srv.new_user()
        with smtp(srv.submission_port) as client:
            client.login(alice, "secret")
            client.sendmail(alice, ["later@remote.test"], f"From: {alice}\r\n\r\nx\r\n".encode())
        until(lambda: len(deferring.rcpts) >= 1)
        srv.stop()
    finally:
        deferring.stop()
    accepting = Sink(port=deferring.port).start()
    try:
        options = {"port": accepting.port, "retry_first": 0.2, "poll_interval": 0.2}
        srv = ServerThread(tmp_path, smtp={"resolver": dns.resolver(), "queue": options})
        try:
            srv.call(srv.store.queue_flush())
            until(lambda: accepting.delivered() == ["later@remote.test"])
            until(lambda: srv.call(srv.store.queue_list()) == [])
            assert accepting.delivered() == ["later@remote.test"]
        finally:
            srv.stop()
    finally:
        accepting.stop()
