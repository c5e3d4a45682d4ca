"""APPEND, FETCH, STORE, COPY, MOVE, EXPUNGE, SEARCH against the real server with imaplib
and a byte-exact client."""

from __future__ import annotations

import re

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import sample_messages, simple


def login(server: ServerThread, user: str, select: str | None = "INBOX") -> RawClient:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    if select:
        assert c.cmd(f"SELECT {select}", tag="S")[-1].startswith(b"S OK")
    return c


@pytest.fixture(scope="module")
def sample_user(server: ServerThread) -> str:
    """An account with the 100 sample messages appended through IMAP."""
    user = server.new_user()
    conn = server.connect(user)
    for raw in sample_messages():
        typ, data = conn.append("INBOX", None, None, raw)
        assert typ == "OK", data
    conn.logout()
    return user


def test_append_fetch_byte_for_byte(server: ServerThread, sample_user: str) -> None:
    conn = server.connect(sample_user)
    typ, data = conn.select("INBOX", readonly=True)
    msgs = sample_messages()
    assert int(data[0]) == len(msgs) == 100
    typ, data = conn.fetch("1:*", "(RFC822.SIZE BODY.PEEK[])")
    bodies = [item[1] for item in data if isinstance(item, tuple)]
    assert bodies == list(msgs)
    sizes = [
        int(re.search(rb"RFC822.SIZE (\d+)", item[0]).group(1))
        for item in data
        if isinstance(item, tuple)
    ]
    assert sizes == [len(m) for m in msgs]
    conn.logout()


def test_fetch_structure_and_sections(server: ServerThread, sample_user: str) -> None:
    conn = server.connect(sample_user)
    conn.select("INBOX", readonly=True)
    typ, data = conn.fetch("1", "(ENVELOPE BODYSTRUCTURE BODY INTERNALDATE UID FLAGS)")
    assert typ == "OK"
    head = data[0] if isinstance(data[0], bytes) else data[0][0]
    assert b"ENVELOPE (" in head and b"BODYSTRUCTURE (" in head and b'INTERNALDATE "' in head
    typ, data = conn.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    hdr = data[0][1]
    assert hdr.lower().startswith((b"from:", b"subject:")) and hdr.endswith(b"\r\n\r\n")
    assert b"To:" not in hdr
    typ, data = conn.fetch("1", "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    header, text = data[0][1], data[1][1]
    assert header + text == sample_messages()[0]
    typ, data = conn.fetch("1", "(BODY.PEEK[]<0.10>)")
    assert data[0][0].endswith(b"BODY[]<0> {10}") and data[0][1] == sample_messages()[0][:10]
    conn.logout()


def test_fetch_nested_parts_and_binary(server: ServerThread, user: str) -> None:
    raw = (
        b"From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello part one\r\n"
        b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAwQ=\r\n--XX--\r\n"
    )
    server.deliver(user, raw)
    c = login(server, user)
    part1 = c.cmd("FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME])", tag="a")
    assert b"BODY[1] {14}\r\nHello part one BODY[1.MIME]" in part1[0]
    assert b"Content-Type: text/plain; charset=utf-8\r\n\r\n" in part1[0]
    binary = c.cmd("FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])", tag="b")
    assert b"BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04" in binary[0]
    assert b"BINARY.SIZE[2] 5" in binary[0]
    flags = c.cmd("FETCH 1 (FLAGS)", tag="c")[0]
    assert b"\\Seen" not in flags  # PEEK does not set \Seen
    seen = c.cmd("FETCH 1 (BODY[1])", tag="d")[0]
    assert b"\\Seen" in seen  # FLAGS reported because \Seen was set implicitly
    c.close()


def test_rev1_rfc822_items(server: ServerThread, user: str) -> None:
    raw = simple("rev1")
    server.deliver(user, raw)
    conn = server.connect(user)
    conn.select("INBOX")
    typ, data = conn.fetch("1", "(RFC822.HEADER)")
    assert raw.startswith(data[0][1])
    typ, data = conn.fetch("1", "(RFC822)")
    assert data[0][1] == raw
    assert b"\\Seen" in conn.fetch("1", "(FLAGS)")[1][0]
    conn.logout()


def test_store_flags_and_keywords(server: ServerThread, user: str) -> None:
    for i in range(3):
        server.deliver(user, simple(f"m{i}"))
    c = login(server, user)
    out = c.cmd("STORE 1:2 +FLAGS (\\Flagged $Important)", tag="a")
    assert any(b"* FLAGS (" in x and b"$Important" in x for x in out)  # new keyword announced
    assert sum(1 for x in out if b"FETCH (FLAGS (" in x) == 2
    assert c.cmd("STORE 1 -FLAGS.SILENT (\\Flagged)", tag="b") == [b"b OK STORE completed\r\n"]
    out = c.cmd("UID STORE 1:* FLAGS (\\Seen)", tag="c")
    assert b"* 3 FETCH (UID 3 FLAGS (\\Recent \\Seen))\r\n" in out  # first session: \Recent
    assert c.cmd("STORE 1 +FLAGS (\\Recent)", tag="d")[-1].startswith(b"d BAD")
    c.close()
    conn = server.connect(user)
    typ, data = conn.select("INBOX")
    conn.store("2", "+FLAGS", "(\\Deleted)")
    typ, data = conn.search(None, "DELETED")
    assert data == [b"2"]
    conn.logout()


def test_examine_is_read_only(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("ro"))
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    assert c.cmd("EXAMINE INBOX", tag="a")[-1].startswith(b"a OK [READ-ONLY]")
    assert c.cmd("STORE 1 +FLAGS (\\Seen)", tag="b")[-1].startswith(b"b NO")
    c.cmd("FETCH 1 BODY[]", tag="c")
    assert b"\\Seen" not in c.cmd("FETCH 1 FLAGS", tag="d")[0]
    assert c.cmd("EXPUNGE", tag="e")[-1].startswith(b"e NO")
    c.close()


def test_select_responses(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("a"), flags=("\\Seen",))
    server.deliver(user, simple("b"))
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    lines = c.cmd("SELECT INBOX", tag="a")
    joined = b"".join(lines)
    for needle in (
        b"* 2 EXISTS",
        b"* 2 RECENT",
        b"* FLAGS (",
        b"[PERMANENTFLAGS (",
        b"\\*)]",
        b"[UNSEEN 2]",
        b"[UIDVALIDITY ",
        b"[UIDNEXT 3]",
        b"a OK [READ-WRITE]",
    ):
        assert needle in joined, needle
    # \Recent belongs to the first session only
    other = RawClient(server.port)
    other.cmd(f"LOGIN {user} secret", tag="L")
    assert b"* 0 RECENT" in b"".join(other.cmd("SELECT INBOX", tag="b"))
    other.close()
    assert b"\\Recent" in c.cmd("FETCH 2 FLAGS", tag="c")[0]
    # rev2: LIST in SELECT, no RECENT
    c.cmd("ENABLE IMAP4rev2", tag="d")
    joined = b"".join(c.cmd("SELECT INBOX", tag="e"))
    assert (
        b"* OK [CLOSED]" in joined and b"RECENT" not in joined and b'* LIST () "/" INBOX' in joined
    )
    c.close()


def test_copy_move_with_uidplus(server: ServerThread, user: str) -> None:
    for i in range(4):
        server.deliver(user, simple(f"c{i}"))
    c = login(server, user)
    out = c.cmd("COPY 1:2 Archive", tag="a")
    m = re.search(rb"\[COPYUID (\d+) 1:2 1:2\]", out[-1])
    assert m, out
    assert c.cmd("COPY 1 Nowhere", tag="b")[-1].startswith(b"b NO [TRYCREATE]")
    out = c.cmd("UID MOVE 3 Trash", tag="c")
    assert out[0].startswith(b"* OK [COPYUID ") and b"* 3 EXPUNGE\r\n" in out
    assert c.cmd("NOOP", tag="d")[-1].startswith(b"d OK")
    assert b"MESSAGES 3" in c.cmd("STATUS INBOX (MESSAGES)", tag="e")[0]
    assert b"MESSAGES 1" in c.cmd("STATUS Trash (MESSAGES)", tag="f")[0]
    # the copy is identical to the original
    c.cmd("SELECT Archive", tag="g")
    body = c.cmd("FETCH 1 BODY.PEEK[]", tag="h")[0]
    assert simple("c0") in body
    c.close()


def test_expunge_and_uid_expunge(server: ServerThread, user: str) -> None:
    for i in range(5):
        server.deliver(user, simple(f"e{i}"))
    c = login(server, user)
    c.cmd("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)", tag="a")
    out = c.cmd("UID EXPUNGE 4:5", tag="b")
    assert out[:-1] == [b"* 5 EXPUNGE\r\n", b"* 4 EXPUNGE\r\n"]
    out = c.cmd("EXPUNGE", tag="c")
    assert out[:-1] == [b"* 2 EXPUNGE\r\n"]
    assert b"* SEARCH 1 3" in c.cmd("UID SEARCH ALL", tag="d")[0]
    c.close()


def test_close_expunges_silently(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("x"), flags=("\\Deleted",))
    server.deliver(user, simple("y"))
    c = login(server, user)
    assert c.cmd("CLOSE", tag="a") == [b"a OK CLOSE completed\r\n"]
    assert b"MESSAGES 1" in c.cmd("STATUS INBOX (MESSAGES)", tag="b")[0]
    c.close()


def test_multiappend_is_atomic_and_returns_uids(server: ServerThread, user: str) -> None:
    c = login(server, user, select=None)
    m1, m2 = simple("ma1"), simple("ma2")
    c.send(
        b"a APPEND INBOX (\\Seen) {%d+}\r\n" % len(m1)
        + m1
        + b' "05-Jan-2024 10:00:00 +0100" {%d+}\r\n' % len(m2)
        + m2
        + b"\r\n"
    )
    line = c.readline()
    assert re.match(rb"a OK \[APPENDUID \d+ 1:2\]", line), line
    c.cmd("SELECT INBOX", tag="b")
    data = c.cmd("FETCH 1:2 (FLAGS INTERNALDATE)", tag="c")
    assert b"\\Seen" in data[0] and b'"05-Jan-2024 10:00:00 +0100"' in data[1]
    # a failing message (empty) rejects the whole MULTIAPPEND
    c.send(b"d APPEND INBOX {%d+}\r\n" % len(m1) + m1 + b" {0+}\r\n\r\n")
    assert c.readline().startswith(b"d NO")
    assert b"MESSAGES 2" in c.cmd("STATUS INBOX (MESSAGES)", tag="e")[0]
    assert c.cmd("APPEND Nowhere {1+}\r\nx", tag="f")[-1].startswith(b"f NO [TRYCREATE]")
    c.close()


def test_search_keys(server: ServerThread, sample_user: str) -> None:
    conn = server.connect(sample_user)
    conn.select("INBOX")
    msgs = sample_messages()

    def search(*criteria: str) -> list[int]:
        typ, data = conn.search(None, *criteria)
        assert typ == "OK", data
        return [int(x) for x in data[0].split()]

    assert search("ALL") == list(range(1, 101))
    from_dave = [i + 1 for i, m in enumerate(msgs) if b"From: Dave" in m.split(b"\r\n\r\n")[0]]
    assert search("FROM", "dave@example.com") == from_dave
    assert search("FROM", "DAVE") == from_dave
    lunch = [
        i + 1 for i, m in enumerate(msgs) if b"lunch on friday" in m.split(b"\r\n\r\n")[0].lower()
    ]
    assert lunch and search("SUBJECT", '"lunch on friday"') == lunch
    assert search("NOT", "FROM", "dave@example.com") == [
        n for n in range(1, 101) if n not in from_dave
    ]
    assert search("OR", "FROM", "dave@example.com", "SUBJECT", '"lunch on friday"') == sorted(
        set(from_dave) | set(lunch)
    )
    big = [i + 1 for i, m in enumerate(msgs) if len(m) > 10000]
    assert search("LARGER", "10000") == big
    assert search("UID", "5:7") == [5, 6, 7]
    assert search("5:7", "UID", "6:*") == [6, 7]
    assert search("SEEN") == []
    assert search("UNSEEN") == list(range(1, 101))
    assert search("SINCE", "1-Jan-2000") == list(range(1, 101))
    assert search("BEFORE", "1-Jan-2000") == []
    body_hits = search("BODY", "benchmark")
    assert body_hits and all(b"benchmark" in msgs[n - 1].lower() for n in body_hits)
    assert search("HEADER", "Message-ID", "imaptest") != []
    assert search("SENTSINCE", "1-Jan-2100") == []
    typ, _ = conn.search("UTF-8", "SUBJECT", "x")
    assert typ == "OK"
    typ, data = conn.search("KOI8-R", "SUBJECT", "x")
    assert typ == "NO" and b"[BADCHARSET" in data[0]
    conn.logout()


def test_esearch_and_searchres(server: ServerThread, user: str) -> None:
    for i in range(5):
        server.deliver(user, simple(f"es{i}"), flags=("\\Flagged",) if i % 2 == 0 else ())
    c = login(server, user)
    out = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED", tag="a")
    assert out[0] == b'* ESEARCH (TAG "a") MIN 1 MAX 5 COUNT 3 ALL 1,3,5\r\n'
    out = c.cmd("UID SEARCH RETURN (COUNT) UNFLAGGED", tag="b")
    assert out[0] == b'* ESEARCH (TAG "b") UID COUNT 2\r\n'
    assert c.cmd("SEARCH RETURN (SAVE) FLAGGED", tag="c") == [
        b"c OK SEARCH completed, result saved\r\n"
    ]
    fetched = c.cmd("FETCH $ (UID)", tag="d")
    assert [x.split()[1] for x in fetched[:-1]] == [b"1", b"3", b"5"]
    out = c.cmd("SEARCH RETURN (COUNT) DELETED", tag="e")
    assert out[0] == b'* ESEARCH (TAG "e") COUNT 0\r\n'
    c.cmd("ENABLE IMAP4rev2", tag="f")
    out = c.cmd("SEARCH FLAGGED", tag="g")
    assert out[0] == b'* ESEARCH (TAG "g") ALL 1,3,5\r\n'
    c.close()


def test_append_follows_a_mailbox_recreated_by_another_session(
    server: ServerThread, user: str
) -> None:
    a = login(server, user, select=None)
    b = login(server, user, select=None)
    a.cmd("CREATE Work", tag="a")
    m = simple("first")
    first = a.cmd(b"APPEND Work {%d+}\r\n" % len(m) + m + b"\r\n", tag="b")[-1]
    b.cmd("DELETE Work", tag="c")
    b.cmd("CREATE Work", tag="d")
    second = a.cmd(b"APPEND Work {%d+}\r\n" % len(m) + m + b"\r\n", tag="e")[-1]
    assert first.split()[3] != second.split()[3]  # a new UIDVALIDITY: the new mailbox
    assert b"MESSAGES 1" in b.cmd("STATUS Work (MESSAGES)", tag="f")[0]
    b.cmd("DELETE Work", tag="g")
    assert a.cmd(b"APPEND Work {%d+}\r\n" % len(m) + m + b"\r\n", tag="h")[-1].startswith(
        b"h NO [TRYCREATE]"
    )
