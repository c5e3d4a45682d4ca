"""Which mailboxes an address delivers to: accounts, aliases, plus-addressing and the
catch-all of a local domain. One function, used by every way mail arrives (the
``deliver`` command now; SMTP and LMTP later), so they all agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from carteiro.store.interface import Store

__all__ = ["MAX_DEPTH", "Recipient", "resolve"]

#: aliases of aliases are followed this deep (a loop ends there too)
MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Recipient:
    account: str
    mailbox: str = "INBOX"


async def resolve(store: Store, address: str) -> list[Recipient]:
    """The accounts (and mailboxes) ``address`` delivers to, without duplicates; empty
    when nothing local matches. In order: an account, an alias (recursively), the
    base address of ``local+tag@domain`` (into the folder ``tag`` when the account has
    one), the catch-all of the domain."""
    out: list[Recipient] = []
    await _resolve(store, address.strip(), out, set(), 0)
    return out


async def _resolve(
    store: Store, address: str, out: list[Recipient], seen: set[str], depth: int
) -> None:
    key = address.casefold()
    if key in seen or depth > MAX_DEPTH:
        return
    seen.add(key)
    account = await store.get_account(address)
    if account is not None:
        _add(out, Recipient(account.address))
        return
    targets = await store.alias_targets(address)
    if targets:
        for target in targets:
            await _resolve(store, target, out, seen, depth + 1)
        return
    local, at, domain = address.rpartition("@")
    if not at:
        return
    if "+" in local:
        base, _, tag = local.partition("+")
        found: list[Recipient] = []
        await _resolve(store, f"{base}@{domain}", found, seen, depth + 1)
        for r in found:
            if tag and len(found) == 1 and await _has_mailbox(store, r.account, tag):
                r = Recipient(r.account, tag)
            _add(out, r)
        if found:
            return
    for name, catch_all in await store.list_domains():
        if name.casefold() == domain.casefold() and catch_all:
            await _resolve(store, catch_all, out, seen, depth + 1)
            return


async def _has_mailbox(store: Store, address: str, name: str) -> bool:
    account = await store.get_account(address)
    return account is not None and await store.get_mailbox(account.id, name) is not None


def _add(out: list[Recipient], r: Recipient) -> None:
    if r not in out:
        out.append(r)
