"""The one storage interface every backend implements (SQLite now, PostgreSQL later).

Conventions shared by all methods:

* Mailbox names are Unicode ``str`` with ``/`` as the hierarchy delimiter; ``INBOX``
  is always spelled ``INBOX`` (callers fold case before calling).
* Flags are ``frozenset[str]``: system flags in canonical case (``\\Seen``,
  ``\\Answered``, ``\\Flagged``, ``\\Deleted``, ``\\Draft``), keywords as first stored.
  ``\\Recent`` is never stored: it is session state (see :meth:`claim_recent`).
* Every change to a message (append, flag change, expunge) gets a new modification
  sequence from its mailbox's counter (RFC 7162): per-message ``modseq`` and per-mailbox
  ``highest_modseq``. Expunged UIDs are kept with the modseq of their expunge so that a
  session can learn "what changed since modseq N" — the basis of IDLE/NOOP updates today
  and of QRESYNC later.
* A coroutine returns only after the change is durable (committed and synced); a
  change that raised left nothing behind.
* After each committed change the store calls the listeners registered with
  :meth:`subscribe` for the account (on the event loop), so other sessions wake up.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class AppPassword:
    """A server-generated password for one device (issue: app-specific passwords)."""

    id: int
    name: str
    #: SHA-256 of the secret; the secret itself is shown once and never stored
    secret_hash: bytes
    #: protocols it may be used with (empty: all)
    protocols: tuple[str, ...]
    #: CIDR networks it may be used from (empty: anywhere)
    networks: tuple[str, ...]
    created: float
    expires: float | None
    last_used: float | None
    last_address: str | None


@dataclass(frozen=True, slots=True)
class Credentials:
    """Everything a login needs about an account, read in one go."""

    account: Account
    #: SCRAM-SHA-256 record (``carteiro.auth.sasl.encode_scram_record``) or None
    scram: str | None
    #: TOTP secret (base32) once two-factor is enrolled
    totp_secret: str | None
    totp_last_step: int | None
    #: CIDR networks the main password may be used from (empty: anywhere)
    networks: tuple[str, ...]
    app_passwords: tuple[AppPassword, ...]

    @property
    def two_factor(self) -> bool:
        return self.totp_secret is not None


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    special_use: frozenset[str]  # e.g. {"\\Sent"}
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """Counters for STATUS and SELECT. ``size`` is the sum of RFC822.SIZE (STATUS=SIZE)."""

    messages: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highest_modseq: int
    #: number of messages with UID >= the mailbox's first-recent marker (rev1 \Recent)
    recent: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message of a mailbox, as a FETCH/SEARCH needs it without reading the body."""

    uid: int
    flags: frozenset[str]
    internal_date: datetime.datetime  # timezone-aware
    size: int  # RFC822.SIZE: exact octets of the stored message
    modseq: int
    blob_id: int  # key for read_blob / read_meta; shared by copies of the same content


#: (uid, flags, modseq): what FETCH (FLAGS), SEARCH UNSEEN and their kin need of a
#: message; a plain tuple, the cheapest thing to build by the hundred thousand
FlagRow = tuple[int, frozenset[str], int]
#: (uid, flags, modseq, size, metadata) of one message: FETCH of ENVELOPE, BODYSTRUCTURE
#: and the like over many messages, without a record per message
MetaRow = tuple[int, frozenset[str], int, int, bytes]


@dataclass(frozen=True, slots=True)
class NewMessage:
    data: bytes
    #: from carteiro.message.meta (envelope, structure, part offsets); opaque to the
    #: store except for its full-text index, which reads the text parts' offsets
    meta: bytes
    flags: frozenset[str]
    internal_date: datetime.datetime
    #: RFC 8474 threading: the message's own Message-ID first, then the ids it refers to
    #: (In-Reply-To, References); messages sharing any id share a THREADID
    thread_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What only RFC 8474/8514 FETCH and SEARCH need, kept off the hot record path."""

    email_id: str  # stable for the same content, across COPY/MOVE
    thread_id: str
    save_date: datetime.datetime | None  # None for mail stored before save dates


@dataclass(frozen=True, slots=True)
class TextMatches:
    """A full-text index's answer for one SEARCH TEXT/BODY needle in one mailbox
    (see :meth:`Store.search_text`)."""

    #: UIDs whose indexed text contains the needle, ascending
    matches: list[int]
    #: UIDs whose content is not indexed (yet, or cannot be), ascending: the caller
    #: must decide these itself; every other UID of the mailbox does not match
    unindexed: list[int]


class FlagMatches:
    """The messages that have (or lack) one system flag (see
    :meth:`Store.system_flag_matches`). The UIDs come as the store joined them, decimal
    and comma-separated: ``UID SEARCH UNSEEN`` on a big mailbox is answered from that
    text without making thousands of integers and turning them back into text."""

    __slots__ = ("text", "highest_modseq", "_uids")

    def __init__(self, text: str, highest_modseq: int) -> None:
        #: the UIDs, ascending, as ``"3,17,40"`` ("" for none)
        self.text = text
        #: the mailbox's HIGHESTMODSEQ when this was read: a session that has seen it
        #: knows every UID here is in its view
        self.highest_modseq = highest_modseq
        self._uids: list[int] | None = None

    @property
    def uids(self) -> list[int]:
        if self._uids is None:
            self._uids = json.loads(f"[{self.text}]")  # one pass in C
        return self._uids


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What happened in a mailbox after a given modseq (see :meth:`Store.changes_since`)."""

    highest_modseq: int
    #: messages appended or whose flags changed, ascending UID
    updated: list[FlagUpdate]
    #: UIDs expunged, ascending
    expunged: list[int]
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class CopyResult:
    uidvalidity: int  # of the destination
    source_uids: list[int]
    dest_uids: list[int]  # dest_uids[i] is the copy of source_uids[i]


@dataclass(frozen=True, slots=True)
class Quota:
    """An account's limits and exact usage (RFC 9208 resources STORAGE and MESSAGE).

    A limit of None means unlimited. ``storage_*`` are octets: the sum of RFC822.SIZE of
    every message in every mailbox of the account (a message copied twice counts twice,
    although its content is stored once), as Dovecot and RFC 9208 §5.1 count it.
    """

    storage_limit: int | None
    storage_used: int
    messages_limit: int | None
    messages_used: int


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A domain's DKIM signing key (RFC 6376; Ed25519 per RFC 8463)."""

    domain: str
    selector: str
    algorithm: str  # "rsa-sha256" or "ed25519-sha256"
    private_key: bytes  # PEM, PKCS#8, unencrypted
    created: float


@dataclass(frozen=True, slots=True)
class QueuedRecipient:
    id: int
    address: str
    state: str  # "queued", "sent" or "failed"
    attempts: int
    next_attempt: float  # epoch seconds
    last_error: str | None
    warned: bool  # a delay warning went out for it


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message of the outbound queue, without its content (see ``queue_data``)."""

    id: int
    sender: str  # envelope sender; "" is the null reverse-path (bounces)
    account: str | None  # the local account that submitted it (None: a bounce, a relay)
    created: float
    size: int
    smtputf8: bool
    recipients: tuple[QueuedRecipient, ...]


@dataclass(frozen=True, slots=True)
class RecipientUpdate:
    id: int
    state: str
    attempts: int
    next_attempt: float
    last_error: str | None
    warned: bool


class Listener(Protocol):
    def __call__(self, account_id: int, mailbox_id: int | None) -> None:
        """``mailbox_id`` is None for mailbox-list changes (create/delete/rename/subscribe)."""


class Store(Protocol):
    """All persistent state. Every method is safe to call concurrently from many sessions."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # --- accounts ------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        """Creates the account with INBOX, Sent, Drafts, Trash, Junk and Archive
        (RFC 6154 special-use on all but INBOX), all subscribed. AlreadyExists."""

    async def get_account(self, address: str) -> Account | None:
        """Addresses compare case-insensitively."""

    async def list_accounts(self) -> list[Account]: ...
    async def set_password(self, address: str, password_hash: str) -> None:
        """NotFound."""

    # --- domains and aliases (issue 6) ----------------------------------------------
    async def add_domain(self, name: str) -> None:
        """A local mail domain. AlreadyExists."""

    async def delete_domain(self, name: str) -> None:
        """NotFound. Accounts and aliases of the domain stay."""

    async def list_domains(self) -> list[tuple[str, str | None]]:
        """(domain, catch-all target or None), by name."""

    async def set_catch_all(self, domain: str, target: str | None) -> None:
        """Mail for unknown addresses of ``domain`` goes to ``target`` (None: refused).
        NotFound for an unknown domain."""

    async def add_alias(self, address: str, targets: Sequence[str]) -> None:
        """Adds targets to the alias ``address`` (created if new); existing ones stay."""

    async def remove_alias(self, address: str, target: str | None = None) -> None:
        """Removes one target, or the whole alias. NotFound."""

    async def alias_targets(self, address: str) -> list[str]:
        """The targets of ``address``; empty when it is not an alias."""

    async def list_aliases(self) -> dict[str, list[str]]:
        """Every alias with its targets, by address."""

    # --- sending as other addresses (issue 6) -----------------------------------------
    async def allow_sender(self, address: str, account: str) -> None:
        """Lets ``account`` send as ``address`` (an alias, a shared address). Idempotent."""

    async def disallow_sender(self, address: str, account: str) -> None:
        """NotFound when the permission does not exist."""

    async def sender_addresses(self, account: str) -> list[str]:
        """Addresses ``account`` may send as besides its own, sorted."""

    async def list_senders(self) -> dict[str, list[str]]:
        """Every address with the accounts allowed to send as it."""

    # --- DKIM keys (issue 6) -----------------------------------------------------------
    async def add_dkim_key(self, key: DkimKey) -> None:
        """AlreadyExists for a (domain, selector) already stored."""

    async def dkim_keys(self, domain: str | None = None) -> list[DkimKey]:
        """The keys of ``domain`` (all domains when None), by domain then age."""

    async def delete_dkim_key(self, domain: str, selector: str) -> None:
        """NotFound."""

    # --- outbound queue (issue 6) ------------------------------------------------------
    async def enqueue(
        self,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        account: str | None = None,
        smtputf8: bool = False,
        now: float | None = None,
    ) -> int:
        """Durable on return: the message with every recipient ``queued`` and due ``now``."""

    async def queue_list(self) -> list[QueuedMessage]:
        """Every queued message with all its recipients, by id."""

    async def queue_get(self, message_id: int) -> QueuedMessage | None: ...
    async def queue_data(self, message_id: int) -> bytes:
        """NotFound."""

    async def queue_claim(self, now: float, lease: float, limit: int) -> list[QueuedMessage]:
        """Up to ``limit`` messages (oldest first) that have ``queued`` recipients due at
        ``now``; those recipients get ``next_attempt = now + lease`` in the same
        transaction, so no other runner (or node) takes them, and after a crash they are
        retried once the lease ends. ``recipients`` holds only the claimed ones."""

    async def queue_update(self, updates: Sequence[RecipientUpdate]) -> None:
        """One transaction; a message whose recipients are all ``sent`` or ``failed``
        is removed with them."""

    async def queue_flush(self, message_id: int | None = None) -> int:
        """Makes the queued recipients (of one message, or all) due now; their count."""

    async def queue_delete(self, message_id: int) -> None:
        """NotFound."""

    # --- recoverable expunges (issue 4: undoing a mass deletion) ---------------------
    async def recoverable(self, account_id: int, since: float) -> dict[str, int]:
        """Messages expunged (or in mailboxes deleted) at or after ``since`` that can
        still be restored, counted per original mailbox. Empty when the backend keeps
        none (retention 0)."""

    async def restore_expunged(
        self, account_id: int, since: float, mailbox: str | None = None
    ) -> dict[str, int]:
        """Puts those messages back (their mailbox is recreated if needed) as new
        messages; returns how many per mailbox. NotFound; QuotaExceeded (nothing done)."""

    # --- credentials (issue 4) ------------------------------------------------------
    async def credentials(self, address: str) -> Credentials | None:
        """The account and all its credentials, or None for an unknown address."""

    async def set_scram(self, address: str, record: str | None) -> None:
        """Stores SCRAM keys derived from the current password (None: drop). NotFound."""

    async def set_totp(self, address: str, secret: str | None) -> None:
        """Enrols TOTP (or removes it with None); resets the used-step memory. NotFound."""

    async def use_totp_step(self, account_id: int, step: int) -> bool:
        """Records ``step`` as used if it is later than the last one; False when it is
        not (a replayed code)."""

    async def pop3_options(self, address: str) -> tuple[str | None, bool | None]:
        """The account's POP3 choices: what happens to retrieved mail (``"keep"`` or
        ``"delete"``) and whether POP3 shows only mail it has not downloaded yet; None
        for each means the server's setting. NotFound."""

    async def set_pop3_options(
        self, address: str, retrieved: str | None, new_only: bool | None
    ) -> None:
        """Sets both choices (None: back to the server's setting). NotFound."""

    async def set_networks(self, address: str, networks: Sequence[str]) -> None:
        """Networks (CIDR) the main password may be used from; empty: anywhere."""

    async def add_app_password(
        self,
        address: str,
        name: str,
        secret_hash: bytes,
        protocols: Sequence[str] = (),
        networks: Sequence[str] = (),
        expires: float | None = None,
    ) -> AppPassword:
        """NotFound (account); AlreadyExists (an app password of that name)."""

    async def list_app_passwords(self, address: str) -> list[AppPassword]:
        """By creation time. NotFound."""

    async def revoke_app_password(self, address: str, name: str) -> None:
        """NotFound when the account or the app password does not exist."""

    async def app_password_used(self, app_password_id: int, when: float, source: str) -> None:
        """Last use time and address (shown by ``app-password list``)."""

    async def delete_account(self, address: str) -> None:
        """Removes the account and all its mail. NotFound."""

    # --- quota (RFC 9208) ----------------------------------------------------------
    async def set_quota(
        self, address_or_account: str | int, storage: int | None, messages: int | None
    ) -> None:
        """Sets both limits of the account (an address, or an account id): ``storage`` in
        octets, ``messages`` a count, None for unlimited. A limit below the current usage
        is allowed: nothing is removed, but nothing more can be added. NotFound;
        ValueError for a negative limit."""

    async def quota(self, account_id: int) -> Quota:
        """The account's limits and current usage, exact (the usage counts every
        committed change and nothing else). NotFound.

        Enforcement: :meth:`append`, :meth:`copy` and :meth:`move` raise
        ``QuotaExceeded`` (storing nothing) when the account's usage after the change
        would be above a limit; the check and the change are one atomic step, so
        concurrent writers can never overshoot together. A :meth:`move` within one
        account does not change its usage and is always allowed, even at or above the
        limits; removing mail (expunge, delete) is always allowed."""

    # --- mailboxes -----------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]: ...
    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None: ...
    async def create_mailbox(
        self, account_id: int, name: str, special_use: Iterable[str] = ()
    ) -> MailboxInfo:
        """Creates ``name`` and any missing parents (RFC 9051 §6.3.4). A new mailbox gets
        a fresh UIDVALIDITY, never one used before by this name. AlreadyExists, InvalidName."""

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Deletes the mailbox and its messages. A mailbox with children is removed too
        (callers implement the RFC's \\Noselect rule). NotFound; NotAllowed for INBOX."""

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Renames ``old`` and all its inferiors (``old/…`` → ``new/…``), creating missing
        parents of ``new``. Renaming INBOX moves all its messages to a new mailbox
        ``new`` and leaves INBOX empty (RFC 9051 §6.3.6). NotFound, AlreadyExists."""

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        """Subscriptions are kept by name and may name mailboxes that do not exist."""

    async def list_subscriptions(self, account_id: int) -> list[str]: ...
    async def deleted_storage(self, mailbox_id: int) -> int:
        """RFC 9208 DELETED-STORAGE: octets an EXPUNGE would free (sum of RFC822.SIZE of
        the \\Deleted messages). Asked for rarely, so computed on demand. NotFound."""

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        """NotFound."""

    # --- messages ------------------------------------------------------------------
    async def append(self, mailbox_id: int, messages: Sequence[NewMessage]) -> CopyResult:
        """Stores all messages atomically (MULTIAPPEND), assigning ascending UIDs.
        Identical content is stored once. Returns the UIDs (``source_uids`` empty).
        NotFound; QuotaExceeded (see :meth:`quota`)."""

    async def uids(self, mailbox_id: int) -> list[int]:
        """All UIDs, ascending (the MSN map of a freshly selected mailbox)."""

    async def records(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageRecord]:
        """Records for the given UIDs (ascending input), silently skipping missing ones."""

    async def records_range(
        self, mailbox_id: int, first_uid: int, last_uid: int, limit: int
    ) -> list[MessageRecord]:
        """Records with first_uid <= uid <= last_uid, ascending, at most ``limit`` —
        lets FETCH 1:* over a huge mailbox stream in chunks."""

    async def flag_rows(self, mailbox_id: int, first_uid: int, last_uid: int) -> list[FlagRow]:
        """(uid, flags, modseq) of every message with first_uid <= uid <= last_uid,
        ascending: FETCH 1:* (FLAGS) and flag-only SEARCH over a big mailbox. Callers
        bound the range (e.g. 10,000 UIDs of their selection at a time)."""

    async def meta_rows(self, mailbox_id: int, uids: Sequence[int]) -> list[MetaRow]:
        """The :data:`MetaRow` of each of ``uids`` (ascending), silently skipping missing
        ones: one read for what records plus :meth:`read_meta` would give. Callers bound
        how many they ask for at once. NotFound."""

    async def system_flag_matches(self, mailbox_id: int, flag: str, present: bool) -> FlagMatches:
        """The messages that have (``present``) or lack the system flag ``flag``
        (``\\Seen``…): SEARCH UNSEEN without reading every message's flags. NotFound."""

    async def read_blob(self, blob_id: int) -> bytes:
        """The message exactly as appended. NotFound."""

    async def read_blobs(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """Several messages in one round trip (FETCH of many bodies); missing ids are
        absent from the result. Callers bound the total size they ask for."""

    async def read_meta(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """The opaque metadata stored with each blob."""

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], mode: str, flags: frozenset[str]
    ) -> list[FlagUpdate]:
        """``mode`` is ``"+"`` (add), ``"-"`` (remove) or ``""`` (replace). Only messages
        whose flags actually change get a new modseq and are returned."""

    async def store_flags_conditional(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: frozenset[str],
        unchanged_since: int,
    ) -> tuple[list[FlagUpdate], list[int]]:
        """RFC 7162 ``UNCHANGEDSINCE``: like :meth:`store_flags`, but messages whose modseq
        is above ``unchanged_since`` are left alone and returned (ascending) as the second
        list — the MODIFIED set. The check and the change are one atomic step."""

    async def copy(self, source_id: int, uids: Sequence[int], dest_id: int) -> CopyResult:
        """Copies (sharing content) into ``dest_id``, flags and internal date preserved,
        in ascending source UID order. NotFound for a missing mailbox; QuotaExceeded
        when the destination's account would go over a limit (see :meth:`quota`)."""

    async def move(self, source_id: int, uids: Sequence[int], dest_id: int) -> CopyResult:
        """Atomic copy + expunge from the source (RFC 6851). Within one account it never
        raises QuotaExceeded; into another account it is checked as :meth:`copy` is."""

    async def replace(
        self, mailbox_id: int, uid: int, dest_id: int, message: NewMessage
    ) -> CopyResult:
        """Atomically expunges ``uid`` from ``mailbox_id`` (whatever its flags) and appends
        ``message`` to ``dest_id`` (RFC 8508 REPLACE). The quota is checked with the old
        version already gone; on any error neither change happens. NotFound when the
        message or a mailbox is missing; QuotaExceeded."""

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Removes messages flagged \\Deleted (restricted to ``uids`` when given);
        returns the expunged UIDs, ascending."""

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        """Appends, flag changes and expunges with modseq > ``modseq``. NotFound."""

    async def expunged_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged with a modseq above ``modseq``, ascending (RFC 7162 VANISHED
        (EARLIER)); cheaper than :meth:`changes_since` when flags are not needed. NotFound."""

    async def object_info(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, ObjectInfo]:
        """EMAILID, THREADID and save date of the given messages (missing ones absent)."""

    async def search_text(self, mailbox_id: int, needle: str, headers: bool) -> TextMatches | None:
        """The full-text index's answer to SEARCH BODY ``needle`` (``headers`` False) or
        SEARCH TEXT ``needle`` (True) over the whole mailbox, RFC 9051 §6.4.4.

        The answer is exact and means what a scan means: ``needle.casefold()`` is a
        substring of ``carteiro.message.search.folded_body`` (or of ``folded_header``
        when ``headers``) of the message. Content stored but not indexed yet (the index
        is maintained in the background, after the commit) is listed in ``unindexed``
        for the caller to scan, so the two lists together are always complete.
        None when the index cannot answer such a needle (SQLite: shorter than three
        characters once case-folded); the caller then scans. NotFound is not raised:
        an unknown mailbox has no matches."""

    async def index_backlog(self) -> int:
        """Contents waiting to be added to or removed from the full-text index. The
        index catches up in the background whenever the store is idle, also after a
        restart; tests and benchmarks wait for zero."""

    async def claim_recent(self, mailbox_id: int, upto: int | None = None) -> int:
        """Returns the first UID that is \\Recent for the calling session and moves the
        mailbox's marker past ``upto`` (the highest UID the session has seen; UIDNEXT
        when None), so no other session sees those as \\Recent."""

    async def first_unseen(self, mailbox_id: int) -> int | None:
        """UID of the first message without ``\\Seen`` (None if all are seen), for the
        rev1 ``[UNSEEN n]`` response code of SELECT. NotFound."""

    async def mailbox_keywords(self, mailbox_id: int) -> list[str]:
        """Keywords ever set in the mailbox (first-seen spelling, sorted), for the FLAGS
        and PERMANENTFLAGS responses of SELECT (RFC 9051 §7.3.5). NotFound."""

    # --- notifications -------------------------------------------------------------
    def subscribe(self, account_id: int, listener: Listener) -> Callable[[], None]:
        """Registers ``listener``; returns a function that unregisters it."""


class Diagnostics(Protocol):
    """Optional self-checks a backend may offer (conformance tests, a future fsck)."""

    async def check(self) -> list[str]:
        """Inconsistencies found (empty when sound): storage integrity, per-mailbox
        counters against the rows, blob reference counts, unreferenced blobs."""

    async def blob_count(self) -> int:
        """Number of distinct stored message contents."""

    async def indexed_count(self) -> int:
        """Number of contents in the full-text index (including rows of deleted
        contents not yet removed: zero once :meth:`Store.index_backlog` is)."""
