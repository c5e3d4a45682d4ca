"""SEARCH TEXT/BODY through the full-text index, over a real server with imaplib:
results equal a scan's, for messages indexed, just appended (not indexed yet) and
after a restart, alone and combined with other keys."""

from __future__ import annotations

import imaplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carteiro.message.meta import analyse
from carteiro.message.search import folded_body, folded_header
from tests.integration.harness import ServerThread
from tests.integration.mbox import sample_messages


def wait_indexed(server: ServerThread) -> None:
    deadline = time.monotonic() + 60
    while server.call(server.store.index_backlog()):
        assert time.monotonic() < deadline, "the index did not catch up"
        time.sleep(0.005)


class Model:
    """The scan, done by the test: UIDs whose folded text contains the needle."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, raw: bytes) -> None:
        meta = analyse(raw)
        self.texts.append((folded_header(raw, meta), folded_body(raw, meta)))

    def find(self, needle: str, headers: bool) -> set[int]:
        n = needle.casefold()
        return {i + 1 for i, (h, b) in enumerate(self.texts) if n in b or (headers and n in h)}


def search(conn: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = conn.uid("SEARCH", *criteria)
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A server of its own: the test restarts it (stop is idempotent for the fixture)."""
    srv = ServerThread(tmp_path)
    yield srv
    if not srv.loop.is_closed():
        srv.stop()


NEEDLES = ["lunch on", "LUNCH", "dave@example", "friday?", "the", "x-bench", "no-such-text", "re"]


def test_search_text_and_body_with_the_index(server: ServerThread, tmp_path: Path) -> None:
    user = server.new_user()
    model = Model()
    msgs = sample_messages()
    for raw in msgs:
        server.deliver(user, raw)
        model.add(raw)
    wait_indexed(server)
    conn = server.connect(user)
    conn.select("INBOX")
    conn.uid("STORE", "1:50", "+FLAGS", "(\\Seen)")

    def check(c: imaplib.IMAP4) -> None:
        everything = set(range(1, len(model.texts) + 1))
        unseen = everything - set(range(1, 51))
        for needle in NEEDLES:
            text, body = model.find(needle, True), model.find(needle, False)
            assert search(c, "TEXT", f'"{needle}"') == sorted(text), needle
            assert search(c, "BODY", f'"{needle}"') == sorted(body), needle
            assert search(c, "UNSEEN", "TEXT", f'"{needle}"') == sorted(text & unseen)
            assert search(c, "NOT", "TEXT", f'"{needle}"') == sorted(everything - text)
            other = model.find("dave", False)
            assert search(c, "OR", "TEXT", f'"{needle}"', "BODY", "dave") == sorted(text | other)

    check(conn)

    # appended moments before the search: found whether indexed yet or not
    fresh = b"Subject: fresh\r\n\r\nA kumquat-flavoured novelty.\r\n"
    typ, _ = conn.append("INBOX", "", imaplib.Time2Internaldate(time.time()), fresh)
    assert typ == "OK"
    model.add(fresh)
    conn.noop()
    assert search(conn, "TEXT", "KUMQUAT") == [101]
    assert search(conn, "BODY", "quat-fla") == [101]
    assert search(conn, "BODY", "fresh") == []  # header only
    assert search(conn, "TEXT", "fresh") == [101]

    # COPY shares the content and its index entry
    conn.create("Kept")
    conn.uid("COPY", "1:101", "Kept")
    conn.select("Kept")
    assert search(conn, "TEXT", "kumquat") == [101]
    assert search(conn, "TEXT", '"lunch on"') == sorted(model.find("lunch on", True))
    conn.logout()

    # a restart, right after an append that is most likely not indexed yet
    late = b"Subject: late\r\n\r\nA persimmon arrives.\r\n"
    server.deliver(user, late)
    model.add(late)
    server.stop()
    restarted = ServerThread(tmp_path)
    try:
        conn = restarted.connect(user)
        conn.select("INBOX")
        assert search(conn, "TEXT", "persimmon") == [102]
        check(conn)
        wait_indexed(restarted)
        assert search(conn, "BODY", "PERSIMMON") == [102]
        check(conn)
        conn.logout()
    finally:
        restarted.stop()


def test_text_finds_attachment_names_and_attached_headers(server: ServerThread) -> None:
    """What users search for: an attachment's file name, a forwarded message's
    Message-ID. TEXT finds both (part headers, RFC 9051 §6.4.4); BODY finds neither."""
    user = server.new_user()
    fwd = sample_messages()[5]  # carries a message/rfc822 attachment
    assert b"<inner.5." in fwd
    report = (
        b"Subject: report\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
        b"--z\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--z\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="Q3-figures.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--z--\r\n"
    )
    conn = server.connect(user)
    for raw in (fwd, report, b"Subject: plain\r\n\r\nnothing here\r\n"):
        assert conn.append("INBOX", None, None, raw)[0] == "OK"
    conn.select("INBOX")
    for indexed in (False, True):
        if indexed:
            wait_indexed(server)
        assert conn.uid("SEARCH", "TEXT", '"inner.5."')[1] == [b"1"]
        assert conn.uid("SEARCH", "TEXT", "q3-FIGURES.pdf")[1] == [b"2"]
        assert conn.uid("SEARCH", "BODY", '"inner.5."')[1] == [b""]
        assert conn.uid("SEARCH", "BODY", "q3-figures")[1] == [b""]
    conn.logout()
