from __future__ import annotations

import datetime

from carteiro.imap.protocol import search_keys as k
from carteiro.imap.protocol.sequence_set import SequenceSet
from carteiro.imap.search_eval import Content, evaluate, needs_content
from carteiro.imap.selected import SelectedMailbox
from carteiro.message.meta import analyse
from carteiro.store.interface import MailboxInfo, MessageRecord

RAW = (
    b"From: =?utf-8?q?Jos=C3=A9?= <jose@example.com>\r\nTo: ana@example.org\r\n"
    b"Subject: Relat\xc3\xb3rio mensal\r\nDate: Tue, 02 Jan 2024 23:30:00 -0300\r\n\r\n"
    b"Segue o relat\xc3\xb3rio.\r\n"
)
TZ = datetime.timezone(datetime.timedelta(hours=1))
REC = MessageRecord(
    5,
    frozenset({"\\Seen", "$Work"}),
    datetime.datetime(2024, 1, 3, 10, 0, tzinfo=TZ),
    len(RAW),
    3,
    1,
)
SEL = SelectedMailbox(
    MailboxInfo(1, 1, "INBOX", 1, 6, 3, frozenset(), True),
    [2, 5],
    readonly=False,
    known_modseq=3,
    first_recent=None,
)
CONTENT = Content(RAW, analyse(RAW))


def ev(key: k.SearchKey, content: Content | None = CONTENT) -> bool | None:
    return evaluate(key, REC, 2, SEL, content)


def test_cheap_keys_decide_without_content() -> None:
    assert ev(k.FlagKey("\\Seen", True), None) is True
    assert ev(k.FlagKey("$work", True), None) is True  # keywords are case-insensitive
    assert ev(k.FlagKey("\\Recent", False), None) is True
    assert ev(k.SizeKey(True, len(RAW) - 1), None) is True
    assert ev(k.SeqKey(SequenceSet(((2, 2),)), uid=False), None) is True
    assert ev(k.SeqKey(SequenceSet(((None, None),)), uid=True), None) is True  # UID *
    assert ev(k.DateKey("ON", False, datetime.date(2024, 1, 3)), None) is True


def test_three_valued_logic() -> None:
    body = k.TextKey("BODY", "relatório")
    assert ev(body, None) is None
    assert needs_content(k.Not(body))
    assert ev(k.And((k.FlagKey("\\Seen", False), body)), None) is False  # decided cheaply
    assert ev(k.Or(k.FlagKey("\\Seen", True), body), None) is True
    assert ev(k.Not(body), None) is None


def test_content_keys() -> None:
    assert ev(k.TextKey("BODY", "RELATÓRIO")) is True
    assert ev(k.TextKey("BODY", "mensal")) is False
    assert ev(k.TextKey("TEXT", "mensal")) is True
    assert ev(k.HeaderKey("FROM", "josé")) is True
    assert ev(k.HeaderKey("SUBJECT", "")) is True
    assert ev(k.HeaderKey("CC", "")) is False
    # SENT* use the Date: header's own day, not the internal date
    assert ev(k.DateKey("ON", True, datetime.date(2024, 1, 2))) is True
    assert ev(k.DateKey("SINCE", True, datetime.date(2024, 1, 3))) is False
