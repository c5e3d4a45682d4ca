"""PLAIN (RFC 4616): ``[authzid] NUL authcid NUL passwd`` in one client message.

The password travels in clear inside the SASL exchange, which is why ``available()``
offers PLAIN only over TLS or where the operator allows cleartext.  Fields are plain
UTF-8 (RFC 4616 §2 leaves SASLprep of the password to the verifier, and argon2
verifies the exact bytes that were set); each is bounded so a client cannot make the
driver hash megabytes.
"""

from __future__ import annotations

from carteiro.auth.sasl.base import (
    MAX_FIELD,
    Mechanism,
    decode_field,
    malformed,
    password_outcome,
)
from carteiro.auth.sasl.events import Challenge, CheckPassword, Event, Failure, Verdict

__all__ = ["Plain", "parse_plain"]


def parse_plain(message: bytes) -> CheckPassword | Failure:
    """The RFC 4616 §2 message as a CheckPassword, or Failure("malformed")."""
    if len(message) > 3 * MAX_FIELD + 2:
        return malformed("PLAIN message too long")
    parts = message.split(b"\x00")
    if len(parts) != 3:
        return malformed("PLAIN message needs exactly two NUL separators")
    raw_authzid, raw_authcid, raw_password = parts
    authzid = decode_field(raw_authzid, "authorization identity") if raw_authzid else ""
    authcid = decode_field(raw_authcid, "username")
    password = decode_field(raw_password, "password")
    for value in (authzid, authcid, password):
        if isinstance(value, Failure):
            return value
    assert isinstance(authzid, str) and isinstance(authcid, str) and isinstance(password, str)
    return CheckPassword(authcid=authcid, password=password, authzid=authzid)


class Plain(Mechanism):
    """Client-first: the message comes as initial response or after an empty challenge."""

    name = "PLAIN"

    def __init__(self) -> None:
        super().__init__()
        self._request: CheckPassword | None = None

    def _start(self, initial: bytes | None) -> Event:
        if not initial:
            return Challenge(b"")
        return self._respond(initial)

    def _respond(self, data: bytes) -> Event:
        parsed = parse_plain(data)
        if isinstance(parsed, CheckPassword):
            self._request = parsed
        return parsed

    def _resolve(self, verdict: Verdict) -> Event:
        assert self._request is not None
        return password_outcome(verdict, self.name, self._request.authcid, self._request.authzid)
