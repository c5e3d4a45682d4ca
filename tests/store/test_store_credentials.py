"""Credentials beyond the password (issue 4): SCRAM keys, TOTP with replay memory,
networks for the main password, app passwords. Every backend passes this suite."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import Store


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def test_new_account_has_only_a_password(store: Store) -> None:
    acc = await store.create_account("cred@example.org", "argon")
    creds = await store.credentials("CRED@example.org")
    assert creds is not None
    assert creds.account == acc
    assert (creds.scram, creds.totp_secret, creds.totp_last_step) == (None, None, None)
    assert creds.networks == () and creds.app_passwords == ()
    assert not creds.two_factor
    assert await store.credentials("nobody@example.org") is None


async def test_scram_totp_and_networks(store: Store) -> None:
    await store.create_account("c2@example.org", "argon")
    await store.set_scram("c2@example.org", "SCRAM-SHA-256$4096$c2FsdA==$a2V5$a2V5")
    await store.set_totp("c2@example.org", "JBSWY3DPEHPK3PXP")
    await store.set_networks("c2@example.org", ["10.0.0.0/8", "2001:db8::/32"])
    creds = await store.credentials("c2@example.org")
    assert creds is not None and creds.two_factor
    assert creds.scram == "SCRAM-SHA-256$4096$c2FsdA==$a2V5$a2V5"
    assert creds.networks == ("10.0.0.0/8", "2001:db8::/32")
    await store.set_networks("c2@example.org", [])
    await store.set_totp("c2@example.org", None)
    creds = await store.credentials("c2@example.org")
    assert creds is not None and not creds.two_factor and creds.networks == ()
    for op in (
        store.set_scram("x@example.org", None),
        store.set_totp("x@example.org", None),
        store.set_networks("x@example.org", []),
    ):
        with pytest.raises(NotFound):
            await op


async def test_totp_steps_are_used_once(store: Store) -> None:
    acc = await store.create_account("c3@example.org", "argon")
    await store.set_totp("c3@example.org", "JBSWY3DPEHPK3PXP")
    assert await store.use_totp_step(acc.id, 100)
    assert not await store.use_totp_step(acc.id, 100)  # replay
    assert not await store.use_totp_step(acc.id, 99)  # older code
    # two logins racing with the same new code: exactly one wins
    results = await asyncio.gather(*(store.use_totp_step(acc.id, 101) for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    await store.set_totp("c3@example.org", "JBSWY3DPEHPK3PXP")  # re-enrolment resets
    assert await store.use_totp_step(acc.id, 50)


async def test_app_passwords(store: Store) -> None:
    await store.create_account("c4@example.org", "argon")
    phone = await store.add_app_password(
        "c4@example.org", "Phone", digest("s1"), ["imap", "smtp"], ["10.0.0.0/8"], 2e9
    )
    laptop = await store.add_app_password("c4@example.org", "Laptop", digest("s2"))
    assert (phone.name, phone.protocols, phone.networks, phone.expires) == (
        "Phone",
        ("imap", "smtp"),
        ("10.0.0.0/8",),
        2e9,
    )
    assert laptop.protocols == () and laptop.expires is None and laptop.last_used is None
    with pytest.raises(AlreadyExists):
        await store.add_app_password("c4@example.org", "Phone", digest("s3"))
    with pytest.raises(NotFound):
        await store.add_app_password("x@example.org", "Phone", digest("s3"))
    listed = await store.list_app_passwords("c4@example.org")
    assert [a.name for a in listed] == ["Phone", "Laptop"]
    await store.app_password_used(phone.id, 1234.5, "10.1.2.3")
    creds = await store.credentials("c4@example.org")
    assert creds is not None
    used = {a.name: a for a in creds.app_passwords}["Phone"]
    assert (used.last_used, used.last_address, used.secret_hash) == (
        1234.5,
        "10.1.2.3",
        digest("s1"),
    )
    await store.revoke_app_password("c4@example.org", "Phone")
    with pytest.raises(NotFound):
        await store.revoke_app_password("c4@example.org", "Phone")
    assert [a.name for a in await store.list_app_passwords("c4@example.org")] == ["Laptop"]
    # deleting the account deletes its app passwords
    await store.delete_account("c4@example.org")
    with pytest.raises(NotFound):
        await store.list_app_passwords("c4@example.org")
    await store.create_account("c4@example.org", "argon")
    assert await store.list_app_passwords("c4@example.org") == []
