"""Alert delivery: the audit log always, then a webhook and notice mails if configured.

Why it is built like this:

* An alert must never hurt the session that caused it: every channel's failure is
  logged and swallowed, and the webhook is bounded in time (the request's own timeout
  plus a hard cap around the worker thread, since DNS lookups ignore socket timeouts).
* The webhook and the mails go out concurrently, so a slow webhook does not delay mail.
* Notices are proper RFC 5322 messages with ``Auto-Submitted: auto-generated``
  (RFC 3834 §5) so vacation responders and mailing lists do not answer them, and CRLF
  line ends as stored messages have. The subject comes from the alert's one-line
  summary, which is stripped of control characters again here: a summary may quote an
  attacker-chosen username and must not be able to add a header.
* Mail for the account owner goes to ``alert.account`` only when it parses as a single
  plain address; the injected sender is expected to deliver locally (a guessed
  username that is no account simply fails and is logged).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import re
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from carteiro.audit.anomalies import Alert
from carteiro.audit.log import AuditLog, iso_utc

__all__ = [
    "AlertDispatcher",
    "AlertSettings",
    "MailSender",
    "Poster",
    "alert_json",
    "alert_settings_from_settings",
    "post_json",
]

log = logging.getLogger("carteiro.audit.alerts")

MailSender = Callable[[str, bytes], Awaitable[None]]
#: (url, JSON body, timeout in seconds) → HTTP status
Poster = Callable[[str, bytes, float], Awaitable[int]]
#: added to the webhook timeout for the hard cap around the whole request
WEBHOOK_GRACE = 1.0
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPECIALS = re.compile(r'[\s,;:<>()\[\]"\\]')


@dataclass(frozen=True, slots=True)
class AlertSettings:
    webhook_url: str | None = None  # JSON POST of the alert
    webhook_timeout: float = 5.0
    mail_owner: bool = True  # a notice in the account owner's INBOX (alerts with an account)
    postmaster: str | None = None  # also deliver every alert to this address


def alert_settings_from_settings(raw: Mapping[str, Any]) -> AlertSettings:
    """The ``[alerts]`` TOML table; a ValueError (one line) names the bad key."""
    known = ("webhook_url", "webhook_timeout", "mail_owner", "postmaster")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"alerts.{key}"
        if key not in known:
            raise ValueError(f"{where}: unknown setting; known are {', '.join(known)}.")
        if key == "webhook_url":
            if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
                raise ValueError(f"{where}: expected an http:// or https:// URL, got {value!r}.")
            if not urlsplit(value).hostname:
                raise ValueError(f"{where}: {value!r} has no host name.")
        elif key == "webhook_timeout":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}: expected a number of seconds, got {value!r}.")
            if not (math.isfinite(value) and 0 < value <= 300):
                raise ValueError(f"{where}: {value} is out of range; use more than 0, up to 300.")
            value = float(value)
        elif key == "mail_owner":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false, got {value!r}.")
        elif not isinstance(value, str) or _address(value) is None:
            raise ValueError(f"{where}: expected a mail address, got {value!r}.")
        values[key] = value
    return AlertSettings(**values)


def _address(text: str) -> Address | None:
    """``text`` as one plain addr-spec (``user@example.org``, RFC 6532 UTF-8 allowed),
    else None: no display name, list, comment, quoting or control character."""
    if not text or len(text) > 320 or _UNSAFE.search(text) or _SPECIALS.search(text):
        return None
    local, _, domain = text.rpartition("@")
    if not local or not domain or "@" in local or ".." in text:
        return None
    if local.startswith(".") or local.endswith(".") or domain.startswith("."):
        return None
    try:
        return Address(username=local, domain=domain)
    except (ValueError, IndexError):
        return None


def alert_json(alert: Alert) -> bytes:
    """The webhook body (UTF-8 JSON, ``at`` in ISO 8601)."""
    details = {
        k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
        for k, v in alert.details.items()
    }
    body = {
        "kind": alert.kind,
        "severity": alert.severity,
        "account": alert.account,
        "source": alert.source,
        "summary": alert.summary,
        "details": details,
        "at": iso_utc(alert.at),
    }
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8", "backslashreplace")


def _post_blocking(url: str, body: bytes, timeout: float) -> int:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must be http or https: {url!r}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "Carteiro-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:  # 4xx/5xx: a status, not a transport failure
        exc.close()
        return exc.code


async def post_json(url: str, body: bytes, timeout: float) -> int:
    """The default webhook poster: ``urllib.request`` in a worker thread."""
    return await asyncio.to_thread(_post_blocking, url, body, timeout)


class AlertDispatcher:
    """Sends each alert to every configured channel; never raises for a channel."""

    def __init__(
        self,
        settings: AlertSettings,
        audit: AuditLog,
        send_mail: MailSender | None,
        *,
        hostname: str = "localhost",
        post: Poster | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.send_mail = send_mail
        self.hostname = hostname
        self.post = post if post is not None else post_json

    async def dispatch(self, alert: Alert) -> None:
        self.audit.alert(alert)
        jobs: list[Awaitable[None]] = []
        if self.settings.webhook_url:
            jobs.append(self._webhook(self.settings.webhook_url, alert))
        if self.send_mail is not None:
            jobs += [self._mail(self.send_mail, alert, r) for r in self.recipients(alert)]
        if jobs:
            await asyncio.gather(*jobs)

    def recipients(self, alert: Alert) -> list[str]:
        """Who gets a notice: the owner (if enabled and the account is an address) and
        the postmaster, once each."""
        found: list[str] = []
        if self.settings.mail_owner and alert.account:
            if _address(alert.account) is not None:
                found.append(alert.account)
            else:
                log.info(
                    "alert %s: account %r is not an address; no notice", alert.kind, alert.account
                )
        postmaster = self.settings.postmaster
        if postmaster and postmaster.casefold() not in {r.casefold() for r in found}:
            found.append(postmaster)
        return found

    async def _webhook(self, url: str, alert: Alert) -> None:
        timeout = self.settings.webhook_timeout
        try:
            async with asyncio.timeout(timeout + WEBHOOK_GRACE):
                status = await self.post(url, alert_json(alert), timeout)
        except TimeoutError:
            log.warning("alert webhook %s: no answer within %.1f s", _redact(url), timeout)
        except Exception as exc:  # any failure of the channel is logged, never raised
            log.warning("alert webhook %s failed: %s", _redact(url), exc)
        else:
            if not 200 <= status < 300:
                log.warning("alert webhook %s answered HTTP %d", _redact(url), status)

    async def _mail(self, send: MailSender, alert: Alert, recipient: str) -> None:
        try:
            await send(recipient, self.build_message(alert, recipient))
        except Exception as exc:  # any failure of the channel is logged, never raised
            log.warning("alert %s: notice to %s not delivered: %s", alert.kind, recipient, exc)

    def build_message(self, alert: Alert, recipient: str) -> bytes:
        """The notice as RFC 5322 bytes (CRLF); ValueError for a recipient that is not
        a single plain address."""
        to = _address(recipient)
        if to is None:
            raise ValueError(f"not a mail address: {recipient!r}")
        message = EmailMessage()
        message["From"] = Address("Carteiro security", "postmaster", self.hostname)
        message["To"] = to
        message["Subject"] = "[Carteiro] " + _one_line(alert.summary)
        message["Date"] = format_datetime(_utc(alert.at))
        message["Message-ID"] = f"<{uuid.uuid4().hex}.alert@{self.hostname}>"
        message["Auto-Submitted"] = "auto-generated"
        message["X-Carteiro-Alert"] = f"{alert.kind}; severity={alert.severity}"
        message.set_content(notice_text(alert, self.hostname), charset="utf-8")
        policy = SMTP if (recipient + self.hostname).isascii() else SMTPUTF8
        return message.as_bytes(policy=policy)


def _utc(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def _one_line(text: str) -> str:
    text = _UNSAFE.sub("?", text).strip()
    return text[:300]


def _redact(url: str) -> str:
    """The URL without its query and user info (they may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


# --- notice texts -------------------------------------------------------------------
_IF_NOT_YOU = """\
If this was not you:
  1. Change the account's password now.
  2. Revoke every app password you do not recognise or no longer use (all of
     them if unsure), and sign in again on your own devices.
  3. Tell the administrator ({postmaster}).
"""

_WHAT: dict[str, str] = {
    "new-network": """\
Someone signed in to {account} from {source} (network {network}), a network
this account had not been used from before.

If it was you (a new device, a trip, a new Internet provider), there is nothing
to do: this network is now known and will not be reported again.
""",
    "targeted-guessing": """\
There were {failures} failed sign-in attempts on {account} within {window}, from
{sources} different address(es), the last one {source}. Someone may be trying to
guess the password; these attempts were refused.

A long, unique password (a generated one is best) cannot be guessed this way. If
the password is short or used on other sites too, change it.
""",
    "password-spraying": """\
The address {source} failed to sign in to {accounts} different accounts within
{window}: the pattern of password spraying, one common password tried on many
accounts.

Administrator: consider blocking {source_key} at the firewall, look in the audit
log for successful sign-ins from it, and make sure no account has a weak password.
""",
    "large-download": """\
{size} of mail was downloaded from {account} {when}, more than the threshold of
{limit}.

A new device or program fetching the whole mailbox does this; so does someone
copying the mail.
""",
    "mass-deletion": """\
{messages} messages were deleted from {account} within {window} ({moved_to_trash}
of them moved to Trash). Mailboxes: {mailboxes}.

Messages moved to Trash can be restored from Trash until it is emptied; for the
others, ask the administrator about backups.
""",
}


def notice_text(alert: Alert, hostname: str) -> str:
    """The body of a notice: what happened, the numbers behind it, what to do. Every
    string from the alert is stripped of control characters (a guessed username is
    attacker-chosen and must not be able to lay out the text)."""
    details = {k: _clean(v) for k, v in alert.details.items()}
    fields: dict[str, Any] = {
        "window": "",
        "size": "",
        "limit": "",
        "when": "",
        **details,
        "account": _clean(alert.account or ""),
        "source": _clean(alert.source or "?"),
        "postmaster": f"postmaster@{hostname}",
    }
    if "window" in details:
        fields["window"] = _window(details["window"])
    if alert.kind == "large-download":
        fields["size"] = _size(details.get("bytes", 0))
        fields["limit"] = _size(details.get("threshold", 0))
        in_session = details.get("scope") == "session"
        fields["when"] = "in one session" if in_session else "today (UTC)"
    try:
        what = _WHAT[alert.kind].format_map(fields)
    except (KeyError, ValueError, IndexError):  # details from elsewhere: say it plainly
        what = _one_line(alert.summary) + "\n"
    paragraphs = [
        textwrap.fill(" ".join(p.split()), 72, break_long_words=False, break_on_hyphens=False)
        for p in what.split("\n\n")
    ]
    parts = [f"Carteiro security notice ({alert.severity}), {iso_utc(alert.at)}", ""]
    parts += [p + "\n" for p in paragraphs if p]
    if alert.kind != "password-spraying":
        parts.append(_IF_NOT_YOU.format(postmaster=fields["postmaster"]))
    parts.append("The numbers:")
    parts += [f"  {key}: {value}" for key, value in sorted(details.items())]
    parts += ["", "-- ", f"Carteiro on {hostname}. This message was generated automatically."]
    return "\n".join(parts) + "\n"


def _clean(value: str | int | float) -> str | int | float:
    return _UNSAFE.sub("?", value)[:1000] if isinstance(value, str) else value


def _window(seconds: str | int | float) -> str:
    if not isinstance(seconds, int | float):
        return str(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} hour(s)"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def _size(nbytes: str | int | float) -> str:
    if not isinstance(nbytes, int | float):
        return str(nbytes)
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
