"""Sans-IO SASL server mechanisms shared by IMAP, POP3 and SMTP (RFC 4422).

A protocol adapter picks a mechanism with :func:`create`, base64-decodes the client's
messages into ``start()``/``respond()``, sends :class:`Challenge` data, performs the
checks the mechanism asks for (``CheckPassword``, ``LookupScram``, ``CheckToken``)
and feeds the verdicts to ``resolve()`` until :class:`Success` or :class:`Failure`.

:func:`available` encodes the advertising policy in one place: SCRAM always (the
password never crosses the wire), -PLUS only with channel-binding data, and the
mechanisms that reveal a password or bearer token (PLAIN, LOGIN, OAUTHBEARER, XOAUTH2)
only over TLS unless the operator allows cleartext.
"""

from __future__ import annotations

from carteiro.auth.sasl.base import (
    CHANNEL_BINDING_TYPES,
    Mechanism,
    MechanismOptions,
    ProtocolMisuse,
)
from carteiro.auth.sasl.events import (
    Challenge,
    CheckPassword,
    CheckToken,
    Event,
    Failure,
    FailureReason,
    LookupScram,
    PasswordVerdict,
    ScramCredentials,
    Success,
    TokenVerdict,
    Verdict,
)
from carteiro.auth.sasl.login import Login
from carteiro.auth.sasl.oauth import OAuthBearer, XOAuth2
from carteiro.auth.sasl.plain import Plain
from carteiro.auth.sasl.scram import (
    ScramSha256,
    decode_scram_record,
    encode_scram_record,
    scram_credentials,
    tls_server_end_point,
)

__all__ = [
    "CHANNEL_BINDING_TYPES",
    "Challenge",
    "CheckPassword",
    "CheckToken",
    "Event",
    "Failure",
    "FailureReason",
    "Login",
    "LookupScram",
    "Mechanism",
    "MechanismOptions",
    "OAuthBearer",
    "PasswordVerdict",
    "Plain",
    "ProtocolMisuse",
    "ScramCredentials",
    "ScramSha256",
    "Success",
    "TokenVerdict",
    "Verdict",
    "XOAuth2",
    "available",
    "create",
    "decode_scram_record",
    "encode_scram_record",
    "scram_credentials",
    "tls_server_end_point",
]


def available(options: MechanismOptions) -> list[str]:
    """The mechanism names to advertise, most preferred first."""
    names = []
    if options.usable_bindings():
        names.append("SCRAM-SHA-256-PLUS")
    names.append("SCRAM-SHA-256")
    if options.tls or options.allow_plaintext:
        names += ["PLAIN", "LOGIN"]
        if options.oauth:
            names += ["OAUTHBEARER", "XOAUTH2"]
    return names


def create(name: str, options: MechanismOptions) -> Mechanism | None:
    """A fresh mechanism for ``name`` (any case), or None when unknown or not available."""
    if not name.isascii():  # str.upper() would map e.g. "ſ" to "S"
        return None
    name = name.upper()
    if name not in available(options):
        return None
    if name.startswith("SCRAM-SHA-256"):
        return ScramSha256(options, plus=name.endswith("-PLUS"))
    factories: dict[str, type[Plain | Login | OAuthBearer | XOAuth2]] = {
        "PLAIN": Plain,
        "LOGIN": Login,
        "OAUTHBEARER": OAuthBearer,
        "XOAUTH2": XOAuth2,
    }
    return factories[name]()
