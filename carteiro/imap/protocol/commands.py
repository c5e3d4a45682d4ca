"""One frozen dataclass per IMAP command (RFC 9051 §6), as produced by the parser.

Mailbox names are carried exactly as sent (``str`` decoded from the wire as UTF-8);
the session converts modified UTF-7 for rev1 clients and folds ``INBOX``.
Sequence-number vs UID forms are one class with ``uid: bool``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from carteiro.imap.protocol.fetch_attrs import FetchAttr
from carteiro.imap.protocol.search_keys import SearchKey
from carteiro.imap.protocol.sequence_set import SequenceSet


@dataclass(frozen=True, slots=True)
class Command:
    tag: str

    @property
    def name(self) -> str:
        return type(self).__name__.upper()


# --- any state -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability(Command):
    pass


@dataclass(frozen=True, slots=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True)
class Logout(Command):
    pass


@dataclass(frozen=True, slots=True)
class Id(Command):
    """RFC 2971. ``params`` is None for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Compress(Command):
    """RFC 4978 ``COMPRESS DEFLATE``; ``mechanism`` upper-cased."""

    mechanism: str


# --- not authenticated ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    pass


@dataclass(frozen=True, slots=True)
class Authenticate(Command):
    """``mechanism`` upper-cased. ``initial_response`` is the SASL-IR argument already
    base64-decoded (``b""`` for ``=``), or None when absent."""

    mechanism: str
    initial_response: bytes | None


@dataclass(frozen=True, slots=True)
class Login(Command):
    username: str
    password: str


# --- authenticated -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enable(Command):
    capabilities: tuple[str, ...]  # upper-cased


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """RFC 7162 §3.2.5 ``QRESYNC (uidvalidity modseq [known-uids [seq-match-data]])``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    #: (known message sequence numbers, the UIDs they correspond to)
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select(Command):
    """SELECT, or EXAMINE when ``readonly``. ``params`` keeps RFC 4466 select-params
    upper-cased, with their raw values, for later extensions; the ones we implement
    are also parsed: ``condstore`` and ``qresync`` (RFC 7162)."""

    mailbox: str
    readonly: bool = False
    params: tuple[tuple[str, object], ...] = ()
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create(Command):
    mailbox: str
    special_use: tuple[str, ...] = ()  # RFC 6154 CREATE (USE (...)), e.g. ("\\Sent",)


@dataclass(frozen=True, slots=True)
class Delete(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe(Command):
    mailbox: str


@dataclass(frozen=True, slots=True)
class List(Command):
    """LIST with RFC 5258 LIST-EXTENDED and RFC 5819 LIST-STATUS.

    ``select_options`` / ``return_options`` are upper-cased (e.g. ``SUBSCRIBED``,
    ``RECURSIVEMATCH``, ``SPECIAL-USE``, ``CHILDREN``). ``status_items`` holds the
    items of ``RETURN (STATUS (...))``, or None. ``extended`` is True when the
    client used any extended syntax (affects CHILDINFO and the default returns).
    """

    reference: str
    patterns: tuple[str, ...]
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    status_items: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub(Command):
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace(Command):
    pass


@dataclass(frozen=True, slots=True)
class Unauthenticate(Command):
    """RFC 8437: back to the not-authenticated state."""


@dataclass(frozen=True, slots=True)
class GetQuota(Command):
    """RFC 9208 GETQUOTA quota-root."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot(Command):
    """RFC 9208 GETQUOTAROOT mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota(Command):
    """RFC 9208 SETQUOTA quota-root (resource limit ...); resource names upper-cased."""

    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]  # upper-cased: MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None  # timezone-aware
    data: bytes
    #: RFC 6855 ``UTF8 (~{n})``: the client says the message has UTF-8 headers
    utf8: bool = False


@dataclass(frozen=True, slots=True)
class Append(Command):
    """APPEND, with RFC 3502 MULTIAPPEND: one or more messages, stored atomically."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Idle(Command):
    pass


@dataclass(frozen=True, slots=True)
class Replace(Command):
    """RFC 8508 REPLACE / UID REPLACE: append ``message`` to ``mailbox`` and expunge the
    message ``target`` (an MSN, or a UID with ``uid``) of the selected mailbox, atomically."""

    uid: bool
    target: int
    mailbox: str
    message: AppendMessage


# --- selected ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check(Command):
    pass


@dataclass(frozen=True, slots=True)
class Close(Command):
    pass


@dataclass(frozen=True, slots=True)
class Unselect(Command):
    pass


@dataclass(frozen=True, slots=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE when ``uids`` is set (RFC 4315/9051)."""

    uids: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class Search(Command):
    """``return_options`` is None when the client gave no RETURN (plain ``* SEARCH`` for
    rev1; rev2 sessions answer ESEARCH regardless). ``()`` means ``RETURN ()``, i.e. ALL.
    Options are upper-cased: MIN MAX ALL COUNT SAVE."""

    uid: bool
    charset: str | None
    key: SearchKey
    return_options: tuple[str, ...] | None = None
    #: RFC 9394 ``RETURN (PARTIAL first:last)``; negative values count from the end
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Fetch(Command):
    uid: bool
    seqs: SequenceSet
    attrs: tuple[FetchAttr, ...]
    modifiers: tuple[tuple[str, object], ...] = ()  # RFC 4466 fetch-modifiers, raw
    #: RFC 7162 ``CHANGEDSINCE n``: only messages with modseq > n (implies MODSEQ)
    changed_since: int | None = None
    #: RFC 7162 ``VANISHED`` (UID FETCH with CHANGEDSINCE only)
    vanished: bool = False
    #: RFC 9394 ``(PARTIAL first:last)``: only that slice of the matching messages
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Store(Command):
    """``mode`` is ``"+"``, ``"-"`` or ``""`` (replace). ``silent`` for ``.SILENT``."""

    uid: bool
    seqs: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    modifiers: tuple[tuple[str, object], ...] = ()  # RFC 4466 store-modifiers, raw
    #: RFC 7162 ``UNCHANGEDSINCE n`` (0 is valid: only messages never modified)
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class Copy(Command):
    uid: bool
    seqs: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class Move(Command):
    uid: bool
    seqs: SequenceSet
    mailbox: str


#: RFC 5465 filter-mailboxes kinds
NOTIFY_SELECTED = ("SELECTED", "SELECTED-DELAYED")
#: event names as the RFC spells them (matched case-insensitively)
NOTIFY_EVENTS = (
    "MessageNew",
    "MessageExpunge",
    "FlagChange",
    "AnnotationChange",
    "MailboxName",
    "SubscriptionChange",
    "MailboxMetadataChange",
    "ServerMetadataChange",
)


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One RFC 5465 event-group: which mailboxes, and which events for them."""

    #: SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES
    filter: str
    #: the mailboxes of SUBTREE/MAILBOXES (decoded names), else empty
    mailboxes: tuple[str, ...]
    #: canonical event names (unknown extension events upper-cased); empty for NONE
    events: tuple[str, ...]
    #: MessageNew's fetch attributes (SELECTED/SELECTED-DELAYED only)
    fetch_attrs: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """``NOTIFY NONE`` (``groups`` is None) or ``NOTIFY SET [STATUS] groups``."""

    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
