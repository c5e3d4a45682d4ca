"""Hypothesis tests of the IMAP receiver/parser: no crashes, split invariance, round trips."""

from __future__ import annotations

import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol import wire
from carteiro.imap.protocol.grammar import parse_sequence_set
from carteiro.imap.protocol.receiver import (
    CommandError,
    CommandReceived,
    Event,
    FatalError,
    Limits,
    LineReceived,
    LiteralRejected,
    NeedContinuation,
    NeedData,
    Receiver,
)
from carteiro.imap.protocol.sequence_set import SequenceSet, from_numbers

EVENT_TYPES = (
    NeedContinuation,
    CommandReceived,
    CommandError,
    LiteralRejected,
    FatalError,
    LineReceived,
)
SMALL = Limits(max_line=200, max_literal=300, max_command=1000, max_depth=4, max_search_depth=8)


def run(chunks: list[bytes], *, limits: Limits, utf8: bool, expect_every: int = 0) -> list[Event]:
    rx = Receiver(limits)
    rx.utf8 = utf8
    out: list[Event] = []
    for chunk in chunks:
        rx.receive_data(chunk)
        while not isinstance(ev := rx.next_event(), NeedData):
            assert isinstance(ev, EVENT_TYPES)
            if isinstance(ev, CommandError | LiteralRejected | FatalError):
                assert ev.text and "\n" not in ev.text
            out.append(ev)
            if expect_every and len(out) % expect_every == 0:
                rx.expect_line()
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


# Tokens that drive the parser deep into the grammar.
TOKENS = [
    b"a1 ",
    b"UID ",
    b"FETCH ",
    b"SEARCH ",
    b"STORE ",
    b"APPEND ",
    b"LOGIN ",
    b"LIST ",
    b"SELECT ",
    b"CREATE ",
    b"STATUS ",
    b"ID ",
    b"AUTHENTICATE ",
    b"ENABLE ",
    b"COPY ",
    b"BODY[",
    b"BODY.PEEK[",
    b"BINARY[",
    b"BINARY.SIZE[",
    b"HEADER.FIELDS (",
    b"MIME",
    b"1.2",
    b"]",
    b"<0.10>",
    b"(",
    b")",
    b" ",
    b'"',
    b"\\",
    b"\\Seen",
    b"{3}\r\n",
    b"{2+}\r\n",
    b"~{1}\r\n",
    b"\r\n",
    b"\n",
    b"1:*",
    b"$",
    b"*",
    b",",
    b"0",
    b"OR ",
    b"NOT ",
    b"CHARSET UTF-8 ",
    b"RETURN (",
    b"1-Feb-2024",
    b'" 1-Feb-2024 10:00:00 +0000"',
    b"+FLAGS.SILENT ",
    b"NIL",
    b"=",
    b"AGJvYgBwdw==",
    b"\xc3\xa9",
    b"\xff",
    b"\x00",
    b"x",
    b"INBOX",
    b"USE (",
    b"RECURSIVEMATCH",
    b"SUBSCRIBED",
    b"STATUS (MESSAGES)",
    b"{999}\r\n",
    b"{999+}\r\n",
    # RFC 7162 CONDSTORE / QRESYNC
    b"MODSEQ",
    b"MODSEQ ",
    b"(CHANGEDSINCE 5 VANISHED)",
    b"(CHANGEDSINCE 0)",
    b"(UNCHANGEDSINCE 0) ",
    b"(CONDSTORE)",
    b"QRESYNC (",
    b'"/flags/\\\\seen" all ',
    b"HIGHESTMODSEQ",
    b"9223372036854775808",
    # RFC 5032, 8514, 8474, 8970, 8437, 4978, 9208
    b"OLDER ",
    b"YOUNGER ",
    b"SAVEDSINCE ",
    b"SAVEDATESUPPORTED",
    b"EMAILID ",
    b"THREADID ",
    b"M6d99ac3275bb4e",
    b"SAVEDATE",
    b"PREVIEW",
    b"PREVIEW (LAZY)",
    b"(LAZY",
    b"MAILBOXID",
    b"DELETED-STORAGE",
    b"UNAUTHENTICATE",
    b"COMPRESS DEFLATE",
    b"GETQUOTA ",
    b"GETQUOTAROOT ",
    b"SETQUOTA ",
    b"(STORAGE 512 MESSAGE 0)",
    # RFC 8508 REPLACE, RFC 6855 UTF8 append data, RFC 9394 PARTIAL
    b"REPLACE ",
    b"UID REPLACE 4 ",
    b"UTF8 (",
    b"UTF8 (~{3}\r\nabc)",
    b"PARTIAL ",
    b"-1:-100",
    b"100:1",
    b"-1:5",
    b"(PARTIAL 1:500)",
    b"RETURN (PARTIAL -1:-30 COUNT) ",
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)

# Grammar-shaped commands, then mutated, to reach deep into the parser.
seq_text = st.sampled_from([b"1", b"1:*", b"*", b"$", b"2,4:7", b"0", b"1:", b"4294967296"])
astr = st.one_of(
    st.sampled_from([b"INBOX", b'"a b"', b'""', b"x]y", b"{3}\r\nabc", b"{2+}\r\n\xc3\xa9"]),
    st.binary(max_size=6).map(lambda b: b"{%d}\r\n" % len(b) + b),
)
flag = st.sampled_from([b"\\Seen", b"\\seen", b"\\Recent", b"$Junk", b"\\X", b"kw"])
flags = st.lists(flag, max_size=3).map(lambda f: b"(" + b" ".join(f) + b")")
section = st.sampled_from(
    [b"", b"1", b"1.2.MIME", b"HEADER", b"2.TEXT", b"HEADER.FIELDS (From {2}\r\nTo)", b"0", b"MIME"]
)
fetch_att = st.one_of(
    st.sampled_from(
        [
            b"FLAGS",
            b"UID",
            b"RFC822.SIZE",
            b"ENVELOPE",
            b"BODYSTRUCTURE",
            b"ALL",
            b"MODSEQ",
            b"SAVEDATE",
            b"EMAILID",
            b"THREADID",
            b"PREVIEW",
            b"PREVIEW (LAZY)",
            b"PREVIEW (LAZY FUZZY)",
            b"PREVIEW ()",
        ]
    ),
    st.tuples(st.sampled_from([b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.SIZE"]), section).map(
        lambda t: t[0] + b"[" + t[1] + b"]"
    ),
)
modseq_text = st.sampled_from([b"0", b"1", b"620162338", b"9223372036854775807", b"x"])
modseq_entry = st.sampled_from(
    [b"", b'"/flags/\\\\draft" all ', b'"/flags/$Junk" PRIV ', b'"/flags/" shared ', b'"x" all ']
)
fetch_mods = st.sampled_from(
    [
        b"",
        b" (CHANGEDSINCE 12345)",
        b" (CHANGEDSINCE 12345 VANISHED)",
        b" (VANISHED)",
        b" (CHANGEDSINCE 0)",
        b" (FOO)",
    ]
)
qresync_args = st.sampled_from(
    [b"1 2", b"67890007 20050715194045000 41,43:211", b"1 2 1:5 (1,3 2,9)", b"1 2 (1:3 4)", b"0 1"]
)
number_text = st.sampled_from(
    [b"0", b"1", b"007", b"3600", b"4294967295", b"4294967296", b"9223372036854775808", b"x"]
)
object_id = st.one_of(
    st.sampled_from([b"M6d99ac3275bb4e", b"a_b-C", b'"T1"', b"a.b", b'""', b"x" * 256]),
    st.from_regex(rb"[A-Za-z0-9_-]{1,255}", fullmatch=True),
)
partial_text = st.one_of(
    st.sampled_from(
        [b"1:100", b"-1:-100", b"100:1", b"-5:-5", b"0:5", b"-1:5", b"1:*", b"5", b"1:4294967296"]
    ),
    st.tuples(st.booleans(), st.integers(0, 2**32), st.integers(0, 2**32)).map(
        lambda t: b"%s%d:%s%d" % (b"-" if t[0] else b"", t[1], b"-" if t[0] else b"", t[2])
    ),
)
append_data = st.tuples(
    st.sampled_from(
        [b"{%d}\r\n", b"{%d+}\r\n", b"~{%d}\r\n", b"UTF8 (~{%d+}\r\n", b"UTF8 ({%d}\r\n"]
    ),
    st.binary(max_size=5),
).map(lambda t: t[0] % len(t[1]) + t[1] + (b")" if t[0].startswith(b"UTF8") else b""))
append_message = st.tuples(
    st.one_of(st.just(b""), flags.map(lambda f: f + b" ")),
    st.sampled_from([b"", b'"01-Feb-2024 10:20:30 +0000" ', b'"31-Feb-2024 10:20:30 +0000" ']),
    append_data,
).map(b"".join)
date_text = st.sampled_from([b"1-Feb-2024", b'"01-feb-2024"', b"31-Feb-2024", b"2024-02-01"])
search_key = st.recursive(
    st.one_of(
        st.sampled_from(
            [
                b"ALL",
                b"SEEN",
                b"NEW",
                b"OLD",
                b"UNDRAFT",
                b"BEFORE 1-Feb-2024",
                b"SAVEDATESUPPORTED",
            ]
        ),
        st.tuples(st.sampled_from([b"OLDER ", b"YOUNGER "]), number_text).map(b"".join),
        st.tuples(st.sampled_from([b"SAVEDBEFORE ", b"SAVEDON ", b"SAVEDSINCE "]), date_text).map(
            b"".join
        ),
        st.tuples(st.sampled_from([b"EMAILID ", b"THREADID "]), object_id).map(b"".join),
        st.tuples(modseq_entry, modseq_text).map(lambda t: b"MODSEQ " + t[0] + t[1]),
        astr.map(lambda a: b"SUBJECT " + a),
        seq_text.map(lambda q: b"UID " + q),
        seq_text,
    ),
    lambda inner: st.one_of(
        inner.map(lambda k: b"NOT " + k),
        st.tuples(inner, inner).map(lambda t: b"OR " + t[0] + b" " + t[1]),
        st.lists(inner, min_size=1, max_size=3).map(lambda ks: b"(" + b" ".join(ks) + b")"),
    ),
    max_leaves=8,
)
command = st.one_of(
    st.tuples(seq_text, st.lists(fetch_att, min_size=1, max_size=4), fetch_mods).map(
        lambda t: b"UID FETCH " + t[0] + b" (" + b" ".join(t[1]) + b")" + t[2]
    ),
    st.tuples(seq_text, fetch_mods).map(lambda t: b"FETCH " + t[0] + b" MODSEQ" + t[1]),
    st.tuples(seq_text, modseq_text, flags).map(
        lambda t: b"STORE " + t[0] + b" (UNCHANGEDSINCE " + t[1] + b") FLAGS " + t[2]
    ),
    st.tuples(astr, qresync_args).map(
        lambda t: b"EXAMINE " + t[0] + b" (CONDSTORE QRESYNC (" + t[1] + b"))"
    ),
    astr.map(lambda a: b"STATUS " + a + b" (HIGHESTMODSEQ MESSAGES)"),
    search_key.map(lambda k: b"SEARCH RETURN (MIN) CHARSET UTF-8 " + k),
    st.tuples(seq_text, flags).map(lambda t: b"STORE " + t[0] + b" +FLAGS.SILENT " + t[1]),
    st.tuples(astr, flags, st.binary(max_size=5)).map(
        lambda t: b"APPEND " + t[0] + b" " + t[1] + b" {%d+}\r\n" % len(t[2]) + t[2]
    ),
    st.tuples(astr, astr).map(lambda t: b"LOGIN " + t[0] + b" " + t[1]),
    astr.map(lambda a: b'LIST (SUBSCRIBED) "" (' + a + b") RETURN (STATUS (MESSAGES))"),
    astr.map(lambda a: b"SELECT " + a + b" (QRESYNC (1 2 1:3))"),
    astr.map(lambda a: b"CREATE " + a + b" (USE (\\Sent))"),
    # RFC 8474 / 7889 / 9208 STATUS items, RFC 8437, RFC 4978, RFC 9208 QUOTA
    astr.map(lambda a: b"STATUS " + a + b" (MAILBOXID APPENDLIMIT DELETED-STORAGE)"),
    st.sampled_from([b"UNAUTHENTICATE", b"COMPRESS DEFLATE", b"COMPRESS x-zstd"]),
    astr.map(lambda a: b"GETQUOTA " + a),
    astr.map(lambda a: b"GETQUOTAROOT " + a),
    st.tuples(
        astr,
        st.lists(
            st.tuples(st.sampled_from([b"STORAGE", b"message", b"X-FOO", b"5"]), number_text),
            max_size=3,
        ),
    ).map(lambda t: b"SETQUOTA " + t[0] + b" (" + b" ".join(r + b" " + n for r, n in t[1]) + b")"),
    # RFC 8508 REPLACE, RFC 6855 UTF8 APPEND data (also in MULTIAPPEND), RFC 9394 PARTIAL
    st.tuples(
        st.sampled_from([b"REPLACE ", b"UID REPLACE "]),
        st.sampled_from([b"1", b"4294967295", b"0", b"1:2", b"*", b"$", b"4294967296"]),
        astr,
        append_message,
    ).map(lambda t: t[0] + t[1] + b" " + t[2] + b" " + t[3]),
    st.tuples(astr, st.lists(append_message, min_size=1, max_size=3)).map(
        lambda t: b"APPEND " + t[0] + b" " + b" ".join(t[1])
    ),
    st.tuples(
        st.lists(st.sampled_from([b"MIN", b"MAX", b"COUNT", b"SAVE", b"ALL"]), max_size=2),
        partial_text,
        search_key,
    ).map(lambda t: b"UID SEARCH RETURN (" + b" ".join([*t[0], b"PARTIAL " + t[1]]) + b") " + t[2]),
    st.tuples(seq_text, partial_text, st.sampled_from([b"", b" CHANGEDSINCE 5", b" VANISHED"])).map(
        lambda t: b"UID FETCH " + t[0] + b" (FLAGS) (PARTIAL " + t[1] + t[2] + b")"
    ),
)


@st.composite
def mutated_commands(draw: st.DrawFn) -> bytes:
    out = b""
    for cmd in draw(st.lists(command, min_size=1, max_size=4)):
        data = bytearray(b"t " + cmd + b"\r\n")
        for _ in range(draw(st.integers(0, 2))):
            i = draw(st.integers(0, len(data)))
            if draw(st.booleans()) and i < len(data):
                del data[i]
            else:
                data[i:i] = draw(st.sampled_from([b" ", b"(", b")", b"]", b"\r\n", b"{1}", b"x"]))
        out += bytes(data)
    return out


any_bytes = st.one_of(st.binary(max_size=400), token_soup, mutated_commands())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(any_bytes, st.lists(st.integers(0, 500), max_size=8), st.booleans(), st.integers(0, 3))
def test_random_input_only_produces_events(
    data: bytes, cuts: list[int], utf8: bool, expect_every: int
) -> None:
    run(split(data, cuts), limits=SMALL, utf8=utf8, expect_every=expect_every)
    run([data], limits=Limits(), utf8=utf8, expect_every=expect_every)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(token_soup, mutated_commands()),
    st.lists(st.integers(0, 500), max_size=10),
    st.booleans(),
)
def test_split_invariance(data: bytes, cuts: list[int], utf8: bool) -> None:
    assert run(split(data, cuts), limits=SMALL, utf8=utf8) == run([data], limits=SMALL, utf8=utf8)


bound = st.one_of(st.none(), st.integers(1, 2**32 - 1))
sequence_sets = st.lists(st.tuples(bound, bound), min_size=1, max_size=6).map(
    lambda ranges: SequenceSet(tuple(ranges))
)


@given(sequence_sets)
def test_sequence_set_round_trip(seqs: SequenceSet) -> None:
    assert parse_sequence_set(str(seqs).encode()) == seqs
    events = run([b"t UID COPY " + str(seqs).encode() + b" x\r\n"], limits=Limits(), utf8=False)
    assert events == [CommandReceived(c.Copy("t", True, seqs, "x"))]


nul_free_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=40
)


@given(nul_free_text, nul_free_text, st.booleans())
def test_wire_astring_round_trip_through_login(user: str, password: str, utf8: bool) -> None:
    line = b"t LOGIN " + wire.astring(user, utf8=utf8) + b" " + wire.astring(password, utf8=utf8)
    events = run([line + b"\r\n"], limits=Limits(), utf8=utf8)
    assert events[-1] == CommandReceived(c.Login("t", user, password))
    assert all(isinstance(e, NeedContinuation) for e in events[:-1])


@given(nul_free_text, st.booleans())
def test_wire_string_round_trip_through_search(value: str, utf8: bool) -> None:
    line = b"t SEARCH CHARSET UTF-8 SUBJECT " + wire.string(value, utf8=utf8)
    events = run([line + b"\r\n"], limits=Limits(), utf8=utf8)
    last = events[-1]
    assert isinstance(last, CommandReceived) and isinstance(last.command, c.Search)
    assert last.command.key.value == value  # type: ignore[union-attr]


# --- RFC 7162 values round-trip ---------------------------------------------------------

MAX63 = 2**63 - 1
modseq_ints = st.one_of(
    st.integers(0, 2**64), st.sampled_from([0, 1, MAX63, MAX63 + 1, 10**19, 10**20])
)


def parse_one(line: bytes) -> Event:
    events = run([line + b"\r\n"], limits=Limits(), utf8=False)
    assert len(events) == 1, events
    return events[0]


@given(modseq_ints)
def test_modseq_values_round_trip(n: int) -> None:
    fetch = parse_one(b"t UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % n)
    if 1 <= n <= MAX63:
        assert isinstance(fetch, CommandReceived) and isinstance(fetch.command, c.Fetch)
        assert (fetch.command.changed_since, fetch.command.vanished) == (n, True)
    else:
        assert isinstance(fetch, CommandError) and fetch.status == "BAD"
    store = parse_one(b"t STORE 1 (UNCHANGEDSINCE %d) +FLAGS (a)" % n)
    search = parse_one(b't SEARCH NOT MODSEQ "/flags/\\\\seen" all %d' % n)
    if n <= MAX63:
        assert isinstance(store, CommandReceived) and isinstance(store.command, c.Store)
        assert store.command.unchanged_since == n
        assert isinstance(search, CommandReceived) and isinstance(search.command, c.Search)
        assert search.command.key == k.Not(k.ModSeqKey(n, ("/flags/\\seen", "all")))
    else:
        assert isinstance(store, CommandError) and store.status == "BAD"
        assert isinstance(search, CommandError) and search.status == "BAD"


finite_sets = st.lists(
    st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)), min_size=1, max_size=4
).map(lambda ranges: SequenceSet(tuple(ranges)))
small_numbers = st.lists(st.integers(1, 50), min_size=1, max_size=6)


@given(
    st.integers(1, 2**32 - 1),
    st.integers(1, MAX63),
    st.one_of(st.none(), finite_sets),
    st.one_of(st.none(), st.tuples(small_numbers, small_numbers)),
)
def test_qresync_round_trip(
    uidvalidity: int,
    modseq: int,
    known: SequenceSet | None,
    match: tuple[list[int], list[int]] | None,
) -> None:
    args = b"%d %d" % (uidvalidity, modseq)
    if known is not None:
        args += b" " + str(known).encode()
    seq_match = None
    if match is not None:
        seq_match = (from_numbers(match[0]), from_numbers(match[1]))
        args += b" (" + str(seq_match[0]).encode() + b" " + str(seq_match[1]).encode() + b")"
    ev = parse_one(b"t SELECT INBOX (QRESYNC (" + args + b"))")
    if match is not None and len(set(match[0])) != len(set(match[1])):
        assert ev == CommandError("t", "QRESYNC sequence match sets differ in size")
        return
    assert isinstance(ev, CommandReceived) and isinstance(ev.command, c.Select)
    assert ev.command.qresync == c.QresyncParams(uidvalidity, modseq, known, seq_match)


# --- RFC 5032 / 8514 / 8474 / 9208 values round-trip -------------------------------------


@given(st.integers(0, 2**33), st.booleans())
def test_within_values_round_trip(n: int, older: bool) -> None:
    ev = parse_one(b"t SEARCH %s %d" % (b"OLDER" if older else b"YOUNGER", n))
    if 1 <= n <= 2**32 - 1:
        assert isinstance(ev, CommandReceived) and isinstance(ev.command, c.Search)
        assert ev.command.key == k.WithinKey(older, n)
    else:
        assert isinstance(ev, CommandError) and ev.status == "BAD"


@given(st.dates(datetime.date(1000, 1, 1)), st.sampled_from(["BEFORE", "ON", "SINCE"]))
def test_savedate_values_round_trip(date: datetime.date, op: str) -> None:
    text = f"{date.day}-{date.strftime('%b')}-{date.year:04d}".encode()
    ev = parse_one(b"t UID SEARCH SAVED" + op.encode() + b" " + text)
    assert isinstance(ev, CommandReceived) and isinstance(ev.command, c.Search)
    assert ev.command.key == k.SaveDateKey(op, date)  # type: ignore[arg-type]


@given(st.text(alphabet="abcXYZ019_-.+ ", min_size=0, max_size=260), st.booleans())
def test_object_id_values_round_trip(value: str, quoted: bool) -> None:
    # unquoted, a space would end the id and start another search key
    quoted = quoted or " " in value
    arg = wire.string(value, utf8=False) if quoted else value.encode()
    ev = parse_one(b"t SEARCH THREADID " + arg)
    valid = 1 <= len(value) <= 255 and all(ch not in ".+ " for ch in value)
    if valid:
        assert isinstance(ev, CommandReceived) and isinstance(ev.command, c.Search)
        assert ev.command.key == k.ObjectIdKey("THREADID", value)
    else:
        assert isinstance(ev, CommandError) and ev.status == "BAD"


resource_names = st.from_regex(rb"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)


@given(nul_free_text, st.lists(st.tuples(resource_names, modseq_ints), max_size=5))
def test_setquota_round_trip(root: str, limits: list[tuple[bytes, int]]) -> None:
    body = b" ".join(b"%s %d" % (name, n) for name, n in limits)
    line = b"t SETQUOTA " + wire.astring(root, utf8=True) + b" (" + body + b")"
    events = run([line + b"\r\n"], limits=Limits(), utf8=True)
    assert all(isinstance(e, NeedContinuation) for e in events[:-1])
    ev = events[-1]
    names = [name.decode().upper() for name, _ in limits]
    if any(n > MAX63 for _, n in limits) or len(set(names)) != len(names):
        assert isinstance(ev, CommandError) and ev.status == "BAD"
    else:
        expected = tuple(zip(names, (n for _, n in limits), strict=True))
        assert ev == CommandReceived(c.SetQuota("t", root, expected))


# --- RFC 9394 PARTIAL ranges round-trip -------------------------------------------------

partial_numbers = st.one_of(st.integers(0, 2**33), st.sampled_from([0, 1, 2**32 - 1, 2**32]))


@given(partial_numbers, partial_numbers, st.booleans(), st.booleans())
def test_partial_range_round_trip(first: int, last: int, negative: bool, mixed: bool) -> None:
    sign1 = b"-" if negative else b""
    sign2 = sign1 if not mixed else (b"" if negative else b"-")
    text = b"%s%d:%s%d" % (sign1, first, sign2, last)
    search = parse_one(b"t UID SEARCH RETURN (COUNT PARTIAL " + text + b") UNDELETED")
    fetch = parse_one(b"t UID FETCH 1:* (FLAGS) (PARTIAL " + text + b" CHANGEDSINCE 3)")
    if mixed or not (1 <= first <= 2**32 - 1 and 1 <= last <= 2**32 - 1):
        assert isinstance(search, CommandError) and search.status == "BAD"
        assert isinstance(fetch, CommandError) and fetch.status == "BAD"
        return
    lo, hi = min(first, last), max(first, last)
    expected = (-lo, -hi) if negative else (lo, hi)
    assert isinstance(search, CommandReceived) and isinstance(search.command, c.Search)
    assert search.command.partial == expected
    assert search.command.return_options == ("COUNT", "PARTIAL")
    assert isinstance(fetch, CommandReceived) and isinstance(fetch.command, c.Fetch)
    assert (fetch.command.partial, fetch.command.changed_since) == (expected, 3)


@given(st.binary(max_size=40), st.integers(1, 2**32 - 1), st.booleans(), st.booleans())
def test_replace_utf8_round_trip(data: bytes, target: int, uid: bool, utf8: bool) -> None:
    prefix = b"t UID REPLACE " if uid else b"t REPLACE "
    body = (
        (b"UTF8 (~{%d+}\r\n" % len(data) + data + b")")
        if utf8
        else b"~{%d+}\r\n" % len(data) + data
    )
    ev = parse_one(prefix + b"%d Drafts (\\Draft) " % target + body)
    message = c.AppendMessage(("\\Draft",), None, data, utf8)
    assert ev == CommandReceived(c.Replace("t", uid, target, "Drafts", message))
