"""Password hashing with argon2id (argon2-cffi, RFC 9106 "low memory" parameters:
t=3, m=64 MiB, p=4 — about 50 ms per hash).

Hashing is CPU- and memory-heavy by design, so the server calls
:func:`verify_password_async`, which runs in a small dedicated thread pool: the event
loop is never blocked, and at most :data:`MAX_CONCURRENT_HASHES` hashes (each holding
64 MiB) run at once however many clients try to log in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_CONCURRENT_HASHES",
    "configure",
    "generate_password",
    "hash_password",
    "hash_password_async",
    "needs_rehash",
    "verify_password",
    "verify_password_async",
]

MAX_CONCURRENT_HASHES = 4
#: 32 characters without the look-alikes 0/O, 1/l/I: 5 bits each
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
GROUPS = 4
GROUP_LENGTH = 6  # 4 × 6 × 5 = 120 bits

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_dummy_hash: str | None = None
_dummy_lock = threading.Lock()


def configure(time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
    """Sets the argon2id parameters for new hashes; hashes made with others still verify
    and are rehashed at the next successful login (:func:`needs_rehash`)."""
    global _hasher, _dummy_hash
    if time_cost < 1 or memory_kib < 8 * parallelism or parallelism < 1:
        raise ValueError("argon2 parameters out of range")
    with _dummy_lock:
        _hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        _dummy_hash = None  # unknown accounts must cost what known ones cost


def hash_password(password: str | bytes) -> str:
    """The PHC string (``$argon2id$v=19$m=65536,t=3,p=4$…``) to store."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str | bytes) -> bool:
    """True when ``password`` matches; False for a wrong password or a malformed hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash on login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


async def verify_password_async(password_hash: str | None, password: str | bytes) -> bool:
    """:func:`verify_password` off the event loop.

    Pass ``None`` for an unknown account: a dummy hash is verified anyway and False is
    returned, so that unknown and known accounts take the same time to refuse.
    """
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(_get_executor(), _verify_dummy, password)
        return False
    return await loop.run_in_executor(_get_executor(), verify_password, password_hash, password)


async def hash_password_async(password: str | bytes) -> str:
    """:func:`hash_password` off the event loop (rehash on login)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), hash_password, password)


def generate_password() -> str:
    """Four dash-separated groups of six characters, 120 bits of entropy,
    e.g. ``k7dm3p-xq9f2r-w4bnae-t8hz6c``."""
    return "-".join(
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)
    )


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=MAX_CONCURRENT_HASHES,
                thread_name_prefix="carteiro-argon2",
                initializer=_lower_priority,
            )
        return _executor


def _lower_priority() -> None:
    """Hashing threads (and the threads argon2 starts from them) yield to the event loop:
    a storm of logins must not stall every session's IMAP traffic."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def _verify_dummy(password: str | bytes) -> None:
    """Runs in the executor: the same work as a real verification, for unknown accounts."""
    global _dummy_hash
    with _dummy_lock:  # not _executor_lock: that one is taken on the event loop
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(16))
        dummy = _dummy_hash
    verify_password(dummy, password)
