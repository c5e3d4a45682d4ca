"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) on top of ``scramp``.

scramp does the message parsing, the nonces and the proof arithmetic; this module adds
what scramp's synchronous server cannot do:

* The credential lookup is asynchronous (a database query), so the client-first
  message is parsed here first, the driver is asked for the keys (``LookupScram``),
  and scramp's server is created once they arrive.
* Unknown accounts are indistinguishable (RFC 5802 §9 "user enumeration"): instead of
  failing early, the exchange continues with fake keys whose salt is derived from the
  username and a secret, so it is stable across attempts, and fails only at the
  client-final message, exactly where a wrong password fails.
* The GS2 header is checked here (RFC 5802 §6): -PLUS needs ``p=<type>`` with a type
  the adapter supplied data for; plain SCRAM with ``y`` while -PLUS is advertised is a
  downgrade attack.  scramp only ever sees ``n,,``; the expected channel-binding input
  (the header as sent, with its authzid, plus the binding data) is handed to its
  server directly, which also makes authzids and every binding type work.

Channel-binding data comes from the adapter via ``MechanismOptions.channel_bindings``.
Python's ``ssl`` module cannot export keying material, so ``tls-exporter`` (RFC 9266)
works only if data for it is supplied; in practice the adapter supplies
``tls-server-end-point`` (:func:`tls_server_end_point`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from scramp import ScramException, ScramMechanism  # type: ignore[import-untyped]
from scramp.core import ClientFirstBare  # type: ignore[import-untyped]
from scramp.utils import ServerError  # type: ignore[import-untyped]

from carteiro.auth.sasl.base import (
    Mechanism,
    MechanismOptions,
    ProtocolMisuse,
    malformed,
    parse_gs2_header,
)
from carteiro.auth.sasl.events import (
    Challenge,
    Event,
    Failure,
    LookupScram,
    ScramCredentials,
    Success,
    Verdict,
)

__all__ = [
    "MAX_SCRAM_MESSAGE",
    "SALT_LENGTH",
    "ScramSha256",
    "decode_scram_record",
    "encode_scram_record",
    "scram_credentials",
    "tls_server_end_point",
]

MAX_SCRAM_MESSAGE = 4096  # bytes of one client message: usernames and nonces are short
SALT_LENGTH = 16  # real and fake salts must look alike
RECORD_SCHEME = "SCRAM-SHA-256"
_KEY_LENGTH = 32  # SHA-256
_MIN_SALT = 12  # scramp refuses shorter salts
_MIN_ITERATIONS, _MAX_ITERATIONS = 4096, 10_000_000
_MAX_RECORD = 400
_PROCESS_SECRET = secrets.token_bytes(32)


class _CbindInput:
    """Stands in for scramp's Gs2Header in its server: what ``c=`` must decode to."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def make_cbind_input(self, _channel_binding: object) -> bytes:
        return self._data


class ScramSha256(Mechanism):
    """One SCRAM-SHA-256[-PLUS] exchange; ``plus`` selects the channel-binding variant."""

    def __init__(
        self, options: MechanismOptions, *, plus: bool, server_nonce: str | None = None
    ) -> None:
        """``server_nonce`` fixes scramp's random nonce: for test vectors only."""
        super().__init__()
        self._server_nonce = server_nonce
        self.name = "SCRAM-SHA-256-PLUS" if plus else "SCRAM-SHA-256"
        self._plus = plus
        self._bindings = options.usable_bindings()
        self._iterations = options.scram_iterations
        self._secret = options.scram_secret or _PROCESS_SECRET
        self._bare = ""
        self._cbind_input = b""
        self._authcid = ""
        self._authzid = ""
        self._credentials: ScramCredentials | None = None
        self._known = False
        self._server: Any = None

    def _start(self, initial: bytes | None) -> Event:
        if not initial:
            return Challenge(b"")
        return self._client_first(initial)

    def _respond(self, data: bytes) -> Event:
        if self._server is None:
            return self._client_first(data)
        return self._client_final(data)

    def _client_first(self, data: bytes) -> Event:
        text = _decode(data)
        if text is None:
            return malformed("SCRAM client-first message is not UTF-8 or too long")
        parsed = parse_gs2_header(text)
        if parsed is None:
            return malformed("malformed GS2 header")
        header, bare = parsed
        refused = self._check_binding(header.flag, header.cb_name)
        if refused is not None:
            return refused
        try:
            message = ClientFirstBare(bare)
            authcid = str(message["n"])
        except ScramException:
            return malformed("malformed SCRAM client-first message")
        self._bare = bare
        self._authcid = authcid
        self._authzid = header.authzid
        binding = self._bindings[header.cb_name] if header.flag == "p" else b""
        self._cbind_input = header.text.encode("utf-8") + binding
        return LookupScram(authcid=authcid, authzid=header.authzid)

    def _check_binding(self, flag: str, cb_name: str) -> Failure | None:
        if self._plus:
            if flag != "p":
                return Failure("channel-binding", "SCRAM-SHA-256-PLUS needs channel binding")
            if cb_name not in self._bindings:
                return Failure("channel-binding", "unsupported channel-binding type")
        elif flag == "p":
            return Failure("channel-binding", "channel binding needs SCRAM-SHA-256-PLUS")
        elif flag == "y" and self._bindings:
            return Failure("channel-binding", "channel binding downgrade refused")
        return None

    def _resolve(self, verdict: Verdict) -> Event:
        if verdict is not None and not isinstance(verdict, ScramCredentials):
            raise ProtocolMisuse(f"{self.name}: resolve() needs ScramCredentials or None")
        self._known = verdict is not None
        credentials = verdict if verdict is not None else self._fake(self._authcid)
        if not _usable(credentials):
            return Failure("unavailable", "stored SCRAM credentials are unusable")
        self._credentials = credentials
        keys = (
            credentials.salt,
            credentials.stored_key,
            credentials.server_key,
            credentials.iterations,
        )
        try:
            server = ScramMechanism(RECORD_SCHEME).make_server(
                lambda _username: keys, s_nonce=self._server_nonce
            )
            server.set_client_first("n,," + self._bare)
            server.gs2_header = _CbindInput(self._cbind_input)
            first = str(server.get_server_first())
        except ScramException:  # pragma: no cover - the message was checked in start
            return malformed("malformed SCRAM client-first message")
        self._server = server
        return Challenge(first.encode("ascii"))

    def _client_final(self, data: bytes) -> Event:
        text = _decode(data)
        if text is None:
            return malformed("SCRAM client-final message is not UTF-8 or too long")
        server = self._server
        assert server is not None and self._credentials is not None
        try:
            server.set_client_final(text)
            final = str(server.get_server_final())
        except ScramException as e:
            if e.server_error == ServerError.CHANNEL_BINDINGS_DONT_MATCH:
                return Failure("channel-binding", "channel binding does not match")
            if e.server_error == ServerError.INVALID_PROOF:
                return Failure("credentials", "invalid username or password")
            return malformed("malformed SCRAM client-final message")
        if not self._known:  # unreachable without the secret; never let it succeed
            return Failure("credentials", "invalid username or password")
        if self._authzid and not self._credentials.authzid_allowed:
            return Failure("authorization", "not authorized to act as the requested user")
        return Success(
            authcid=self._credentials.authcid or self._authcid,
            authzid=self._authzid,
            final=final.encode("ascii"),
        )

    def _fake(self, authcid: str) -> ScramCredentials:
        def derive(label: bytes) -> bytes:
            message = label + b"\x00" + authcid.encode("utf-8")
            return hmac.new(self._secret, message, hashlib.sha256).digest()

        return ScramCredentials(
            salt=derive(b"salt")[:SALT_LENGTH],
            iterations=self._iterations,
            stored_key=derive(b"stored-key"),
            server_key=derive(b"server-key"),
        )


def _decode(data: bytes) -> str | None:
    if len(data) > MAX_SCRAM_MESSAGE:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _usable(credentials: ScramCredentials) -> bool:
    """What scramp accepts (exact types included) and SHA-256 keys."""
    return (
        type(credentials.salt) is bytes
        and type(credentials.stored_key) is bytes
        and type(credentials.server_key) is bytes
        and len(credentials.salt) >= _MIN_SALT
        and type(credentials.iterations) is int
        and _MIN_ITERATIONS <= credentials.iterations <= _MAX_ITERATIONS
        and len(credentials.stored_key) == _KEY_LENGTH
        and len(credentials.server_key) == _KEY_LENGTH
    )


def scram_credentials(
    password: str, iterations: int = 4096, salt: bytes | None = None
) -> ScramCredentials:
    """The keys to store when a password is set (RFC 5802 §3; SASLprep applied).

    Raises ValueError for a password SASLprep prohibits, fewer than 4096 iterations
    or a salt shorter than 12 bytes.
    """
    try:
        salt_out, stored_key, server_key, count = ScramMechanism(RECORD_SCHEME).make_auth_info(
            password,
            iteration_count=iterations,
            salt=secrets.token_bytes(SALT_LENGTH) if salt is None else salt,
        )
    except ScramException as e:
        raise ValueError(f"cannot make SCRAM credentials: {e}") from e
    return ScramCredentials(
        salt=bytes(salt_out),
        iterations=int(count),
        stored_key=bytes(stored_key),
        server_key=bytes(server_key),
    )


def encode_scram_record(credentials: ScramCredentials) -> str:
    """``SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>`` (standard base64),
    for one TEXT column; the account name is not part of it."""
    if not _usable(credentials):
        raise ValueError("unusable SCRAM credentials")
    parts = (credentials.salt, credentials.stored_key, credentials.server_key)
    encoded = "$".join(base64.b64encode(part).decode("ascii") for part in parts)
    return f"{RECORD_SCHEME}${credentials.iterations}${encoded}"


def decode_scram_record(text: str) -> ScramCredentials | None:
    """The credentials of an :func:`encode_scram_record` string; None for anything else.
    Set ``authcid`` with ``dataclasses.replace`` before passing them to ``resolve()``."""
    if not isinstance(text, str) or len(text) > _MAX_RECORD or not text.isascii():
        return None
    parts = text.split("$")
    if len(parts) != 5 or parts[0] != RECORD_SCHEME:
        return None
    count = parts[1]
    if not (count.isdigit() and count[0] != "0" and len(count) <= 8):
        return None
    decoded = [_b64(part) for part in parts[2:]]
    if decoded[0] is None or decoded[1] is None or decoded[2] is None:
        return None
    credentials = ScramCredentials(
        salt=decoded[0], iterations=int(count), stored_key=decoded[1], server_key=decoded[2]
    )
    return credentials if _usable(credentials) else None


def _b64(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def tls_server_end_point(cert_der: bytes) -> bytes:
    """RFC 5929 §4.1 ``tls-server-end-point`` data for the server certificate (DER):
    its hash with the certificate's signature hash, SHA-256 instead of MD5 or SHA-1.

    Raises ValueError when the data is undefined (e.g. Ed25519 signatures use no
    separate hash) or the certificate cannot be read: then offer no -PLUS.
    """
    try:
        certificate = x509.load_der_x509_certificate(cert_der)
        algorithm = certificate.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"no tls-server-end-point for this certificate: {e}") from e
    if algorithm is None:
        raise ValueError("tls-server-end-point is undefined for this signature algorithm")
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return digest.finalize()
