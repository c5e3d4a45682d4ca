"""Subprocess for test_store_crash: writes through a store as fast as it can and prints
every acknowledged operation, one line each, flushed, until it is killed.

    A <uid> <sha256>   append acknowledged
    F <uid>            \\Flagged added
    D <uid>            \\Deleted added
    E <uid>            expunged
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import random
import sys

from store_support import make_store

from carteiro.store.interface import NewMessage

ADDRESS = "crash@example.org"


async def main(kind: str, location: str, workers: int) -> None:
    store = make_store(kind, location)
    await store.open()
    account = await store.get_account(ADDRESS)
    if account is None:
        account = await store.create_account(ADDRESS, "h")
    inbox = await store.get_mailbox(account.id, "INBOX")
    assert inbox is not None
    box = inbox.id
    print("READY", flush=True)

    async def worker(seed: int) -> None:
        rnd = random.Random(seed)
        mine: list[int] = []
        while True:
            data = b"Subject: crash\r\n\r\n" + os.urandom(rnd.randint(200, 6000))
            if mine and rnd.random() < 0.1:
                data = b"Subject: dup\r\n\r\nsame content in many messages\r\n"
            message = NewMessage(data, b"meta", frozenset(), datetime.datetime.now(datetime.UTC))
            (uid,) = (await store.append(box, [message])).dest_uids
            print(f"A {uid} {hashlib.sha256(data).hexdigest()}", flush=True)
            mine.append(uid)
            roll = rnd.random()
            if roll < 0.3:
                target = rnd.choice(mine)
                await store.store_flags(box, [target], "+", frozenset({"\\Flagged"}))
                print(f"F {target}", flush=True)
            elif roll < 0.5:
                target = mine.pop(rnd.randrange(len(mine)))
                await store.store_flags(box, [target], "+", frozenset({"\\Deleted"}))
                print(f"D {target}", flush=True)
                await store.expunge(box, [target])
                print(f"E {target}", flush=True)

    await asyncio.gather(*(worker(os.getpid() * 100 + i) for i in range(workers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
