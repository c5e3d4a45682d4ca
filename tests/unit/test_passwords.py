import asyncio
import re
import threading
import time

import pytest
from argon2 import PasswordHasher

from carteiro.auth import passwords
from carteiro.auth.passwords import (
    generate_password,
    hash_password,
    hash_password_async,
    needs_rehash,
    verify_password,
    verify_password_async,
)


def test_hash_and_verify():
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert "correct horse" not in h
    assert verify_password(h, "correct horse")
    assert verify_password(h, b"correct horse")
    assert not verify_password(h, "correct horse ")
    assert not verify_password(h, "")
    assert hash_password("correct horse") != h  # salted


def test_unicode_password():
    h = hash_password("pässwörd ✉")
    assert verify_password(h, "pässwörd ✉")
    assert verify_password(h, "pässwörd ✉".encode())
    assert not verify_password(h, "passwort ✉")


def test_malformed_hash_is_a_mismatch():
    assert not verify_password("", "x")
    assert not verify_password("$argon2id$garbage", "x")
    assert not verify_password("{PLAIN}x", "x")


def test_needs_rehash():
    assert not needs_rehash(hash_password("x"))
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x")
    assert needs_rehash(weak)
    assert verify_password(weak, "x")
    assert needs_rehash("not a hash")


def test_async_verify_runs_off_the_loop():
    h = hash_password("secret")
    seen: list[str] = []
    real = passwords.verify_password

    def spy(password_hash, password):
        seen.append(threading.current_thread().name)
        return real(password_hash, password)

    async def main() -> tuple[bool, bool, int]:
        passwords.verify_password = spy  # type: ignore[assignment]
        try:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0)
                    ticks += 1

            task = asyncio.create_task(ticker())
            ok = await verify_password_async(h, "secret")
            bad = await verify_password_async(h, "wrong")
            task.cancel()
            return ok, bad, ticks
        finally:
            passwords.verify_password = real

    ok, bad, ticks = asyncio.run(main())
    assert ok and not bad
    assert ticks > 0  # the loop kept running while hashing
    assert seen and all(name.startswith("carteiro-argon2") for name in seen)


def test_async_unknown_account_costs_a_verification():
    async def main() -> tuple[bool, float]:
        await verify_password_async(None, "warm-up")  # computes the dummy hash once
        start = time.perf_counter()
        result = await verify_password_async(None, "anything")
        return result, time.perf_counter() - start

    result, elapsed = asyncio.run(main())
    assert result is False
    assert elapsed > 0.005  # a real argon2 verification took place


def test_async_hash():
    h = asyncio.run(hash_password_async("x"))
    assert verify_password(h, "x")


def test_generate_password():
    seen = {generate_password() for _ in range(200)}
    assert len(seen) == 200
    for pw in seen:
        assert re.fullmatch(r"[a-z2-9]{6}(-[a-z2-9]{6}){3}", pw)
        assert not set(pw) & set("01lo")
    bits = passwords.GROUPS * passwords.GROUP_LENGTH * (len(passwords.ALPHABET).bit_length() - 1)
    assert len(set(passwords.ALPHABET)) == len(passwords.ALPHABET) == 32
    assert bits >= 100


def test_configured_parameters_and_rehash_on_change():
    from carteiro.auth import passwords

    try:
        passwords.configure(time_cost=1, memory_kib=8192, parallelism=1)
        cheap = passwords.hash_password("pw")
        assert "$m=8192,t=1,p=1$" in cheap
        assert not passwords.needs_rehash(cheap)
        passwords.configure()  # back to the defaults: the cheap hash is due for a rehash
        assert passwords.needs_rehash(cheap)
        assert passwords.verify_password(cheap, "pw")  # and still verifies meanwhile
        with pytest.raises(ValueError):
            passwords.configure(time_cost=0)
    finally:
        passwords.configure()


def test_login_rehashes_an_old_hash(tmp_path):
    """A hash made with other parameters is replaced at the next successful login."""
    import asyncio

    from carteiro.audit.log import AuditLog
    from carteiro.auth import passwords
    from carteiro.auth.service import Authenticated, AuthService, Client, Defence
    from carteiro.store.sqlite import SqliteStore

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "db.sqlite")
        await store.open()
        try:
            passwords.configure(time_cost=1, memory_kib=8192, parallelism=1)
            old = passwords.hash_password("pw")
            passwords.configure()
            await store.create_account("old@example.org", old)
            auth = AuthService(store, Defence(AuditLog(None)), failure_delay=0)
            client = Client("imap", "127.0.0.1", None, plaintext_ok=True)
            who = await auth.login(client, "old@example.org", "pw")
            assert isinstance(who, Authenticated) and who.credential == "password"
            creds = await store.credentials("old@example.org")
            assert creds is not None
            assert creds.account.password_hash != old
            assert not passwords.needs_rehash(creds.account.password_hash)
            assert creds.scram is not None  # SCRAM keys derived at the same time
        finally:
            await store.close()
            passwords.configure()

    asyncio.run(scenario())
