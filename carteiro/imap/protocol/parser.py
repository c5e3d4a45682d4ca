"""Command parser: segments of one received command → a :mod:`commands` dataclass.

Entry point :func:`parse_command`; every syntax problem raises
:class:`~carteiro.imap.protocol.grammar.ParseError` with a short, client-safe reason.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol.fetch_attrs import FetchAttr
from carteiro.imap.protocol.grammar import (
    MAX_NUMBER,
    MAX_NUMBER64,
    TAG,
    Cursor,
    ParseError,
    decode_utf8,
    parse_sequence_set,
)
from carteiro.imap.protocol.parse_fetch import parse_fetch_attrs
from carteiro.imap.protocol.parse_search import parse_search
from carteiro.imap.protocol.sequence_set import SequenceSet

#: Items accepted in ``STATUS`` and ``LIST ... RETURN (STATUS (...))``.
STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "SIZE",
        "RECENT",
        "HIGHESTMODSEQ",  # RFC 7162 CONDSTORE
        "MAILBOXID",  # RFC 8474 OBJECTID
        "APPENDLIMIT",  # RFC 7889
        "DELETED-STORAGE",  # RFC 9208 QUOTA
    }
)
LIST_SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE"})
SPECIAL_USE = {
    f.lower(): f
    for f in (
        "\\All",
        "\\Archive",
        "\\Drafts",
        "\\Flagged",
        "\\Junk",
        "\\Sent",
        "\\Trash",
        "\\Important",
    )
}
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")

Handler = Callable[[Cursor, str], c.Command]


def _noargs(cls: Callable[[str], c.Command]) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        return cls(tag)

    return parse


def _id(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    if cur.maybe_word(b"NIL"):
        return c.Id(tag, None)
    cur.expect(b"(", "( or NIL")
    params: list[tuple[str, str | None]] = []
    while not cur.maybe(b")"):
        if params:
            cur.sp()
        key = cur.string().decode("utf-8", "replace")
        cur.sp()
        value = cur.nstring()
        params.append((key, None if value is None else value.decode("utf-8", "replace")))
        if len(params) > 30:
            raise ParseError("Too many ID parameters")
    return c.Id(tag, tuple(params))


def _authenticate(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mechanism = cur.word("SASL mechanism")
    initial: bytes | None = None
    if cur.maybe(b" "):
        if cur.maybe(b"="):
            initial = b""
        else:
            m = cur.match(_BASE64)
            if m is None:
                raise ParseError("Invalid base64 initial response")
            try:
                initial = base64.b64decode(m.group(), validate=True)
            except (binascii.Error, ValueError):
                raise ParseError("Invalid base64 initial response") from None
    return c.Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    user = decode_utf8(cur.astring("user name"), "user name")
    cur.sp()
    password = decode_utf8(cur.astring("password"), "password")
    return c.Login(tag, user, password)


def _enable(cur: Cursor, tag: str) -> c.Command:
    caps: list[str] = []
    while not cur.at_end():
        cur.sp()
        caps.append(cur.word("capability"))
    if not caps:
        raise ParseError("Missing argument")
    return c.Enable(tag, tuple(dict.fromkeys(caps)))


# --- RFC 7162 CONDSTORE / QRESYNC parameters --------------------------------------------
#
# The RFC 4466 parameter lists are read generically by ``Cursor.ext_params`` (kept raw
# in the commands' ``params``/``modifiers``); the helpers below validate the values
# of the parameters we implement and reject any other parameter.


def _modseq(value: object, what: str, *, zero: bool = False) -> int:
    """``mod-sequence-value`` (1..2^63-1) or, with ``zero``, ``mod-sequence-valzer``."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not (0 if zero else 1) <= value <= MAX_NUMBER64
    ):
        raise ParseError(f"Invalid {what} mod-sequence")
    return value


def _check_unique(params: tuple[tuple[str, object], ...], what: str) -> None:
    if len({name for name, _ in params}) != len(params):
        raise ParseError(f"Duplicate {what}")


def _qresync_set(value: object, what: str) -> SequenceSet:
    """A QRESYNC sequence set: ``*`` and ``$`` are not allowed."""
    if isinstance(value, int) and not isinstance(value, bool):
        token = str(value).encode()
    elif isinstance(value, str):
        token = value.encode()
    else:
        raise ParseError(f"Invalid QRESYNC {what}")
    seqs = parse_sequence_set(token)
    if seqs.saved or any(lo is None or hi is None for lo, hi in seqs.ranges):
        raise ParseError(f"Invalid QRESYNC {what}")
    return seqs


def _set_size(seqs: SequenceSet) -> int:
    return sum(hi - lo + 1 for lo, hi in seqs.resolve(0))


def _qresync(value: object) -> c.QresyncParams:
    """``"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"``
    (RFC 7162 §7), from its raw ``tagged_ext_val`` form."""
    if not isinstance(value, tuple) or not 2 <= len(value) <= 4:
        raise ParseError("Invalid QRESYNC parameters")
    uidvalidity, modseq, *rest = value
    if (
        not isinstance(uidvalidity, int)
        or isinstance(uidvalidity, bool)
        or not 1 <= uidvalidity <= MAX_NUMBER
    ):
        raise ParseError("Invalid QRESYNC UIDVALIDITY")
    known: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None
    if rest and not isinstance(rest[0], tuple):
        known = _qresync_set(rest.pop(0), "known UIDs")
    if rest:
        match = rest.pop(0)
        if not isinstance(match, tuple) or len(match) != 2:
            raise ParseError("Invalid QRESYNC sequence match data")
        msns = _qresync_set(match[0], "sequence match data")
        uids = _qresync_set(match[1], "sequence match data")
        if _set_size(msns) != _set_size(uids):
            raise ParseError("QRESYNC sequence match sets differ in size")
        seq_match = (msns, uids)
    if rest:
        raise ParseError("Invalid QRESYNC parameters")
    return c.QresyncParams(uidvalidity, _modseq(modseq, "QRESYNC"), known, seq_match)


def _compress(cur: Cursor, tag: str) -> c.Command:
    """RFC 4978 ``COMPRESS SP algorithm`` (the session only knows DEFLATE)."""
    cur.sp()
    return c.Compress(tag, cur.word("compression mechanism"))


def _select(readonly: bool) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        mailbox = cur.mailbox()
        params: tuple[tuple[str, object], ...] = ()
        condstore = False
        qresync: c.QresyncParams | None = None
        if cur.maybe(b" "):
            params = cur.ext_params()
            _check_unique(params, "select parameter")
            for name, value in params:
                if name == "CONDSTORE":
                    if value is not None:
                        raise ParseError("CONDSTORE takes no value")
                    condstore = True
                elif name == "QRESYNC":
                    qresync = _qresync(value)
                else:
                    raise ParseError("Unknown select parameter")
        return c.Select(tag, mailbox, readonly, params, condstore, qresync)

    return parse


def _create(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    uses: list[str] = []
    if cur.maybe(b" "):
        cur.expect(b"(", "(")
        while True:
            if cur.word("create parameter") != "USE":
                raise ParseError("Unknown CREATE parameter")
            cur.sp()
            cur.expect(b"(", "(")
            while True:
                cur.expect(b"\\", "special-use attribute")
                name = "\\" + cur.atom("special-use attribute").decode("ascii")
                uses.append(SPECIAL_USE.get(name.lower(), name))
                if cur.maybe(b")"):
                    break
                cur.sp()
            if cur.maybe(b")"):
                break
            cur.sp()
    return c.Create(tag, mailbox, tuple(dict.fromkeys(uses)))


def _one_mailbox(cls: Callable[[str, str], c.Command]) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        return cls(tag, cur.mailbox())

    return parse


def _rename(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    old = cur.mailbox()
    cur.sp()
    return c.Rename(tag, old, cur.mailbox())


def _words(cur: Cursor, allowed: frozenset[str], what: str) -> list[str]:
    """``"(" [word *(SP word)] ")"`` with the opening paren already consumed."""
    out: list[str] = []
    if cur.maybe(b")"):
        return out
    while True:
        word = cur.word(what)
        if word not in allowed:
            raise ParseError(f"Unknown {what}")
        out.append(word)
        if cur.maybe(b")"):
            return out
        cur.sp()


def _status_items(cur: Cursor) -> tuple[str, ...]:
    cur.expect(b"(", "status items")
    items = _words(cur, STATUS_ITEMS, "status item")
    if not items:
        raise ParseError("Expected status item")
    return tuple(dict.fromkeys(items))


def _list(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    extended = False
    select: list[str] = []
    if cur.maybe(b"("):
        extended = True
        select = _words(cur, LIST_SELECT_OPTIONS, "LIST selection option")
        if select and set(select) == {"RECURSIVEMATCH"}:
            raise ParseError("RECURSIVEMATCH needs another selection option")
        cur.sp()
    reference = decode_utf8(cur.astring("reference"), "reference")
    cur.sp()
    patterns: list[str] = []
    if cur.maybe(b"("):
        extended = True
        while True:
            patterns.append(decode_utf8(cur.list_mailbox(), "mailbox pattern"))
            if cur.maybe(b")"):
                break
            cur.sp()
    else:
        patterns.append(decode_utf8(cur.list_mailbox(), "mailbox pattern"))
    returns: list[str] = []
    status: tuple[str, ...] | None = None
    if cur.maybe(b" "):
        if not cur.maybe_word(b"RETURN"):
            raise ParseError("Expected RETURN")
        extended = True
        cur.sp()
        cur.expect(b"(", "return options")
        if not cur.maybe(b")"):
            while True:
                opt = cur.word("LIST return option")
                if opt == "STATUS":
                    cur.sp()
                    status = _status_items(cur)
                elif opt in LIST_RETURN_OPTIONS:
                    returns.append(opt)
                else:
                    raise ParseError("Unknown LIST return option")
                if cur.maybe(b")"):
                    break
                cur.sp()
    return c.List(
        tag,
        reference,
        tuple(patterns),
        tuple(dict.fromkeys(select)),
        tuple(dict.fromkeys(returns)),
        status,
        extended,
    )


def _lsub(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    reference = decode_utf8(cur.astring("reference"), "reference")
    cur.sp()
    return c.Lsub(tag, reference, decode_utf8(cur.list_mailbox(), "mailbox pattern"))


def _status(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    return c.Status(tag, mailbox, _status_items(cur))


def _getquota(cur: Cursor, tag: str) -> c.Command:
    """RFC 9208 ``GETQUOTA SP quota-root-name``."""
    cur.sp()
    return c.GetQuota(tag, decode_utf8(cur.astring("quota root"), "quota root"))


def _setquota(cur: Cursor, tag: str) -> c.Command:
    """RFC 9208 ``SETQUOTA SP quota-root-name SP setquota-list`` where
    ``setquota-list = "(" [resource-name SP number64 *(SP resource-name SP number64)] ")"``."""
    cur.sp()
    root = decode_utf8(cur.astring("quota root"), "quota root")
    cur.sp()
    cur.expect(b"(", "quota resource list")
    limits: list[tuple[str, int]] = []
    if not cur.maybe(b")"):
        while True:
            resource = cur.word("quota resource name")
            cur.sp()
            limits.append((resource, cur.number(limit=MAX_NUMBER64)))
            if cur.maybe(b")"):
                break
            cur.sp()
    if len({name for name, _ in limits}) != len(limits):
        raise ParseError("Duplicate quota resource")
    return c.SetQuota(tag, root, tuple(limits))


def _append_message(cur: Cursor) -> c.AppendMessage:
    """``SP [flag-list SP] [date-time SP] append-data`` where ``append-data`` is a
    literal or literal8, or RFC 6855 ``"UTF8" SP "(" literal8 ")"``."""
    cur.sp()
    flags: tuple[str, ...] = ()
    if cur.peek() == ord("("):
        flags = cur.flag_list()
        cur.sp()
    date = None
    if cur.peek() == ord('"'):
        date = cur.date_time()
        cur.sp()
    if cur.maybe_word(b"UTF8"):
        cur.sp()
        cur.expect(b"(", "( after UTF8")
        if cur.peek_bytes(2) != b"~{":
            raise ParseError("Expected literal8 after UTF8")
        data = cur.literal(allow8=True)
        cur.expect(b")", ") after UTF8 literal")
        return c.AppendMessage(flags, date, data, utf8=True)
    if not cur.at_literal():
        raise ParseError("Expected message literal")
    return c.AppendMessage(flags, date, cur.literal(allow8=True))


def _append(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    mailbox = cur.mailbox()
    messages: list[c.AppendMessage] = []
    while not cur.at_end() or not messages:
        messages.append(_append_message(cur))
    return c.Append(tag, mailbox, tuple(messages))


_REPLACE_TARGET = re.compile(rb"[0-9:*,$]+")


def _replace(uid: bool) -> Handler:
    """RFC 8508 ``[UID SP] REPLACE SP seq-number SP mailbox append-message``. Only a
    single message number (or UID) is accepted: no sequence set, ``*`` or ``$``."""

    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        m = cur.match(_REPLACE_TARGET)
        if m is None:
            raise ParseError("Expected message number")
        token = m.group()
        if not token.isdigit():
            raise ParseError("REPLACE takes a single message number")
        if token[0] == ord("0"):
            raise ParseError("Expected non-zero number")
        if len(token) > 10 or int(token) > MAX_NUMBER:
            raise ParseError("Number too large")
        cur.sp()
        mailbox = cur.mailbox()
        return c.Replace(tag, uid, int(token), mailbox, _append_message(cur))

    return parse


def _expunge(cur: Cursor, tag: str) -> c.Command:
    return c.Expunge(tag)


def _uid_expunge(cur: Cursor, tag: str) -> c.Command:
    cur.sp()
    return c.Expunge(tag, cur.sequence_set())


def _search(uid: bool) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        args = parse_search(cur)
        return c.Search(tag, uid, args.charset, args.key, args.return_options, args.partial)

    return parse


#: FETCH modifiers whose value is not a generic ``tagged-ext-val``: RFC 9394
#: ``PARTIAL SP partial-range`` (kept in ``modifiers`` as the normalised pair).
_FETCH_MODIFIER_READERS: dict[str, Callable[[Cursor], object]] = {
    "PARTIAL": Cursor.partial_range,
}


def _fetch(uid: bool) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqs = cur.sequence_set()
        cur.sp()
        attrs = parse_fetch_attrs(cur)
        modifiers: tuple[tuple[str, object], ...] = ()
        changed_since: int | None = None
        vanished = False
        partial: tuple[int, int] | None = None
        if cur.maybe(b" "):
            modifiers = cur.ext_params(_FETCH_MODIFIER_READERS)
            _check_unique(modifiers, "FETCH modifier")
            for name, value in modifiers:
                if name == "CHANGEDSINCE":
                    changed_since = _modseq(value, "CHANGEDSINCE")
                elif name == "PARTIAL":
                    assert isinstance(value, tuple)
                    partial = (value[0], value[1])
                elif name == "VANISHED":
                    if value is not None:
                        raise ParseError("VANISHED takes no value")
                    vanished = True
                else:
                    raise ParseError("Unknown FETCH modifier")
            if vanished and not uid:
                raise ParseError("VANISHED is only allowed in UID FETCH")
            if vanished and changed_since is None:
                raise ParseError("VANISHED requires CHANGEDSINCE")
        return c.Fetch(tag, uid, seqs, attrs, modifiers, changed_since, vanished, partial)

    return parse


_NOTIFY_FILTERS = frozenset(
    {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}
)
_NOTIFY_EVENT_NAMES = {e.upper(): e for e in c.NOTIFY_EVENTS}
_MESSAGE_EVENTS = frozenset({"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange"})


def _notify(cur: Cursor, tag: str) -> c.Command:
    """RFC 5465 §8 ``NOTIFY SET [STATUS] event-groups`` / ``NOTIFY NONE``; the rules the
    ABNF states in comments are checked here too, since their violation is a BAD (§5)."""
    cur.sp()
    verb = cur.word("SET or NONE")
    if verb == "NONE":
        return c.Notify(tag, None)
    if verb != "SET":
        raise ParseError("Expected SET or NONE")
    cur.sp()
    status = cur.maybe_word(b"STATUS")
    if status:
        cur.sp()
    groups = [_notify_group(cur)]
    while cur.maybe(b" "):
        groups.append(_notify_group(cur))
    if sum(g.filter in c.NOTIFY_SELECTED for g in groups) > 1:
        raise ParseError("Only one of SELECTED and SELECTED-DELAYED may be given")
    return c.Notify(tag, tuple(groups), status)


def _notify_group(cur: Cursor) -> c.NotifyGroup:
    cur.expect(b"(", "event group")
    kind = cur.word("mailbox filter")
    if kind not in _NOTIFY_FILTERS:
        raise ParseError("Unknown NOTIFY mailbox filter")
    mailboxes: list[str] = []
    if kind in ("SUBTREE", "MAILBOXES"):
        cur.sp()
        if cur.maybe(b"("):
            mailboxes.append(cur.mailbox())
            while not cur.maybe(b")"):
                cur.sp()
                mailboxes.append(cur.mailbox())
        else:
            mailboxes.append(cur.mailbox())
    cur.sp()
    events: list[str] = []
    attrs: tuple[FetchAttr, ...] = ()
    if not cur.maybe_word(b"NONE"):
        cur.expect(b"(", "event list")
        while True:
            name = cur.word("event")
            event = _NOTIFY_EVENT_NAMES.get(name, name)
            if event in events:
                raise ParseError(f"{event} given twice")
            events.append(event)
            if event == "MessageNew" and cur.peek_bytes(2) == b" (":
                if kind not in c.NOTIFY_SELECTED:
                    raise ParseError("Fetch attributes are only allowed for SELECTED")
                cur.sp()
                attrs = parse_fetch_attrs(cur)
            if cur.maybe(b")"):
                break
            cur.sp()
    cur.expect(b")", ")")
    present = set(events)
    if ("MessageNew" in present) != ("MessageExpunge" in present):
        raise ParseError("MessageNew and MessageExpunge must be given together")
    if present & {"FlagChange", "AnnotationChange"} and "MessageNew" not in present:
        raise ParseError("FlagChange needs MessageNew and MessageExpunge")
    if kind in c.NOTIFY_SELECTED and present - _MESSAGE_EVENTS:
        raise ParseError("Only message events are allowed for SELECTED")
    return c.NotifyGroup(kind, tuple(mailboxes), tuple(events), attrs)


_STORE_ITEM = re.compile(rb"([+-]?)FLAGS(\.SILENT)?(?= )", re.IGNORECASE)


def _store(uid: bool) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqs = cur.sequence_set()
        cur.sp()
        modifiers: tuple[tuple[str, object], ...] = ()
        unchanged_since: int | None = None
        if cur.peek() == ord("("):
            modifiers = cur.ext_params()
            _check_unique(modifiers, "STORE modifier")
            for name, value in modifiers:
                if name != "UNCHANGEDSINCE":
                    raise ParseError("Unknown STORE modifier")
                unchanged_since = _modseq(value, "UNCHANGEDSINCE", zero=True)
            cur.sp()
        m = cur.match(_STORE_ITEM)
        if m is None:
            raise ParseError("Expected FLAGS, +FLAGS or -FLAGS")
        cur.sp()
        if cur.peek() == ord("("):
            flags = cur.flag_list()
        else:
            bare = [cur.flag()]
            while cur.maybe(b" "):
                bare.append(cur.flag())
            flags = tuple(dict.fromkeys(bare))
        mode = m.group(1).decode("ascii")
        silent = m.group(2) is not None
        return c.Store(tag, uid, seqs, mode, silent, flags, modifiers, unchanged_since)

    return parse


def _copy_move(cls: type[c.Copy] | type[c.Move], uid: bool) -> Handler:
    def parse(cur: Cursor, tag: str) -> c.Command:
        cur.sp()
        seqs = cur.sequence_set()
        cur.sp()
        return cls(tag, uid, seqs, cur.mailbox())

    return parse


COMMANDS: dict[str, Handler] = {
    "CAPABILITY": _noargs(c.Capability),
    "NOOP": _noargs(c.Noop),
    "LOGOUT": _noargs(c.Logout),
    "ID": _id,
    "COMPRESS": _compress,
    "STARTTLS": _noargs(c.StartTLS),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": _select(False),
    "EXAMINE": _select(True),
    "CREATE": _create,
    "DELETE": _one_mailbox(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _one_mailbox(c.Subscribe),
    "UNSUBSCRIBE": _one_mailbox(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _noargs(c.Namespace),
    "UNAUTHENTICATE": _noargs(c.Unauthenticate),
    "NOTIFY": _notify,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _one_mailbox(c.GetQuotaRoot),
    "SETQUOTA": _setquota,
    "STATUS": _status,
    "APPEND": _append,
    "IDLE": _noargs(c.Idle),
    "REPLACE": _replace(False),
    "CHECK": _noargs(c.Check),
    "CLOSE": _noargs(c.Close),
    "UNSELECT": _noargs(c.Unselect),
    "EXPUNGE": _expunge,
    "SEARCH": _search(False),
    "FETCH": _fetch(False),
    "STORE": _store(False),
    "COPY": _copy_move(c.Copy, False),
    "MOVE": _copy_move(c.Move, False),
}
UID_COMMANDS: dict[str, Handler] = {
    "EXPUNGE": _uid_expunge,
    "SEARCH": _search(True),
    "FETCH": _fetch(True),
    "STORE": _store(True),
    "COPY": _copy_move(c.Copy, True),
    "MOVE": _copy_move(c.Move, True),
    "REPLACE": _replace(True),
}

_HEAD = re.compile(rb"([^ ]*)(?: ([A-Za-z0-9.-]+)(?: ([A-Za-z0-9.-]+))?)?")


def read_tag(line: bytes) -> str | None:
    """The tag at the start of ``line`` if it is a valid tag followed by SP or the end."""
    m = TAG.match(line)
    if m is None or (m.end() < len(line) and line[m.end()] != ord(" ")):
        return None
    return m.group().decode("ascii")


def precheck(line: bytes) -> str | None:
    """Cheap check of the first line of a command (tag and command name) before the
    server sends a continuation: returns an error text, or None if plausible."""
    m = _HEAD.match(line)
    assert m is not None  # the pattern matches any input
    if read_tag(line) is None:
        return "Invalid tag"
    name = (m.group(2) or b"").upper().decode("ascii")
    if not name:
        return "Missing command"
    if name == "UID":
        sub = (m.group(3) or b"").upper().decode("ascii")
        if sub and sub not in UID_COMMANDS:
            return "Unknown UID command"
        return None
    if name not in COMMANDS:
        return "Unknown command"
    return None


def parse_command(
    segments: Sequence[bytes],
    *,
    utf8: bool = False,
    max_depth: int = 16,
    max_search_depth: int = 64,
) -> c.Command:
    """Parse one complete command (see :mod:`grammar` for the segment layout)."""
    cur = Cursor(segments, utf8=utf8, max_depth=max_depth, max_search_depth=max_search_depth)
    m = cur.match(TAG)
    if m is None:
        raise ParseError("Invalid tag")
    tag = m.group().decode("ascii")
    if cur.peek() is None:
        raise ParseError("Missing command")
    cur.sp()
    name = cur.word("command name")
    if name == "UID":
        cur.sp()
        sub = cur.word("command name")
        handler = UID_COMMANDS.get(sub)
        if handler is None:
            raise ParseError("Unknown UID command")
    else:
        handler = COMMANDS.get(name)
        if handler is None:
            raise ParseError("Unknown command")
    command = handler(cur, tag)
    cur.end()
    return command
