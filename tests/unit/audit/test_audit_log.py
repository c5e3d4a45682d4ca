from __future__ import annotations

import datetime
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.audit.anomalies import Alert
from carteiro.audit.log import MAX_USERNAME, AuditLog, iso_utc

T0 = datetime.datetime(2026, 11, 22, 10, tzinfo=datetime.UTC).timestamp() + 0.123


def lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode("utf-8").split("\n")[:-1]]


def strict_json(line: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def failure(audit: AuditLog, username: str, **extra: Any) -> None:
    fields: dict[str, Any] = {
        "protocol": "imap",
        "mechanism": "PLAIN",
        "reason": "bad-credentials",
        "source": "192.0.2.1",
        "tls": "TLSv1.3",
    }
    audit.auth_failure(username=username, **(fields | extra))


def test_iso_utc_has_milliseconds_and_z() -> None:
    assert iso_utc(T0) == "2026-11-22T10:00:00.123Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(T0 + 0.9999) == "2026-11-22T10:00:01.123Z"
    assert iso_utc(float("inf")) == "inf"
    assert iso_utc(1e20) == "1e+20"


def test_line_format_sorted_keys_and_non_ascii_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, clock=lambda: T0)
    audit.auth_success(
        protocol="imap",
        mechanism="SCRAM-SHA-256",
        account="josé@example.org",
        credential="app-password",
        source="2001:db8::1",
        tls="TLSv1.3",
        client_id={"name": "Thunderbird", "version": "128.0"},
        app_password="Téléphone",
    )
    audit.close()
    raw = path.read_text("utf-8")
    assert "josé@example.org" in raw and "Téléphone" in raw  # not \u00e9
    [record] = lines(path)
    assert record == {
        "ts": "2026-11-22T10:00:00.123Z",
        "event": "auth.success",
        "protocol": "imap",
        "mechanism": "SCRAM-SHA-256",
        "account": "josé@example.org",
        "credential": "app-password",
        "source": "2001:db8::1",
        "tls": "TLSv1.3",
        "client_id": {"name": "Thunderbird", "version": "128.0"},
        "app": "Téléphone",
    }
    assert list(json.loads(raw)) == sorted(record)


def test_every_event_kind(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, clock=lambda: T0)
    failure(audit, "bob")
    audit.session_start(protocol="imap", session="s1", source="192.0.2.1", tls=None)
    audit.session_end(
        protocol="imap",
        session="s1",
        account=None,
        source="192.0.2.1",
        bytes_in=10,
        bytes_out=2000,
        duration=1.23456,
    )
    audit.ban(kind="source", key="192.0.2.1", until=T0 + 3600, reason="targeted-guessing")
    audit.admin(action="quota", actor="cli", target="bob@example.org", storage=1000, force=True)
    audit.alert(
        Alert(
            kind="new-network",
            severity="info",
            account="bob@example.org",
            source="192.0.2.1",
            summary="New sign-in",
            details={"network": "192.0.2.0/24"},
            at=T0,
        )
    )
    audit.record("pop3.dele", account="bob@example.org", count=3)
    audit.close()
    records = lines(path)
    assert [r["event"] for r in records] == [
        "auth.failure",
        "session.start",
        "session.end",
        "ban",
        "admin",
        "alert",
        "pop3.dele",
    ]
    fail, start, end, ban, admin, alert, other = records
    assert fail["username"] == "bob" and fail["reason"] == "bad-credentials"
    assert fail["client_id"] is None and start["tls"] is None
    assert end["duration"] == 1.235 and end["bytes_out"] == 2000 and end["account"] is None
    assert ban["until"] == "2026-11-22T11:00:00.123Z" and ban["key"] == "192.0.2.1"
    assert admin == {
        "ts": "2026-11-22T10:00:00.123Z",
        "event": "admin",
        "action": "quota",
        "actor": "cli",
        "target": "bob@example.org",
        "storage": 1000,
        "force": True,
    }
    assert alert["kind"] == "new-network" and alert["details"] == {"network": "192.0.2.0/24"}
    assert alert["at"] == "2026-11-22T10:00:00.123Z"
    assert other["count"] == 3


def test_disabled_log_is_a_no_op(tmp_path: Path) -> None:
    audit = AuditLog(None)
    assert not audit.enabled
    failure(audit, "bob")
    audit.admin(action="x", actor="y", target="z")
    audit.close()
    audit.close()
    assert list(tmp_path.iterdir()) == []


def test_newlines_and_unicode_line_breaks_cannot_forge_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    forged = 'x"}\r\n{"event": "auth.success", "account": "root"}\u2028\u2029\x85\x0b\x0c\x1c end'
    failure(audit, forged)
    audit.close()
    text = path.read_text("utf-8")
    assert len(text.splitlines()) == 1  # splitlines also breaks on U+2028, U+0085, \x1c…
    assert text.count("\n") == 1 and "\r" not in text
    [record] = lines(path)
    assert record["username"] == forged and record["event"] == "auth.failure"


def test_attacker_username_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    failure(audit, "A" * 100_000, mechanism="X" * 5000)
    audit.close()
    [record] = lines(path)
    assert len(record["username"]) == MAX_USERNAME
    assert record["username"].startswith("AAAA") and record["username"].endswith("…")
    assert len(record["mechanism"]) <= 64
    assert path.stat().st_size < 2000


@settings(max_examples=200, deadline=None)
@given(
    username=st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400),
    client_id=st.dictionaries(st.text(max_size=40), st.text(max_size=100), max_size=40),
)
def test_any_username_gives_exactly_one_parseable_line(
    username: str, client_id: dict[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        audit = AuditLog(path)
        failure(audit, username, client_id=client_id)
        audit.close()
        text = path.read_bytes().decode("utf-8")  # valid UTF-8 even for lone surrogates
    assert len(text.splitlines()) == 1 and text.endswith("\n")
    record = strict_json(text)
    expected = username if len(username) <= MAX_USERNAME else username[: MAX_USERNAME - 1] + "…"
    assert record["username"] == expected
    assert len(record["client_id"]) <= 30


def test_secret_looking_fields_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    with caplog.at_level(logging.WARNING, logger="carteiro.audit"):
        audit.admin(
            action="set-password",
            actor="cli",
            target="bob@example.org",
            password="hunter2-value",
            new_passwd="pw-value",
            api_token="tok-value",
            Authorization="Bearer auth-value",
            client_secret="sec-value",
            note="kept",
        )
        failure(audit, "bob", client_id={"name": "mutt", "X-Token": "id-token-value"})
        audit.record("custom", passphrase="phrase-value", apikey="key-value", ok=1)
    audit.close()
    text = path.read_text("utf-8")
    for secret in ("hunter2", "pw-value", "tok-value", "auth-value", "sec-value", "id-token"):
        assert secret not in text
    assert "phrase-value" not in text and "key-value" not in text
    admin, fail, custom = lines(path)
    assert admin["note"] == "kept" and admin["target"] == "bob@example.org"
    assert admin["redacted"] == [
        "Authorization",
        "api_token",
        "client_secret",
        "new_passwd",
        "password",
    ]
    assert fail["client_id"] == {"name": "mutt", "redacted": ["X-Token"]}
    assert custom["ok"] == 1 and custom["redacted"] == ["apikey", "passphrase"]
    assert "dropped secret-looking" in caplog.text


def test_app_password_name_is_logged_under_a_safe_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.auth_success(
        protocol="imap",
        mechanism="PLAIN",
        account="bob@example.org",
        credential="app-password",
        source="192.0.2.1",
        tls=None,
        app_password="laptop",
    )
    audit.close()
    [record] = lines(path)
    assert record["app"] == "laptop" and "redacted" not in record


def test_non_finite_numbers_stay_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.session_end(
        protocol="imap",
        session="s",
        account="a",
        source="192.0.2.1",
        bytes_in=0,
        bytes_out=0,
        duration=float("nan"),
    )
    audit.ban(kind="source", key="k", until=float("inf"), reason="r")
    audit.close()
    end, ban = (strict_json(line) for line in path.read_text().splitlines())
    assert end["duration"] == "nan" and ban["until"] == "inf"


def test_rotation_keeps_n_backups_and_no_line_is_lost_or_split(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_bytes=600, backups=2)
    for n in range(60):
        audit.admin(action="tick", actor="test", target=str(n))
    audit.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    kept: list[int] = []
    for name in ("audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"):
        file = tmp_path / name
        assert file.stat().st_size <= 600
        kept += [int(r["target"]) for r in lines(file)]
    assert kept == list(range(60 - len(kept), 60))  # the newest events, in order
    assert len(kept) > 3


def test_rotation_without_backups_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, max_bytes=300, backups=0)
    for n in range(20):
        audit.admin(action="tick", actor="test", target=str(n))
    audit.close()
    assert [p.name for p in tmp_path.iterdir()] == ["audit.jsonl"]
    targets = [int(r["target"]) for r in lines(path)]
    assert targets[-1] == 19 and path.stat().st_size <= 300


def test_an_existing_file_is_appended_to_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    first = AuditLog(path, max_bytes=10_000)
    first.admin(action="one", actor="a", target="t")
    first.close()
    size = path.stat().st_size
    second = AuditLog(path, max_bytes=size + 10)  # the next line does not fit any more
    second.admin(action="two", actor="a", target="t")
    second.close()
    assert [r["action"] for r in lines(path)] == ["two"]
    assert [r["action"] for r in lines(path.with_name("audit.jsonl.1"))] == ["one"]


def test_file_is_private_to_the_server_user(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.admin(action="x", actor="y", target="z")
    audit.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_write_errors_are_reported_once_and_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    audit = AuditLog(blocker / "audit.jsonl")
    with caplog.at_level(logging.ERROR, logger="carteiro.audit"):
        for _ in range(5):
            failure(audit, "bob")
    audit.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot write" in errors[0].getMessage()


def test_writing_after_close_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.admin(action="before", actor="a", target="t")
    audit.close()
    audit.admin(action="after", actor="a", target="t")
    assert [r["action"] for r in lines(path)] == ["before"]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        AuditLog(None, max_bytes=0)
    with pytest.raises(ValueError, match="backups"):
        AuditLog(None, backups=-1)
