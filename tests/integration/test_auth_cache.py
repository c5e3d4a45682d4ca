"""The verified-password cache against the real server: repeated logins over IMAP,
POP3 and SMTP skip argon2, and credentials changed by the CLI in another process apply
to the very next login."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from carteiro.auth.cache import CredentialCache
from tests.integration.harness import OPEN, ServerThread
from tests.integration.test_cli import run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    srv = ServerThread(tmp_path / "data", smtp={})
    yield srv
    srv.stop()


def cache_of(server: ServerThread) -> CredentialCache:
    cache = server.security.auth.cache
    assert cache is not None
    return cache


def imap_login(server: ServerThread, user: str, password: str) -> None:
    conn = server.connect()
    conn.login(user, password)
    conn.logout()


def imap_refused(server: ServerThread, user: str, password: str) -> None:
    conn = server.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.login(user, password)
    conn.logout()


def test_every_password_protocol_logs_in_from_the_cache(server: ServerThread) -> None:
    user = server.new_user()
    auth = server.security.auth
    imap_login(server, user, "secret")
    assert auth.verifications == 1 and cache_of(server).stats.stores == 1

    imap_login(server, user, "secret")  # IMAP LOGIN
    conn = server.connect()  # IMAP AUTHENTICATE PLAIN
    conn.authenticate("PLAIN", lambda _: f"\0{user}\0secret".encode())
    conn.logout()
    conn = server.connect()  # IMAP AUTHENTICATE LOGIN
    replies = iter([user.encode(), b"secret"])
    conn.authenticate("LOGIN", lambda _: next(replies))
    conn.logout()
    pop = poplib.POP3("127.0.0.1", server.pop3_port, timeout=30)  # POP3 USER/PASS
    OPEN.append(pop.sock)
    pop.user(user)
    assert pop.pass_("secret").startswith(b"+OK")
    pop.quit()
    assert server.smtp is not None
    smtp = smtplib.SMTP("127.0.0.1", server.submission_port, timeout=30)  # SMTP AUTH
    OPEN.append(smtp)
    smtp.ehlo()
    assert smtp.login(user, "secret")[0] == 235
    smtp.quit()

    assert auth.verifications == 1  # five more logins, not one more argon2 run
    assert cache_of(server).stats.hits == 5
    # a wrong password is verified (and refused) as before
    imap_refused(server, user, "wrong")
    assert auth.verifications == 2


def test_cli_password_change_and_revocation_apply_at_once(server: ServerThread) -> None:
    data = server.data_dir
    user = server.new_user()
    imap_login(server, user, "secret")
    imap_login(server, user, "secret")
    assert cache_of(server).stats.hits == 1

    changed = run("user", "passwd", user, "--password-stdin", "--data-dir", data,
                  stdin=b"a-new-password\n")  # fmt: skip
    assert changed.returncode == 0, changed
    imap_refused(server, user, "secret")  # the cached old password no longer opens it
    imap_login(server, user, "a-new-password")
    imap_login(server, user, "a-new-password")
    imap_refused(server, user, "secret")

    added = run("app-password", "add", user, "--name", "Phone", "--data-dir", data)
    assert added.returncode == 0, added
    found = re.search(r": ([a-z0-9]{6}(?:-[a-z0-9]{6}){3})$", added.stdout.splitlines()[0])
    assert found is not None
    secret = found.group(1)
    imap_login(server, user, secret)
    imap_login(server, user, secret)
    revoked = run("app-password", "revoke", user, "Phone", "--data-dir", data)
    assert revoked.returncode == 0, revoked
    imap_refused(server, user, secret)
    imap_login(server, user, "a-new-password")  # the main password still works (cached)
    assert cache_of(server).stats.hits == 3


def test_with_the_cache_off_every_login_verifies(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path, security={"auth_cache_ttl": 0})
    try:
        assert srv.security.auth.cache is None
        user = srv.new_user()
        for _ in range(3):
            imap_login(srv, user, "secret")
        assert srv.security.auth.verifications == 3
    finally:
        srv.stop()
