"""Durability: SIGKILL a writer mid-traffic, reopen, and find every acknowledged change."""

from __future__ import annotations

import hashlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from store_support import Backend, blob_count, recount

from carteiro.store.interface import Store

SCRIPT = Path(__file__).with_name("crash_writer.py")
ROUNDS = 4


def run_and_kill(backend: Backend, acks_before_kill: int, log: Path) -> list[str]:
    """Runs the writer until it acknowledged ``acks_before_kill`` appends (plus a random
    moment), SIGKILLs it and returns every line it printed."""
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), backend.kind, backend.location, "8"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=SCRIPT.parent,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    buffer = b""
    appends = 0
    deadline = time.monotonic() + 20
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    kill_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                break
            if now > deadline:
                pytest.fail("crash writer made no progress: " + log.read_text()[-2000:])
            if not sel.select(timeout=0.01):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail("crash writer died: " + log.read_text()[-2000:])
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode()
                lines.append(line)
                if line.startswith("A ") and kill_at is None:
                    appends += 1
                    if appends >= acks_before_kill:
                        kill_at = time.monotonic() + random.uniform(0, 0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        sel.close()
    # whatever was printed before death was acknowledged; a torn last line was not
    buffer += rest
    *complete, _torn = buffer.split(b"\n")
    lines.extend(raw.decode() for raw in complete)
    return lines


async def verify(store: Store, lines: list[str], previous_max_uid: int) -> int:
    account = await store.get_account("crash@example.org")
    assert account is not None
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    appended: dict[int, str] = {}
    flagged: set[int] = set()
    deleted: set[int] = set()
    expunged: set[int] = set()
    for line in lines:
        kind, *rest = line.split()
        if kind == "A":
            appended[int(rest[0])] = rest[1]
        elif kind == "F":
            flagged.add(int(rest[0]))
        elif kind == "D":
            deleted.add(int(rest[0]))
        elif kind == "E":
            expunged.add(int(rest[0]))
    assert appended, "no acknowledged appends"
    assert min(appended) > previous_max_uid  # UIDs never reused across crashes
    records = {r.uid: r for r in await store.records(inbox.id, sorted(appended))}
    for uid, digest in appended.items():
        if uid in expunged:
            assert uid not in records, f"acknowledged expunge of {uid} lost"
            continue
        if uid not in records:
            assert uid in deleted, f"acknowledged append of {uid} lost"
            continue  # the expunge committed but was not acknowledged
        record = records[uid]
        data = await store.read_blob(record.blob_id)
        assert hashlib.sha256(data).hexdigest() == digest
        assert record.size == len(data)
        if uid in flagged:
            assert "\\Flagged" in record.flags
        if uid in deleted:
            assert "\\Deleted" in record.flags
    await recount(store, inbox.id)  # counters vs rows, and the backend's self-check
    assert await blob_count(store) is None or await blob_count(store) <= len(
        await store.uids(inbox.id)
    )
    return max(appended)


async def reopen_and_verify(backend: Backend, lines: list[str], previous_max_uid: int) -> int:
    reopened = await backend.open()
    try:
        return await verify(reopened, lines, previous_max_uid)
    finally:
        await reopened.close()


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_change(
    backend: Backend, store: Store, run: Callable[[Awaitable[Any]], Any], tmp_path: Path
) -> None:
    run(store.close())  # the subprocess owns the data while it runs
    max_uid = 0
    for round_ in range(ROUNDS):
        lines = run_and_kill(backend, 60 + 40 * round_, tmp_path / f"writer{round_}.log")
        max_uid = run(reopen_and_verify(backend, lines, max_uid))
    run(store.open())
