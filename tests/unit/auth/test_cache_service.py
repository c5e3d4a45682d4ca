"""The credential cache inside AuthService, over a real SQLite store: what skips argon2,
and that every rule still applies on a cache hit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from carteiro.audit.log import AuditLog
from carteiro.auth import passwords
from carteiro.auth.cache import CredentialCache
from carteiro.auth.service import (
    Authenticated,
    AuthService,
    Client,
    Defence,
    Refused,
    app_password_digest,
)
from carteiro.store.sqlite import SqliteStore

USER = "a@example.org"
CLIENT = Client("imap", "127.0.0.1", None, plaintext_ok=True)
CHEAP = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}

Scenario = Callable[[AuthService, SqliteStore], Awaitable[None]]


@pytest.fixture(autouse=True)
def _cheap_hashes() -> Iterator[None]:
    passwords.configure(**CHEAP)
    yield
    passwords.configure()


def run(tmp_path: Path, scenario: Scenario, cache: CredentialCache | None = None) -> None:
    async def main() -> None:
        store = SqliteStore(tmp_path / "db.sqlite")
        await store.open()
        try:
            await store.create_account(USER, passwords.hash_password("pw"))
            auth = AuthService(
                store,
                Defence(AuditLog(None)),
                failure_delay=0,
                cache=cache if cache is not None else CredentialCache(60, 100),
            )
            await scenario(auth, store)
        finally:
            await store.close()

    asyncio.run(main())


async def ok(auth: AuthService, password: str = "pw", client: Client = CLIENT) -> None:
    assert isinstance(await auth.login(client, USER, password), Authenticated)


async def refused(auth: AuthService, password: str = "pw", client: Client = CLIENT) -> None:
    assert isinstance(await auth.login(client, USER, password), Refused)


def test_a_second_login_skips_the_verification(tmp_path: Path) -> None:
    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await ok(auth)
        assert auth.verifications == 1
        for _ in range(3):
            await ok(auth)
        assert auth.verifications == 1
        assert auth.cache is not None and auth.cache.stats.hits == 3

    run(tmp_path, scenario)


def test_failures_are_never_cached_and_always_verify(tmp_path: Path) -> None:
    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        for _ in range(3):
            await refused(auth, "wrong")
        assert auth.verifications == 3
        assert auth.cache is not None and len(auth.cache) == 0
        await ok(auth)
        await refused(auth, "wrong")  # a known account with a cached entry: still verified
        assert auth.verifications == 5
        await ok(auth)  # and the owner's entry survived the guess
        assert auth.verifications == 5
        assert isinstance(await auth.login(CLIENT, "nobody@example.org", "pw"), Refused)
        assert auth.verifications == 6  # unknown accounts cost the dummy verification

    run(tmp_path, scenario)


def test_a_password_changed_elsewhere_applies_at_once(tmp_path: Path) -> None:
    """What ``carteiro user passwd`` does from another process: a new stored hash."""

    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await ok(auth)
        await store.set_password(USER, passwords.hash_password("new"))
        await refused(auth, "pw")
        await ok(auth, "new")
        await ok(auth, "new")
        assert auth.verifications == 3  # the first login, the refusal, the first with "new"
        # the same password set again: a new salt, so a new hash and a new verification
        await store.set_password(USER, passwords.hash_password("new"))
        await ok(auth, "new")
        assert auth.verifications == 4

    run(tmp_path, scenario)


def test_policy_refusals_on_a_cached_password_still_cost_a_verification(tmp_path: Path) -> None:
    """Two-factor enrolment or networks set after a login refuse the main password, and
    that refusal must take as long as a wrong password: no cache lookup then."""

    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await ok(auth)
        await store.set_totp(USER, "JBSWY3DPEHPK3PXP")
        await refused(auth)
        assert auth.verifications == 2
        await store.set_totp(USER, None)
        await ok(auth)
        assert auth.verifications == 2  # the entry is still good once the policy allows
        await store.set_networks(USER, ["10.0.0.0/8"])
        await refused(auth)
        assert auth.verifications == 3
        inside = Client("imap", "10.1.2.3", None, plaintext_ok=True)
        await ok(auth, client=inside)
        assert auth.verifications == 3

    run(tmp_path, scenario)


def test_a_deleted_account_is_refused(tmp_path: Path) -> None:
    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await ok(auth)
        await store.delete_account(USER)
        await refused(auth)
        await store.create_account(USER, passwords.hash_password("pw"))  # same address again
        await ok(auth)
        assert auth.verifications == 3

    run(tmp_path, scenario)


def test_app_passwords_need_no_cache_and_revocation_applies(tmp_path: Path) -> None:
    secret = "abcdef-ghijkm-npqrst-uvwxyz"

    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await store.add_app_password(USER, "Phone", app_password_digest(secret))
        await ok(auth, secret)
        await ok(auth, secret)
        assert auth.verifications == 0  # a SHA-256 match, no argon2 at all
        await store.revoke_app_password(USER, "Phone")
        await refused(auth, secret)

    run(tmp_path, scenario)


def test_a_rehash_keys_the_cache_on_the_new_hash(tmp_path: Path) -> None:
    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        passwords.configure(time_cost=2, memory_kib=8192, parallelism=1)  # new parameters
        await ok(auth)
        creds = await store.credentials(USER)
        assert creds is not None and "t=2" in creds.account.password_hash  # rehashed
        await ok(auth)
        assert auth.verifications == 1  # the entry made for the new hash is used

    run(tmp_path, scenario)


def test_authenticate_plain_uses_the_cache(tmp_path: Path) -> None:
    class NoChallenges:
        async def challenge(self, data: bytes) -> bytes | None:
            raise AssertionError("PLAIN with an initial response needs no challenge")

    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        await ok(auth)
        initial = f"\0{USER}\0pw".encode()
        who = await auth.authenticate(CLIENT, "PLAIN", initial, NoChallenges())
        assert isinstance(who, Authenticated) and who.mechanism == "PLAIN"
        assert auth.verifications == 1

    run(tmp_path, scenario)


def test_without_a_cache_every_login_verifies(tmp_path: Path) -> None:
    async def scenario(auth: AuthService, store: SqliteStore) -> None:
        auth.cache = None
        for _ in range(3):
            await ok(auth)
        assert auth.verifications == 3

    run(tmp_path, scenario)
