"""A verified-password cache, so a login-heavy workload (webmail logging in per request,
clients opening several connections, SMTP submission after an IMAP login) does not pay
an argon2id verification (tenths of a second of CPU, by design) on every login.

What it remembers is a fact: "this password verified against this exact stored hash
of this account", as a keyed BLAKE2b digest under a random secret made when the process
starts. It lives in memory only and holds neither a password nor a stored hash, nor
anything that can be checked offline without that secret. Because the stored hash is
part of the digest and the service still reads the account's credentials from the store
on every login, a password changed anywhere (``carteiro user passwd`` in another
process included), a deleted account, two-factor enrolment, network restrictions, bans
and every other rule take effect at once: only the hash verification is skipped.

Security reasoning (see also :class:`~carteiro.auth.service.AuthService`):

* Only successful logins are remembered. A failure is never cached, so every wrong
  guess costs an attacker a full verification and the guard's throttling keeps its
  cost model; caching failures would not slow guessing (each guess is new) and would
  only spend memory an attacker controls.
* A hit needs the right password for that account's current hash: an attacker cannot
  produce one for someone else's account without already knowing the password, so the
  faster answer of a hit reveals nothing a successful login does not. Wrong passwords
  and unknown accounts take exactly the time they took before.
* The service consults the cache only when the account's policy would let the main
  password in (no two-factor, an allowed network), so a correct password that the
  policy refuses is never answered faster than a wrong one.
* Entries expire a fixed ``ttl`` after the verification that made them (a hit does not
  extend it) and there is at most one per account, so a memory image holds a bounded,
  recent set; with the process secret, such an image would allow fast guessing of
  those accounts' passwords, which is why the TTL is short.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CacheStats", "CredentialCache"]

#: domain separation, so the digest means nothing outside this cache
_PERSON = b"carteiro-authc"


@dataclass(slots=True)
class CacheStats:
    """Counters for tests, benchmarks and the log."""

    hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions: int = 0


class CredentialCache:
    """Account id → (keyed digest, expiry); least recently used accounts go first when
    ``size`` is reached. Not thread-safe: it is used from the event loop only."""

    def __init__(
        self,
        ttl: float,
        size: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        secret: bytes | None = None,
    ) -> None:
        if ttl <= 0 or size < 1:
            raise ValueError("a credential cache needs a positive ttl and size")
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.stats = CacheStats()
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._entries: OrderedDict[int, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def digest(self, account_id: int, address: str, stored: str, password: str) -> bytes:
        """The keyed digest of one (account, stored credential, password) triple. Each
        field is length-prefixed so no two triples share an encoding."""
        h = hashlib.blake2b(key=self._secret, digest_size=32, person=_PERSON)
        for part in (
            str(account_id).encode(),
            address.casefold().encode("utf-8", "surrogatepass"),
            stored.encode("utf-8", "surrogatepass"),
            password.encode("utf-8", "surrogatepass"),
        ):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.digest()

    def verified(self, account_id: int, digest: bytes) -> bool:
        """True when ``digest`` was stored for the account and has not expired."""
        entry = self._entries.get(account_id)
        if entry is None:
            self.stats.misses += 1
            return False
        known, expires = entry
        if expires <= self.clock():
            del self._entries[account_id]
            self.stats.misses += 1
            return False
        if not hmac.compare_digest(known, digest):
            # another password (a guess, or the entry predates a password change):
            # the entry stays, so failed guesses cannot evict the owner's
            self.stats.misses += 1
            return False
        self._entries.move_to_end(account_id)
        self.stats.hits += 1
        return True

    def remember(self, account_id: int, digest: bytes) -> None:
        """Records a successful verification, replacing the account's previous one."""
        self._entries[account_id] = (digest, self.clock() + self.ttl)
        self._entries.move_to_end(account_id)
        self.stats.stores += 1
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def forget(self, account_id: int) -> None:
        """Drops the account's entry (its password changed in this process)."""
        self._entries.pop(account_id, None)

    def clear(self) -> None:
        self._entries.clear()
