"""Turning a command's sequence set into the UIDs it names in the selected mailbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from carteiro.imap.handlers.base import CommandFailed, Context, bad
from carteiro.imap.protocol.sequence_set import SequenceSet

_Uids = TypeVar("_Uids", bound=Sequence[int])


@dataclass(frozen=True)
class Selection:
    uids: list[int]  # ascending, all currently in the session's MSN map


def limit(ctx: Context, uids: _Uids) -> tuple[_Uids, int | None]:
    """MESSAGELIMIT (RFC 9738 §3.1): the messages with the highest UIDs, at most the
    limit of them, and the lowest UID kept when some were left out (else None): the
    client continues below it."""
    n = ctx.config.message_limit
    if len(uids) <= n:
        return uids, None
    kept = cast(_Uids, uids[-n:])  # a list's or an array's slice is of its own type
    return kept, kept[0]


def limit_code(ctx: Context, last_uid: int | None = None) -> str:
    """``MESSAGELIMIT n [lowest-processed-uid]``."""
    n = ctx.config.message_limit
    return f"MESSAGELIMIT {n}" if last_uid is None else f"MESSAGELIMIT {n} {last_uid}"


def partial_slice(values: list[int], window: tuple[int, int]) -> list[int]:
    """RFC 9394 PARTIAL: positions first..last (1-based) of ``values``, or counted from
    the end when negative (``-1:-100`` is the last hundred)."""
    a, b = sorted((abs(window[0]), abs(window[1])))
    if window[0] > 0:
        return values[a - 1 : b]
    n = len(values)
    return values[max(0, n - b) : max(0, n - a + 1)]


def resolve(ctx: Context, seqs: SequenceSet, uid: bool) -> Selection:
    sel = ctx.session.selected
    assert sel is not None
    if seqs.saved:
        saved = set(sel.saved_uids)
        return Selection([u for u in sel.uids if u in saved])
    if uid:
        return Selection(list(seqs.select_from(sel.uids, sel.max_uid)))
    exists = sel.exists
    for a, b in seqs.ranges:
        for n in (a, b):
            if n is not None and n > exists:
                raise CommandFailed(bad("Message sequence number out of range"))
    return Selection([sel.uids[i] for i in seqs.indices_in(range(1, exists + 1), exists)])
