"""Index-driven SEARCH equals the plain scan (hypothesis), on the 100 sample messages.

For random needles (substrings of the messages' own text in any case, non-ASCII text,
needles spanning the header/body boundary, short ones, text decoded from base64 and
quoted-printable parts) and random combinations with other keys, the UIDs that the
index + evaluator path finds equal those that evaluating every message's content
finds. Part of the messages is left unindexed, as after a restart mid-catch-up.
"""

from __future__ import annotations

import asyncio
import datetime
import mailbox
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carteiro.imap.protocol import search_keys as k
from carteiro.imap.search_eval import Content, TextIndex, evaluate, text_keys
from carteiro.imap.selected import SelectedMailbox
from carteiro.message.meta import analyse
from carteiro.message.search import folded_body, folded_header
from carteiro.store.interface import MessageRecord, NewMessage, Store

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-100.mbox"
DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def samples() -> list[bytes]:
    box = mailbox.mbox(str(SAMPLE), create=False)
    try:
        raw = [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()
    return [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in raw]


MESSAGES = samples()
CONTENTS = [Content(m, analyse(m)) for m in MESSAGES]
ENCODED = [
    i
    for i, c in enumerate(CONTENTS)
    if any(
        p.type == "text" and p.encoding in ("base64", "quoted-printable")
        for p in c.meta.tree.walk()
    )
]
TRICKY = "ßẞİıſﬁΣσςKÅéÉ\u0301日本語ǅ"


@st.composite
def needles(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["sub", "sub", "encoded", "boundary", "random", "short"]))
    if kind == "random":
        return draw(st.text(alphabet=st.sampled_from(TRICKY + "abc \n"), min_size=1, max_size=6))
    index = draw(st.sampled_from(ENCODED if kind == "encoded" and ENCODED else range(100)))
    content = CONTENTS[index]
    if kind == "boundary":
        head, body = (
            folded_header(content.raw, content.meta),
            folded_body(content.raw, content.meta),
        )
        text = head[-draw(st.integers(1, 6)) :] + "\n" + body[: draw(st.integers(0, 6))]
    else:
        source = draw(st.sampled_from([content.header, content.body]))()
        if not source:
            return "x"
        start = draw(st.integers(0, len(source) - 1))
        size = draw(st.integers(1, 2) if kind == "short" else st.integers(1, 16))
        text = source[start : start + size]
    case = draw(st.sampled_from([str, str.upper, str.swapcase, str.title, _unfolded]))
    return case(text)


def _unfolded(text: str) -> str:
    """A spelling only full case folding maps back to ``text`` (ß, ſ, ﬁ, Kelvin sign)."""
    for plain, fancy in (("ss", "ß"), ("fi", "\ufb01"), ("s", "\u017f"), ("k", "\u212a")):
        text = text.replace(plain, fancy)
    return text


def text_key(value: str) -> st.SearchStrategy[k.TextKey]:
    return st.sampled_from([k.TextKey("TEXT", value), k.TextKey("BODY", value)])


@st.composite
def search_keys(draw: st.DrawFn) -> k.SearchKey:
    first = draw(needles().flatmap(text_key))
    shape = draw(st.sampled_from(["plain", "flag", "or", "not", "and"]))
    if shape == "plain":
        return first
    second = draw(needles().flatmap(text_key))
    seen = k.FlagKey("\\Seen", draw(st.booleans()))
    if shape == "flag":
        return k.And((seen, first))
    if shape == "or":
        return k.Or(first, second)
    if shape == "not":
        return k.Not(first)
    return k.And((first, k.Not(second)))


async def _wait_indexed(store: Store) -> None:
    deadline = time.monotonic() + 60
    while await store.index_backlog():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


def test_index_equals_scan(store: Store, run: Callable[[Awaitable[Any]], Any]) -> None:
    acc = run(store.create_account("user@example.org", "h"))
    inbox = run(store.get_mailbox(acc.id, "INBOX"))
    flags = [frozenset({"\\Seen"}) if i % 3 else frozenset() for i in range(100)]
    news = [NewMessage(m, analyse(m).to_bytes(), flags[i], DATE) for i, m in enumerate(MESSAGES)]
    run(store.append(inbox.id, news[:70]))
    run(_wait_indexed(store))
    # the rest stays unindexed for a while at least: answers must be complete anyway
    run(store.append(inbox.id, news[70:]))
    records = run(store.records(inbox.id, list(range(1, 101))))
    sel = SelectedMailbox(
        inbox, list(range(1, 101)), readonly=False, known_modseq=0, first_recent=None
    )

    def scan(key: k.SearchKey) -> list[int]:
        return [r.uid for r in records if evaluate(key, r, r.uid, sel, CONTENTS[r.uid - 1])]

    def indexed(key: k.SearchKey) -> list[int]:
        index = TextIndex()
        for text in text_keys(key):
            answer = run(store.search_text(inbox.id, text.value, text.where == "TEXT"))
            if answer is not None:
                assert set(answer.matches) | set(answer.unindexed) <= set(range(1, 101))
                index.add(text, answer)
        possible = index.possible(key)
        hits = []
        for rec in records:
            if possible is not None and rec.uid not in possible:
                continue
            decided = evaluate(key, rec, rec.uid, sel, None, index=index)
            if decided is None:
                decided = evaluate(key, rec, rec.uid, sel, CONTENTS[rec.uid - 1], index=index)
            if decided:
                hits.append(rec.uid)
        return hits

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(search_keys())
    def check(key: k.SearchKey) -> None:
        assert indexed(key) == scan(key), key

    check()
    run(_wait_indexed(store))
    check()  # and once everything is indexed

    # records are not from the scan path's store reads: make sure they agree
    assert [r.uid for r in records] == list(range(1, 101))
    assert isinstance(records[0], MessageRecord)
