"""State of the selected mailbox in one session: the MSN↔UID map and pending updates.

Other sessions change the mailbox at any time; this session learns of it by asking the
store for "changes since the modseq I have seen" and turns the answer into untagged
EXISTS / EXPUNGE / FETCH responses. Expunges are held back while a command that uses
message sequence numbers runs (RFC 9051 §7.5.1): the expunged UID keeps its MSN slot
until it can be announced.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from carteiro.imap.protocol.sequence_set import from_numbers
from carteiro.imap.protocol.wire import flag_list
from carteiro.imap.uidonly import fetch_start
from carteiro.store.interface import SYSTEM_FLAGS, Changes, FlagUpdate, MailboxInfo

_T = TypeVar("_T")


def locate(
    view: Sequence[int], items: Iterable[_T], uid_of: Callable[[_T], int]
) -> Iterator[tuple[int, _T]]:
    """(MSN, item) for those of ``items`` (ascending by ``uid_of``: a UID list with
    ``int``, store rows with their UID first) whose UID is in ``view`` (ascending,
    distinct). UIDs are integers that only grow, so one cannot sit further than ``uid -
    view[lo]`` places after ``lo``: in a mailbox without holes the first guess is right,
    and otherwise the search is narrowed to that window."""
    n = len(view)
    lo = 0
    for item in items:
        uid = uid_of(item)
        if lo >= n:
            return
        first = view[lo]
        if uid < first:
            continue
        guess = lo + uid - first
        if guess < n and view[guess] == uid:
            lo = guess
            yield guess + 1, item
            continue
        lo = bisect_left(view, uid, lo, min(n, guess + 1))
        if lo < n and view[lo] == uid:
            yield lo + 1, item


class SelectedMailbox:
    def __init__(
        self,
        info: MailboxInfo,
        uids: list[int],
        *,
        readonly: bool,
        known_modseq: int,
        first_recent: int | None,
        keywords: Iterable[str] = (),
    ) -> None:
        self.info = info
        self.keywords: set[str] = set(keywords)
        self.readonly = readonly
        # index i holds the UID of MSN i+1, ascending; an array keeps a 100,000-message
        # mailbox at 400 KB per session instead of 3.5 MB of Python ints
        self.uids = array("I", uids)
        self.known_modseq = known_modseq
        self.pending_expunged: set[int] = set()
        self.pending_flags: dict[int, FlagUpdate] = {}
        #: UIDs this session reports as \Recent (rev1); None when nothing is recent
        self.recent: set[int] = set()
        if first_recent is not None:
            self.recent = {u for u in uids[bisect_left(uids, first_recent) :]}
        #: modseqs of changes this session made and already reported itself
        self._own: dict[int, int] = {}
        #: RFC 5182 SEARCHRES: the saved result as UIDs
        self.saved_uids: list[int] = []
        #: while expunges are held back, a modseq below all of them (RFC 7162 §3.2): a
        #: client must not take a newer MODSEQ as proof it has seen those expunges
        self.expunge_floor: int | None = None
        self._announced_exists = len(uids)

    # --- MSN helpers -------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def msn_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def flags_for_display(self, uid: int, flags: Iterable[str], rev1: bool) -> bytes:
        if rev1 and uid in self.recent:
            return flag_list([*flags, "\\Recent"])
        return flag_list(flags)

    def flags_responses(self) -> list[bytes]:
        """FLAGS and PERMANENTFLAGS for the keywords known in this mailbox."""
        flags = flag_list([*SYSTEM_FLAGS, *self.keywords])
        out = [b"* FLAGS " + flags + b"\r\n"]
        if self.readonly:
            out.append(b"* OK [PERMANENTFLAGS ()] No permanent flags in read-only mode\r\n")
        else:
            perm = flag_list([*SYSTEM_FLAGS, *self.keywords, "\\*"])
            out.append(b"* OK [PERMANENTFLAGS " + perm + b"] Flags permitted\r\n")
        return out

    def learn_keywords(self, flag_sets: Iterable[frozenset[str]]) -> list[bytes]:
        """New keywords change the mailbox's FLAGS; returns the responses announcing it."""
        known = {k.casefold() for k in self.keywords}
        new = {
            f
            for fs in flag_sets
            for f in fs
            if not f.startswith("\\") and f.casefold() not in known
        }
        if not new:
            return []
        self.keywords |= new
        return self.flags_responses()

    # --- own changes -------------------------------------------------------------------
    def note_own(self, updates: Iterable[FlagUpdate]) -> None:
        """Remember changes we report in our own command's response, so that the next
        sync does not echo them a second time."""
        for u in updates:
            self._own[u.uid] = u.modseq
            self.pending_flags.pop(u.uid, None)

    def remove_now(self, uids: Sequence[int], *, qresync: bool = False) -> list[bytes]:
        """Drop ``uids`` that this session expunged itself; returns the responses that
        announce it: EXPUNGE per message (highest MSN first, so each stays valid) or one
        VANISHED for QRESYNC sessions."""
        gone = {u for u in uids if self.msn_of(u) is not None}
        return self._announce_removal(gone, qresync)

    def _announce_removal(self, gone: set[int], qresync: bool) -> list[bytes]:
        if not gone:
            return []
        msns = self._remove(gone)
        if qresync:
            return [b"* VANISHED " + str(from_numbers(sorted(gone))).encode() + b"\r\n"]
        return [b"* %d EXPUNGE\r\n" % msn for msn in msns]

    def _remove(self, gone: set[int]) -> list[int]:
        if not gone:
            return []
        msns = sorted(i + 1 for i in (bisect_left(self.uids, u) for u in gone))
        self.uids = array("I", (u for u in self.uids if u not in gone))
        self._announced_exists -= len(msns)
        self.recent -= gone
        self.pending_expunged -= gone
        self.saved_uids = [u for u in self.saved_uids if u not in gone]
        for u in gone:
            self.pending_flags.pop(u, None)
            self._own.pop(u, None)
        # Announce from the highest MSN down: earlier numbers stay valid.
        return sorted(msns, reverse=True)

    # --- incoming changes --------------------------------------------------------------
    def absorb(self, changes: Changes, new_recent_from: int | None) -> None:
        """Take in what the store says changed since ``known_modseq``."""
        for uid in changes.expunged:
            if self.msn_of(uid) is not None:
                if not self.pending_expunged:
                    self.expunge_floor = self.known_modseq
                self.pending_expunged.add(uid)
        max_uid = self.max_uid
        for upd in changes.updated:
            if upd.uid > max_uid:
                if upd.uid in changes.expunged:
                    continue
                self.uids.append(upd.uid)
                max_uid = upd.uid
                if new_recent_from is not None and upd.uid >= new_recent_from:
                    self.recent.add(upd.uid)
            elif self._own.get(upd.uid) == upd.modseq:
                continue
            else:
                self.pending_flags[upd.uid] = upd
        self._own.clear()
        self.known_modseq = max(self.known_modseq, changes.highest_modseq)

    def drain_updates(
        self,
        *,
        allow_expunge: bool,
        rev1: bool,
        condstore: bool = False,
        qresync: bool = False,
        uidonly: bool = False,
        flags: bool = True,
    ) -> list[bytes]:
        """Untagged responses for everything pending that may be sent now (``flags``
        False keeps flag changes for later: a NOTIFY client that did not ask for them)."""
        out: list[bytes] = []
        if allow_expunge and self.pending_expunged:
            out.extend(self._announce_removal(set(self.pending_expunged), qresync))
            self.expunge_floor = None
        if self._announced_exists != len(self.uids):
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
            if rev1:
                out.append(b"* %d RECENT\r\n" % len(self.recent))
            self._announced_exists = len(self.uids)
        if self.pending_flags and flags:
            out.extend(self.learn_keywords(u.flags for u in self.pending_flags.values()))
            for uid in sorted(self.pending_flags):
                if uid in self.pending_expunged:
                    continue
                pos = self.msn_of(uid)
                if pos is None:
                    continue
                upd = self.pending_flags[uid]
                modseq = b" MODSEQ (%d)" % upd.modseq if condstore else b""
                head = fetch_start(pos, uid, uidonly)
                if not uidonly:
                    head += b"UID %d " % uid
                shown = self.flags_for_display(uid, upd.flags, rev1)
                out.append(head + b"FLAGS %s%s)\r\n" % (shown, modseq))
            self.pending_flags.clear()
        if condstore and self.pending_expunged and self.expunge_floor is not None:
            out.append(b"* OK [HIGHESTMODSEQ %d] Expunges pending\r\n" % self.expunge_floor)
        return out

    def mark_announced(self) -> None:
        """SELECT itself reports EXISTS; later syncs report only changes."""
        self._announced_exists = len(self.uids)
