"""SEARCH and UID SEARCH with ESEARCH results (RFC 9051 §6.4.4, RFC 4731, RFC 5182)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from carteiro.imap.handlers.base import SELECTED, Context, Result, bad, command, not_uid, ok
from carteiro.imap.handlers.fetch import CHUNK, LEAN_CHUNK, by_size, in_view, load_records
from carteiro.imap.handlers.messages import limit, limit_code, partial_slice
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.sequence_set import from_numbers
from carteiro.imap.protocol.wire import quoted
from carteiro.imap.search_eval import (
    Content,
    TextIndex,
    evaluate,
    flags_only,
    needs_content,
    needs_info,
    system_flag_test,
    text_keys,
    uses_modseq,
)
from carteiro.imap.selected import locate
from carteiro.message.meta import MessageMeta
from carteiro.store.interface import FlagMatches, FlagRow, MessageRecord

_RETURN = {"MIN", "MAX", "ALL", "COUNT", "SAVE", "PARTIAL"}


def candidates(ctx: Context, key: k.SearchKey) -> Sequence[int]:
    """The UIDs the search must look at: all (the view itself, not a copy), or those a
    top-level sequence-set key allows (so that MESSAGELIMIT counts the messages actually
    searched)."""
    sel = ctx.session.selected
    assert sel is not None
    parts = key.keys if isinstance(key, k.And) else (key,)
    sets = [p for p in parts if isinstance(p, k.SeqKey) and not p.seqs.saved]
    if not sets:
        return sel.uids
    uids = list(sel.uids)
    for s in sets:
        if s.uid:
            uids = [u for u in uids if s.seqs.contains(u, sel.max_uid)]
        else:
            uids = [u for u in uids if s.seqs.contains(sel.msn_of(u) or 0, sel.exists)]
    return uids


async def text_index(ctx: Context, key: k.SearchKey) -> TextIndex | None:
    """The store's full-text answers for the TEXT/BODY keys of ``key`` (None: none)."""
    sel = ctx.session.selected
    assert sel is not None
    index: TextIndex | None = None
    for text in text_keys(key):
        answer = await ctx.store.search_text(sel.info.id, text.value, text.where == "TEXT")
        if answer is not None:
            index = index or TextIndex()
            index.add(text, answer)
    return index


class Hits:
    """Matching messages, ascending by UID. MSNs are worked out only when a response
    needs them, and a one-flag answer from the store keeps the store's text of UIDs:
    ``UID SEARCH UNSEEN`` on a big mailbox then costs a few passes in C, not an object
    per message."""

    __slots__ = ("_uids", "_modseqs", "_msns", "_view", "_found")

    def __init__(
        self,
        uids: list[int] | None,
        modseqs: list[int] | None,
        msns: list[int] | None,
        found: FlagMatches | None = None,
        view: Sequence[int] = (),
    ) -> None:
        self._uids = uids
        #: None when not read (a search without a MODSEQ key does not need them)
        self._modseqs = modseqs
        self._msns = msns
        self._found = found
        #: the session's view, from which MSNs are worked out when not given
        self._view = view

    @classmethod
    def of(cls, found: list[tuple[int, int, int]]) -> Hits:
        """From (msn, uid, modseq) triples, in any order."""
        if not found:
            return cls([], [], [])
        found.sort()
        msns, uids, modseqs = (list(col) for col in zip(*found, strict=True))
        return cls(uids, modseqs, msns)

    @classmethod
    def within(cls, found: FlagMatches, view: Sequence[int]) -> Hits:
        """The store's answer for one flag, every UID of which is in ``view`` (modseqs
        are not read: a one-flag search has no MODSEQ key)."""
        return cls(None, None, None, found, view)

    def __len__(self) -> int:
        return len(self.uids)

    @property
    def uids(self) -> list[int]:
        if self._uids is None:
            assert self._found is not None
            self._uids = self._found.uids
        return self._uids

    @property
    def modseqs(self) -> list[int]:
        if self._modseqs is None:
            raise RuntimeError("modseqs were not read for this search")
        return self._modseqs

    @property
    def msns(self) -> list[int]:
        if self._msns is None:
            view = self._view
            if view and view[-1] - view[0] + 1 == len(view):
                offset = view[0] - 1  # no holes in the view: MSN is UID minus offset
                self._msns = [u - offset for u in self.uids]
            else:
                self._msns = [msn for msn, _ in locate(view, self.uids, int)]
        return self._msns

    def words(self, uid: bool) -> bytes:
        """The UIDs or MSNs, separated by spaces, as ``* SEARCH`` lists them."""
        if uid and self._found is not None:
            return self._found.text.replace(",", " ").encode()
        return " ".join(map(str, self.uids if uid else self.msns)).encode()


async def run_search(ctx: Context, cmd: c.Search, uids: Sequence[int] | None = None) -> Hits:
    """The matching messages among ``uids`` (default: all)."""
    sel = ctx.session.selected
    assert sel is not None
    content_needed = needs_content(cmd.key)
    with_info = needs_info(cmd.key)
    index = await text_index(ctx, cmd.key) if content_needed else None
    now = time.time()
    hits: list[tuple[int, int, int]] = []
    if uids is None:
        uids = sel.uids
    if index is not None and (possible := index.possible(cmd.key)) is not None:
        uids = [u for u in uids if u in possible]
    if flags_only(cmd.key):
        return await _search_flags(ctx, cmd.key, uids)
    for start in range(0, len(uids), CHUNK * 4):
        ctx.progress(start, len(uids))
        chunk = uids[start : start + CHUNK * 4]
        records = await load_records(ctx, sel.uids, chunk, sel.info.id)
        infos = (
            await ctx.store.object_info(sel.info.id, [r.uid for r in records]) if with_info else {}
        )
        undecided: list[tuple[int, MessageRecord]] = []
        for rec in records:
            msn = sel.msn_of(rec.uid)
            if msn is None:
                continue
            r = evaluate(cmd.key, rec, msn, sel, None, infos.get(rec.uid), now, index)
            if r is True:
                hits.append((msn, rec.uid, rec.modseq))
            elif r is None and content_needed:
                undecided.append((msn, rec))
        if undecided:
            metas = await ctx.store.read_meta(sorted({r.blob_id for _, r in undecided}))
            for batch in by_size([r for _, r in undecided]):
                blobs = await ctx.store.read_blobs([r.blob_id for r in batch])
                for rec in batch:
                    msn = sel.msn_of(rec.uid)
                    if msn is None or rec.blob_id not in blobs:
                        continue
                    content = Content(
                        blobs[rec.blob_id], MessageMeta.from_bytes(metas[rec.blob_id])
                    )
                    info = infos.get(rec.uid)
                    if evaluate(cmd.key, rec, msn, sel, content, info, now, index):
                        hits.append((msn, rec.uid, rec.modseq))
    return Hits.of(hits)


async def _search_flags(ctx: Context, key: k.SearchKey, uids: Sequence[int]) -> Hits:
    """A search on flags, sets and MODSEQ only (``UNSEEN``, ``FLAGGED``, ``1:* DELETED``):
    evaluated over flag rows, without building a record per message; MSNs by a walk of
    the selection."""
    sel = ctx.session.selected
    assert sel is not None
    hits: list[tuple[int, int, int]] = []
    wanted = set(uids) if len(uids) != len(sel.uids) else None
    sel_uids = sel.uids
    simple = system_flag_test(key)
    if simple is not None and uids:
        # one system flag: the store finds the matches (an index scan, no rows built)
        found = await ctx.store.system_flag_matches(sel.info.id, *simple)
        if wanted is None and found.highest_modseq <= sel.known_modseq:
            # the session has seen every change the answer reflects, so every UID in
            # it is in the view (expunges still pending only make the view larger)
            return Hits.within(found, sel_uids)
        picked = list(locate(sel_uids, found.uids, int))
        if wanted is not None:
            picked = [(msn, uid) for msn, uid in picked if uid in wanted]
        return Hits([u for _, u in picked], None, [m for m, _ in picked])
    for start in range(0, len(uids), LEAN_CHUNK):
        ctx.progress(start, len(uids))
        chunk = uids[start : start + LEAN_CHUNK]
        rows = await ctx.store.flag_rows(sel.info.id, chunk[0], chunk[-1])
        for msn, row in in_view(sel_uids, rows, wanted):
            if simple is not None:
                flag, present = simple
                if (flag in row[1]) == present:
                    hits.append((msn, row[0], row[2]))
            # flag-only keys read uid, flags and modseq: the fields of a flag row
            elif evaluate(key, cast(MessageRecord, _AsRecord(row)), msn, sel, None):
                hits.append((msn, row[0], row[2]))
    return Hits.of(hits)


class _AsRecord:
    """A flag row seen through the attributes :func:`evaluate` reads for flag keys."""

    __slots__ = ("uid", "flags", "modseq")

    def __init__(self, row: FlagRow) -> None:
        self.uid, self.flags, self.modseq = row


@command(c.Search, SELECTED, uses_msn=not_uid)
async def search(ctx: Context, cmd: c.Search) -> Result:
    sel = ctx.session.selected
    assert sel is not None
    opts = cmd.return_options
    if opts is not None and not set(opts) <= _RETURN:
        return bad("Unknown SEARCH RETURN option")
    with_modseq = uses_modseq(cmd.key)
    if with_modseq:
        ctx.session.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    searched, lowest = limit(ctx, candidates(ctx, cmd.key))

    def done(text: str) -> Result:
        # RFC 9738 §3.1/§3.4: a limited search says where it stopped; $ holds only
        # what was searched
        if lowest is None:
            return ok(text)
        return ok(f"{text} with {len(searched)} partial results", limit_code(ctx, lowest))

    hits = await run_search(ctx, cmd, searched)
    top_modseq = max(hits.modseqs, default=0) if with_modseq else 0

    if opts is not None and "SAVE" in opts:
        saved = list(hits.uids)
        # RFC 5182 §2.1: MIN/MAX alone narrow what is saved; with ALL or COUNT, all is
        if saved and ("MIN" in opts or "MAX" in opts) and not {"ALL", "COUNT"} & set(opts):
            picked = []
            if "MIN" in opts:
                picked.append(saved[0])
            if "MAX" in opts:
                picked.append(saved[-1])
            saved = sorted(set(picked))
        sel.saved_uids = saved
        if set(opts) == {"SAVE"}:
            return done("SEARCH completed, result saved")

    if opts is None and ctx.session.rev1:
        tail = b" (MODSEQ %d)" % top_modseq if top_modseq else b""
        listed = b" " + hits.words(cmd.uid) if hits else b""
        ctx.send(b"* SEARCH" + listed + tail + b"\r\n")
        return done("SEARCH completed")

    numbers = hits.uids if cmd.uid else hits.msns
    wanted = set(opts or ()) - {"SAVE"} or {"ALL"}
    if top_modseq and hits and cmd.partial is None and wanted <= {"MIN", "MAX"}:
        # RFC 4731 §3.2: MODSEQ covers the messages returned, here only MIN and/or MAX
        ends = ([hits.modseqs[0]] if "MIN" in wanted else []) + (
            [hits.modseqs[-1]] if "MAX" in wanted else []
        )
        top_modseq = max(ends)
    if cmd.partial is not None:
        wanted.discard("PARTIAL")
    parts = [b"* ESEARCH (TAG " + quoted(cmd.tag.encode()) + b")"]
    if cmd.uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in wanted:
            parts.append(b"MIN %d" % numbers[0])
        if "MAX" in wanted:
            parts.append(b"MAX %d" % numbers[-1])
    if "COUNT" in wanted:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in wanted:
        parts.append(b"ALL " + str(from_numbers(numbers)).encode())
    if cmd.partial is not None:
        first, last = cmd.partial
        window = partial_slice(numbers, cmd.partial)
        found = str(from_numbers(window)).encode() if window else b"NIL"
        parts.append(b"PARTIAL (%d:%d %s)" % (first, last, found))
    if top_modseq:
        parts.append(b"MODSEQ %d" % top_modseq)
    ctx.send(b" ".join(parts) + b"\r\n")
    return done("SEARCH completed")
