"""The security audit log: one JSON object per line, rotated by size.

Why this shape:

* JSON lines with sorted keys are greppable by people and parseable by ``jq`` or a SIEM.
  ``json.dumps`` escapes CR, LF and every other control character, and the three
  further characters that some readers treat as line breaks (U+0085, U+2028, U+2029)
  are escaped here too, so an attacker-chosen username can never forge a second line.
* A line is written with a single ``write(2)`` on an ``O_APPEND`` descriptor and not
  fsynced: a few microseconds on a local disk, so it runs inline on the event loop.
* There is no parameter for a password or token anywhere in the API, and a last guard
  drops every field whose *name* looks secret (:data:`SECRET_KEY`) before anything is
  serialised, in case a future caller passes one through ``admin(**details)``.
* The log must never take the server down: an I/O error is reported once through
  :mod:`logging` and the event is lost, not raised into a login.
* ``path=None`` gives a disabled log whose methods do nothing, so callers never branch.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carteiro.audit.anomalies import Alert

__all__ = [
    "MAX_TEXT",
    "MAX_USERNAME",
    "SECRET_KEY",
    "AuditLog",
    "FieldValue",
    "iso_utc",
]

log = logging.getLogger("carteiro.audit")

FieldValue = str | int | float | bool | None
#: field names that must never reach the log, whatever the caller passes
SECRET_KEY = re.compile(r"pass(?:word|wd|phrase)|secret|token|authori[sz]ation|api_?key", re.I)
#: attacker-controlled login names are cut to this many characters
MAX_USERNAME = 256
#: any other string is cut to this many characters
MAX_TEXT = 1024
#: an IMAP ID (RFC 2971 §3.3) has at most 30 pairs; more is not worth logging
MAX_CLIENT_ID_FIELDS = 30
#: JSON leaves these raw with ensure_ascii=False, yet str.splitlines() and some log
#: viewers break lines on them
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK_RE = re.compile("[\x85\u2028\u2029]")


def iso_utc(ts: float) -> str:
    """``2026-11-22T10:00:00.123Z``: RFC 3339 UTC, to the nearest millisecond."""
    if not math.isfinite(ts):
        return str(ts)
    seconds, millis = divmod(round(ts * 1000), 1000)
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):  # beyond year 9999: keep the number
        return str(ts)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> Any:
    """A JSON-safe field value: long strings clipped, non-finite floats as text,
    mappings and lists cleaned recursively, anything else as its ``str``."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clip(value, MAX_TEXT)
    if isinstance(value, Mapping):
        return _scrub(value)
    if isinstance(value, list | tuple):
        return [_value(item) for item in value[:100]]
    return _clip(str(value), MAX_TEXT)


def _scrub(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The guard: fields with a secret-looking name are dropped (their names are listed
    under ``redacted`` so the omission is visible); everything else is made JSON-safe."""
    clean: dict[str, Any] = {}
    redacted: list[str] = []
    for raw_key, value in fields.items():
        key = _clip(str(raw_key), 64)
        if SECRET_KEY.search(key):
            redacted.append(key)
        else:
            clean[key] = _value(value)
    if redacted:
        log.warning("audit: dropped secret-looking field(s) %s", ", ".join(sorted(redacted)))
        clean["redacted"] = sorted(redacted)
    return clean


def _client_id(client_id: Mapping[str, str] | None) -> dict[str, str] | None:
    """At most 30 pairs (scrubbed with the rest of the record)."""
    if client_id is None:
        return None
    return dict(list(client_id.items())[:MAX_CLIENT_ID_FIELDS])


class AuditLog:
    """Append-only JSON-lines audit log; see the module docstring for the guarantees."""

    def __init__(
        self,
        path: Path | None,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups must be 0 or more, got {backups}")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._closed = path is None
        self._failing = False

    @property
    def enabled(self) -> bool:
        return not self._closed

    # --- events -------------------------------------------------------------------
    def auth_success(
        self,
        *,
        protocol: str,
        mechanism: str,
        account: str,
        credential: str,
        source: str,
        tls: str | None,
        client_id: Mapping[str, str] | None = None,
        app_password: str | None = None,
    ) -> None:
        """``credential`` says what kind was used (e.g. "password", "app-password");
        ``app_password`` is the *name* of the app password, logged as ``app``."""
        self._write(
            "auth.success",
            {
                "protocol": protocol,
                "mechanism": mechanism,
                "account": account,
                "credential": credential,
                "source": source,
                "tls": tls,
                "client_id": _client_id(client_id),
                "app": app_password,
            },
        )

    def auth_failure(
        self,
        *,
        protocol: str,
        mechanism: str,
        username: str,
        reason: str,
        source: str,
        tls: str | None,
        client_id: Mapping[str, str] | None = None,
    ) -> None:
        self._write(
            "auth.failure",
            {
                "protocol": protocol,
                "mechanism": _clip(mechanism, 64),
                "username": _clip(username, MAX_USERNAME),
                "reason": reason,
                "source": source,
                "tls": tls,
                "client_id": _client_id(client_id),
            },
        )

    def session_start(self, *, protocol: str, session: str, source: str, tls: str | None) -> None:
        self._write(
            "session.start",
            {"protocol": protocol, "session": session, "source": source, "tls": tls},
        )

    def session_end(
        self,
        *,
        protocol: str,
        session: str,
        account: str | None,
        source: str,
        bytes_in: int,
        bytes_out: int,
        duration: float,
    ) -> None:
        self._write(
            "session.end",
            {
                "protocol": protocol,
                "session": session,
                "account": account,
                "source": source,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "duration": round(duration, 3),
            },
        )

    def ban(self, *, kind: str, key: str, until: float, reason: str) -> None:
        self._write(
            "ban",
            {
                "kind": kind,
                "key": _clip(key, MAX_USERNAME),
                "until": iso_utc(until),
                "reason": reason,
            },
        )

    def admin(self, *, action: str, actor: str, target: str, **details: FieldValue) -> None:
        fields: dict[str, Any] = dict(details)
        fields.update(action=action, actor=actor, target=target)
        self._write("admin", fields)

    def alert(self, alert: Alert) -> None:
        self._write(
            "alert",
            {
                "kind": alert.kind,
                "severity": alert.severity,
                "account": alert.account,
                "source": alert.source,
                "summary": alert.summary,
                "details": alert.details,
                "at": iso_utc(alert.at),
            },
        )

    def record(self, event: str, /, **fields: FieldValue) -> None:
        """Any other event (same guard and format), for protocols added later."""
        self._write(event, dict(fields))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._close_fd()

    # --- writing ------------------------------------------------------------------
    def _write(self, event: str, fields: Mapping[str, Any]) -> None:
        if self._closed:
            return
        record = _scrub(fields)
        record["event"] = event
        record["ts"] = iso_utc(self._clock())
        text = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
        text = _LINE_BREAK_RE.sub(lambda m: _LINE_BREAKS[m.group()], text)
        # a lone surrogate (from a surrogateescape decode) becomes the JSON escape \udcXX
        line = (text + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            if self._closed:
                return
            try:
                self._append(line)
            except OSError as exc:
                self._close_fd()
                if not self._failing:
                    log.error(
                        "audit log %s: cannot write (%s); events are being lost", self.path, exc
                    )
                self._failing = True
            else:
                if self._failing:
                    log.warning("audit log %s: writing again", self.path)
                self._failing = False

    def _append(self, line: bytes) -> None:
        if self._fd is None:
            self._open()
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        assert self._fd is not None
        os.write(self._fd, line)
        self._size += len(line)

    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # audit lines name accounts and addresses: readable by the server's user only
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        """audit.jsonl → audit.jsonl.1 → … → audit.jsonl.N (the oldest is dropped)."""
        assert self.path is not None
        self._close_fd()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            base = str(self.path)
            for n in range(self.backups - 1, 0, -1):
                older = Path(f"{base}.{n}")
                if older.exists():
                    older.replace(f"{base}.{n + 1}")
            self.path.replace(f"{base}.1")
        self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
