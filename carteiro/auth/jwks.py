"""JSON Web Key Sets (RFC 7517 §5) for :mod:`carteiro.auth.tokens`: parsing, and the two
places an issuer's keys come from.

Why it is shaped like this:

* Each key is bound, when the set is parsed, to the algorithms its type can verify
  (RFC 7518 §3.1) and to no others, so a token's ``alg`` header can never make an RSA public
  key act as an HMAC secret (the alg-confusion attack, RFC 8725 §2.1 and §3.1). Symmetric
  ``oct`` keys, keys not meant for signatures (``use``/``key_ops``, RFC 7517 §4.2–4.3) and
  RSA keys under 2048 bits are dropped; private members are ignored.
* A URL source starts a fetch at most once per :data:`REFETCH_INTERVAL` seconds, whatever
  tokens arrive (an attacker minting unknown ``kid`` values cannot make us hammer the
  issuer), shares one in-flight fetch between concurrent validations, and keeps the last
  good keys when a fetch fails.
* A file source is re-read when its mtime or size changes: rotating keys means replacing
  the file, no restart.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import os
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from jwt import PyJWK
from jwt.exceptions import PyJWTError

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_JWKS_SIZE",
    "REFETCH_INTERVAL",
    "RETRY_INTERVAL",
    "SUPPORTED_ALGORITHMS",
    "FileKeySource",
    "KeySource",
    "UrlKeySource",
    "VerificationKey",
    "check_url",
    "fetch_url",
    "find_key",
    "parse_jwks",
]

logger = logging.getLogger(__name__)

MAX_JWKS_SIZE = 1024 * 1024
FETCH_TIMEOUT = 5.0
#: fewest seconds between two fetches of one issuer's JWKS once it has keys
REFETCH_INTERVAL = 60.0
#: fewest seconds between two fetches while it has none (a failed first fetch)
RETRY_INTERVAL = 10.0
MIN_RSA_BITS = 2048

#: the asymmetric JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) → (kty, accepted curves)
_KEY_TYPES: dict[str, tuple[str, frozenset[str]]] = {
    **{f"{p}{n}": ("RSA", frozenset()) for p in ("RS", "PS") for n in (256, 384, 512)},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
SUPPORTED_ALGORITHMS = frozenset(_KEY_TYPES)
#: JWK members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4)
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))

Fetch = Callable[[str], Awaitable[bytes]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """One usable JWK: its ``kid`` and a PyJWK bound to each algorithm it may verify."""

    kid: str | None
    by_alg: Mapping[str, PyJWK]


def check_url(url: str, what: str) -> None:
    """Refuse anything but https (plain http only to 127.0.0.1/::1, for tests)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http":
        try:
            if ipaddress.ip_address(host) in _LOOPBACK:
                return
        except ValueError:
            pass
    raise ValueError(f"{what} {url!r} must be an https URL (http only for 127.0.0.1 or ::1)")


def parse_jwks(data: bytes, algorithms: Iterable[str]) -> tuple[VerificationKey, ...]:
    """The usable keys of a JWKS document; ValueError when it is not one at all."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWK Set (no "keys" array)')
    allowed = [a for a in algorithms if a in _KEY_TYPES]
    keys = []
    for jwk in document["keys"]:
        key = _parse_jwk(jwk, allowed) if isinstance(jwk, dict) else None
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _parse_jwk(jwk: dict[str, Any], allowed: list[str]) -> VerificationKey | None:
    kty, kid, alg = jwk.get("kty"), jwk.get("kid"), jwk.get("alg")
    if not isinstance(kty, str) or not (kid is None or isinstance(kid, str)):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if alg is not None and not isinstance(alg, str):
        return None
    public = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
    by_alg: dict[str, PyJWK] = {}
    for name in allowed if alg is None else [a for a in allowed if a == alg]:
        want_kty, curves = _KEY_TYPES[name]
        if kty != want_kty or (curves and jwk.get("crv") not in curves):
            continue
        try:
            bound = PyJWK(public, algorithm=name)
        except (PyJWTError, ValueError, TypeError):
            return None
        if bound.Algorithm.check_key_length(bound.key) is not None:
            return None  # an RSA key too short to trust (NIST SP 800-131A)
        by_alg[name] = bound
    return VerificationKey(kid, by_alg) if by_alg else None


def find_key(keys: Iterable[VerificationKey], kid: str | None, alg: str) -> PyJWK | None:
    """The key for a token: by ``kid``, or the only key able to verify ``alg`` if no kid."""
    if kid is not None:
        for key in keys:
            if key.kid == kid and alg in key.by_alg:
                return key.by_alg[alg]
        return None
    suitable = [key.by_alg[alg] for key in keys if alg in key.by_alg]
    return suitable[0] if len(suitable) == 1 else None


class KeySource(Protocol):
    """Where one issuer's keys come from; neither method raises (None: no keys at all)."""

    async def keys(self) -> tuple[VerificationKey, ...] | None: ...

    async def refresh(self) -> tuple[VerificationKey, ...] | None:
        """Called for an unknown kid: look again if allowed to, then answer like keys()."""
        ...


class FileKeySource:
    """A JWKS file, re-read whenever its (mtime, size) changes."""

    def __init__(self, path: Path, algorithms: Iterable[str], label: str) -> None:
        self._path = path
        self._algorithms = tuple(algorithms)
        self._label = label
        self._keys: tuple[VerificationKey, ...] | None = None
        self._seen: tuple[int, int] | None = None
        self._complained = False

    async def keys(self) -> tuple[VerificationKey, ...] | None:
        return self._load()

    async def refresh(self) -> tuple[VerificationKey, ...] | None:
        return self._load()

    def _load(self) -> tuple[VerificationKey, ...] | None:
        try:
            st = os.stat(self._path)
        except OSError as exc:
            if not self._complained:
                self._complained = True
                logger.warning("JWKS file for issuer %s: %s", self._label, exc.strerror)
            return self._keys
        self._complained = False
        seen = (st.st_mtime_ns, st.st_size)
        if seen == self._seen:
            return self._keys
        self._seen = seen
        try:
            with open(self._path, "rb") as f:
                data = f.read(MAX_JWKS_SIZE + 1)
            if len(data) > MAX_JWKS_SIZE:
                raise ValueError("larger than 1 MiB")
            self._keys = parse_jwks(data, self._algorithms)
        except (OSError, ValueError) as exc:
            logger.warning(
                "JWKS file for issuer %s unusable, keeping previous keys: %s", self._label, exc
            )
        else:
            logger.info("JWKS for issuer %s: %d keys from file", self._label, len(self._keys))
        return self._keys


class UrlKeySource:
    """An issuer's JWKS URL, cached for ``cache_ttl`` seconds with rate-limited refetches."""

    def __init__(
        self,
        url: str,
        algorithms: Iterable[str],
        label: str,
        *,
        fetch: Fetch,
        clock: Clock,
        cache_ttl: float,
    ) -> None:
        self._url = url
        self._algorithms = tuple(algorithms)
        self._label = label
        self._fetch = fetch
        self._clock = clock
        self._ttl = cache_ttl
        self._keys: tuple[VerificationKey, ...] | None = None
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._inflight: asyncio.Task[None] | None = None

    async def keys(self) -> tuple[VerificationKey, ...] | None:
        now = self._clock()
        if (self._keys is None or not _within(now - self._fetched_at, self._ttl)) and (
            self._may_fetch(now)
        ):
            await self._shared_fetch()
        return self._keys

    async def refresh(self) -> tuple[VerificationKey, ...] | None:
        if self._may_fetch(self._clock()):
            await self._shared_fetch()
        return self._keys

    def _may_fetch(self, now: float) -> bool:
        if self._joinable(self._inflight):
            return True
        gap = REFETCH_INTERVAL if self._keys is not None else RETRY_INTERVAL
        return not _within(now - self._attempted_at, gap)

    @staticmethod
    def _joinable(task: asyncio.Task[None] | None) -> bool:
        # a task left behind by another (closed) event loop can never be awaited here
        return task is not None and task.get_loop() is asyncio.get_running_loop()

    async def _shared_fetch(self) -> None:
        task = self._inflight
        if task is None or not self._joinable(task):
            self._attempted_at = self._clock()
            task = asyncio.get_running_loop().create_task(self._fetch_once())
            self._inflight = task
            task.add_done_callback(self._finished)
        # shield: a validation cancelled mid-fetch (client gone) must not cancel the others'
        await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch_once(self) -> None:
        try:
            async with asyncio.timeout(2 * FETCH_TIMEOUT):
                data = await self._fetch(self._url)
            if len(data) > MAX_JWKS_SIZE:
                raise ValueError("larger than 1 MiB")
            keys = parse_jwks(data, self._algorithms)
        except Exception as exc:  # any failure: keep the keys we have
            logger.warning(
                "JWKS fetch for issuer %s failed%s: %s",
                self._label,
                ", keeping cached keys" if self._keys is not None else "",
                exc if isinstance(exc, ValueError | OSError) else type(exc).__name__,
            )
            return
        self._keys = keys
        self._fetched_at = self._clock()
        logger.info("JWKS for issuer %s: %d keys fetched", self._label, len(keys))


def _within(elapsed: float, limit: float) -> bool:
    """``0 <= elapsed < limit``: after the wall clock steps back, no cache state is "recent"
    (otherwise a clock set back a day would freeze the keys for a day)."""
    return 0 <= elapsed < limit


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL :func:`check_url` accepts (never https → http)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        check_url(newurl, "JWKS redirect")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_blocking(url: str) -> bytes:
    check_url(url, "JWKS URL")
    handlers: list[urllib.request.BaseHandler] = [_HttpsOnlyRedirects()]
    if urlsplit(url).scheme == "http":
        handlers.append(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    with opener.open(request, timeout=FETCH_TIMEOUT) as response:
        data: bytes = response.read(MAX_JWKS_SIZE + 1)  # one more: the caller sees "too big"
    return data


async def fetch_url(url: str) -> bytes:
    """The default fetch: urllib in a worker thread, 5 s timeout, at most 1 MiB."""
    return await asyncio.to_thread(_fetch_blocking, url)
