"""Evaluation of SEARCH keys over the selected mailbox (RFC 9051 §6.4.4).

Three-valued: a first pass over the records (flags, sizes, dates, numbers) answers True,
False or "unknown"; only messages still unknown have their metadata and bodies loaded
for HEADER/BODY/TEXT/SENT* keys. ``NOT BODY x`` over a mailbox where a flag already
decides most messages thus reads few bodies. With the store's full-text index
(:class:`TextIndex`) the first pass also decides TEXT/BODY for every indexed message,
so only content not indexed yet is read.
"""

from __future__ import annotations

import datetime
from bisect import bisect_left
from collections.abc import Callable

from carteiro.imap.protocol import search_keys as k
from carteiro.imap.selected import SelectedMailbox
from carteiro.message.meta import MessageMeta
from carteiro.message.search import folded_body, folded_header, header_values
from carteiro.store.interface import MessageRecord, ObjectInfo, TextMatches

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
            self._body = folded_body(self.raw, self.meta)
        return self._body

    def header(self) -> str:
        if self._header is None:
            self._header = folded_header(self.raw, self.meta)
        return self._header


class TextIndex:
    """The full-text index's answers for the TEXT/BODY keys of one search (see
    :meth:`carteiro.store.interface.Store.search_text`): for an indexed message the
    key is decided without reading it; unindexed ones are left to the scan."""

    def __init__(self) -> None:
        self._answers: dict[k.TextKey, tuple[set[int], set[int]]] = {}

    def add(self, key: k.TextKey, answer: TextMatches) -> None:
        self._answers[key] = (set(answer.matches), set(answer.unindexed))

    def answer(self, key: k.TextKey, uid: int) -> Tri:
        found = self._answers.get(key)
        if found is None or uid in found[1]:
            return None
        return uid in found[0]

    def possible(self, key: k.SearchKey) -> set[int] | None:
        """UIDs that may match ``key`` (a superset of the matches; None: any may), so
        that only these are evaluated: ``TEXT x`` over 100,000 messages loads the
        records of the few that contain x (and of those not indexed), not all."""
        if isinstance(key, k.TextKey):
            found = self._answers.get(key)
            return None if found is None else found[0] | found[1]
        if isinstance(key, k.And):
            sets = [s for s in (self.possible(x) for x in key.keys) if s is not None]
            return set.intersection(*sets) if sets else None
        if isinstance(key, k.Or):
            left, right = self.possible(key.left), self.possible(key.right)
            return None if left is None or right is None else left | right
        return None


def text_keys(key: k.SearchKey) -> list[k.TextKey]:
    """The distinct TEXT/BODY keys anywhere in ``key``."""
    found: dict[k.TextKey, None] = {}

    def leaf(x: k.SearchKey) -> bool:
        if isinstance(x, k.TextKey):
            found[x] = None
        return False

    _any(key, leaf)
    return list(found)


def _any(key: k.SearchKey, leaf: Callable[[k.SearchKey], bool]) -> bool:
    """Whether ``leaf`` holds for any key in the tree (NOT/OR/AND walked)."""
    if isinstance(key, k.Not):
        return _any(key.key, leaf)
    if isinstance(key, k.Or):
        return any([_any(key.left, leaf), _any(key.right, leaf)])
    if isinstance(key, k.And):
        return any([_any(x, leaf) for x in key.keys])  # a list: every key visited
    return leaf(key)


def needs_content(key: k.SearchKey) -> bool:
    """HEADER/BODY/TEXT and SENT* keys need the message itself."""
    return _any(
        key,
        lambda x: isinstance(x, (k.HeaderKey, k.TextKey)) or (isinstance(x, k.DateKey) and x.sent),
    )


def flags_only(key: k.SearchKey) -> bool:
    """Whether every criterion of ``key`` is a flag, a sequence or UID set or MODSEQ:
    then a flag row (:data:`~carteiro.store.interface.FlagRow`) is all it needs."""
    return not _any(key, lambda x: not isinstance(x, (k.All, k.FlagKey, k.SeqKey, k.ModSeqKey)))


def system_flag_test(key: k.SearchKey) -> tuple[str, bool] | None:
    """(flag, present) when ``key`` is one system flag test (``UNSEEN``, ``DELETED``…),
    which a search can then apply without :func:`evaluate`; else None."""
    if isinstance(key, k.FlagKey) and key.flag.startswith("\\") and key.flag != "\\Recent":
        return key.flag, key.present
    return None


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
    index: TextIndex | None = None,
) -> Tri:
    """True/False, or None when ``content`` is needed but not given. ``info`` must be
    given for the keys :func:`needs_info` names; ``now`` (epoch seconds) for WITHIN;
    ``index`` answers TEXT/BODY keys for indexed messages."""
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
        if index is not None:
            known = index.answer(key, rec.uid)
            if known is not None:
                return known
        if content is None:
            return None
        needle = key.value.casefold()
        if needle in content.body():
            return True
        return key.where == "TEXT" and needle in content.header()
    if isinstance(key, k.Not):
        inner = evaluate(key.key, rec, msn, sel, content, info, now, index)
        return None if inner is None else not inner
    if isinstance(key, k.Or):
        left = evaluate(key.left, rec, msn, sel, content, info, now, index)
        if left is True:
            return True
        right = evaluate(key.right, rec, msn, sel, content, info, now, index)
        if right is True:
            return True
        return None if left is None or right is None else False
    if isinstance(key, k.And):
        unknown = False
        for sub in key.keys:
            r = evaluate(sub, rec, msn, sel, content, info, now, index)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True
    raise TypeError(f"unknown search key {key!r}")
