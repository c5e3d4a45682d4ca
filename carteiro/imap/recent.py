"""Who sees ``\\Recent`` (RFC 3501 §2.3.2): the first session to learn of a message.

Every read-write SELECT, and every session that notices new mail, claims the messages
up to the newest UID it has seen. The store keeps the claim (``claim_recent``), but
waiting for a write there on every SELECT and after every APPEND costs a commit and a
trip through the writer thread in the middle of the command. The sessions of one
process share the event loop, so this process decides claims here, in memory and
without a yield between reading and moving the marker; the store learns the new marker
in the background, a batch at a time.

Saves are coalesced: the first claim after a save starts a timer of SAVE_DELAY, and
every claim made meanwhile goes out in the same batch. Without this, each APPEND to a
selected mailbox (the session claims what it appended) cost a second commit of its own,
and under load half the writer's batches were these markers. Whoever needs the store's
count now (``settled``, ``flush``) cuts the wait short.

The store still decides the first claim of each mailbox after a start, so claims made
before a restart hold. What a crash can lose is the last unsaved marker: a few messages
may then be \\Recent once more, which is harmless. (Several processes sharing one store
would each need the store's claim every time: this assumes one server process per
store, as the embedded SQLite store does.)
"""

from __future__ import annotations

import asyncio
import logging

from carteiro.store.errors import NotFound
from carteiro.store.interface import Store

log = logging.getLogger(__name__)

#: mailboxes whose marker is remembered; beyond this the oldest are forgotten (their
#: next claim asks the store again)
MAX_MAILBOXES = 100_000
#: how long claims gather before they are written together (what a crash can lose)
SAVE_DELAY = 0.5


class RecentClaims:
    def __init__(self, store: Store, save_delay: float = SAVE_DELAY) -> None:
        self._store = store
        self._save_delay = save_delay
        #: set to write the pending claims now instead of at the end of the delay
        self._hurry = asyncio.Event()
        #: mailbox -> the first UID no session of this process has claimed
        self._marker: dict[int, int] = {}
        #: mailbox -> highest UID claimed here and not yet written to the store
        self._pending: dict[int, int] = {}
        self._writing: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    async def claim(self, mailbox_id: int, newest_uid: int) -> int | None:
        """Claims the messages up to ``newest_uid`` for the calling session; returns the
        first UID that is \\Recent for it, or None when none is."""
        marker = self._marker.get(mailbox_id)
        if marker is None:
            # the first claim here since the start: the store's marker decides
            first = await self._store.claim_recent(mailbox_id, newest_uid)
            # another session of this process may have claimed more meanwhile (or before
            # this mailbox was forgotten, with the claim still unsaved)
            first = max(
                first, self._marker.get(mailbox_id, first), self._pending.get(mailbox_id, 0) + 1
            )
            self._remember(mailbox_id, max(first, newest_uid + 1))
            return first if first <= newest_uid else None
        if marker > newest_uid:
            return None
        self._remember(mailbox_id, newest_uid + 1)
        self._pending[mailbox_id] = max(self._pending.get(mailbox_id, 0), newest_uid)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._save())
        return marker

    def _remember(self, mailbox_id: int, marker: int) -> None:
        if mailbox_id not in self._marker and len(self._marker) >= MAX_MAILBOXES:
            del self._marker[next(iter(self._marker))]
        self._marker[mailbox_id] = max(marker, self._marker.get(mailbox_id, 0))

    async def settled(self, mailbox_id: int) -> None:
        """Returns once the store holds every claim made here on ``mailbox_id``: its
        count of recent messages (STATUS, EXAMINE) is then exact."""
        while self._task is not None and (
            mailbox_id in self._pending or mailbox_id in self._writing
        ):
            self._hurry.set()
            await asyncio.shield(self._task)

    async def flush(self) -> None:
        """Writes every pending claim (at shutdown)."""
        while self._task is not None:
            self._hurry.set()
            await asyncio.shield(self._task)

    async def _save(self) -> None:
        try:
            if not self._hurry.is_set():
                try:
                    async with asyncio.timeout(self._save_delay):
                        await self._hurry.wait()
                except TimeoutError:
                    pass
            self._hurry.clear()
            while self._pending:
                batch, self._pending = self._pending, {}
                self._writing = set(batch)
                # all at once: the store's writer commits them together
                results = await asyncio.gather(
                    *(self._store.claim_recent(m, upto) for m, upto in batch.items()),
                    return_exceptions=True,
                )
                for mailbox_id, result in zip(batch, results, strict=True):
                    if isinstance(result, NotFound):
                        self._marker.pop(mailbox_id, None)  # deleted meanwhile
                    elif isinstance(result, BaseException):
                        log.error("could not save the \\Recent marker: %s", result)
        finally:
            self._writing = set()
            self._task = None
