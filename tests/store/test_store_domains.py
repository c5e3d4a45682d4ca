"""Domains, aliases and the recipient resolver (issue 6), on every backend."""

from __future__ import annotations

import pytest

from carteiro.addresses import Recipient, resolve
from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import Store


async def test_domains(store: Store) -> None:
    await store.add_domain("example.org")
    await store.add_domain("example.net")
    with pytest.raises(AlreadyExists):
        await store.add_domain("EXAMPLE.org")
    await store.set_catch_all("example.org", "postmaster@example.org")
    assert await store.list_domains() == [
        ("example.net", None),
        ("example.org", "postmaster@example.org"),
    ]
    await store.delete_domain("example.net")
    with pytest.raises(NotFound):
        await store.delete_domain("example.net")
    with pytest.raises(NotFound):
        await store.set_catch_all("example.net", None)


async def test_aliases(store: Store) -> None:
    await store.add_alias("sales@example.org", ["alice@example.org", "bob@example.org"])
    await store.add_alias("sales@example.org", ["bob@example.org", "carol@example.org"])
    assert await store.alias_targets("SALES@example.org") == [
        "alice@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    await store.remove_alias("sales@example.org", "bob@example.org")
    with pytest.raises(NotFound):
        await store.remove_alias("sales@example.org", "bob@example.org")
    assert await store.list_aliases() == {
        "sales@example.org": ["alice@example.org", "carol@example.org"]
    }
    await store.remove_alias("sales@example.org")
    assert await store.alias_targets("sales@example.org") == []


async def test_resolve(store: Store) -> None:
    for user in ("alice@example.org", "bob@example.org"):
        await store.create_account(user, "h")
    alice = await store.get_account("alice@example.org")
    assert alice is not None
    await store.create_mailbox(alice.id, "lists")
    await store.add_domain("example.org")
    await store.add_alias("team@example.org", ["alice@example.org", "sales@example.org"])
    await store.add_alias("sales@example.org", ["bob@example.org", "team@example.org"])  # loop
    assert await resolve(store, "Alice@example.org") == [Recipient("alice@example.org")]
    assert await resolve(store, "team@example.org") == [
        Recipient("alice@example.org"),
        Recipient("bob@example.org"),
    ]
    # plus-addressing: into the folder when it exists, else INBOX
    assert await resolve(store, "alice+lists@example.org") == [
        Recipient("alice@example.org", "lists")
    ]
    assert await resolve(store, "alice+shop@example.org") == [Recipient("alice@example.org")]
    assert await resolve(store, "nobody@example.org") == []
    assert await resolve(store, "alice@elsewhere.example") == []
    await store.set_catch_all("example.org", "bob@example.org")
    assert await resolve(store, "nobody@example.org") == [Recipient("bob@example.org")]
    assert await resolve(store, "nobody+x@example.org") == [Recipient("bob@example.org")]
    assert await resolve(store, "no-at-sign") == []
