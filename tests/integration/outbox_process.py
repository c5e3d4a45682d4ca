"""Runs an :class:`carteiro.smtp.queue.Outbox` over a data directory until SIGTERM (or until
the queue is empty with ``--until-empty``): the crash test SIGKILLs it mid-work.

Usage: python -m tests.integration.outbox_process DB DNS_PORT SMTP_PORT LEASE RETRY_FIRST
[--until-empty]. Prints "ready" once the runner has started.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from pathlib import Path

from carteiro.smtp.dns import Resolver
from carteiro.smtp.queue import Outbox, QueueConfig
from carteiro.store.sqlite import SqliteStore


async def main(argv: list[str]) -> None:
    db, dns_port, smtp_port, lease, retry_first = argv[:5]
    until_empty = "--until-empty" in argv
    store = SqliteStore(Path(db))
    await store.open()
    config = QueueConfig(
        port=int(smtp_port),
        lease=float(lease),
        retry_first=float(retry_first),
        retry_max=float(retry_first),
        poll_interval=0.05,
        connect_timeout=5,
        command_timeout=5,
    )
    outbox = Outbox(store, Resolver([("127.0.0.1", int(dns_port))], timeout=2), config, "out.test")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await outbox.start()
    print("ready", flush=True)
    try:
        for _ in range(2000):  # bounded: 100 s at most
            if stop.is_set() or (until_empty and not await store.queue_list()):
                break
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass
    finally:
        await outbox.stop()
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stack dump when a test hangs
    asyncio.run(main(sys.argv[1:]))
