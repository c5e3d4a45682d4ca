"""OAUTHBEARER (RFC 7628) and Google's XOAUTH2: a bearer token in one client message.

Both carry ``key=value`` pairs separated by ``%x01``; OAUTHBEARER adds a GS2 header
whose authzid names the user (RFC 7628 §3.1), XOAUTH2 a ``user=`` pair.  Validating
the token (signature, issuer, expiry, that it belongs to the claimed user) is the
driver's job (``CheckToken``).  On a refused token the server sends the error JSON as
a challenge (RFC 7628 §3.2.2) and fails after the client's reply, which RFC 7628
§3.2.3 says is a lone ``%x01`` and which Gmail takes to be empty for XOAUTH2; either
way the reply cannot change the outcome, so any reply ends in Failure("credentials").

A bearer token is a cleartext secret too: ``available()`` offers these only over TLS
or where the operator allows cleartext.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from carteiro.auth.sasl.base import Mechanism, ProtocolMisuse, malformed, parse_gs2_header
from carteiro.auth.sasl.events import (
    Challenge,
    CheckToken,
    Event,
    Failure,
    Success,
    TokenKind,
    TokenVerdict,
    Verdict,
)

__all__ = [
    "DEFAULT_ERROR_JSON",
    "MAX_OAUTH_MESSAGE",
    "BearerRequest",
    "OAuthBearer",
    "XOAuth2",
    "parse_oauthbearer",
    "parse_xoauth2",
]

MAX_OAUTH_MESSAGE = 16384  # JWTs with many claims stay well below
#: sent when the verdict carries no error JSON (RFC 7628 §3.2.2: status is required)
DEFAULT_ERROR_JSON = b'{"status":"invalid_token"}'
_KEY = re.compile(r"[A-Za-z]+")
_RFC7628_VALUE = re.compile(r"[\x21-\x7e \t\r\n]*")  # VCHAR / SP / HTAB / CR / LF
_XOAUTH2_VALUE = re.compile(r"[^\x00-\x1f\x7f]*")
# RFC 6750 §2.1: "Bearer" 1*SP b64token, the scheme name case-insensitive (RFC 7235 §2.1)
_AUTH = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class BearerRequest:
    """A parsed client message; ``host``/``port`` are ``""`` when absent."""

    token: str = field(repr=False)
    user: str
    host: str = ""
    port: str = ""


def parse_oauthbearer(message: bytes) -> BearerRequest | Failure:
    """RFC 7628 §3.1 ``client-resp`` (the GS2 header form, not the lone ``%x01``)."""
    text = _decode(message)
    if text is None:
        return malformed("OAUTHBEARER message is not UTF-8 or too long")
    header_end = text.find("\x01")
    parsed = parse_gs2_header(text[:header_end]) if header_end >= 0 else None
    if parsed is None or parsed[1]:
        return malformed("malformed GS2 header")
    header = parsed[0]
    if header.flag == "p":
        return Failure("channel-binding", "OAUTHBEARER does not support channel binding")
    pairs = _pairs(text[header_end + 1 :], _RFC7628_VALUE)
    if isinstance(pairs, Failure):
        return pairs
    return _request(pairs, header.authzid)


def parse_xoauth2(message: bytes) -> BearerRequest | Failure:
    """``user=<user>%x01auth=Bearer <token>%x01%x01`` (Google's XOAUTH2)."""
    text = _decode(message)
    if text is None:
        return malformed("XOAUTH2 message is not UTF-8 or too long")
    pairs = _pairs(text, _XOAUTH2_VALUE)
    if isinstance(pairs, Failure):
        return pairs
    if "user" not in pairs:
        return malformed("XOAUTH2 message without user")
    return _request(pairs, pairs["user"])


def _decode(message: bytes) -> str | None:
    if len(message) > MAX_OAUTH_MESSAGE:
        return None
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _pairs(text: str, value_syntax: re.Pattern[str]) -> dict[str, str] | Failure:
    """``*kvpair kvsep``: pairs each ended by %x01, then one more %x01."""
    if not text.endswith("\x01"):
        return malformed("message not terminated by %x01")
    body = text[:-1]
    if body and not body.endswith("\x01"):
        return malformed("message not terminated by %x01")
    pairs: dict[str, str] = {}
    for item in body[:-1].split("\x01") if body else []:
        key, equals, value = item.partition("=")
        if not equals or not _KEY.fullmatch(key) or not value_syntax.fullmatch(value):
            return malformed("malformed key=value pair")
        if key in pairs:
            return malformed("repeated key")
        pairs[key] = value
    return pairs


def _request(pairs: dict[str, str], user: str) -> BearerRequest | Failure:
    auth = _AUTH.fullmatch(pairs.get("auth", ""))
    if auth is None:
        return malformed("missing or malformed auth=Bearer value")
    port = pairs.get("port", "")
    if port and not _PORT.fullmatch(port):
        return malformed("malformed port")
    return BearerRequest(token=auth.group(1), user=user, host=pairs.get("host", ""), port=port)


class _Bearer(Mechanism):
    kind: TokenKind

    def __init__(self) -> None:
        super().__init__()
        self._user = ""
        self._refused = False

    def _parse(self, message: bytes) -> BearerRequest | Failure:
        raise NotImplementedError

    def _start(self, initial: bytes | None) -> Event:
        if not initial:
            return Challenge(b"")
        return self._respond(initial)

    def _respond(self, data: bytes) -> Event:
        if self._refused:  # the reply to the error challenge
            return Failure("credentials", "invalid or expired token")
        request = self._parse(data)
        if isinstance(request, Failure):
            return request
        self._user = request.user
        return CheckToken(token=request.token, user=request.user, kind=self.kind)

    def _resolve(self, verdict: Verdict) -> Event:
        if not isinstance(verdict, TokenVerdict):
            raise ProtocolMisuse(f"{self.name}: resolve() needs a TokenVerdict")
        if not verdict.ok:
            self._refused = True
            return Challenge(verdict.error_json or DEFAULT_ERROR_JSON)
        authcid = verdict.authcid or self._user
        if not authcid:
            return Failure("credentials", "the token names no account")
        # the driver checked the token belongs to the claimed user: no separate authzid
        return Success(authcid=authcid, authzid="", final=None)


class OAuthBearer(_Bearer):
    name = "OAUTHBEARER"
    kind: TokenKind = "OAUTHBEARER"

    def _parse(self, message: bytes) -> BearerRequest | Failure:
        return parse_oauthbearer(message)


class XOAuth2(_Bearer):
    name = "XOAUTH2"
    kind: TokenKind = "XOAUTH2"

    def _parse(self, message: bytes) -> BearerRequest | Failure:
        return parse_xoauth2(message)
