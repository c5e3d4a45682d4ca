"""``carteiro queue list|flush|delete``: the real command in a subprocess over a real store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carteiro.store.interface import RecipientUpdate
from carteiro.store.sqlite import SqliteStore

CLI = [sys.executable, "-c", "from carteiro.cli.main import main; main()"]
MESSAGE = b"From: a@local.test\r\nSubject: hi\r\n\r\nbody\r\n"


def run(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARTEIRO_")}
    proc = subprocess.run(
        [*CLI, *map(str, args)], input=stdin, capture_output=True, env=environ, timeout=60
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result
    assert result.stderr.startswith("carteiro: error: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fragment in result.stderr, result.stderr


def in_store(data: Path, fn):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        store = SqliteStore(data / "carteiro.db")
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)

    async def create(store: SqliteStore) -> None:
        pass

    in_store(path, create)
    return path


def test_list_empty(data):
    r = run("queue", "list", "--data-dir", data)
    assert r.returncode == 0, r
    assert r.stdout == "queue is empty\n"


def test_list_shows_messages_and_recipients(data):
    now = time.time()

    async def seed(store: SqliteStore) -> tuple[int, int]:
        first = await store.enqueue(
            "alice@local.test", ["bob@example.org", "carol@example.org"], MESSAGE,
            account="alice@local.test", now=now - 7300,
        )  # fmt: skip
        second = await store.enqueue("", ["dave@example.net"], MESSAGE * 100, now=now)
        msg = await store.queue_get(first)
        assert msg is not None
        bob = msg.recipients[0]
        await store.queue_update(
            [RecipientUpdate(bob.id, "queued", 3, now + 1830, "451 4.2.0 mailbox\r\n busy", False)]
        )
        return first, second

    first, second = in_store(data, seed)
    r = run("queue", "list", "--data-dir", data)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{first}  age 2h 1m  ")
    assert "from <alice@local.test>  (account alice@local.test)" in lines[0]
    assert lines[1].startswith("    <bob@example.org>  queued, 3 attempts, next in 30m")
    assert lines[2] == "        last error: 451 4.2.0 mailbox busy"
    assert lines[3] == "    <carol@example.org>  queued, 0 attempts, next now"
    assert lines[4].startswith(f"{second}  age 0s  ")
    assert "KiB" in lines[4] and "from <> (a bounce)" in lines[4]
    assert lines[5] == "    <dave@example.net>  queued, 0 attempts, next now"
    assert len(lines) == 6


def test_flush(data):
    later = time.time() + 3600

    async def seed(store: SqliteStore) -> list[int]:
        ids = [await store.enqueue("a@local.test", ["x@example.org"], MESSAGE) for _ in range(2)]
        for qid in ids:
            msg = await store.queue_get(qid)
            assert msg is not None
            r = msg.recipients[0]
            await store.queue_update([RecipientUpdate(r.id, "queued", 1, later, "451", False)])
        return ids

    ids = in_store(data, seed)

    async def due(store: SqliteStore) -> list[bool]:
        return [m.recipients[0].next_attempt <= time.time() for m in await store.queue_list()]

    r = run("queue", "flush", str(ids[0]), "--data-dir", data)
    assert r.returncode == 0, r
    assert r.stdout.startswith("1 recipient due now")
    assert in_store(data, due) == [True, False]
    r = run("queue", "flush", "--data-dir", data)
    assert r.returncode == 0, r
    assert r.stdout.startswith("2 recipients due now")
    assert in_store(data, due) == [True, True]
    one_line_error(run("queue", "flush", "999", "--data-dir", data), 1, "no queued message 999")


def test_delete(data):
    async def seed(store: SqliteStore) -> int:
        return await store.enqueue("a@local.test", ["x@example.org"], MESSAGE)

    qid = in_store(data, seed)
    r = run("queue", "delete", str(qid), "--data-dir", data)
    one_line_error(r, 2, "add --yes")
    r = run("queue", "delete", str(qid), "--yes", "--data-dir", data)
    assert r.returncode == 0, r
    assert r.stdout == f"deleted queued message {qid}\n"

    async def listing(store: SqliteStore) -> list[object]:
        return list(await store.queue_list())

    assert in_store(data, listing) == []
    one_line_error(
        run("queue", "delete", str(qid), "--yes", "--data-dir", data), 1, f"no queued message {qid}"
    )


def test_usage_errors(tmp_path, data):
    r = run("queue", "delete", "--yes", "--data-dir", data)
    assert r.returncode == 2 and "Missing argument" in r.stderr
    r = run("queue", "flush", "abc", "--data-dir", data)
    assert r.returncode == 2 and "not a valid integer" in r.stderr
    one_line_error(run("queue", "list", "--data-dir", tmp_path / "none"), 1, "no database")
    r = run("queue", "--help")
    assert r.returncode == 0 and "list" in r.stdout and "flush" in r.stdout
