"""The full-text index behind SEARCH TEXT/BODY (Store.search_text), every backend.

The index is maintained in the background; tests wait for ``index_backlog() == 0``
(the condition, polled) before asserting what an indexed store answers, and check
that before that point the answer is complete anyway (unindexed UIDs are listed).
"""

from __future__ import annotations

import asyncio
import base64
import time

from store_support import DATE, Backend

from carteiro.message.meta import analyse
from carteiro.store.interface import MailboxInfo, NewMessage, Store, TextMatches


def new(data: bytes, flags: frozenset[str] = frozenset()) -> NewMessage:
    return NewMessage(data, analyse(data).to_bytes(), flags, DATE)


async def indexed(store: Store, timeout: float = 30) -> None:
    """Waits until the background indexer has caught up."""
    deadline = time.monotonic() + timeout
    while await store.index_backlog():
        assert time.monotonic() < deadline, "index did not catch up"
        await asyncio.sleep(0.005)


async def setup(store: Store) -> tuple[int, MailboxInfo]:
    acc = await store.create_account("user@example.org", "h")
    inbox = await store.get_mailbox(acc.id, "INBOX")
    assert inbox is not None
    return acc.id, inbox


PLAIN = b"From: Ana <ana@example.pt>\r\nSubject: Quarterly Report\r\n\r\nThe NUMBERS are in.\r\n"
QP = (
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nOl=E1 mundo, caf=E9 na STRA=DFE=\r\n!\r\n"
)
B64 = (
    b"Subject: binary\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode("<p>Ελληνικά ΣΊΣΥΦΟΣ</p>".encode())
    + b"\r\n"
)


async def test_search_text_and_body(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [new(PLAIN), new(QP), new(B64)])
    await indexed(store)

    async def find(needle: str, headers: bool = True) -> list[int]:
        answer = await store.search_text(inbox.id, needle, headers)
        assert answer is not None
        assert answer.unindexed == []
        return answer.matches

    assert await find("numbers") == [1]
    assert await find("NumBers ARE") == [1]
    assert await find("quarterly") == [1]  # header, TEXT
    assert await find("quarterly", headers=False) == []  # BODY only
    assert await find("olá mundo") == [2]  # quoted-printable, latin-1
    assert await find("strasse!") == [2]  # soft line break undone
    assert await find("strasse") == [2]  # full case folding: ß is ss
    assert await find("grüsse") == [2]  # RFC 2047 header
    assert await find("σίσυφος") == [3]  # base64, final sigma folded
    assert await find("<p>") == [3]  # HTML stays markup
    assert await find('rly "re') == []  # quotes are not FTS syntax
    assert await find("absent-word") == []
    # a needle spanning the header/body boundary matches neither
    assert await find("report\nthe") == []
    assert await find("report\r\n\r\nthe") == []


async def test_short_needles_are_left_to_the_scan(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [new(PLAIN)])
    await indexed(store)
    assert await store.search_text(inbox.id, "in", True) is None
    assert await store.search_text(inbox.id, "", False) is None
    # "ß" folds to "ss": still too short
    assert await store.search_text(inbox.id, "ß", True) is None
    answer = await store.search_text(inbox.id, "ß" * 2, True)
    assert answer == TextMatches([], [])


async def test_fresh_messages_are_never_missed(store: Store) -> None:
    """Right after an append the message is either matched or listed as unindexed."""
    _, inbox = await setup(store)
    for i in range(20):
        await store.append(inbox.id, [new(b"Subject: x\r\n\r\nneedle %d\r\n" % i)])
        answer = await store.search_text(inbox.id, "needle", False)
        assert answer is not None
        assert sorted(answer.matches + answer.unindexed) == list(range(1, i + 2))
        assert not set(answer.matches) & set(answer.unindexed)
    await indexed(store)
    answer = await store.search_text(inbox.id, "needle", False)
    assert answer == TextMatches(list(range(1, 21)), [])


async def test_copies_share_the_index(store: Store) -> None:
    acc, inbox = await setup(store)
    other = await store.create_mailbox(acc, "Kept")
    await store.append(inbox.id, [new(PLAIN), new(QP)])
    await indexed(store)
    before = await store.indexed_count()  # type: ignore[attr-defined]
    await store.copy(inbox.id, [1, 2], other.id)
    await store.move(inbox.id, [1], other.id)
    assert await store.index_backlog() == 0
    assert await store.indexed_count() == before  # type: ignore[attr-defined]
    assert await store.search_text(other.id, "numbers", False) == TextMatches([1, 3], [])
    assert await store.search_text(inbox.id, "numbers", False) == TextMatches([], [])
    assert await store.search_text(inbox.id, "mundo", False) == TextMatches([2], [])


async def test_deleted_content_leaves_the_index(store: Store) -> None:
    acc, inbox = await setup(store)
    await store.append(inbox.id, [new(PLAIN), new(QP), new(B64)])
    await indexed(store)
    assert await store.indexed_count() == 3  # type: ignore[attr-defined]
    await store.store_flags(inbox.id, [1, 2], "+", frozenset({"\\Deleted"}))
    await store.expunge(inbox.id)
    await indexed(store)
    assert await store.indexed_count() == 1  # type: ignore[attr-defined]
    assert await store.search_text(inbox.id, "numbers", False) == TextMatches([], [])
    # the same content again gets indexed again (possibly under a reused blob id)
    await store.append(inbox.id, [new(PLAIN)])
    await indexed(store)
    assert await store.search_text(inbox.id, "numbers", False) == TextMatches([4], [])
    assert await store.check() == []  # type: ignore[attr-defined]
    await store.delete_account("user@example.org")
    await indexed(store)
    assert await store.indexed_count() == 0  # type: ignore[attr-defined]
    assert await store.check() == []  # type: ignore[attr-defined]


async def test_unindexable_content_is_always_scanned(store: Store) -> None:
    _, inbox = await setup(store)
    await store.append(inbox.id, [new(b"Subject: nul\r\n\r\nbefore\x00after\r\n"), new(PLAIN)])
    await indexed(store)
    answer = await store.search_text(inbox.id, "before", False)
    assert answer == TextMatches([], [1])
    assert await store.check() == []  # type: ignore[attr-defined]


async def test_index_catches_up_after_restart(backend: Backend, store: Store) -> None:
    _, inbox = await setup(store)
    bodies = [new(b"Subject: s\r\n\r\nbody %d words\r\n" % i) for i in range(300)]
    await store.append(inbox.id, bodies)
    await store.close()  # most likely before the background indexer is done
    reopened = await backend.open()
    want = [13] + list(range(121, 131))  # UIDs of "body 12", "body 120" ... "body 129"
    try:
        answer = await reopened.search_text(inbox.id, "body 12", False)
        assert answer is not None
        assert set(want) <= set(answer.matches + answer.unindexed)
        await indexed(reopened)
        assert await reopened.search_text(inbox.id, "body 12", False) == TextMatches(want, [])
        assert await reopened.check() == []  # type: ignore[attr-defined]
    finally:
        await reopened.close()
    await store.open()
