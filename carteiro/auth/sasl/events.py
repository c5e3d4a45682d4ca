"""The values exchanged between a SASL mechanism and the protocol adapter that drives it.

A mechanism never performs I/O or checks a credential itself: it returns an *event*
telling the driver what to do next (send a challenge, verify a password, look up SCRAM
keys, validate a token) and the driver answers with :meth:`Mechanism.respond` (client
bytes) or :meth:`Mechanism.resolve` (a *verdict*).  Keeping the slow, asynchronous work
(argon2, the database, JWT validation) outside makes one implementation serve IMAP,
POP3 and SMTP and lets the state machines be tested exhaustively without a server.

Identity convention of :class:`Success`: the account to act as is ``authzid`` when it
is not empty, otherwise ``authcid``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

__all__ = [
    "Challenge",
    "CheckPassword",
    "CheckToken",
    "Event",
    "Failure",
    "FailureReason",
    "LookupScram",
    "PasswordVerdict",
    "ScramCredentials",
    "Success",
    "TokenKind",
    "TokenVerdict",
    "Verdict",
]

FailureReason: TypeAlias = Literal[
    "malformed", "cancelled", "credentials", "authorization", "channel-binding", "unavailable"
]
TokenKind: TypeAlias = Literal["OAUTHBEARER", "XOAUTH2"]


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``data`` as the server challenge (the adapter base64-encodes it) and feed the
    client's decoded reply to ``respond()``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CheckPassword:
    """Verify ``password`` for ``authcid`` and whether ``authcid`` may act as ``authzid``
    (``""`` when the client sent none), then call ``resolve(PasswordVerdict(...))``."""

    authcid: str
    password: str = field(repr=False)
    authzid: str


@dataclass(frozen=True, slots=True)
class LookupScram:
    """Look up the stored SCRAM credentials of ``authcid`` and call
    ``resolve(ScramCredentials | None)``; ``None`` for an unknown account.  Decide then
    whether ``authcid`` may act as ``authzid`` (``ScramCredentials.authzid_allowed``):
    the answer is only revealed after the client proved it knows the password."""

    authcid: str
    authzid: str


@dataclass(frozen=True, slots=True)
class CheckToken:
    """Validate the bearer ``token`` (and that it belongs to ``user`` when not empty),
    then call ``resolve(TokenVerdict(...))``."""

    token: str = field(repr=False)
    user: str
    kind: TokenKind


@dataclass(frozen=True, slots=True)
class Success:
    """Authenticated.  ``final`` is data to send with the success (the SCRAM
    server-final message, RFC 5802 §5.1 ``v=``); None when there is nothing."""

    authcid: str
    authzid: str
    final: bytes | None


@dataclass(frozen=True, slots=True)
class Failure:
    """The exchange is over and failed.  ``message`` is fixed human text: it never echoes
    client data, so it is safe for logs and for the NO / -ERR / 535 line."""

    reason: FailureReason
    message: str


@dataclass(frozen=True, slots=True)
class PasswordVerdict:
    """``authcid``: the canonical account name when ``ok`` (``""`` keeps the client's)."""

    ok: bool
    authcid: str = ""
    authzid_allowed: bool = True


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """Stored SCRAM-SHA-256 keys (RFC 5802 §3): the server never needs the password.

    ``authcid`` is the canonical account name (``""`` keeps the client's);
    ``authzid_allowed`` says whether that account may act as the requested authzid.
    """

    salt: bytes = field(repr=False)
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    authcid: str = ""
    authzid_allowed: bool = True


@dataclass(frozen=True, slots=True)
class TokenVerdict:
    """``authcid``: the account the token belongs to (``""`` keeps the claimed user);
    ``error_json``: the RFC 7628 §3.2.2 error object sent to the client on failure."""

    ok: bool
    authcid: str = ""
    error_json: bytes = b""


Event: TypeAlias = Challenge | CheckPassword | LookupScram | CheckToken | Success | Failure
Verdict: TypeAlias = PasswordVerdict | ScramCredentials | TokenVerdict | None
