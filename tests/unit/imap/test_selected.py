"""The selected-mailbox state machine, without sockets: whatever happens in the store,
a client that applies our untagged responses ends up with the store's view, and never
sees an EXPUNGE while a sequence-number command runs."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from carteiro.imap.selected import SelectedMailbox
from carteiro.store.interface import Changes, FlagUpdate, MailboxInfo

INFO = MailboxInfo(1, 1, "INBOX", 7, 1, 0, frozenset(), True)


def make(uids: list[int], first_recent: int | None = None) -> SelectedMailbox:
    sel = SelectedMailbox(
        INFO, list(uids), readonly=False, known_modseq=0, first_recent=first_recent
    )
    sel.mark_announced()
    return sel


class Client:
    """What a client knows: one slot per message, its UID if it learned it."""

    def __init__(self, uids: list[int]) -> None:
        self.slots: list[int | None] = list(uids)

    def apply(self, lines: list[bytes]) -> None:
        for line in lines:
            if m := re.fullmatch(rb"\* (\d+) EXPUNGE\r\n", line):
                del self.slots[int(m[1]) - 1]
            elif m := re.fullmatch(rb"\* (\d+) EXISTS\r\n", line):
                n = int(m[1])
                assert n >= len(self.slots), "EXISTS may not shrink the mailbox"
                self.slots.extend([None] * (n - len(self.slots)))
            elif m := re.fullmatch(rb"\* (\d+) FETCH \(UID (\d+) FLAGS \(.*\)\)\r\n", line):
                slot = self.slots[int(m[1]) - 1]
                assert slot in (None, int(m[2])), "FETCH names the wrong message"
                self.slots[int(m[1]) - 1] = int(m[2])


def test_expunges_wait_for_a_command_that_allows_them() -> None:
    sel = make([1, 2, 3])
    sel.absorb(Changes(5, [], [2], 7), None)
    assert sel.drain_updates(allow_expunge=False, rev1=False) == []
    assert sel.exists == 3 and sel.msn_of(3) == 3
    assert sel.drain_updates(allow_expunge=True, rev1=False) == [b"* 2 EXPUNGE\r\n"]
    assert list(sel.uids) == [1, 3]


def test_new_messages_and_flags() -> None:
    sel = make([1, 2])
    changes = Changes(
        9, [FlagUpdate(2, frozenset({"\\Seen"}), 8), FlagUpdate(3, frozenset(), 9)], [], 7
    )
    sel.absorb(changes, new_recent_from=3)
    out = sel.drain_updates(allow_expunge=True, rev1=True)
    assert out == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n", b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"]
    assert sel.recent == {3} and sel.known_modseq == 9


def test_own_changes_are_not_echoed() -> None:
    sel = make([1])
    upd = FlagUpdate(1, frozenset({"\\Flagged"}), 4)
    sel.note_own([upd])
    sel.absorb(Changes(4, [upd], [], 7), None)
    assert sel.drain_updates(allow_expunge=True, rev1=False) == []


def test_new_keywords_announce_flags() -> None:
    sel = make([1])
    sel.absorb(Changes(2, [FlagUpdate(1, frozenset({"$Label1"}), 2)], [], 7), None)
    out = sel.drain_updates(allow_expunge=True, rev1=False)
    assert out[0].startswith(b"* FLAGS (") and b"$Label1" in out[0]
    assert b"PERMANENTFLAGS" in out[1] and out[1].index(b"$Label1") < out[1].index(b"\\*")


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 3)),
        st.tuples(st.just("expunge"), st.integers(0, 30)),
        st.tuples(st.just("flag"), st.integers(0, 30)),
        st.tuples(st.just("sync"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 6), script=ops)
def test_client_view_converges_to_the_store(start: int, script: list[tuple[str, object]]) -> None:
    store = list(range(1, start + 1))
    next_uid = start + 1
    modseq = 1
    updates: list[FlagUpdate] = []
    expunged: list[int] = []
    sel = make(store)
    client = Client(store)
    for op, arg in script:
        if op == "append":
            for _ in range(int(arg)):  # type: ignore[call-overload]
                modseq += 1
                store.append(next_uid)
                updates.append(FlagUpdate(next_uid, frozenset(), modseq))
                next_uid += 1
        elif op == "expunge" and store:
            uid = store.pop(int(arg) % len(store))  # type: ignore[call-overload]
            modseq += 1
            expunged.append(uid)
        elif op == "flag" and store:
            uid = store[int(arg) % len(store)]  # type: ignore[call-overload]
            modseq += 1
            updates.append(FlagUpdate(uid, frozenset({"\\Seen"}), modseq))
        elif op == "sync":
            # what changes_since(known_modseq) would return
            fresh = sorted(
                {
                    u.uid: u for u in updates if u.modseq > sel.known_modseq and u.uid in store
                }.values(),
                key=lambda u: u.uid,
            )
            sel.absorb(Changes(modseq, fresh, sorted(expunged), 7), None)
            updates = [u for u in updates if u.uid in store]
            allow = bool(arg)
            lines = sel.drain_updates(allow_expunge=allow, rev1=False)
            if not allow:
                assert not any(b"EXPUNGE" in x for x in lines)
            client.apply(lines)
            assert len(client.slots) == sel.exists
            for slot, uid in zip(client.slots, sel.uids, strict=True):
                assert slot in (None, uid)
    sel.absorb(
        Changes(
            modseq,
            [u for u in updates if u.modseq > sel.known_modseq and u.uid in store],
            sorted(expunged),
            7,
        ),
        None,
    )
    client.apply(sel.drain_updates(allow_expunge=True, rev1=False))
    assert list(sel.uids) == store
    assert len(client.slots) == len(store)
    assert all(slot in (None, uid) for slot, uid in zip(client.slots, store, strict=True))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 400), unique=True).map(sorted),
    st.lists(st.integers(1, 450), unique=True).map(sorted),
)
def test_locate_finds_exactly_the_uids_in_the_view(view: list[int], asked: list[int]) -> None:
    """``locate`` gives the MSN of each asked UID that is in the view and skips the rest,
    however the view's holes fall (its first guess assumes none)."""
    from array import array

    from carteiro.imap.selected import locate

    expected = [(view.index(u) + 1, u) for u in asked if u in view]
    assert list(locate(view, asked, int)) == expected
    assert list(locate(array("I", view), asked, int)) == expected
    rows = [(u, "row") for u in asked]
    assert list(locate(view, rows, lambda r: r[0])) == [(m, (u, "row")) for m, u in expected]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), unique=True, min_size=1).map(sorted), st.data())
def test_search_hits_msns_from_the_view(view: list[int], data: st.DataObject) -> None:
    """Hits built from the store's UIDs (all in the view) work out the same MSNs as a
    search per UID, for views with and without holes."""
    from array import array

    from carteiro.imap.handlers.search import Hits
    from carteiro.store.interface import FlagMatches

    picked = sorted(data.draw(st.sets(st.sampled_from(view))))
    found = FlagMatches(",".join(map(str, picked)), 0)
    hits = Hits.within(found, array("I", view))
    assert hits.uids == picked and len(hits) == len(picked)
    assert hits.msns == [view.index(u) + 1 for u in picked]
    assert hits.words(uid=True) == " ".join(map(str, picked)).encode()
    assert hits.words(uid=False) == " ".join(str(view.index(u) + 1) for u in picked).encode()
    dense = list(range(view[0], view[0] + len(view)))
    sub = [u for u in dense if u % 3 == 0]
    assert Hits(sub, None, None, view=dense).msns == [u - view[0] + 1 for u in sub]
    triples = [(view.index(u) + 1, u, u * 10) for u in reversed(picked)]
    made = Hits.of(triples)
    assert (made.uids, made.modseqs, made.msns) == (
        picked,
        [u * 10 for u in picked],
        [view.index(u) + 1 for u in picked],
    )
