"""FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY).

Streams in chunks so ``FETCH 1:* (FLAGS)`` over 100,000 messages never holds the whole
answer in memory, and answers ENVELOPE/BODYSTRUCTURE from metadata computed at APPEND.
"""

from __future__ import annotations

import asyncio
import datetime
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import count
from operator import itemgetter
from typing import TypeVar, cast

from carteiro.imap.handlers.base import (
    SELECTED,
    CommandFailed,
    Context,
    Result,
    bad,
    command,
    no,
    not_uid,
    ok,
)
from carteiro.imap.handlers.messages import Selection, limit, limit_code, partial_slice, resolve
from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.fetch_attrs import (
    BinarySize,
    BodySection,
    FetchAttr,
    Section,
    Simple,
    sets_seen,
)
from carteiro.imap.protocol.sequence_set import from_numbers
from carteiro.imap.protocol.wire import flag_list, literal, string
from carteiro.imap.response_cache import MIN_MESSAGES as MIN_CACHED
from carteiro.imap.selected import locate
from carteiro.imap.uidonly import fetch_start
from carteiro.message.meta import MessageMeta, stored_segments
from carteiro.message.sections import UnknownEncoding, binary_bytes, section_bytes
from carteiro.store.interface import FlagRow, MessageRecord, MetaRow, ObjectInfo

CHUNK = 500
#: body items (each a copy of all or part of the message) one FETCH may ask for
MAX_BODY_ITEMS = 16
_BODY_SIMPLE = (Simple.RFC822, Simple.RFC822_HEADER, Simple.RFC822_TEXT)
#: items answered from the store's object info (RFC 8474, RFC 8514)
_OBJECT_ITEMS = (Simple.SAVEDATE, Simple.EMAILID, Simple.THREADID)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_internal_date(d: datetime.datetime) -> bytes:
    off = d.utcoffset() or datetime.timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f'"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year:04d} {d.hour:02d}:{d.minute:02d}:'
        f'{d.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"'
    ).encode()


def _needs(attrs: tuple[FetchAttr, ...]) -> tuple[bool, bool]:
    """(needs metadata, needs the raw message)."""
    meta = raw = False
    for a in attrs:
        if a in (Simple.ENVELOPE, Simple.BODY, Simple.BODYSTRUCTURE, Simple.PREVIEW):
            meta = True
        elif a is Simple.RFC822:
            raw = True
        elif a in (Simple.RFC822_HEADER, Simple.RFC822_TEXT):
            raw = meta = True
        elif isinstance(a, (BodySection, BinarySize)):
            raw = meta = True
    return meta, raw


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    origin, length = partial
    return data[origin : origin + length]


def _body_item(attr: BodySection, raw: bytes, meta: MessageMeta) -> bytes:
    label = attr.response_label().encode()
    if attr.binary:
        try:
            data = binary_bytes(raw, meta, attr.section.part)
        except UnknownEncoding as exc:
            raise CommandFailed(no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")) from exc
        if data is None:
            return label + b" NIL"
        data = _partial(data, attr.partial)
        return label + b" " + literal(data, binary=b"\0" in data)
    data = section_bytes(raw, meta, attr.section)
    if data is None:
        # a part that does not exist: an empty string, as Dovecot and Cyrus answer
        data = b""
    return label + b" " + literal(_partial(data, attr.partial))


def _binary_size(attr: BinarySize, raw: bytes, meta: MessageMeta) -> bytes:
    try:
        data = binary_bytes(raw, meta, attr.part)
    except UnknownEncoding as exc:
        raise CommandFailed(no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE")) from exc
    label = ("BINARY.SIZE[" + ".".join(str(p) for p in attr.part) + "]").encode()
    return label + b" " + (b"NIL" if data is None else str(len(data)).encode())


def render(
    ctx: Context,
    attrs: tuple[FetchAttr, ...],
    msn: int,
    rec: MessageRecord,
    flags_first: bool,
    meta: MessageMeta | None,
    raw: bytes | None,
    with_uid: bool,
    with_modseq: bool = False,
    info: ObjectInfo | None = None,
    preview: str | None = None,
) -> bytes:
    sel = ctx.session.selected
    assert sel is not None
    items: list[bytes] = []
    if with_uid:
        items.append(b"UID %d" % rec.uid)
    if flags_first:
        items.append(b"FLAGS " + sel.flags_for_display(rec.uid, rec.flags, ctx.session.rev1))
    # CHANGEDSINCE implies MODSEQ; an implicit \Seen change shows its new MODSEQ too
    modseq_added = with_modseq and Simple.MODSEQ not in attrs
    if modseq_added:
        items.append(b"MODSEQ (%d)" % rec.modseq)
    for a in attrs:
        if a is Simple.UID:
            if not with_uid:
                items.append(b"UID %d" % rec.uid)
        elif a is Simple.FLAGS:
            if not flags_first:
                items.append(
                    b"FLAGS " + sel.flags_for_display(rec.uid, rec.flags, ctx.session.rev1)
                )
        elif a is Simple.MODSEQ:
            if not modseq_added:
                items.append(b"MODSEQ (%d)" % rec.modseq)
        elif a is Simple.PREVIEW:
            items.append(b"PREVIEW " + string(preview or "", utf8=ctx.session.utf8))
        elif a is Simple.SAVEDATE:
            saved = info.save_date if info is not None else None
            items.append(b"SAVEDATE " + (format_internal_date(saved) if saved else b"NIL"))
        elif a is Simple.EMAILID:
            items.append(b"EMAILID (" + (info.email_id if info else "NIL").encode() + b")")
        elif a is Simple.THREADID:
            items.append(b"THREADID " + (b"(%s)" % info.thread_id.encode() if info else b"NIL"))
        elif a is Simple.INTERNALDATE:
            items.append(b"INTERNALDATE " + format_internal_date(rec.internal_date))
        elif a is Simple.RFC822_SIZE:
            items.append(b"RFC822.SIZE %d" % rec.size)
        elif a is Simple.ENVELOPE:
            assert meta is not None
            items.append(b"ENVELOPE " + meta.envelope)
        elif a is Simple.BODYSTRUCTURE:
            assert meta is not None
            items.append(b"BODYSTRUCTURE " + meta.bodystructure)
        elif a is Simple.BODY:
            assert meta is not None
            items.append(b"BODY " + meta.body)
        elif a is Simple.RFC822:
            assert raw is not None
            items.append(b"RFC822 " + literal(raw))
        elif a is Simple.RFC822_HEADER:
            assert raw is not None and meta is not None
            items.append(
                b"RFC822.HEADER " + literal(section_bytes(raw, meta, Section((), "HEADER")) or b"")
            )
        elif a is Simple.RFC822_TEXT:
            assert raw is not None and meta is not None
            items.append(
                b"RFC822.TEXT " + literal(section_bytes(raw, meta, Section((), "TEXT")) or b"")
            )
        elif isinstance(a, BodySection):
            assert raw is not None and meta is not None
            items.append(_body_item(a, raw, meta))
        elif isinstance(a, BinarySize):
            assert raw is not None and meta is not None
            items.append(_binary_size(a, raw, meta))
    return fetch_start(msn, rec.uid, ctx.session.uidonly) + b" ".join(items) + b")\r\n"


async def load_records(
    ctx: Context, sel_uids: Sequence[int], chunk: Sequence[int], mailbox_id: int
) -> list[MessageRecord]:
    """Records for ``chunk`` (a sorted subset of the selection), using a range scan when
    the chunk is contiguous in the mailbox (the common ``1:*`` case)."""
    if _contiguous(sel_uids, chunk):
        return await ctx.store.records_range(mailbox_id, chunk[0], chunk[-1], len(chunk))
    return await ctx.store.records(mailbox_id, chunk)


#: items a FETCH can answer from flag rows alone (no record, no metadata, no body)
_LEAN = frozenset({Simple.UID, Simple.FLAGS, Simple.MODSEQ})
#: ... and from meta rows (flag rows with size and the metadata computed at APPEND)
_LEAN_META = _LEAN | {Simple.RFC822_SIZE, Simple.ENVELOPE, Simple.BODY, Simple.BODYSTRUCTURE}
#: messages per flag-row read of a lean FETCH
LEAN_CHUNK = 10_000
#: messages per meta-row read (about 1 KB of metadata each)
META_CHUNK = 1_000
#: each item's part of a line template: numbers are %d, metadata segments %s, in the
#: order of (msn, uid, modseq, size, envelope, body, bodystructure)
_PARTS = {
    "uid": (b"UID %d", 1),
    "modseq": (b"MODSEQ (%d)", 2),
    "size": (b"RFC822.SIZE %d", 3),
    "envelope": (b"ENVELOPE %s", 4),
    "body": (b"BODY %s", 5),
    "bodystructure": (b"BODYSTRUCTURE %s", 6),
}
_NAMES = {
    Simple.UID: "uid",
    Simple.FLAGS: "flags",
    Simple.MODSEQ: "modseq",
    Simple.RFC822_SIZE: "size",
    Simple.ENVELOPE: "envelope",
    Simple.BODY: "body",
    Simple.BODYSTRUCTURE: "bodystructure",
}


async def _fetch_lean(
    ctx: Context, cmd: c.Fetch, sel_: Selection, descending: bool, with_uid: bool
) -> None:
    """FETCH of items known without the message itself: UID/FLAGS/MODSEQ, the bulk of
    a client's resync (``FETCH 1:* (FLAGS)``), and RFC822.SIZE, ENVELOPE, BODY and
    BODYSTRUCTURE, a client's first look at a mailbox. Rows instead of records, one
    line template per distinct flag set, MSNs found by walking the sorted selection;
    and, for the flags of a whole big mailbox, the serialised answer reused while the
    mailbox does not change (:mod:`response_cache`). The bytes are those
    :func:`render` makes for the same items."""
    sel = ctx.session.selected
    assert sel is not None
    attrs = cmd.attrs
    with_meta = not set(attrs) <= _LEAN
    key = None if with_meta else await _cache_key(ctx, cmd, sel_, descending, with_uid)
    if key is not None:
        assert ctx.responses is not None
        cached = ctx.responses.get(key)
        if cached is not None:
            ctx.send(cached)
            await ctx.conn.flush()
            return
    recent = sel.recent if ctx.session.rev1 else ()
    modseq_added = cmd.changed_since is not None and Simple.MODSEQ not in attrs
    since = cmd.changed_since
    # the items in render()'s order
    order: list[str] = (["uid"] if with_uid else []) + (["modseq"] if modseq_added else [])
    for a in attrs:
        name = _NAMES[cast(Simple, a)]  # every item is one of _LEAN_META
        if (name == "uid" and with_uid) or (name == "modseq" and modseq_added):
            continue
        order.append(name)
    head = b"* %d UIDFETCH (" if ctx.session.uidonly else b"* %d FETCH ("
    # positions in (msn, uid, modseq, size, envelope, body, bodystructure) of the
    # template's values
    picks = [1 if ctx.session.uidonly else 0] + [_PARTS[k][1] for k in order if k != "flags"]
    pick = _picker(picks)
    segments = stored_segments
    templates: dict[tuple[frozenset[str], bool], bytes] = {}
    sel_uids = sel.uids
    kept: list[bytes] = []
    size = META_CHUNK if with_meta else LEAN_CHUNK
    starts = range(0, len(sel_.uids), size)
    if descending:
        starts = starts[::-1]

    async def load(start: int) -> list[MetaRow] | list[FlagRow]:
        chunk = sel_.uids[start : start + size]
        if with_meta:
            return await ctx.store.meta_rows(sel.info.id, chunk)
        return await ctx.store.flag_rows(sel.info.id, chunk[0], chunk[-1])

    # the next chunk is read while this one is rendered
    pending = asyncio.ensure_future(load(starts[0])) if starts else None
    try:
        for done, start in enumerate(starts):
            assert pending is not None
            rows = await pending
            nxt = done + 1
            pending = asyncio.ensure_future(load(starts[nxt])) if nxt < len(starts) else None
            ctx.progress(done * size, len(sel_.uids))
            chunk = sel_.uids[start : start + size]
            lines: list[bytes] = []
            # a meta row begins like a flag row: (uid, flags, modseq, ...)
            for msn, row in _numbered(sel_uids, chunk, cast(list[FlagRow], rows), with_meta):
                if since is not None and row[2] <= since:
                    continue
                flags = row[1]
                tkey = (flags, row[0] in recent)
                template = templates.get(tkey)
                if template is None:
                    shown = flag_list([*flags, "\\Recent"] if tkey[1] else flags)
                    items = [
                        b"FLAGS " + shown.replace(b"%", b"%%") if k == "flags" else _PARTS[k][0]
                        for k in order
                    ]
                    template = templates[tkey] = head + b" ".join(items) + b")\r\n"
                if with_meta:
                    uid, _, modseq, octets, meta = cast(MetaRow, row)
                    lines.append(template % pick((msn, uid, modseq, octets, *segments(meta))))
                else:
                    lines.append(template % pick((msn, row[0], row[2])))
            if descending:
                lines.reverse()
            data = b"".join(lines)
            if key is not None:
                kept.append(data)
            ctx.send(data)
            await ctx.conn.flush()
    finally:
        if pending is not None:
            pending.cancel()
    if key is not None and await _modseq_now(ctx) == key[2]:
        assert ctx.responses is not None
        ctx.responses.put(key, b"".join(kept))


def _numbered(
    sel_uids: Sequence[int], chunk: Sequence[int], rows: list[FlagRow], by_uid: bool
) -> Iterable[tuple[int, FlagRow]]:
    """(MSN, row) for the rows of ``chunk`` (a sorted part of the selection): rows read
    by UID hold only the chunk's; rows read by range may hold others. The common case,
    the rows being exactly a run of the view, is numbered by counting, in C."""
    contiguous = _contiguous(sel_uids, chunk)
    if contiguous and len(rows) == len(chunk) and list(map(_uid_of, rows)) == list(chunk):
        return zip(count(bisect_left(sel_uids, chunk[0]) + 1), rows)
    return in_view(sel_uids, rows, None if by_uid or contiguous else set(chunk))


def _picker(picks: list[int]) -> Callable[[tuple[int | bytes, ...]], tuple[int | bytes, ...]]:
    """A function taking the values at ``picks``, as a tuple, in C."""
    if len(picks) == 1:
        one = picks[0]
        return lambda values: (values[one],)
    return cast(Callable[[tuple[int | bytes, ...]], tuple[int | bytes, ...]], itemgetter(*picks))


async def _modseq_now(ctx: Context) -> int | None:
    sel = ctx.session.selected
    assert sel is not None
    info = await ctx.store.get_mailbox(sel.info.account_id, sel.info.name)
    return info.highest_modseq if info is not None and info.id == sel.info.id else None


async def _cache_key(
    ctx: Context, cmd: c.Fetch, sel_: Selection, descending: bool, with_uid: bool
) -> tuple[object, ...] | None:
    """The response cache's key for this FETCH, or None when its answer is not one to
    share: not the whole (big) mailbox, \\Recent shown, MODSEQ values, held-back
    expunges, or a session that has not caught up with the mailbox (its view is then
    not the mailbox's state at that HIGHESTMODSEQ)."""
    sel = ctx.session.selected
    assert sel is not None
    if (
        ctx.responses is None
        or descending
        or cmd.changed_since is not None
        or Simple.MODSEQ in cmd.attrs
        or len(sel_.uids) != len(sel.uids)
        or len(sel.uids) < MIN_CACHED
        or (ctx.session.rev1 and sel.recent)
        or sel.pending_expunged
    ):
        return None
    modseq = await _modseq_now(ctx)
    if modseq is None or modseq != sel.known_modseq:
        return None
    return (
        "fetch", sel.info.id, modseq, cmd.attrs, with_uid, ctx.session.uidonly,
        len(sel.uids), sel.max_uid,
    )  # fmt: skip


_Row = TypeVar("_Row", FlagRow, MetaRow)


def in_view(
    sel_uids: Sequence[int], rows: list[_Row], wanted: set[int] | None
) -> Iterator[tuple[int, _Row]]:
    """(MSN, row) for the rows (ascending by UID) that are in the session's view and in
    ``wanted`` (None: all)."""
    for msn, row in locate(sel_uids, rows, _uid_of):
        if wanted is None or row[0] in wanted:
            yield msn, row


_uid_of = itemgetter(0)


def _contiguous(sel_uids: Sequence[int], chunk: Sequence[int]) -> bool:
    """Whether ``chunk`` (sorted, from the selection) is a run of consecutive members."""
    lo = bisect_left(sel_uids, chunk[0])
    hi = bisect_left(sel_uids, chunk[-1])
    return hi - lo + 1 == len(chunk)


async def _fetch(ctx: Context, cmd: c.Fetch, sel_: Selection, descending: bool = False) -> None:
    sel = ctx.session.selected
    assert sel is not None
    attrs = cmd.attrs
    need_meta, need_raw = _needs(attrs)
    mark_seen = not sel.readonly and any(sets_seen(a) for a in attrs)
    # UID FETCH always reports UID, except under UIDONLY where the UID heads the
    # response and the item appears only when asked for (RFC 9586 §3.3)
    with_uid = cmd.uid and not ctx.session.uidonly
    if not mark_seen and sel_.uids and set(attrs) <= _LEAN_META:
        await _fetch_lean(ctx, cmd, sel_, descending, with_uid)
        return
    starts = list(range(0, len(sel_.uids), CHUNK))
    if descending:
        starts.reverse()
    # the next chunk's records (and metadata) are read while this one is rendered: the
    # reader thread and the event loop then work at the same time
    prefetch_meta = need_meta and cmd.changed_since is None

    async def load(start: int) -> tuple[list[MessageRecord], dict[int, bytes]]:
        chunk = sel_.uids[start : start + CHUNK]
        records = await load_records(ctx, sel.uids, chunk, sel.info.id)
        metas = (
            await ctx.store.read_meta(sorted({r.blob_id for r in records})) if prefetch_meta else {}
        )
        return records, metas

    pending = asyncio.ensure_future(load(starts[0])) if starts else None
    try:
        for done in range(len(starts)):
            assert pending is not None
            records, metas = await pending
            pending = (
                asyncio.ensure_future(load(starts[done + 1])) if done + 1 < len(starts) else None
            )
            ctx.progress(done * CHUNK, len(sel_.uids))
            await _fetch_chunk(
                ctx, cmd, records, metas, descending, mark_seen, need_meta, need_raw, with_uid
            )
    finally:
        if pending is not None:
            pending.cancel()


async def _fetch_chunk(
    ctx: Context,
    cmd: c.Fetch,
    records: list[MessageRecord],
    metas: dict[int, bytes],
    descending: bool,
    mark_seen: bool,
    need_meta: bool,
    need_raw: bool,
    with_uid: bool,
) -> None:
    sel = ctx.session.selected
    assert sel is not None
    attrs = cmd.attrs
    if descending:
        records.reverse()
    if cmd.changed_since is not None:
        records = [r for r in records if r.modseq > cmd.changed_since]
        if not records:
            return
    seen_now: set[int] = set()
    if mark_seen:
        unseen = [r.uid for r in records if "\\Seen" not in r.flags]
        if unseen:
            updates = await ctx.store.store_flags(sel.info.id, unseen, "+", frozenset({"\\Seen"}))
            sel.note_own(updates)
            new_flags = {u.uid: u.flags for u in updates}
            seen_now = set(new_flags)
            records = [
                MessageRecord(r.uid, new_flags[r.uid], r.internal_date, r.size, r.modseq, r.blob_id)
                if r.uid in new_flags
                else r
                for r in records
            ]
    infos = (
        await ctx.store.object_info(sel.info.id, [r.uid for r in records])
        if any(a in _OBJECT_ITEMS for a in attrs)
        else {}
    )
    if need_meta and not metas:
        metas = await ctx.store.read_meta(sorted({r.blob_id for r in records}))
    for batch in by_size(records) if need_raw else [records]:
        blobs = await ctx.store.read_blobs([r.blob_id for r in batch]) if need_raw else {}
        for rec in batch:
            msn = sel.msn_of(rec.uid)
            if msn is None or (need_raw and rec.blob_id not in blobs):
                continue
            meta = MessageMeta.from_bytes(metas[rec.blob_id]) if need_meta else None
            raw = blobs[rec.blob_id] if need_raw else None
            flags_first = rec.uid in seen_now and Simple.FLAGS not in attrs
            with_modseq = cmd.changed_since is not None or (
                rec.uid in seen_now and ctx.session.condstore
            )
            info = infos.get(rec.uid)
            preview = None
            if meta is not None and Simple.PREVIEW in attrs:
                if meta.preview is None and raw is None:  # stored before previews
                    raw = await ctx.store.read_blob(rec.blob_id)
                preview = meta.preview_text(raw or b"")
            line = render(
                ctx, attrs, msn, rec, flags_first, meta, raw, with_uid, with_modseq, info,
                preview,
            )  # fmt: skip
            ctx.send(line)
        await ctx.conn.flush()


async def fetch_messages(ctx: Context, attrs: tuple[FetchAttr, ...], uids: list[int]) -> None:
    """Untagged FETCH of ``uids`` (ascending, in the selection) outside a FETCH command:
    RFC 5465 MessageNew with fetch attributes."""
    seqs = from_numbers(uids)
    await _fetch(ctx, c.Fetch("*", True, seqs, attrs), Selection(uids))


#: bodies read per store round trip: bounded so a FETCH of large messages stays lean
BLOB_BATCH_BYTES = 4 * 1024 * 1024


def by_size(records: list[MessageRecord]) -> list[list[MessageRecord]]:
    batches: list[list[MessageRecord]] = []
    current: list[MessageRecord] = []
    total = 0
    for rec in records:
        if current and total + rec.size > BLOB_BATCH_BYTES:
            batches.append(current)
            current, total = [], 0
        current.append(rec)
        total += rec.size
    if current:
        batches.append(current)
    return batches


async def _vanished(ctx: Context, cmd: c.Fetch) -> None:
    """RFC 7162 §3.2.6: UIDs in the requested set expunged since CHANGEDSINCE."""
    sel = ctx.session.selected
    assert sel is not None and cmd.changed_since is not None
    gone = await ctx.store.expunged_since(sel.info.id, cmd.changed_since)
    star = max(sel.max_uid, gone[-1] if gone else 0)
    hits = [u for u in gone if cmd.seqs.contains(u, star)]
    if hits:
        ctx.send(b"* VANISHED (EARLIER) " + str(from_numbers(hits)).encode() + b"\r\n")


def _uses_msn(cmd: c.Fetch) -> bool:
    return not_uid(cmd)


@command(c.Fetch, SELECTED, uses_msn=_uses_msn)
async def fetch(ctx: Context, cmd: c.Fetch) -> Result:
    bodies = sum(1 for a in cmd.attrs if isinstance(a, BodySection) or a in _BODY_SIMPLE)
    if bodies > MAX_BODY_ITEMS:
        return no(f"At most {MAX_BODY_ITEMS} body sections per FETCH", "LIMIT")
    if cmd.changed_since is not None or Simple.MODSEQ in cmd.attrs:
        ctx.session.condstore = True  # RFC 7162 §3.1: a CONDSTORE-enabling command
    if cmd.partial is not None:
        first, last = (abs(n) for n in cmd.partial)
        if abs(last - first) + 1 > ctx.config.message_limit:
            # RFC 9738 §3.1: a PARTIAL range over the limit is refused outright
            return no(
                f"FETCH exceeds the maximum {ctx.config.message_limit}-message limit",
                limit_code(ctx),
            )
    if cmd.vanished:
        if not ctx.session.qresync:
            return bad("VANISHED needs ENABLE QRESYNC")
        await _vanished(ctx, cmd)
    selection = resolve(ctx, cmd.seqs, cmd.uid)
    if cmd.changed_since is not None:
        # the (mailbox, modseq) index finds the few changed messages of a big mailbox
        sel = ctx.session.selected
        assert sel is not None
        changes = await ctx.store.changes_since(sel.info.id, cmd.changed_since)
        changed = {u.uid for u in changes.updated}
        selection = Selection([u for u in selection.uids if u in changed])
    if cmd.partial is not None:
        selection = Selection(partial_slice(selection.uids, cmd.partial))
    uids, lowest = limit(ctx, selection.uids)
    # over the limit, the highest UIDs are processed, highest first (RFC 9738 §3.1)
    await _fetch(ctx, cmd, Selection(uids), descending=lowest is not None)
    if lowest is not None:
        return ok(f"FETCH completed with {len(uids)} partial results", limit_code(ctx, lowest))
    return ok("FETCH completed")
