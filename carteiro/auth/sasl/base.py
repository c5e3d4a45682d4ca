"""The mechanism state machine skeleton and the pieces the mechanisms share.

:class:`Mechanism` enforces the call order once for every mechanism: the event a
step returns decides the only call allowed next (a :class:`Challenge` wants
``respond()``, a ``Check…``/``Lookup…`` wants ``resolve()``, :class:`Success` and
:class:`Failure` end the exchange).  A call out of that order is a bug in the driver
and raises :class:`ProtocolMisuse`; client bytes never raise, they yield
``Failure("malformed")``.

No mechanism here has a valid empty first client message, so an empty initial
response (``=`` on the wire, RFC 4422 §4) is treated like an absent one: the client is
asked again with an ordinary challenge.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from carteiro.auth.sasl.events import (
    Challenge,
    CheckPassword,
    CheckToken,
    Event,
    Failure,
    LookupScram,
    PasswordVerdict,
    Success,
    Verdict,
)

__all__ = [
    "CHANNEL_BINDING_TYPES",
    "MAX_FIELD",
    "Gs2Header",
    "Mechanism",
    "MechanismOptions",
    "ProtocolMisuse",
    "decode_field",
    "malformed",
    "parse_gs2_header",
    "password_outcome",
    "unescape_saslname",
]

#: bytes of one username, password or authzid; longer is refused as malformed
MAX_FIELD = 1024
#: channel-binding types a -PLUS exchange may use when the adapter supplies their data
#: (RFC 5929 tls-server-end-point and tls-unique, RFC 9266 tls-exporter)
CHANNEL_BINDING_TYPES = frozenset({"tls-server-end-point", "tls-exporter", "tls-unique"})
_MIN_ITERATIONS = 4096  # RFC 7677 §4
_MAX_ITERATIONS = 10_000_000  # scramp's denial-of-service guard
_CB_NAME = re.compile(r"[A-Za-z0-9.\-]+")


class ProtocolMisuse(RuntimeError):
    """A mechanism method was called out of order or with the wrong kind of verdict:
    a programming error in the driver, never caused by client data."""


@dataclass(frozen=True, slots=True)
class MechanismOptions:
    """What the connection and the operator allow.

    ``scram_secret``: a persistent server secret from which the fake SCRAM salt of an
    unknown account is derived; when None a per-process secret is used, so the fake
    salt stays stable for the life of the process only.
    """

    tls: bool
    channel_bindings: Mapping[str, bytes]
    allow_plaintext: bool
    oauth: bool
    scram_iterations: int = 4096
    scram_secret: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _MIN_ITERATIONS <= self.scram_iterations <= _MAX_ITERATIONS:
            raise ValueError(
                f"scram_iterations must be within {_MIN_ITERATIONS}..{_MAX_ITERATIONS}"
            )

    def usable_bindings(self) -> dict[str, bytes]:
        """The channel bindings a -PLUS exchange can check: known types with data, TLS only."""
        if not self.tls:
            return {}
        return {
            name: data
            for name, data in self.channel_bindings.items()
            if name in CHANNEL_BINDING_TYPES and data
        }


_Expect = Literal["start", "respond", "resolve", "done"]


class Mechanism(ABC):
    """One SASL server exchange.  Subclasses implement ``_start``, ``_respond`` and
    ``_resolve``; the public methods check the order and track the state."""

    name: str

    def __init__(self) -> None:
        self._expect: _Expect = "start"

    @property
    def done(self) -> bool:
        """True once Success or Failure was returned."""
        return self._expect == "done"

    def start(self, initial: bytes | None) -> Event:
        """Begin, with the SASL-IR initial response (decoded) or None when absent."""
        self._require("start")
        if initial is not None and not isinstance(initial, bytes):
            raise ProtocolMisuse(f"{self.name}: start() needs bytes or None")
        return self._advance(self._start(initial))

    def respond(self, data: bytes) -> Event:
        """The client's (decoded) reply to the last Challenge."""
        self._require("respond")
        if not isinstance(data, bytes):
            raise ProtocolMisuse(f"{self.name}: respond() needs bytes")
        return self._advance(self._respond(data))

    def resolve(self, verdict: Verdict) -> Event:
        """The driver's answer to the last CheckPassword / LookupScram / CheckToken."""
        self._require("resolve")
        return self._advance(self._resolve(verdict))

    def cancel(self) -> Failure:
        """The client cancelled (``*``, RFC 4422 §3.5): the exchange ends."""
        if self._expect == "done":
            raise ProtocolMisuse(f"{self.name}: the exchange is already over")
        self._expect = "done"
        return Failure("cancelled", "authentication cancelled by the client")

    @abstractmethod
    def _start(self, initial: bytes | None) -> Event: ...

    @abstractmethod
    def _respond(self, data: bytes) -> Event: ...

    @abstractmethod
    def _resolve(self, verdict: Verdict) -> Event: ...

    def _require(self, step: _Expect) -> None:
        if self._expect != step:
            wanted = "nothing more" if self._expect == "done" else f"{self._expect}()"
            raise ProtocolMisuse(f"{self.name}: {step}() called, expected {wanted}")

    def _advance(self, event: Event) -> Event:
        if isinstance(event, Challenge):
            self._expect = "respond"
        elif isinstance(event, CheckPassword | LookupScram | CheckToken):
            self._expect = "resolve"
        else:
            self._expect = "done"
        return event


def malformed(message: str) -> Failure:
    return Failure("malformed", message)


def decode_field(data: bytes, what: str) -> str | Failure:
    """A non-empty UTF-8 field of at most MAX_FIELD bytes without NUL, or a Failure."""
    if not data:
        return malformed(f"empty {what}")
    if len(data) > MAX_FIELD:
        return malformed(f"{what} too long")
    if b"\x00" in data:
        return malformed(f"NUL in {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return malformed(f"{what} is not UTF-8")


def password_outcome(verdict: Verdict, name: str, authcid: str, authzid: str) -> Event:
    """The end of a PLAIN or LOGIN exchange once the password was checked."""
    if not isinstance(verdict, PasswordVerdict):
        raise ProtocolMisuse(f"{name}: resolve() needs a PasswordVerdict")
    if not verdict.ok:
        return Failure("credentials", "invalid username or password")
    if authzid and not verdict.authzid_allowed:
        return Failure("authorization", "not authorized to act as the requested user")
    return Success(authcid=verdict.authcid or authcid, authzid=authzid, final=None)


@dataclass(frozen=True, slots=True)
class Gs2Header:
    """RFC 5801 §4 / RFC 5802 §7 ``gs2-header`` (without the non-standard ``F,`` flag).

    ``text`` is the header exactly as sent up to its second comma: SCRAM's channel
    binding input starts with it byte for byte.
    """

    flag: Literal["n", "y", "p"]
    cb_name: str  # "" unless flag == "p"
    authzid: str  # "" when absent
    text: str


def parse_gs2_header(message: str) -> tuple[Gs2Header, str] | None:
    """The header and the rest of ``message``, or None when the header is malformed."""
    first = message.find(",")
    second = message.find(",", first + 1) if first >= 0 else -1
    if second < 0:
        return None
    cbind, authz = message[:first], message[first + 1 : second]
    flag: Literal["n", "y", "p"]
    if cbind == "n":
        flag, cb_name = "n", ""
    elif cbind == "y":
        flag, cb_name = "y", ""
    elif cbind.startswith("p=") and _CB_NAME.fullmatch(cbind[2:]):
        flag, cb_name = "p", cbind[2:]
    else:
        return None
    authzid = ""
    if authz:
        if not authz.startswith("a="):
            return None
        unescaped = unescape_saslname(authz[2:])
        if unescaped is None:
            return None
        authzid = unescaped
    return Gs2Header(flag, cb_name, authzid, message[: second + 1]), message[second + 1 :]


def unescape_saslname(text: str) -> str | None:
    """RFC 5802 §5.1 ``saslname``: ``=2C`` is ``,`` and ``=3D`` is ``=``; other ``=``,
    ``,``, NUL or an empty name are malformed (None)."""
    if not text or "," in text or "\x00" in text:
        return None
    parts = text.split("=")
    out = [parts[0]]
    for part in parts[1:]:
        if part.startswith("2C"):
            out.append("," + part[2:])
        elif part.startswith("3D"):
            out.append("=" + part[2:])
        else:
            return None
    return "".join(out)
