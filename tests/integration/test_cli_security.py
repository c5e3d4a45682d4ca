"""The security commands in a subprocess: app passwords, TOTP enrolment and the owner's
proof, networks, login activity, bans; and that the credentials they write open (or
do not open) the real server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

from carteiro.auth import totp
from carteiro.store.security import Ban
from carteiro.store.sqlite import SqliteStore
from carteiro.store.sqlite.security import SqliteSecurityStore
from tests.integration.test_cli import CLI, assert_one_line_error, run


def credentials(data: Path, address: str):  # type: ignore[no-untyped-def]
    async def get():  # type: ignore[no-untyped-def]
        store = SqliteStore(data / "carteiro.db")
        await store.open()
        try:
            return await store.credentials(address)
        finally:
            await store.close()

    return asyncio.run(get())


def test_app_password_lifecycle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("user", "add", "a@example.org", "--data-dir", data).returncode == 0
    creds = credentials(data, "a@example.org")
    assert creds.scram is not None and creds.scram.startswith("SCRAM-SHA-256$")
    added = run(
        "app-password", "add", "a@example.org", "--name", "Phone", "--protocols", "imap,smtp",
        "--networks", "10.0.0.0/8", "--expires", "90d", "--data-dir", data,
    )  # fmt: skip
    assert added.returncode == 0, added
    secret = re.search(r": ([a-z0-9]{6}(?:-[a-z0-9]{6}){3})$", added.stdout.splitlines()[0])
    assert secret is not None
    listed = run("app-password", "list", "a@example.org", "--data-dir", data)
    assert "Phone: imap,smtp, 10.0.0.0/8, created" in listed.stdout
    assert secret.group(1) not in listed.stdout  # shown once only
    assert_one_line_error(
        run("app-password", "add", "a@example.org", "--name", "Phone", "--data-dir", data),
        1,
        "already has an app password named 'Phone'",
    )
    assert_one_line_error(
        run("app-password", "add", "a@example.org", "--name", "X", "--protocols", "ftp",
            "--data-dir", data),
        2,
        "unknown protocol 'ftp'",
    )  # fmt: skip
    assert (
        run("app-password", "revoke", "a@example.org", "Phone", "--data-dir", data).returncode == 0
    )
    assert (
        "has no app passwords"
        in run("app-password", "list", "a@example.org", "--data-dir", data).stdout
    )
    actions = [json.loads(x)["action"] for x in (data / "audit.jsonl").read_text().splitlines()]
    assert actions == ["app-password-add", "app-password-revoke"]


def test_totp_enrolment_and_owner_proof(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("user", "add", "b@example.org", "--password-stdin", "--data-dir", data, stdin=b"pw-of-b\n")
    # a wrong code cancels the enrolment
    bad = run("user", "totp", "enable", "b@example.org", "--code-stdin", "--data-dir", data,
              stdin=b"000000\n")  # fmt: skip
    assert bad.returncode == 1 and "does not match" in bad.stderr
    assert not credentials(data, "b@example.org").two_factor
    # the right code: computed from the secret the command prints, as an app would
    proc = subprocess.Popen(
        [*CLI, "user", "totp", "enable", "b@example.org", "--code-stdin", "--data-dir", str(data)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
    out = b""
    while b"secret: " not in out:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        out += line
    secret = out.split(b"secret: ")[1].split()[0].decode()
    proc.stdin.write(totp.totp(secret, time.time()).encode() + b"\n")
    proc.stdin.close()
    assert proc.wait(30) == 0, proc.stderr.read()
    assert b"otpauth://totp/Carteiro:b@example.org?secret=" in out
    creds = credentials(data, "b@example.org")
    assert creds.two_factor and creds.totp_last_step is not None
    # changing credentials now needs the owner's password and a fresh code
    denied = run("app-password", "add", "b@example.org", "--name", "P", "--data-dir", data,
                 stdin=b"pw-of-b\n123456\n")  # fmt: skip
    assert_one_line_error(denied, 1, "the password or the code is wrong")
    code = totp.totp(secret, time.time() + 30)  # the next step: the enrolment used this one
    allowed = run("app-password", "add", "b@example.org", "--name", "P", "--data-dir", data,
                  stdin=f"pw-of-b\n{code}\n".encode())  # fmt: skip
    assert allowed.returncode == 0, allowed
    assert (
        run("user", "totp", "disable", "b@example.org", "--admin", "--data-dir", data).returncode
        == 0
    )
    assert not credentials(data, "b@example.org").two_factor


def test_networks_activity_and_bans(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("user", "add", "c@example.org", "--data-dir", data)
    out = run("user", "networks", "c@example.org", "192.168.0.0/16", "10.1.2.3", "--data-dir", data)
    assert "usable from 192.168.0.0/16, 10.1.2.3/32" in out.stdout
    assert credentials(data, "c@example.org").networks == ("192.168.0.0/16", "10.1.2.3/32")
    assert_one_line_error(
        run("user", "networks", "c@example.org", "not-a-net", "--data-dir", data), 2, "CIDR"
    )
    assert (
        "anywhere" in run("user", "networks", "c@example.org", "--clear", "--data-dir", data).stdout
    )
    assert (
        "no logins recorded" in run("user", "activity", "c@example.org", "--data-dir", data).stdout
    )

    async def seed() -> None:
        sec = SqliteSecurityStore(data / "security.db")
        await sec.open()
        try:
            now = time.time()
            await sec.save_ban(Ban("ip", "203.0.113.9", now + 3600, "10 failed logins", now, 1))
        finally:
            await sec.close()

    asyncio.run(seed())
    assert "ip 203.0.113.9: until" in run("ban", "list", "--data-dir", data).stdout
    assert run("ban", "remove", "203.0.113.9", "--data-dir", data).returncode == 0
    assert "no active bans" in run("ban", "list", "--data-dir", data).stdout


def test_restore_expunged_after_a_mass_deletion(tmp_path: Path) -> None:
    """The server keeps expunged mail (expunge_retention); the CLI brings it back."""
    from tests.integration.harness import ServerThread
    from tests.integration.mbox import simple

    data = tmp_path / "data"
    server = ServerThread(data)
    try:
        server.store.retention = 3600.0  # what expunge_retention sets in carteiro serve
        user = server.new_user()
        for i in range(5):
            server.deliver(user, simple(f"precious {i}"))
        conn = server.connect(user)
        conn.select("INBOX")
        conn.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
        conn.expunge()
        conn.logout()
    finally:
        server.stop()
    activity = run("user", "activity", user, "--data-dir", data).stdout.splitlines()
    assert len(activity) == 1 and "ok" in activity[0]
    assert "127.0.0.1" in activity[0] and "imap LOGIN password" in activity[0]
    dry = run("restore-expunged", user, "--since", "1h", "--dry-run", "--data-dir", data)
    assert dry.stdout.strip() == "would restore 5 messages into INBOX", dry
    done = run("restore-expunged", user, "--since", "1h", "--data-dir", data)
    assert done.stdout.strip() == "restored 5 messages into INBOX", done
    again = run("restore-expunged", user, "--since", "1h", "--data-dir", data)
    assert "nothing to restore" in again.stdout
    assert_one_line_error(
        run("restore-expunged", user, "--since", "yesterday-ish", "--data-dir", data), 2, "duration"
    )
    restarted = ServerThread(data)
    try:
        conn = restarted.connect(user)
        typ, data_ = conn.select("INBOX")
        assert data_ == [b"5"]
        _, found = conn.search(None, 'SUBJECT "precious"')
        assert len(found[0].split()) == 5
        conn.logout()
    finally:
        restarted.stop()


def test_user_pop3_choices(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run("user", "add", "p@example.org", "--data-dir", data)
    shown = run("user", "pop3", "p@example.org", "--data-dir", data).stdout.strip()
    assert shown == (
        "p@example.org: retrieved mail: keep (server default); only new mail: no (server default)"
    )
    changed = run(
        "user", "pop3", "p@example.org", "--retrieved", "delete", "--new-only", "yes",
        "--data-dir", data,
    ).stdout.strip()  # fmt: skip
    assert changed == "p@example.org: retrieved mail: delete; only new mail: yes"
    assert (
        run(
            "user", "pop3", "p@example.org", "--retrieved", "archive", "--data-dir", data
        ).returncode
        == 2
    )


def test_domains_aliases_and_delivery_through_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for user in ("alice@example.org", "bob@example.org"):
        assert run("user", "add", user, "--data-dir", data).returncode == 0
    assert run("domain", "add", "example.org", "--data-dir", data).stdout.strip() == (
        "added domain example.org"
    )
    assert_one_line_error(run("domain", "add", "example.org", "--data-dir", data), 1, "already")
    out = run("alias", "add", "sales@example.org", "alice@example.org", "bob@example.org",
              "--data-dir", data)  # fmt: skip
    assert out.stdout.strip() == "sales@example.org -> alice@example.org, bob@example.org"
    assert (
        run("domain", "catch-all", "example.org", "bob@example.org", "--data-dir", data).returncode
        == 0
    )
    assert (
        "example.org (catch-all: bob@example.org)"
        in run("domain", "list", "--data-dir", data).stdout
    )
    message = b"Subject: for sales\r\n\r\nhello\r\n"
    assert run("deliver", "sales@example.org", "--data-dir", data, stdin=message).returncode == 0
    assert run("deliver", "whoever@example.org", "--data-dir", data, stdin=message).returncode == 0
    assert (
        run("deliver", "alice+news@example.org", "--data-dir", data, stdin=message).returncode == 0
    )
    assert_one_line_error(
        run("deliver", "x@elsewhere.example", "--data-dir", data, stdin=message), 1, "no account"
    )
    counts = {u: len(_inbox(data, u)) for u in ("alice@example.org", "bob@example.org")}
    assert counts == {"alice@example.org": 2, "bob@example.org": 2}
    assert run("alias", "remove", "sales@example.org", "--data-dir", data).returncode == 0
    assert run("alias", "list", "--data-dir", data).stdout == ""


def test_sender_permissions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    out = run("alias", "allow-sender", "sales@example.org", "alice@example.org", "--data-dir", data)
    assert out.stdout.strip() == "alice@example.org may send as sales@example.org"
    assert_one_line_error(
        run("alias", "allow-sender", "sales@example.org", "nobody@example.org", "--data-dir", data),
        1,
        "no account",
    )
    listing = run("alias", "senders", "--data-dir", data).stdout
    assert listing == "sales@example.org <- alice@example.org\n"
    deny = ("alias", "deny-sender", "sales@example.org", "alice@example.org", "--data-dir", data)
    assert run(*deny).returncode == 0
    assert_one_line_error(run(*deny), 1, "was not allowed")
    assert run("alias", "senders", "--data-dir", data).stdout == ""


def _inbox(data: Path, address: str) -> list[int]:
    async def uids() -> list[int]:
        store = SqliteStore(data / "carteiro.db")
        await store.open()
        try:
            account = await store.get_account(address)
            assert account is not None
            box = await store.get_mailbox(account.id, "INBOX")
            assert box is not None
            return await store.uids(box.id)
        finally:
            await store.close()

    return asyncio.run(uids())
