"""Debian's fetchmail against the POP3 server over STLS: keep mode leaves the mail (and
fetches nothing twice thanks to UIDL), no-keep mode deletes what it fetched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import ServerThread
from tests.integration.mbox import simple

pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed"),
]


def fetch(server: ServerThread, user: str, tmp_path: Path, *, keep: bool) -> tuple[int, str]:
    rc = tmp_path / "fetchmailrc"
    out = tmp_path / "delivered.mbox"
    rc.write_text(
        f"poll 127.0.0.1 with proto POP3 port {server.pop3_port} uidl\n"
        f'  user "{user}" there with password "secret" is "local" here\n'
        f'  options {"keep" if keep else "nokeep"} sslproto "tls1.2+" sslcertck sslcommonname "localhost"\n'
        f'  sslcertfile "{server.cert}" mda "cat >> {out}"\n'
    )
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)}
    proc = subprocess.run(
        ["fetchmail", "-f", str(rc), "-N", "-d0", "--idfile", str(tmp_path / "ids")],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    return proc.returncode, out.read_text() if out.exists() else ""


def inbox_count(server: ServerThread, user: str) -> int:
    conn = server.connect(user)
    typ, data = conn.select("INBOX")
    conn.logout()
    return int(data[0])


def test_keep_then_nokeep(server: ServerThread, tmp_path: Path) -> None:
    user = server.new_user()
    for i in range(3):
        server.deliver(user, simple(f"fetch me {i}"))
    code, mbox = fetch(server, user, tmp_path, keep=True)
    assert code == 0, mbox
    assert all(f"Subject: fetch me {i}" in mbox for i in range(3))
    assert inbox_count(server, user) == 3  # kept on the server
    # a second run in keep mode fetches nothing new (UIDL remembered): exit 1 = no mail
    code, mbox = fetch(server, user, tmp_path, keep=True)
    assert code == 1 and mbox.count("Subject: fetch me") == 3
    server.deliver(user, simple("fetch me 3"))
    code, mbox = fetch(server, user, tmp_path, keep=False)
    assert code == 0 and "Subject: fetch me 3" in mbox
    assert mbox.count("Subject: fetch me 0") == 1  # not fetched twice
    # nokeep deletes what this run fetched; the three kept before were not fetched again
    assert inbox_count(server, user) == 3


def test_nokeep_empties_the_maildrop(server: ServerThread, tmp_path: Path) -> None:
    user = server.new_user()
    for i in range(2):
        server.deliver(user, simple(f"take me {i}"))
    code, mbox = fetch(server, user, tmp_path, keep=False)
    assert code == 0 and mbox.count("Subject: take me") == 2
    assert inbox_count(server, user) == 0
