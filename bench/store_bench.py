"""Store benchmark: prints figures for the SQLite backend.

    .venv/bin/python bench/store_bench.py [--dir DIR]

Targets: append 10,000 x 5 KB from 10 coroutines >= 2,000 msg/s; on 100,000 messages:
uids() < 60 ms, records_range in chunks < 500 ms, mailbox_status < 20 ms,
changes_since with few changes < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from carteiro.store.interface import NewMessage
from carteiro.store.sqlite import SqliteStore

NOW = datetime.datetime.now(datetime.UTC)


def message(size: int) -> NewMessage:
    data = b"Subject: bench\r\n\r\n" + os.urandom(size // 2).hex().encode()[:size]
    return NewMessage(data, b"meta" * 20, frozenset(), NOW)


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int = 7) -> float:
    """Median wall time in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def bench(directory: Path) -> None:
    store = SqliteStore(directory / "bench.sqlite")
    await store.open()
    acc = await store.create_account("bench@example.org", "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    big = await store.create_mailbox(acc.id, "Big")
    assert inbox is not None

    # 1. concurrent appends, one message per call, as SMTP/LMTP deliveries would
    per_worker, workers = 1000, 10
    payloads = [[message(5000) for _ in range(per_worker)] for _ in range(workers)]

    async def deliver(mine: list[NewMessage]) -> None:
        for m in mine:
            await store.append(inbox.id, [m])

    commits0, ops0 = store.writer_stats
    t0 = time.perf_counter()
    await asyncio.gather(*(deliver(p) for p in payloads))
    elapsed = time.perf_counter() - t0
    commits, ops = store.writer_stats
    n = per_worker * workers
    print(f"append {n} x 5 KB, {workers} coroutines: {n / elapsed:,.0f} msg/s "
          f"({elapsed:.2f} s, {(ops - ops0) / (commits - commits0):.1f} ops/commit)")  # fmt: skip

    # 2. a 100,000-message mailbox (small messages, MULTIAPPEND batches)
    t0 = time.perf_counter()
    for _ in range(100):
        await store.append(big.id, [message(300) for _ in range(1000)])
    print(f"fill 100,000 x 300 B in batches of 1000: {time.perf_counter() - t0:.2f} s")
    await store.store_flags(big.id, list(range(1, 50_001)), "+", frozenset({"\\Seen"}))

    ms = await timed(lambda: store.uids(big.id))
    print(f"uids() on 100,000: {ms:.1f} ms")

    async def scan() -> None:
        first, total = 1, 0
        while True:
            part = await store.records_range(big.id, first, 2**32 - 1, 1000)
            total += len(part)
            if len(part) < 1000:
                break
            first = part[-1].uid + 1
        assert total == 100_000

    ms = await timed(scan, repeat=3)
    print(f"records_range over 100,000 in chunks of 1000: {ms:.1f} ms")
    ms = await timed(lambda: store.mailbox_status(big.id))
    print(f"mailbox_status on 100,000: {ms:.2f} ms")
    before = (await store.mailbox_status(big.id)).highest_modseq
    await store.store_flags(big.id, [7, 70_000, 99_999], "+", frozenset({"\\Flagged"}))
    ms = await timed(lambda: store.changes_since(big.id, before))
    print(f"changes_since with 3 changes on 100,000: {ms:.2f} ms")

    t0 = time.perf_counter()
    await store.store_flags(big.id, list(range(1, 100_001)), "+", frozenset({"\\Deleted"}))
    print(f"store_flags 1:* +\\Deleted on 100,000: {(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    gone = await store.expunge(big.id)
    print(f"expunge of {len(gone):,}: {(time.perf_counter() - t0) * 1000:.0f} ms")
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, help="directory for the database (default: temp)")
    args = parser.parse_args()
    if args.dir:
        asyncio.run(bench(args.dir))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench(Path(tmp)))


if __name__ == "__main__":
    main()
