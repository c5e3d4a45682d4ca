"""CONDSTORE and QRESYNC (RFC 7162) against the real server."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carteiro.delivery import new_message
from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def login(server: ServerThread, user: str, *enable: str) -> RawClient:
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    if enable:
        assert c.cmd("ENABLE " + " ".join(enable), tag="E")[0].startswith(b"* ENABLED")
    return c


def highest(lines: list[bytes]) -> int:
    for line in lines:
        if m := re.search(rb"\[HIGHESTMODSEQ (\d+)\]", line):
            return int(m[1])
    raise AssertionError(lines)


def modseq_of(line: bytes) -> int:
    m = re.search(rb"MODSEQ \((\d+)\)", line)
    assert m, line
    return int(m[1])


def test_enable_select_and_fetch_modseq(server: ServerThread, user: str) -> None:
    for i in range(3):
        server.deliver(user, simple(f"c{i}"))
    c = login(server, user)
    assert b"CONDSTORE" in c.cmd("CAPABILITY", tag="a")[0]
    assert c.cmd("ENABLE CONDSTORE", tag="b")[0] == b"* ENABLED CONDSTORE\r\n"
    top = highest(c.cmd("SELECT INBOX", tag="c"))
    out = c.cmd("FETCH 1:* (MODSEQ)", tag="d")
    seqs = [modseq_of(x) for x in out[:-1]]
    assert len(seqs) == 3 and max(seqs) == top
    out = c.cmd("STORE 2 +FLAGS (\\Flagged)", tag="e")
    new = modseq_of(out[0])
    assert new > top and b"FLAGS (\\Flagged" in out[0]
    assert b"HIGHESTMODSEQ %d" % new in c.cmd("STATUS INBOX (HIGHESTMODSEQ)", tag="f")[0]
    changed = c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {top})", tag="g")
    assert len(changed) == 2 and changed[0].startswith(b"* 2 FETCH") and b"MODSEQ" in changed[0]
    assert c.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {new})", tag="h") == [
        b"h OK FETCH completed\r\n"
    ]
    found = c.cmd(f"SEARCH MODSEQ {new}", tag="i")[0]
    assert found == b"* SEARCH 2 (MODSEQ %d)\r\n" % new
    c.close()


def test_conditional_store(server: ServerThread, user: str) -> None:
    for i in range(3):
        server.deliver(user, simple(f"u{i}"))
    c = login(server, user, "CONDSTORE")
    top = highest(c.cmd("SELECT INBOX", tag="a"))
    other = login(server, user)
    other.cmd("SELECT INBOX", tag="b")
    other.cmd("STORE 2 +FLAGS ($Work)", tag="c")  # someone else changes message 2
    out = c.cmd(f"STORE 1:3 (UNCHANGEDSINCE {top}) +FLAGS.SILENT (\\Seen)", tag="d")
    assert out[-1] == b"d OK [MODIFIED 2] Conditional STORE failed for some messages\r\n"
    silent = [x for x in out if b"FETCH" in x and b"FLAGS" not in x]
    assert [x.split()[1] for x in silent] == [b"1", b"3"]  # MODSEQ only, for what changed
    assert all(b"MODSEQ (" in x for x in silent)
    # the unsolicited update from the other session carries MODSEQ too
    assert any(b"$Work" in x and b"MODSEQ (" in x for x in out)
    out = c.cmd("UID STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\\Seen)", tag="e")
    assert out[-1].startswith(b"e OK [MODIFIED 1:3]")
    c.close()
    other.close()


def test_qresync_select_reports_only_changes(server: ServerThread, user: str) -> None:
    for i in range(6):
        server.deliver(user, simple(f"q{i}"))
    c = login(server, user, "QRESYNC")
    sel = c.cmd("SELECT INBOX", tag="a")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(sel))[1])
    known = highest(sel)
    c.cmd("LOGOUT", tag="z")
    other = login(server, user)
    other.cmd("SELECT INBOX", tag="b")
    other.cmd("STORE 2 +FLAGS (\\Answered)", tag="c")
    other.cmd("STORE 4:5 +FLAGS (\\Deleted)", tag="d")
    other.cmd("EXPUNGE", tag="e")
    c = login(server, user, "QRESYNC")
    out = c.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {known} 1:6))", tag="f")
    assert b"* VANISHED (EARLIER) 4:5\r\n" in out
    fetches = [x for x in out if b"FETCH" in x]
    assert len(fetches) == 1 and fetches[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Answered")
    # a QRESYNC session hears expunges as VANISHED, its own and others'
    other.cmd("STORE 1 +FLAGS (\\Deleted)", tag="g")
    other.cmd("EXPUNGE", tag="h")
    assert b"* VANISHED 1\r\n" in c.cmd("NOOP", tag="i")
    c.cmd("STORE 1 +FLAGS (\\Deleted)", tag="j")  # now UID 2
    assert c.cmd("EXPUNGE", tag="k")[:-1] == [b"* VANISHED 2\r\n"]
    out = c.cmd(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)", tag="l")
    assert out[0] == b"* VANISHED (EARLIER) 1:2,4:5\r\n"
    # wrong UIDVALIDITY: a plain SELECT, nothing extra
    out = c.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {known}))", tag="m")
    assert not any(b"VANISHED" in x for x in out) and out[-1].startswith(b"m OK")
    c.close()
    other.close()


def test_qresync_needs_enable(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert c.cmd("SELECT INBOX (QRESYNC (1 1))", tag="a")[-1].startswith(b"a BAD")
    c.cmd("SELECT INBOX", tag="b")
    assert c.cmd("UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)", tag="c")[-1].startswith(b"c BAD")
    c.close()


def _populate(server: ServerThread, user: str, count: int) -> None:
    async def fill() -> None:
        account = await server.store.get_account(user)
        assert account is not None
        box = await server.store.get_mailbox(account.id, "INBOX")
        assert box is not None
        raw = simple("bulk", body="x" * 200 + "\r\n")
        one = await new_message(
            raw, frozenset(), __import__("datetime").datetime.now().astimezone()
        )
        for _ in range(count // 1000):
            await server.store.append(box.id, [one] * 1000)

    server.call(fill(), timeout=300)


@pytest.mark.slow
def test_resync_of_a_big_mailbox_costs_only_the_changes(server: ServerThread) -> None:
    user = server.new_user()
    _populate(server, user, 50_000)
    c = login(server, user, "QRESYNC")
    sel = c.cmd("SELECT INBOX", tag="a")
    assert b"* 50000 EXISTS\r\n" in sel
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(sel))[1])
    known = highest(sel)
    c.cmd("LOGOUT", tag="z")
    other = login(server, user)
    other.cmd("SELECT INBOX", tag="b")
    for uid in range(1000, 11000, 1000):  # 10 flag changes
        other.cmd(f"UID STORE {uid} +FLAGS (\\Seen)", tag="c")
    other.cmd("UID STORE 20001:20005 +FLAGS.SILENT (\\Deleted)", tag="d")
    other.cmd("UID EXPUNGE 20001:20005", tag="e")  # 5 expunges
    c = RawClient(server.port)
    c.cmd(f"LOGIN {user} secret", tag="L")
    c.cmd("ENABLE QRESYNC", tag="E")
    out = c.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {known}))", tag="f")
    sent = sum(len(x) for x in out)
    fetches = [x for x in out if b" FETCH " in x]
    assert len(fetches) == 10 and all(b"\\Seen" in x for x in fetches)
    assert b"* VANISHED (EARLIER) 20001:20005\r\n" in out
    assert sent < 2048, (sent, out)
    c.close()
    other.close()


@pytest.fixture(scope="module")
def prop_server(tmp_path_factory: pytest.TempPathFactory):
    srv = ServerThread(tmp_path_factory.mktemp("qresync-prop"))
    yield srv
    srv.stop()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 3)),
        st.tuples(st.just("flag"), st.integers(1, 40), st.sampled_from(["+", "-"])),
        st.tuples(st.just("expunge"), st.integers(1, 40)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(initial=st.integers(0, 8), script=ops)
def test_qresync_changes_equal_a_full_fetch(
    prop_server: ServerThread, initial: int, script
) -> None:
    """A client that kept its state and applies what QRESYNC tells it ends up with exactly
    the state a full FETCH shows."""
    srv = prop_server
    user = srv.new_user()
    for i in range(initial):
        srv.deliver(user, simple(f"p{i}"))
    client = login(srv, user, "QRESYNC")
    sel = client.cmd("SELECT INBOX", tag="a")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(sel))[1])
    known_modseq = highest(sel)
    state = {}
    for line in client.cmd("UID FETCH 1:* (FLAGS)", tag="b")[:-1]:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \((.*?)\)", line)
        state[int(m[1])] = set(m[2].split()) - {b"\\Recent"}
    client.cmd("LOGOUT", tag="z")
    actor = login(srv, user)
    actor.cmd("SELECT INBOX", tag="c")
    for op in script:
        if op[0] == "append":
            for _ in range(op[1]):
                srv.deliver(user, simple("later"))
            actor.cmd("NOOP", tag="n")
        elif op[0] == "flag":
            actor.cmd(f"UID STORE {op[1]} {op[2]}FLAGS (\\Flagged)", tag="d")
        else:
            actor.cmd(f"UID STORE {op[1]} +FLAGS.SILENT (\\Deleted)", tag="e")
            actor.cmd(f"UID EXPUNGE {op[1]}", tag="f")
    actor.close()
    client = login(srv, user, "QRESYNC")
    out = client.cmd(f"SELECT INBOX (QRESYNC ({uidvalidity} {known_modseq}))", tag="g")
    for line in out:
        if m := re.match(rb"\* VANISHED \(EARLIER\) (.*)\r\n", line):
            for part in m[1].split(b","):
                lo, _, hi = part.partition(b":")
                for uid in range(int(lo), int(hi or lo) + 1):
                    state.pop(uid, None)
        elif m := re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \((.*?)\)", line):
            state[int(m[1])] = set(m[2].split()) - {b"\\Recent"}
    truth = {}
    for line in client.cmd("UID FETCH 1:* (FLAGS)", tag="h")[:-1]:
        m = re.match(rb"\* \d+ FETCH \(UID (\d+) FLAGS \((.*?)\)", line)
        if m:
            truth[int(m[1])] = set(m[2].split()) - {b"\\Recent"}
    assert state == truth
    client.close()
