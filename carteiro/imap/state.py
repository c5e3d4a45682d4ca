"""Per-connection session state shared by the adapter and the handlers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carteiro.imap.protocol import mutf7
from carteiro.imap.protocol.responses import mailbox_name
from carteiro.imap.selected import SelectedMailbox
from carteiro.store.interface import Account

if TYPE_CHECKING:
    from carteiro.imap.notify import NotifyState


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class BadMailboxName(ValueError):
    """A mailbox name the client sent cannot be decoded (bad modified UTF-7)."""


@dataclass
class Session:
    peer: str
    tls: bool
    #: plaintext LOGIN/AUTHENTICATE allowed without TLS (trusted network)
    trusted: bool
    state: State = State.NOT_AUTHENTICATED
    account: Account | None = None
    #: ENABLE IMAP4rev2 seen: UTF-8 mailbox names, ESEARCH replies, no \Recent
    rev2: bool = False
    selected: SelectedMailbox | None = None
    enabled: set[str] = field(default_factory=set)
    #: RFC 7162: CONDSTORE enabled (explicitly or by a CONDSTORE-enabling command):
    #: unsolicited FETCH responses carry MODSEQ
    condstore: bool = False
    #: RFC 7162 ENABLE QRESYNC: expunges are reported with VANISHED
    qresync: bool = False
    #: RFC 6855 ENABLE UTF8=ACCEPT: UTF-8 mailbox names and strings without rev2
    utf8_accept: bool = False
    #: RFC 9586 ENABLE UIDONLY: no sequence numbers in requests or responses
    uidonly: bool = False
    #: what the client said about itself with ID (RFC 2971), for the audit log
    client_id: dict[str, str] | None = None
    #: SASL mechanisms offered now (they depend on TLS); set by the adapter
    mechanisms: tuple[str, ...] = ()
    #: RFC 5465 NOTIFY SET in force (None: never issued, the RFC 9051 default)
    notify: NotifyState | None = None

    @property
    def vanished(self) -> bool:
        """Expunges are announced with VANISHED (QRESYNC, or UIDONLY §3.4)."""
        return self.qresync or self.uidonly

    @property
    def rev1(self) -> bool:
        return not self.rev2

    @property
    def utf8(self) -> bool:
        return self.rev2 or self.utf8_accept

    @property
    def plaintext_auth_ok(self) -> bool:
        return self.tls or self.trusted

    def decode_wire(self, wire: str) -> str:
        """Modified UTF-7 decoded for rev1 clients, nothing else (LIST patterns)."""
        if self.utf8:
            return wire
        try:
            return mutf7.decode(wire)
        except ValueError as exc:
            raise BadMailboxName(wire) from exc

    def mailbox_from_wire(self, wire: str) -> str:
        """The store's name for what the client sent: modified UTF-7 decoded for rev1
        clients, ``INBOX`` case-folded (RFC 9051 §5.1), trailing delimiter dropped."""
        wire = self.decode_wire(wire)
        if wire.upper() == "INBOX":
            return "INBOX"
        if wire[:6].upper() == "INBOX/":
            wire = "INBOX" + wire[5:]
        return wire.rstrip("/") if len(wire) > 1 else wire

    def mailbox_to_wire(self, name: str) -> bytes:
        return mailbox_name(name, self.utf8)
