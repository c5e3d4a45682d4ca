"""Serialised FETCH responses kept for reuse, shared by every session of one server.

A client that resynchronises without CONDSTORE asks ``FETCH 1:* (FLAGS)`` on every
SELECT; on a big mailbox that is the most expensive thing it does, and the answer only
changes when the mailbox does. Entries are keyed by the mailbox's HIGHESTMODSEQ, which
every change (flags, new mail, expunge) raises, together with everything else the bytes
depend on (the items asked for, UID or not, UIDONLY, the message count and top UID of
the session's view): a key can only ever match identical bytes, so nothing is ever
invalidated, only evicted (least recently used first, within a byte budget).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: responses smaller than this are cheaper to render than to keep
MIN_MESSAGES = 1000


class ResponseCache:
    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        data = self._entries.get(key)
        if data is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return data

    def put(self, key: Hashable, data: bytes) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        if len(data) > self.max_bytes // 4:
            return  # one answer may not crowd out all others
        self._entries[key] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._bytes
