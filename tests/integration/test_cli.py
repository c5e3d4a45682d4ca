"""The real ``carteiro`` command in a subprocess, with a temporary data directory."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carteiro.auth.passwords import verify_password

CLI = [sys.executable, "-c", "from carteiro.cli.main import main; main()"]


def run(
    *args: str | Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARTEIRO_")}
    environ.update(env or {})
    proc = subprocess.run(
        [*CLI, *map(str, args)],
        input=stdin,
        capture_output=True,
        env=environ,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> None:
    assert result.returncode == code, result
    assert result.stderr.startswith("carteiro: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def sqlite_store_class() -> type:
    module = importlib.import_module("carteiro.store.sqlite")
    if not hasattr(module, "SqliteStore"):
        pytest.skip("carteiro.store.sqlite.SqliteStore is not there yet")
    cls: type = module.SqliteStore
    return cls


@pytest.fixture
def data(tmp_path: Path) -> Path:
    sqlite_store_class()
    return tmp_path / "data"


def stored_hash(data_dir: Path, address: str) -> str | None:
    async def get() -> str | None:
        store = sqlite_store_class()(data_dir / "carteiro.db")
        await store.open()
        try:
            account = await store.get_account(address)
            return None if account is None else account.password_hash
        finally:
            await store.close()

    return asyncio.run(get())


# --- accounts ------------------------------------------------------------------------


def test_user_lifecycle(data):
    r = run("user", "add", "alice@example.org", "--password-stdin", "--data-dir", data,
            stdin=b"s3cret pass\n")  # fmt: skip
    assert r.returncode == 0, r
    assert "created account alice@example.org" in r.stdout
    assert "s3cret" not in r.stdout
    h = stored_hash(data, "alice@example.org")
    assert h is not None and verify_password(h, "s3cret pass")
    assert (data / "carteiro.db").exists()
    assert (data.stat().st_mode & 0o777) == 0o700

    r = run("user", "add", "bob@Example.ORG", "--data-dir", data)
    assert r.returncode == 0, r
    password = next(
        line.removeprefix("password: ") for line in r.stdout.splitlines()
        if line.startswith("password: ")
    )  # fmt: skip
    h = stored_hash(data, "bob@example.org")
    assert h is not None and verify_password(h, password)

    r = run("user", "list", "--data-dir", data)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["alice@example.org", "bob@example.org"]

    r = run("user", "passwd", "alice@example.org", "--password-stdin", "--data-dir", data,
            stdin=b"new one\r\n")  # fmt: skip
    assert r.returncode == 0, r
    h = stored_hash(data, "alice@example.org")
    assert h is not None and verify_password(h, "new one")
    assert not verify_password(h, "s3cret pass")

    r = run("user", "delete", "alice@example.org", "--yes", "--data-dir", data)
    assert r.returncode == 0, r
    assert stored_hash(data, "alice@example.org") is None
    assert run("user", "list", "--data-dir", data).stdout.splitlines() == ["bob@example.org"]


def test_duplicate_add_fails(data):
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    h = stored_hash(data, "alice@example.org")
    r = run("user", "add", "ALICE@example.org", "--password-stdin", "--data-dir", data,
            stdin=b"other\n")  # fmt: skip
    assert_one_line_error(r, 1, "already exists", "carteiro user passwd")
    assert stored_hash(data, "alice@example.org") == h


def test_unknown_account(data):
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    r = run("user", "passwd", "nobody@example.org", "--data-dir", data)
    assert_one_line_error(r, 1, "no account nobody@example.org", "carteiro user list")
    r = run("user", "delete", "nobody@example.org", "--yes", "--data-dir", data)
    assert_one_line_error(r, 1, "no account nobody@example.org")


def test_delete_needs_confirmation(data):
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    r = run("user", "delete", "alice@example.org", "--data-dir", data)
    assert_one_line_error(r, 2, "--yes")
    assert stored_hash(data, "alice@example.org") is not None


def test_data_dir_from_environment(data):
    env = {"CARTEIRO_DATA_DIR": str(data)}
    assert run("user", "add", "alice@example.org", env=env).returncode == 0
    assert run("user", "list", env=env).stdout == "alice@example.org\n"
    assert run("user", "list", "--data-dir", data).stdout == "alice@example.org\n"


def test_data_dir_from_config(data, tmp_path):
    config = tmp_path / "carteiro.toml"
    config.write_text('data_dir = "data"\n')
    assert run("user", "add", "alice@example.org", "--config", config).returncode == 0
    assert run("user", "list", "--data-dir", data).stdout == "alice@example.org\n"


# --- errors that need no store -------------------------------------------------------


@pytest.mark.parametrize("address", ["alice", "@example.org", "alice@", "a..b@example.org",
                                     "alice@exa mple.org", "alice@-x.org"])  # fmt: skip
def test_bad_address(tmp_path, address):
    r = run("user", "add", address, "--data-dir", tmp_path)
    assert_one_line_error(r, 2, "alice@example.org")
    assert not (tmp_path / "carteiro.db").exists()


def test_bad_password_on_stdin(tmp_path):
    r = run("user", "add", "a@example.org", "--password-stdin", "--data-dir", tmp_path)
    assert_one_line_error(r, 1, "no password on standard input")
    r = run("user", "add", "a@example.org", "--password-stdin", "--data-dir", tmp_path,
            stdin=b"\n")  # fmt: skip
    assert_one_line_error(r, 2, "password is empty")


def test_usage_errors_are_one_line(tmp_path):
    assert_one_line_error(run("user", "add"), 2, "ADDRESS", "--help")
    assert_one_line_error(run("user", "list", "--frobnicate"), 2, "--frobnicate")
    assert_one_line_error(run("nosuchcommand"), 2, "nosuchcommand")


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "serve" in r.stdout and "deliver" in r.stdout
    assert "quota" in r.stdout
    r = run("user", "add", "--help")
    assert r.returncode == 0 and "--password-stdin" in r.stdout and "--data-dir" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and "0.1.0" in r.stdout
    r = run()
    assert r.returncode == 2 and "Usage" in r.stderr


def test_no_database_yet(tmp_path):
    r = run("user", "list", "--data-dir", tmp_path / "empty")
    assert_one_line_error(r, 1, "no database", "--data-dir")
    assert not (tmp_path / "empty").exists()


def test_bad_config(tmp_path):
    config = tmp_path / "carteiro.toml"
    config.write_text("imap = [\n")
    r = run("user", "list", "--config", config, "--data-dir", tmp_path)
    assert_one_line_error(r, 1, "not valid TOML", str(config))
    r = run("user", "list", "--config", tmp_path / "missing.toml", "--data-dir", tmp_path)
    assert_one_line_error(r, 1, "does not exist")
    config.write_text('imaps = "everywhere"\n')
    r = run("serve", "--config", config, "--data-dir", tmp_path)
    assert_one_line_error(r, 1, "imaps:", "HOST:PORT")


def test_bad_listener_option(tmp_path):
    r = run("serve", "--imap", "1143", "--data-dir", tmp_path)
    assert_one_line_error(r, 1, "imap:", "HOST:PORT")
    r = run(
        "serve", "--imap", "off", "--imaps", "off", "--smtp", "off", "--submission", "off",
        "--submissions", "off", "--data-dir", tmp_path,
    )  # fmt: skip
    assert_one_line_error(r, 2, "every listener is off")


def test_data_dir_not_usable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = run("user", "add", "a@example.org", "--data-dir", blocker / "data")
    assert_one_line_error(r, 1, "cannot create data directory", "--data-dir")
    r = run("user", "add", "a@example.org", "--data-dir", blocker)
    assert_one_line_error(r, 2, "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_data_dir_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    r = run("user", "add", "a@example.org", "--data-dir", locked)
    assert_one_line_error(r, 1, "not writable")


def test_cert_command(tmp_path):
    r = run("cert", "--data-dir", tmp_path)
    assert r.returncode == 0, r
    assert f"certificate: {tmp_path / 'tls' / 'cert.pem'}" in r.stdout
    assert "self-signed: yes" in r.stdout
    first = r.stdout
    assert run("cert", "--data-dir", tmp_path).stdout == first


# --- deliver (needs the lead's carteiro.delivery) ------------------------------------


def test_deliver(data):
    pytest.importorskip("carteiro.delivery")
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    message = b"From: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    r = run("deliver", "alice@example.org", "--flag", "\\seen", "--flag", "$Label1",
            "--data-dir", data, stdin=message)  # fmt: skip
    assert r.returncode == 0, r

    async def inbox() -> tuple[list[object], bytes]:
        store = sqlite_store_class()(data / "carteiro.db")
        await store.open()
        try:
            account = await store.get_account("alice@example.org")
            box = await store.get_mailbox(account.id, "INBOX")
            records = await store.records(box.id, await store.uids(box.id))
            return records, await store.read_blob(records[0].blob_id)
        finally:
            await store.close()

    records, blob = asyncio.run(inbox())
    assert len(records) == 1
    assert records[0].flags == frozenset({"\\Seen", "$Label1"})  # type: ignore[attr-defined]
    assert blob == message

    r = run("deliver", "nobody@example.org", "--data-dir", data, stdin=message)
    assert_one_line_error(r, 1, "no account nobody@example.org")
    r = run("deliver", "alice@example.org", "--data-dir", data)
    assert_one_line_error(r, 2, "no message on standard input")
    r = run("deliver", "alice@example.org", "--flag", "\\Recent", "--data-dir", data,
            stdin=message)  # fmt: skip
    assert_one_line_error(r, 2, "\\Recent")


# --- quota ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "octets"),
    [
        ("1024", 1024), ("0", 0), ("500b", 500), ("1k", 1024), ("1KB", 1024),
        ("1KiB", 1024), ("2 MB", 2 * 1024**2), ("1.5GB", 3 * 1024**3 // 2),
        ("2gib", 2 * 1024**3), ("1TB", 1024**4), ("none", None), ("Unlimited", None),
    ],
)  # fmt: skip
def test_quota_size_syntax(text, octets):
    from carteiro.cli.main import parse_size

    assert parse_size(text) == octets


@pytest.mark.parametrize(
    ("octets", "text"),
    [(0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"), (1024, "1 KiB"),
     (1536, "1.5 KiB"), (2 * 1024**3, "2 GiB"), (5 * 1024**4, "5 TiB")],
)  # fmt: skip
def test_quota_human_sizes(octets, text):
    from carteiro.cli.main import human_size

    assert human_size(octets) == text


def show(data: Path, address: str) -> list[str]:
    r = run("quota", "show", address, "--data-dir", data)
    assert r.returncode == 0, r
    return r.stdout.splitlines()


def test_quota_set_show_and_deliver(data):
    pytest.importorskip("carteiro.delivery")
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    assert show(data, "alice@example.org") == [
        "account: alice@example.org",
        "storage: 0 bytes used, no limit",
        "messages: 0 used, no limit",
    ]
    r = run("quota", "set", "ALICE@example.org", "--storage", "2GB", "--messages", "100000",
            "--data-dir", data)  # fmt: skip
    assert r.returncode == 0, r
    assert r.stdout.splitlines()[0] == (
        "set the quota of alice@example.org: storage 2 GiB, messages 100000"
    )
    assert show(data, "alice@example.org")[1:] == [
        "storage: 0 bytes of 2 GiB (2147483648 octets), 0.0% used",
        "messages: 0 of 100000, 0.0% used",
    ]
    # a limit not given is kept; 'none' clears one
    r = run("quota", "set", "alice@example.org", "--messages", "none", "--data-dir", data)
    assert r.returncode == 0, r
    assert show(data, "alice@example.org")[1:] == [
        "storage: 0 bytes of 2 GiB (2147483648 octets), 0.0% used",
        "messages: 0 used, no limit",
    ]
    message = b"From: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    r = run("quota", "set", "alice@example.org", "--storage", str(len(message) + 10),
            "--data-dir", data)  # fmt: skip
    assert r.returncode == 0, r
    assert run("deliver", "alice@example.org", "--data-dir", data, stdin=message).returncode == 0
    assert show(data, "alice@example.org")[1:] == [
        f"storage: {len(message)} bytes of {len(message) + 10} bytes, "
        f"{len(message) * 100 / (len(message) + 10):.1f}% used",
        "messages: 1 used, no limit",
    ]
    r = run("deliver", "alice@example.org", "--data-dir", data, stdin=message)
    assert_one_line_error(r, 1, "not delivered to alice@example.org", "quota",
                          "carteiro quota set alice@example.org")  # fmt: skip
    assert show(data, "alice@example.org")[2] == "messages: 1 used, no limit"  # nothing stored
    # lowered below the usage: shown as such, nothing removed
    r = run("quota", "set", "alice@example.org", "--storage", "10", "--messages", "1",
            "--data-dir", data)  # fmt: skip
    assert r.returncode == 0, r
    assert show(data, "alice@example.org")[1:] == [
        f"storage: {len(message)} bytes of 10 bytes, over the limit",
        "messages: 1 of 1, full",
    ]
    r = run("quota", "set", "alice@example.org", "--storage", "unlimited", "--messages", "none",
            "--data-dir", data)  # fmt: skip
    assert r.returncode == 0, r
    assert show(data, "alice@example.org")[1:] == [
        f"storage: {len(message)} bytes used, no limit",
        "messages: 1 used, no limit",
    ]


def test_quota_errors(data):
    assert run("user", "add", "alice@example.org", "--data-dir", data).returncode == 0
    r = run("quota", "set", "alice@example.org", "--storage", "2XB", "--data-dir", data)
    assert_one_line_error(r, 2, "'2XB' is not a size", "1 KB = 1024", "none")
    r = run("quota", "set", "alice@example.org", "--storage", "-5", "--data-dir", data)
    assert_one_line_error(r, 2, "is not a size")
    r = run("quota", "set", "alice@example.org", "--storage", "9000000TB", "--data-dir", data)
    assert_one_line_error(r, 2, "too large")
    r = run("quota", "set", "alice@example.org", "--messages", "1e5", "--data-dir", data)
    assert_one_line_error(r, 2, "'1e5' is not a number of messages")
    r = run("quota", "set", "alice@example.org", "--data-dir", data)
    assert_one_line_error(r, 2, "nothing to set", "--storage", "--messages")
    r = run("quota", "set", "nobody@example.org", "--messages", "5", "--data-dir", data)
    assert_one_line_error(r, 1, "no account nobody@example.org", "carteiro user list")
    r = run("quota", "show", "nobody@example.org", "--data-dir", data)
    assert_one_line_error(r, 1, "no account nobody@example.org")
    r = run("quota", "show", "not-an-address", "--data-dir", data)
    assert_one_line_error(r, 2, "alice@example.org")
    assert_one_line_error(run("quota", "frob"), 2, "frob")
    r = run("quota", "show", "alice@example.org", "--data-dir", data / "nowhere")
    assert_one_line_error(r, 1, "no database")
    assert show(data, "alice@example.org")[1:] == [
        "storage: 0 bytes used, no limit",
        "messages: 0 used, no limit",
    ]


# --- serve (needs the lead's carteiro.app) -------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def greeting(port: int, tls: ssl.SSLContext | None, proc: subprocess.Popen[bytes]) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                if tls is None:
                    return raw.recv(1000)
                with tls.wrap_socket(raw, server_hostname="localhost") as conn:
                    return conn.recv(1000)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_serve(data):
    pytest.importorskip("carteiro.app")
    imap, imaps = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARTEIRO_")}
    proc = subprocess.Popen(
        [*CLI, "serve", "--data-dir", str(data),
         "--imap", f"127.0.0.1:{imap}", "--imaps", f"127.0.0.1:{imaps}",
         "--smtp", "off", "--submission", "off", "--submissions", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ,
    )  # fmt: skip
    try:
        assert greeting(imap, None, proc).startswith(b"* OK")
        cafile = data / "tls" / "cert.pem"
        tls = ssl.create_default_context(cafile=str(cafile))
        assert greeting(imaps, tls, proc).startswith(b"* OK")
        # SIGHUP reloads the certificate (a renewal) and the server carries on
        proc.send_signal(signal.SIGHUP)
        assert greeting(imaps, tls, proc).startswith(b"* OK")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert str(data / "tls" / "cert.pem") in err.decode()
    assert "TLS certificate reloaded" in err.decode()
