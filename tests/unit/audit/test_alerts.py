from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import json
import logging
import queue
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.audit import alerts as alerts_module
from carteiro.audit.alerts import (
    AlertDispatcher,
    AlertSettings,
    alert_json,
    alert_settings_from_settings,
)
from carteiro.audit.anomalies import Alert
from carteiro.audit.log import AuditLog

AT = datetime.datetime(2026, 11, 22, 10, tzinfo=datetime.UTC).timestamp() + 0.5
GUESSING = Alert(
    kind="targeted-guessing",
    severity="warning",
    account="alice@example.org",
    source="192.0.2.9",
    summary="10 failed logins on alice@example.org within 15 min",
    details={"failures": 10, "threshold": 10, "window": 900.0, "sources": 2},
    at=AT,
)
SPRAYING = Alert(
    kind="password-spraying",
    severity="critical",
    account=None,
    source="192.0.2.66",
    summary="192.0.2.66 failed logins on 10 different accounts within 1 h",
    details={"accounts": 10, "threshold": 10, "window": 3600.0, "source_key": "192.0.2.66"},
    at=AT,
)


class Mailbox:
    def __init__(self, fail_for: str | None = None) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.fail_for = fail_for

    async def __call__(self, recipient: str, message: bytes) -> None:
        if recipient == self.fail_for:
            raise OSError("disk full")
        self.sent.append((recipient, message))


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def parse(message: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; a test against 127.0.0.1 must not use one."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


class Webhook:
    def __init__(self, status: int) -> None:
        self.requests: queue.Queue[tuple[str, dict[str, str], bytes]] = queue.Queue()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/carteiro?k=1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def webhook(no_proxy: None) -> Iterator[Webhook]:
    hook = Webhook(204)
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join()


# --- webhook ---------------------------------------------------------------------------
def test_webhook_posts_the_alert_as_json(webhook: Webhook, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    dispatcher = AlertDispatcher(AlertSettings(webhook_url=webhook.url), audit, None)
    asyncio.run(dispatcher.dispatch(GUESSING))
    path, headers, body = webhook.requests.get(timeout=10)
    assert path == "/hooks/carteiro?k=1"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "kind": "targeted-guessing",
        "severity": "warning",
        "account": "alice@example.org",
        "source": "192.0.2.9",
        "summary": "10 failed logins on alice@example.org within 15 min",
        "details": {"failures": 10, "threshold": 10, "window": 900.0, "sources": 2},
        "at": "2026-11-22T10:00:00.500Z",
    }
    audit.close()
    [record] = audit_records(tmp_path / "audit.jsonl")
    assert record["event"] == "alert" and record["kind"] == "targeted-guessing"


def test_webhook_down_raises_nothing_and_the_audit_entry_is_written(
    no_proxy: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    audit = AuditLog(tmp_path / "audit.jsonl")
    settings = AlertSettings(
        webhook_url=f"http://127.0.0.1:{port}/hook?token=abc", webhook_timeout=2
    )
    dispatcher = AlertDispatcher(settings, audit, None)
    with caplog.at_level(logging.WARNING, logger="carteiro.audit.alerts"):
        asyncio.run(dispatcher.dispatch(SPRAYING))
    audit.close()
    [record] = audit_records(tmp_path / "audit.jsonl")
    assert record["kind"] == "password-spraying" and record["account"] is None
    assert f"alert webhook http://127.0.0.1:{port}/hook failed" in caplog.text
    assert "token=abc" not in caplog.text  # the query may hold a secret


def test_webhook_error_status_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hook = Webhook(500)
    hook.thread.start()
    try:
        dispatcher = AlertDispatcher(AlertSettings(webhook_url=hook.url), AuditLog(None), None)
        with caplog.at_level(logging.WARNING, logger="carteiro.audit.alerts"):
            asyncio.run(dispatcher.dispatch(GUESSING))
        hook.requests.get(timeout=10)
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join()
    assert "answered HTTP 500" in caplog.text


def test_a_hanging_webhook_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(alerts_module, "WEBHOOK_GRACE", 0.0)
    cancelled: list[bool] = []

    async def never(url: str, body: bytes, timeout: float) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 200

    mailbox = Mailbox()
    settings = AlertSettings(webhook_url="http://192.0.2.1/", webhook_timeout=0.05)
    dispatcher = AlertDispatcher(settings, AuditLog(None), mailbox, post=never)
    with caplog.at_level(logging.WARNING, logger="carteiro.audit.alerts"):
        asyncio.run(dispatcher.dispatch(GUESSING))
    assert cancelled == [True]
    assert "no answer within 0.1 s" in caplog.text
    assert [r for r, _ in mailbox.sent] == ["alice@example.org"]  # mail went out regardless


def test_webhook_body_keeps_non_finite_numbers_valid() -> None:
    alert = Alert("large-download", "warning", "a@b.c", None, "s", {"ratio": float("inf")}, AT)

    def refuse(name: str) -> Any:
        raise ValueError(name)

    assert json.loads(alert_json(alert), parse_constant=refuse)["details"] == {"ratio": "inf"}


# --- mail --------------------------------------------------------------------------------
def test_mail_goes_to_the_owner_and_the_postmaster(tmp_path: Path) -> None:
    mailbox = Mailbox()
    settings = AlertSettings(postmaster="postmaster@example.org")
    audit = AuditLog(tmp_path / "audit.jsonl")
    dispatcher = AlertDispatcher(settings, audit, mailbox, hostname="mail.example.org")
    asyncio.run(dispatcher.dispatch(GUESSING))
    assert [r for r, _ in mailbox.sent] == ["alice@example.org", "postmaster@example.org"]
    raw = mailbox.sent[0][1]
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    message = parse(raw)
    assert message["From"].addresses[0].display_name == "Carteiro security"
    assert message["From"].addresses[0].addr_spec == "postmaster@mail.example.org"
    assert message["To"].addresses[0].addr_spec == "alice@example.org"
    assert message["Subject"] == "[Carteiro] " + GUESSING.summary
    assert parsedate_to_datetime(message["Date"]).timestamp() == int(AT)
    assert message["Message-ID"].startswith("<") and "@mail.example.org>" in message["Message-ID"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    text = " ".join(body.split())
    assert "10 failed sign-in attempts on alice@example.org within 15 minutes" in text
    assert "failures: 10" in body and "window: 900.0" in body  # the numbers
    assert "Change the account's password" in text and "app password" in text
    assert all(len(line) <= 78 for line in body.splitlines())
    assert parse(mailbox.sent[1][1])["To"].addresses[0].addr_spec == "postmaster@example.org"


def test_alert_without_account_goes_to_the_postmaster_only() -> None:
    mailbox = Mailbox()
    settings = AlertSettings(postmaster="postmaster@example.org")
    asyncio.run(AlertDispatcher(settings, AuditLog(None), mailbox).dispatch(SPRAYING))
    [(recipient, raw)] = mailbox.sent
    assert recipient == "postmaster@example.org"
    body = " ".join(parse(raw).get_content().split())
    assert "192.0.2.66 failed to sign in to 10 different accounts" in body


def test_owner_mail_can_be_turned_off_and_is_not_sent_twice() -> None:
    mailbox = Mailbox()
    off = AlertSettings(mail_owner=False, postmaster="pm@example.org")
    asyncio.run(AlertDispatcher(off, AuditLog(None), mailbox).dispatch(GUESSING))
    assert [r for r, _ in mailbox.sent] == ["pm@example.org"]
    mailbox.sent.clear()
    same = AlertSettings(postmaster="Alice@example.org")
    asyncio.run(AlertDispatcher(same, AuditLog(None), mailbox).dispatch(GUESSING))
    assert [r for r, _ in mailbox.sent] == ["alice@example.org"]


def test_a_failing_sender_does_not_propagate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mailbox = Mailbox(fail_for="alice@example.org")
    audit = AuditLog(tmp_path / "audit.jsonl")
    settings = AlertSettings(postmaster="pm@example.org")
    with caplog.at_level(logging.WARNING, logger="carteiro.audit.alerts"):
        asyncio.run(AlertDispatcher(settings, audit, mailbox).dispatch(GUESSING))
    audit.close()
    assert [r for r, _ in mailbox.sent] == ["pm@example.org"]
    assert "notice to alice@example.org not delivered: disk full" in caplog.text
    assert len(audit_records(tmp_path / "audit.jsonl")) == 1


def test_no_sender_means_no_mail_and_no_error() -> None:
    settings = AlertSettings(postmaster="pm@example.org")
    asyncio.run(AlertDispatcher(settings, AuditLog(None), None).dispatch(GUESSING))


def test_attacker_chosen_names_cannot_inject_headers() -> None:
    evil = "x@example.org\r\nBcc: victim@example.net"
    alert = Alert(
        kind="targeted-guessing",
        severity="warning",
        account=evil,
        source="192.0.2.9",
        summary=f"10 failed logins on {evil} within 15 min",
        details={"failures": 10, "threshold": 10, "window": 900.0, "sources": 1},
        at=AT,
    )
    mailbox = Mailbox()
    settings = AlertSettings(postmaster="pm@example.org")
    dispatcher = AlertDispatcher(settings, AuditLog(None), mailbox)
    asyncio.run(dispatcher.dispatch(alert))
    [(recipient, raw)] = mailbox.sent  # the "owner" is not an address: no notice
    assert recipient == "pm@example.org"
    message = parse(raw)
    assert message["Bcc"] is None and "victim" not in str(message["To"])
    assert "\r" not in message["Subject"] and "\n" not in message["Subject"]
    assert "Bcc: victim" not in message.get_content().replace("?Bcc", "")
    for bad in ("a@b.c, d@e.f", "a b@c.d", "<a@b.c>", "nobody", ""):
        with pytest.raises(ValueError, match="not a mail address"):
            dispatcher.build_message(alert, bad)


def test_non_ascii_addresses_get_an_smtputf8_message() -> None:
    alert = Alert("new-network", "info", "josé@exemplo.pt", "192.0.2.1", "Nova sessão", {}, AT)
    dispatcher = AlertDispatcher(AlertSettings(), AuditLog(None), None, hostname="exemplo.pt")
    raw = dispatcher.build_message(alert, "josé@exemplo.pt")
    assert "To: josé@exemplo.pt\r\n".encode() in raw  # RFC 6532: UTF-8 in the header
    message = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == "josé@exemplo.pt"
    assert message["Subject"] == "[Carteiro] Nova sessão"


@pytest.mark.parametrize(
    "alert",
    [
        Alert(
            "new-network",
            "info",
            "a@example.org",
            "192.0.2.1",
            "New sign-in",
            {"network": "192.0.2.0/24", "address": "192.0.2.1"},
            AT,
        ),
        Alert(
            "large-download",
            "warning",
            "a@example.org",
            None,
            "big",
            {"scope": "day", "bytes": 5 * 1024**3, "threshold": 4 * 1024**3},
            AT,
        ),
        Alert(
            "mass-deletion",
            "warning",
            "a@example.org",
            None,
            "gone",
            {
                "messages": 600,
                "moved_to_trash": 100,
                "threshold": 500,
                "window": 900.0,
                "mailboxes": "INBOX",
            },
            AT,
        ),
        Alert("mass-deletion", "warning", "a@example.org", None, "odd details", {}, AT),
    ],
)
def test_every_kind_gets_a_readable_notice(alert: Alert) -> None:
    dispatcher = AlertDispatcher(AlertSettings(), AuditLog(None), None)
    body = parse(dispatcher.build_message(alert, "a@example.org")).get_content()
    assert "The numbers:" in body and "password" in body
    assert "{" not in body  # every placeholder filled
    if alert.details:
        assert alert.kind != "large-download" or "5.0 GiB" in body


# --- settings ----------------------------------------------------------------------------
def test_alert_settings_from_settings() -> None:
    assert alert_settings_from_settings({}) == AlertSettings()
    assert alert_settings_from_settings(
        {
            "webhook_url": "https://hooks.example.org/x",
            "webhook_timeout": 3,
            "mail_owner": False,
            "postmaster": "pm@example.org",
        }
    ) == AlertSettings("https://hooks.example.org/x", 3.0, False, "pm@example.org")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"webhook": "x"}, "alerts.webhook: unknown setting"),
        ({"webhook_url": "ftp://x/"}, "http:// or https://"),
        ({"webhook_url": "http:///path"}, "no host name"),
        ({"webhook_timeout": 0}, "out of range"),
        ({"webhook_timeout": "5"}, "number of seconds"),
        ({"mail_owner": "yes"}, "true or false"),
        ({"postmaster": "root"}, "expected a mail address"),
    ],
)
def test_alert_settings_errors_are_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        alert_settings_from_settings(raw)
    assert "\n" not in str(caught.value)


@given(
    st.dictionaries(
        st.sampled_from(["webhook_url", "webhook_timeout", "mail_owner", "postmaster", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    )
)
def test_alert_settings_parser_never_raises_anything_else(raw: dict[str, Any]) -> None:
    try:
        settings = alert_settings_from_settings(raw)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert settings.webhook_timeout > 0
