"""FETCH of UID/FLAGS/MODSEQ only takes a lean path (flag rows, no records): its bytes
must equal what the general path sends for the same items. The general path is forced by
adding RFC822.SIZE, which is then cut out of each line."""

from __future__ import annotations

import re

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple

_SIZE = re.compile(rb" RFC822\.SIZE \d+")
_DATE = re.compile(rb' INTERNALDATE "[^"]*"')


def _login(server: ServerThread, user: str) -> RawClient:
    c = RawClient(server.port)
    assert c.cmd(f"LOGIN {user} secret", tag="L")[-1].startswith(b"L OK")
    return c


def _fetches(lines: list[bytes]) -> list[bytes]:
    return [ln for ln in lines if b" FETCH (" in ln or b" UIDFETCH (" in ln]


def _same(c: RawClient, lean: str, general: str, strip: re.Pattern[bytes]) -> list[bytes]:
    a = c.cmd(lean, tag="A")
    b = c.cmd(general, tag="B")
    assert a[-1].startswith(b"A OK") and b[-1].startswith(b"B OK"), (a[-1], b[-1])
    got, want = _fetches(a), [strip.sub(b"", ln) for ln in _fetches(b)]
    assert got == want
    return got


def _populate(server: ServerThread, user: str, n: int) -> None:
    conn = server.connect(user)
    for i in range(n):
        flags = ["(\\Seen)", "(\\Seen \\Flagged)", "($Work \\Answered)", "()"][i % 4]
        typ, data = conn.append("INBOX", flags, None, simple(f"lean {i}"))
        assert typ == "OK", data
    conn.select("INBOX")
    conn.store("3,7,8", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()


def test_lean_fetch_equals_general_fetch(server: ServerThread) -> None:
    user = server.new_user()
    _populate(server, user, 30)
    c = _login(server, user)
    c.cmd("ENABLE CONDSTORE", tag="E")
    sel = b"".join(c.cmd("SELECT INBOX", tag="S"))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))
    lines = _same(c, "FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS RFC822.SIZE)", _SIZE)
    assert len(lines) == 27
    assert lines[0] == b"* 1 FETCH (FLAGS (\\Seen))\r\n"
    assert sum(b"FLAGS (\\Answered $Work)" in ln for ln in lines) == 5
    _same(c, "UID FETCH 1:* (FLAGS UID)", "UID FETCH 1:* (FLAGS UID INTERNALDATE)", _DATE)
    _same(
        c,
        "FETCH 2,5:7,20:* (UID MODSEQ FLAGS)",
        "FETCH 2,5:7,20:* (UID MODSEQ FLAGS RFC822.SIZE)",
        _SIZE,
    )
    _same(c, "UID FETCH 4,9,12 (UID)", "UID FETCH 4,9,12 (UID RFC822.SIZE)", _SIZE)
    c.cmd("STORE 5,9 +FLAGS.SILENT (\\Draft)", tag="T")
    changed = _same(
        c,
        f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq})",
        f"UID FETCH 1:* (FLAGS RFC822.SIZE) (CHANGEDSINCE {modseq})",
        _SIZE,
    )
    assert len(changed) == 2 and all(b"MODSEQ (" in ln and b"\\Draft" in ln for ln in changed)
    c.close()


def test_lean_fetch_recent_and_uidonly(server: ServerThread) -> None:
    user = server.new_user()
    _populate(server, user, 12)
    conn = server.connect(user)  # three more that no session has seen yet
    for i in range(3):
        assert conn.append("INBOX", "(\\Seen)", None, simple(f"new {i}"))[0] == "OK"
    conn.logout()
    c = _login(server, user)  # IMAP4rev1: \Recent is shown
    c.cmd("SELECT INBOX", tag="S")
    lines = _same(c, "FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS RFC822.SIZE)", _SIZE)
    assert [b"\\Recent" in ln for ln in lines] == [False] * 9 + [True] * 3
    c.close()
    u = _login(server, user)
    u.cmd("ENABLE UIDONLY", tag="E")
    u.cmd("SELECT INBOX", tag="S")
    lines = _same(u, "UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS RFC822.SIZE)", _SIZE)
    assert lines[0].startswith(b"* 1 UIDFETCH (FLAGS ")
    u.close()


def test_flag_only_search_equals_general_search(server: ServerThread) -> None:
    """Flag/set/MODSEQ searches run over flag rows; ``LARGER 0`` (true for every
    message) forces the general path for the same answer."""
    user = server.new_user()
    _populate(server, user, 40)
    c = _login(server, user)
    c.cmd("ENABLE CONDSTORE", tag="E")
    sel = b"".join(c.cmd("SELECT INBOX", tag="S"))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))
    c.cmd("UID STORE 10:20 +FLAGS.SILENT (\\Deleted $Later)", tag="T")
    for key in (
        "UNSEEN",
        "SEEN FLAGGED",
        "OR ANSWERED KEYWORD $work",
        "NOT KEYWORD $Later",
        "5:30 UNSEEN",
        "UID 12:* DELETED",
        "UNKEYWORD $Work NOT 1:3",
        f"MODSEQ {modseq}",
        "ALL",
    ):
        for cmd in ("SEARCH", "UID SEARCH"):
            lean = [ln for ln in c.cmd(f"{cmd} {key}", tag="A") if ln.startswith(b"* ")]
            general = [ln for ln in c.cmd(f"{cmd} {key} LARGER 0", tag="B") if ln.startswith(b"* ")]
            assert lean == general, (cmd, key)
            assert lean and lean[0].startswith(b"* SEARCH")
    hits = c.cmd("SEARCH UNSEEN", tag="U")[0].split()[2:]
    assert len(hits) == 17  # i % 4 in (2, 3) of 40, less the expunged UIDs 3, 7 and 8
    c.close()


def test_big_mailbox_fetch_flags_is_shared_and_never_stale(server: ServerThread) -> None:
    """FETCH 1:* (FLAGS) of a big mailbox is served from the server's response cache
    while the mailbox is unchanged, to any session, and never after a change."""
    import datetime

    from carteiro.imap.response_cache import MIN_MESSAGES
    from carteiro.store.interface import NewMessage

    user = server.new_user()
    account = server.call(server.store.get_account(user))
    inbox = server.call(server.store.get_mailbox(account.id, "INBOX"))
    now = datetime.datetime.now(datetime.UTC)
    raw = simple("bulk")
    from carteiro.message.meta import analyse

    meta = analyse(raw).to_bytes()
    batch = [
        NewMessage(raw, meta, frozenset({"\\Seen"} if i % 3 else set()), now)
        for i in range(MIN_MESSAGES + 5)
    ]
    server.call(server.store.append(inbox.id, batch))
    cache = server.server.responses
    a, b = _login(server, user), _login(server, user)
    for c in (a, b):
        c.cmd("ENABLE IMAP4rev2", tag="E")  # no \Recent: the answer may be shared
        c.cmd("SELECT INBOX", tag="S")
    first = a.cmd("FETCH 1:* (FLAGS)", tag="F1")
    hits = cache.hits
    assert a.cmd("FETCH 1:* (FLAGS)", tag="F2")[:-1] == first[:-1]
    assert b.cmd("FETCH 1:* (FLAGS)", tag="F3")[:-1] == first[:-1]
    assert cache.hits == hits + 2
    assert first[1] == b"* 2 FETCH (FLAGS (\\Seen))\r\n"
    b.cmd("STORE 2 -FLAGS.SILENT (\\Seen)", tag="T")
    a.cmd("NOOP", tag="N")  # a learns of the change
    after = a.cmd("FETCH 1:* (FLAGS)", tag="F4")
    assert after[1] == b"* 2 FETCH (FLAGS ())\r\n"
    assert after[:-1] == _same(a, "FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS RFC822.SIZE)", _SIZE)
    a.close()
    b.close()


def test_search_one_flag_follows_other_sessions(server: ServerThread) -> None:
    """SEARCH on one system flag is answered from the store's flag index. While another
    session expunges (held back during SEARCH) and appends, the MSNs stay those of this
    session's view, and answers equal the general path's, in every RETURN form."""
    user = server.new_user()
    _populate(server, user, 24)
    c = _login(server, user)
    c.cmd("ENABLE CONDSTORE", tag="E")
    c.cmd("SELECT INBOX", tag="S")

    def same(key: str) -> list[bytes]:
        lean = [ln for ln in c.cmd(key, tag="A") if ln.startswith(b"* ")]
        general = [ln for ln in c.cmd(f"{key} LARGER 0", tag="B") if ln.startswith(b"* ")]
        strip = re.compile(rb" ?\(TAG \"[AB]\"\)")
        assert [strip.sub(b"", ln) for ln in lean] == [strip.sub(b"", ln) for ln in general]
        return lean

    before = same("SEARCH UNSEEN")[0].split()[2:]
    other = server.connect(user)
    other.select("INBOX")
    other.uid("STORE", "2,4", "+FLAGS", "(\\Deleted)")  # UID 4 (MSN 3) is unseen
    other.expunge()
    typ, _ = other.append("INBOX", "()", None, simple("arrived"))
    assert typ == "OK"
    other.logout()
    # the first command after the changes runs before this session has seen them: the
    # store's answer holds a UID it does not know yet, and lacks one it still shows
    first = [ln for ln in c.cmd("SEARCH UNSEEN", tag="A") if ln.startswith(b"* SEARCH")]
    assert first[0].split()[2:] == [n for n in before if n != b"3"]
    # SEARCH may not announce the expunges: MSNs are still those of the old view
    held = same("SEARCH UNSEEN")
    assert held[0].split()[2:] == [n for n in before if n != b"3"] + [b"22"]
    c.cmd("NOOP", tag="N")
    after = same("SEARCH UNSEEN")[0].split()[2:]
    assert len(after) == len(before)  # one unseen gone, one arrived
    assert same("UID SEARCH UNSEEN")[0].split()[-1] == b"25"  # the new message
    for key in (
        "SEARCH RETURN (MIN MAX COUNT) UNSEEN",
        "UID SEARCH RETURN (ALL) UNSEEN",
        "SEARCH RETURN () DELETED",
        "UID SEARCH RETURN (MIN) FLAGGED",
        "SEARCH SEEN",
        "UID SEARCH NOT DELETED",
    ):
        same(key)
    c.cmd("SEARCH RETURN (SAVE) UNSEEN", tag="V")
    saved = [ln for ln in c.cmd("FETCH $ (UID)", tag="F") if b" FETCH (" in ln]
    assert len(saved) == len(after)
    c.close()


def test_lean_meta_fetch_equals_general_fetch(server: ServerThread) -> None:
    """ENVELOPE, BODY, BODYSTRUCTURE and RFC822.SIZE with UID/FLAGS/MODSEQ come from
    meta rows (one read per chunk, no records): byte for byte what the general path
    sends, for the sample messages (multipart, attachments, non-ASCII headers, '%' in
    subjects), scattered UID sets, holes in the view, UIDONLY and CHANGEDSINCE."""
    from tests.integration.mbox import sample_messages

    user = server.new_user()
    conn = server.connect(user)
    samples = sample_messages()
    for i, raw in enumerate(samples):
        flags = ["(\\Seen)", "($Work)", "()"][i % 3]
        typ, data = conn.append("INBOX", flags, None, raw)
        assert typ == "OK", data
    conn.append("INBOX", "()", None, simple("100% sure %d %s"))
    conn.select("INBOX")
    conn.store("5,9,40:44", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    c = _login(server, user)
    c.cmd("ENABLE CONDSTORE", tag="E")
    sel = b"".join(c.cmd("SELECT INBOX", tag="S"))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel).group(1))
    lines = _same(
        c,
        "FETCH 1:* (ENVELOPE BODYSTRUCTURE)",
        "FETCH 1:* (ENVELOPE BODYSTRUCTURE INTERNALDATE)",
        _DATE,
    )
    assert len(lines) == len(samples) + 1 - 7
    assert b"100% sure %d %s" in lines[-1]
    _same(
        c,
        "UID FETCH 2,7:12,30:39,60,80:* (FLAGS RFC822.SIZE BODY ENVELOPE MODSEQ)",
        "UID FETCH 2,7:12,30:39,60,80:* (FLAGS RFC822.SIZE BODY ENVELOPE MODSEQ INTERNALDATE)",
        _DATE,
    )
    _same(
        c,
        "FETCH 3,1,20:25 (BODYSTRUCTURE UID)",
        "FETCH 3,1,20:25 (BODYSTRUCTURE UID INTERNALDATE)",
        _DATE,
    )
    c.cmd("UID STORE 10,11 +FLAGS.SILENT (\\Answered)", tag="T")
    changed = _same(
        c,
        f"FETCH 1:* (ENVELOPE) (CHANGEDSINCE {modseq})",
        f"FETCH 1:* (ENVELOPE INTERNALDATE) (CHANGEDSINCE {modseq})",
        _DATE,
    )
    assert len(changed) == 2 and all(b"MODSEQ (" in ln for ln in changed)
    c.close()
    u = _login(server, user)
    u.cmd("ENABLE UIDONLY", tag="E")
    u.cmd("SELECT INBOX", tag="S")
    lines = _same(
        u,
        "UID FETCH 1:20 (ENVELOPE RFC822.SIZE)",
        "UID FETCH 1:20 (ENVELOPE RFC822.SIZE INTERNALDATE)",
        _DATE,
    )
    assert lines[0].startswith(b"* 1 UIDFETCH (ENVELOPE (")
    u.close()
