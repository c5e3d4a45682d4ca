"""DKIM (RFC 6376) signing and verification, RSA-SHA256 and Ed25519-SHA256 (RFC 8463).

Keys are stored as PKCS#8 PEM (:class:`~carteiro.store.interface.DkimKey`); dkimpy wants
PKCS#1 for RSA and a base64 seed for Ed25519, so :func:`_dkimpy_key` converts.

Verification never lets dkimpy touch the network: the signatures' key records are fetched
through the async :class:`~carteiro.smtp.dns.Resolver` first, then dkimpy checks the
hashes in a worker thread (CPU work, kept off the event loop) with a ``dnsfunc`` that
returns the prefetched record. Result names follow RFC 8601 §2.7.1: a signature that
cannot be parsed is ``neutral``, a missing or unusable key ``permerror``, a key lookup
that failed temporarily ``temperror``. A message without signatures gives an empty list
(the caller reports ``dkim=none``).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from carteiro.smtp.dns import NoSuchDomain, Resolver, TemporaryDnsError
from carteiro.store.interface import DkimKey

__all__ = [
    "ALGORITHMS",
    "MAX_SIGNATURES",
    "SIGNED_HEADERS",
    "DkimResult",
    "dns_record",
    "generate_key",
    "sign",
    "verify_dkim",
]

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
MAX_SIGNATURES = 5
SIGNED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)


@dataclass(frozen=True)
class DkimResult:
    """One signature's outcome: ``result`` ∈ pass, fail, neutral, temperror, permerror."""

    result: str
    domain: str
    selector: str
    algorithm: str
    reason: str


# --- keys ----------------------------------------------------------------------------


def generate_key(algorithm: str) -> bytes:
    """A new private key as unencrypted PKCS#8 PEM: RSA 2048 or Ed25519."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}; use one of {ALGORITHMS}")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _private_key(key: DkimKey) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    loaded = serialization.load_pem_private_key(key.private_key, password=None)
    expected = rsa.RSAPrivateKey if key.algorithm == "rsa-sha256" else ed25519.Ed25519PrivateKey
    if key.algorithm not in ALGORITHMS or not isinstance(loaded, expected):
        raise ValueError(f"DKIM key {key.selector} of {key.domain} is not {key.algorithm}")
    return loaded


def dns_record(key: DkimKey) -> str:
    """The TXT value to publish at ``<selector>._domainkey.<domain>``."""
    private = _private_key(key)
    if isinstance(private, rsa.RSAPrivateKey):
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kind = "rsa"
    else:
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kind = "ed25519"
    return f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode('ascii')}"


def _dkimpy_key(key: DkimKey) -> bytes:
    private = _private_key(key)
    if isinstance(private, rsa.RSAPrivateKey):
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


# --- signing -------------------------------------------------------------------------


def _header_block(message: bytes) -> bytes:
    """The header section including its final line break (cheap: no full split)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = message.find(separator)
        if end >= 0:
            return message[: end + len(separator) // 2]
    return message


def _field_names(message: bytes) -> list[str]:
    names = re.findall(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:", _header_block(message), re.M)
    return [n.decode("ascii").lower() for n in names]


def sign(message: bytes, keys: Sequence[DkimKey]) -> bytes:
    """DKIM-Signature fields (each ending CRLF) to prepend, one per key, relaxed/relaxed.

    Signs :data:`SIGNED_HEADERS` that are present, with From signed once more than it
    occurs so no From can be added later. CPU-heavy for RSA: call it in a thread."""
    present = _field_names(message)
    if "from" not in present:
        raise ValueError("cannot DKIM-sign a message without a From header")
    include = [h.lower() for h in SIGNED_HEADERS for _ in range(present.count(h.lower()))]
    include.append("from")
    out = b""
    for key in keys:
        field = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            _dkimpy_key(key),
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=key.algorithm.encode("ascii"),
            include_headers=[h.encode("ascii") for h in include],
        )
        if not field.endswith(b"\r\n"):
            field = field.rstrip(b"\r\n") + b"\r\n"
        out += field
    return out


# --- verification --------------------------------------------------------------------


@dataclass
class _Signature:
    index: int
    domain: str
    selector: str
    algorithm: str
    problem: str | None  # set: the signature itself is unusable (neutral)
    key: bytes | None = None
    outcome: DkimResult | None = None


def _signatures(message: bytes) -> list[_Signature]:
    try:
        headers, _ = dkim.rfc822_parse(_header_block(message))
    except dkim.DKIMException as e:
        return [_Signature(0, "", "", "", f"unparsable header: {e}")]
    values = [v for n, v in headers if n.lower() == b"dkim-signature"]
    found: list[_Signature] = []
    for index, value in enumerate(values[:MAX_SIGNATURES]):
        try:
            tags = dkim.util.parse_tag_value(value)
        except dkim.util.InvalidTagValueList as e:
            found.append(_Signature(index, "", "", "", f"bad tag list: {e}"))
            continue
        domain = _text(tags.get(b"d", b""))
        selector = _text(tags.get(b"s", b""))
        algorithm = _text(tags.get(b"a", b""))
        signature = _Signature(index, domain, selector, algorithm, None)
        try:
            dkim.validate_signature_fields(tags)
        except dkim.DKIMException as e:
            signature.problem = str(e)
        else:
            signed = [h.strip().lower() for h in tags[b"h"].split(b":")]
            if b"from" not in signed:
                signature.problem = "From is not signed"
            elif not re.fullmatch(r"[A-Za-z0-9._-]+", selector) or not domain:
                signature.problem = "bad selector or domain"
        found.append(signature)
    return found


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").strip()


async def _fetch_key(resolver: Resolver, sig: _Signature) -> None:
    name = f"{sig.selector}._domainkey.{sig.domain}"
    try:
        records = await resolver.txt(name)
    except NoSuchDomain:
        records = []
    except TemporaryDnsError as e:
        sig.outcome = _result(sig, "temperror", f"key lookup failed: {e}")
        return
    if not records:
        sig.outcome = _result(sig, "permerror", f"no key at {name}")
        return
    key = records[0].encode("utf-8", "surrogateescape")
    try:
        _, _, ktag, _ = dkim.evaluate_pk(name.encode("ascii", "replace"), key)
    except Exception as e:  # dkimpy's errors, and whatever a hostile record provokes
        # an empty p= (revoked key, RFC 6376 §3.6.1) lands here too
        sig.outcome = _result(sig, "permerror", f"unusable key: {e}")
        return
    if ktag != sig.algorithm.split("-", 1)[0].encode("ascii"):
        sig.outcome = _result(sig, "permerror", "key type does not match a=")
        return
    sig.key = key


def _result(sig: _Signature, result: str, reason: str) -> DkimResult:
    return DkimResult(result, sig.domain, sig.selector, sig.algorithm, reason)


def _check(message: bytes, signatures: Sequence[_Signature]) -> list[DkimResult]:
    """dkimpy's hash and signature checks, with keys already fetched (runs in a thread)."""
    results: list[DkimResult] = []
    for sig in signatures:
        if sig.outcome is not None:
            results.append(sig.outcome)
            continue
        key = sig.key

        def lookup(name: bytes, timeout: float = 5, key: bytes | None = key) -> bytes | None:
            return key

        try:
            verifier = dkim.DKIM(message, minkey=1024)
            ok = verifier.verify(idx=sig.index, dnsfunc=lookup)
        except dkim.ValidationError as e:
            results.append(_result(sig, "fail", str(e)))
            continue
        except dkim.KeyFormatError as e:
            results.append(_result(sig, "permerror", str(e)))
            continue
        except dkim.DKIMException as e:
            results.append(_result(sig, "neutral", str(e)))
            continue
        except Exception as e:  # dkimpy on hostile input: a result, never a crash
            results.append(_result(sig, "permerror", f"{type(e).__name__}: {e}"))
            continue
        reason = "signature verified" if ok else "signature did not verify"
        results.append(_result(sig, "pass" if ok else "fail", reason))
    return results


async def verify_dkim(resolver: Resolver, message: bytes) -> list[DkimResult]:
    """One result per DKIM-Signature, top first, at most :data:`MAX_SIGNATURES`;
    [] when the message carries none."""
    signatures = _signatures(message)
    for sig in signatures:
        if sig.problem is not None:
            sig.outcome = _result(sig, "neutral", sig.problem)
    pending = [s for s in signatures if s.outcome is None]
    await asyncio.gather(*(_fetch_key(resolver, s) for s in pending))
    if not any(s.outcome is None for s in signatures):
        return [s.outcome for s in signatures if s.outcome is not None]
    return await asyncio.to_thread(_check, message, signatures)
