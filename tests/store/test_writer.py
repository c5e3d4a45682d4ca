"""The SQLite writer thread: group commit, and a failing operation undone alone,
whether it ran by itself or in a batch with others, and never announced."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from carteiro.store.sqlite.writer import Events, Writer


class Boom(Exception):
    pass


def _insert(value: int, fail: bool = False, pause: float = 0.0):  # type: ignore[no-untyped-def]
    def op(conn: sqlite3.Connection, events: Events) -> int:
        if pause:
            time.sleep(pause)  # holds the writer so that what follows is batched
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (value INTEGER)")
        conn.execute("INSERT INTO scratch VALUES (?)", (value,))
        events.add((value, None))
        if fail:
            raise Boom(value)
        return value

    return op


def _values(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return sorted(v for (v,) in conn.execute("SELECT value FROM scratch"))
    finally:
        conn.close()


def test_failures_are_undone_alone_with_and_without_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    posted: list[set[tuple[int, int | None]]] = []

    async def run() -> None:
        writer = Writer(path, lambda events: posted.append(set(events)))
        await asyncio.to_thread(writer.start)
        try:
            assert await writer.submit(_insert(1)) == 1
            with pytest.raises(Boom):  # by itself: the transaction is rolled back
                await writer.submit(_insert(2, fail=True))
            batches = writer.batches
            first = asyncio.ensure_future(writer.submit(_insert(3, pause=0.3)))
            await asyncio.sleep(0.1)  # the writer is inside operation 3: the rest queue up
            results = await asyncio.gather(
                writer.submit(_insert(4)),
                writer.submit(_insert(5, fail=True)),
                writer.submit(_insert(6)),
                return_exceptions=True,
            )
            assert await first == 3
            assert results[0] == 4 and results[2] == 6 and isinstance(results[1], Boom)
            assert writer.batches - batches == 2  # 3 alone, then 4, 5 and 6 together
            assert await writer.submit(_insert(7)) == 7
        finally:
            await asyncio.to_thread(writer.stop)

    asyncio.run(run())
    assert _values(path) == [1, 3, 4, 6, 7]
    seen = set().union(*posted)
    assert {(1, None), (3, None), (4, None), (6, None), (7, None)} <= seen
    assert (2, None) not in seen and (5, None) not in seen  # failed: nothing announced


def _tune(monkeypatch: pytest.MonkeyPatch, **knobs: float) -> None:
    """Small values for the writer's checkpoint settings, so a test sees them act."""
    from carteiro.store.sqlite import writer as writer_module

    for name, value in knobs.items():
        monkeypatch.setattr(writer_module, name, value)


def _size(path: Path) -> int:
    return path.stat().st_size


def test_wal_stays_bounded_while_readers_never_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under steady writes with a reader always inside a read transaction, passive
    checkpoints copy the log into the database but the log never starts over: on a busy
    server it grew by gigabytes (2.7 GB in 2.5 minutes of the mixed benchmark). Past its
    high-water mark the writer waits briefly for a moment without readers, so the next
    commit starts the log from the beginning and it is cut back to its size limit."""
    _tune(
        monkeypatch,
        CHECKPOINT_INTERVAL=0.02,
        WAL_HIGH_WATER_FRAMES=64,  # 256 KiB
        RESTART_BACKOFF=0.02,
        RESTART_BACKOFF_MAX=0.04,
    )
    path = tmp_path / "wal.sqlite"
    wal = Path(f"{path}-wal")
    blob = bytes(range(256)) * 256  # 64 KiB: 16 pages or more per commit

    def op(conn: sqlite3.Connection, events: Events) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS big (data BLOB)")
        conn.execute("INSERT INTO big VALUES (?)", (blob,))
        conn.execute("DELETE FROM big WHERE rowid < (SELECT max(rowid) - 4 FROM big)")

    stop = threading.Event()

    def read_forever() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN")
                with contextlib.suppress(sqlite3.OperationalError):  # no table yet
                    conn.execute("SELECT count(*) FROM big").fetchone()
                time.sleep(0.002)  # holding a snapshot, as a long FETCH does
                conn.execute("COMMIT")
        finally:
            conn.close()

    async def run() -> tuple[int, int]:
        writer = Writer(path, lambda events: None)
        writer.start()
        readers = [threading.Thread(target=read_forever) for _ in range(2)]
        for t in readers:
            t.start()
        largest = 0
        try:
            for _ in range(400):
                await writer.submit(op)
                largest = max(largest, _size(wal))
                # a steady stream, not a burst: flat out (a commit every ~0.7 ms) the log
                # grows by ~8 MiB in one back-off after a refused restart, and two
                # refusals in a row (timing on a busy machine) decide the outcome
                await asyncio.sleep(0.002)
        finally:
            stop.set()
            for t in readers:
                t.join()
            writer.stop()
        return largest, writer.restarts

    largest, restarts = asyncio.run(run())
    # unbounded, 400 such commits make a 53 MiB log; bounded it stayed at 1-5 MiB
    assert largest < 16 * 1024 * 1024, f"WAL grew to {largest / 1048576:.1f} MiB"
    assert restarts > 0


def test_a_long_read_is_not_made_to_hold_commits_back_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that stays in the log for long (a big FETCH) makes each RESTART wait its
    whole RESTART_WAIT_MS, holding commits back: after a refused one the next waits
    for a back-off that doubles, instead of coming at every checkpoint."""
    _tune(
        monkeypatch,
        CHECKPOINT_INTERVAL=0.02,
        WAL_HIGH_WATER_FRAMES=8,
        RESTART_WAIT_MS=20,
        RESTART_BACKOFF=0.2,
        RESTART_BACKOFF_MAX=1.0,
    )
    path = tmp_path / "long.sqlite"
    blob = bytes(64 * 1024)

    def op(conn: sqlite3.Connection, events: Events) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS big (data BLOB)")
        conn.execute("INSERT INTO big VALUES (?)", (blob,))

    reading = threading.Event()
    done = threading.Event()

    def long_read() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM big").fetchone()  # a snapshot in the log
            reading.set()
            done.wait(10)
            conn.execute("COMMIT")
        finally:
            conn.close()

    async def run() -> tuple[int, int]:
        writer = Writer(path, lambda events: None)
        writer.start()
        try:
            await writer.submit(op)
            reader = threading.Thread(target=long_read)
            reader.start()
            assert await asyncio.to_thread(reading.wait, 10)
            commits = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                await writer.submit(op)
                commits += 1
            done.set()
            reader.join()
            return writer.restarts_refused, commits
        finally:
            done.set()
            writer.stop()

    refused, commits = asyncio.run(run())
    # at every checkpoint it would be ~35 refusals in 1.5 s; backing off 0.2, 0.4, 0.8 s:
    assert 1 <= refused <= 6, refused
    assert commits > 50  # commits went on meanwhile
