"""Evaluation of SEARCH keys over the selected mailbox (RFC 9051 §6.4.4).

Three-valued: a first pass over the records (flags, sizes, dates, numbers) answers True,
False or "unknown"; only messages still unknown have their metadata and bodies loaded
for HEADER/BODY/TEXT/SENT* keys. ``NOT BODY x`` over a mailbox where a flag already
decides most messages thus reads few bodies.
"""

from __future__ import annotations

import datetime
from bisect import bisect_left
from collections.abc import Callable

from carteiro.imap.protocol import search_keys as k
from carteiro.imap.selected import SelectedMailbox
from carteiro.message.meta import MessageMeta
from carteiro.message.search import body_text, header_text, header_values
from carteiro.store.interface import MessageRecord, ObjectInfo

Tri = bool | None


class Content:
    """Lazily decoded content of one message."""

    def __init__(self, raw: bytes, meta: MessageMeta) -> None:
        self.raw = raw
        self.meta = meta
        self._body: str | None = None
        self._header: str | None = None

    def body(self) -> str:
        if self._body is None:
            self._body = body_text(self.raw, self.meta).casefold()
        return self._body

    def header(self) -> str:
        if self._header is None:
            self._header = header_text(self.raw, self.meta).casefold()
        return self._header


def _any(key: k.SearchKey, leaf: Callable[[k.SearchKey], bool]) -> bool:
    """Whether ``leaf`` holds for any key in the tree (NOT/OR/AND walked)."""
    if isinstance(key, k.Not):
        return _any(key.key, leaf)
    if isinstance(key, k.Or):
        return _any(key.left, leaf) or _any(key.right, leaf)
    if isinstance(key, k.And):
        return any(_any(x, leaf) for x in key.keys)
    return leaf(key)


def needs_content(key: k.SearchKey) -> bool:
    """HEADER/BODY/TEXT and SENT* keys need the message itself."""
    return _any(
        key,
        lambda x: isinstance(x, (k.HeaderKey, k.TextKey)) or (isinstance(x, k.DateKey) and x.sent),
    )


def needs_info(key: k.SearchKey) -> bool:
    """Whether the key needs :class:`ObjectInfo` (EMAILID/THREADID, SAVED* dates)."""
    return _any(key, lambda x: isinstance(x, (k.ObjectIdKey, k.SaveDateKey)))


def uses_modseq(key: k.SearchKey) -> bool:
    """Whether the key has a MODSEQ criterion (RFC 7162 §3.1.5: the reply then carries
    the highest modseq of the matching messages)."""
    return _any(key, lambda x: isinstance(x, k.ModSeqKey))


def _date_cmp(op: str, value: datetime.date, target: datetime.date) -> bool:
    if op == "BEFORE":
        return value < target
    if op == "ON":
        return value == target
    return value >= target


def evaluate(
    key: k.SearchKey,
    rec: MessageRecord,
    msn: int,
    sel: SelectedMailbox,
    content: Content | None,
    info: ObjectInfo | None = None,
    now: float = 0.0,
) -> Tri:
    """True/False, or None when ``content`` is needed but not given. ``info`` must be
    given for the keys :func:`needs_info` names; ``now`` (epoch seconds) for WITHIN."""
    if isinstance(key, k.All):
        return True
    if isinstance(key, k.WithinKey):
        age = now - rec.internal_date.timestamp()
        return age > key.seconds if key.older else age <= key.seconds
    if isinstance(key, k.ObjectIdKey):
        if info is None:
            return False
        return (info.email_id if key.kind == "EMAILID" else info.thread_id) == key.value
    if isinstance(key, k.SaveDateKey):
        if key.op is None or key.date is None:
            return True  # SAVEDATESUPPORTED: every mailbox here keeps save dates
        saved = info.save_date if info is not None else None
        day = saved.astimezone().date() if saved is not None else rec.internal_date.date()
        return _date_cmp(key.op, day, key.date)
    if isinstance(key, k.FlagKey):
        if key.flag == "\\Recent":
            has = rec.uid in sel.recent
        elif key.flag.startswith("\\"):
            has = key.flag in rec.flags
        else:
            want = key.flag.casefold()
            has = any(f.casefold() == want for f in rec.flags)
        return has == key.present
    if isinstance(key, k.SizeKey):
        return rec.size > key.size if key.larger else rec.size < key.size
    if isinstance(key, k.SeqKey):
        if key.seqs.saved:
            kept = sel.saved_uids  # ascending
            i = bisect_left(kept, rec.uid)
            return i < len(kept) and kept[i] == rec.uid
        if key.uid:
            return key.seqs.contains(rec.uid, sel.max_uid)
        return key.seqs.contains(msn, sel.exists)
    if isinstance(key, k.ModSeqKey):
        return rec.modseq >= key.modseq
    if isinstance(key, k.DateKey):
        if not key.sent:
            return _date_cmp(key.op, rec.internal_date.date(), key.date)
        if content is None:
            return None
        sent = content.meta.sent_date
        return sent is not None and _date_cmp(key.op, sent, key.date)
    if isinstance(key, k.HeaderKey):
        if content is None:
            return None
        values = header_values(content.raw, content.meta, key.field)
        needle = key.value.casefold()
        return any(needle in v.casefold() for v in values)
    if isinstance(key, k.TextKey):
        if content is None:
            return None
        needle = key.value.casefold()
        if needle in content.body():
            return True
        return key.where == "TEXT" and needle in content.header()
    if isinstance(key, k.Not):
        inner = evaluate(key.key, rec, msn, sel, content, info, now)
        return None if inner is None else not inner
    if isinstance(key, k.Or):
        left = evaluate(key.left, rec, msn, sel, content, info, now)
        if left is True:
            return True
        right = evaluate(key.right, rec, msn, sel, content, info, now)
        if right is True:
            return True
        return None if left is None or right is None else False
    if isinstance(key, k.And):
        unknown = False
        for sub in key.keys:
            r = evaluate(sub, rec, msn, sel, content, info, now)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True
    raise TypeError(f"unknown search key {key!r}")
