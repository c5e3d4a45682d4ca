"""``carteiro domain add|list|delete|catch-all`` and ``carteiro alias add|list|remove|
allow-sender|deny-sender|senders``."""

from __future__ import annotations

from pathlib import Path

import click

from carteiro.cli import validate
from carteiro.cli.errors import EXIT_USAGE, fail
from carteiro.cli.main import (
    CONTEXT,
    cli,
    common_options,
    load,
    prepare_data_dir,
    require_database,
    with_store,
)
from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import Store

__all__ = ["alias", "domain"]


def _domain(value: str) -> str:
    """A domain name, checked like the domain of an address."""
    return validate.address(f"postmaster@{value}").split("@", 1)[1]


@cli.group(context_settings=CONTEXT, no_args_is_help=True)
def domain() -> None:
    """Local mail domains."""


@domain.command("add", context_settings=CONTEXT)
@click.argument("name")
@common_options
def domain_add(name: str, data_dir: Path | None, config: Path | None) -> None:
    """Accept mail for NAME."""
    name = _domain(name)
    settings = load(data_dir, config)
    prepare_data_dir(settings)

    async def add(store: Store) -> None:
        try:
            await store.add_domain(name)
        except AlreadyExists:
            fail(f"{name} is already a local domain")

    with_store(settings, add)
    click.echo(f"added domain {name}")


@domain.command("list", context_settings=CONTEXT)
@common_options
def domain_list(data_dir: Path | None, config: Path | None) -> None:
    """Local domains, with their catch-all address if any."""
    settings = load(data_dir, config)
    require_database(settings)

    async def names(store: Store) -> list[tuple[str, str | None]]:
        return await store.list_domains()

    for name, catch_all in with_store(settings, names):
        click.echo(f"{name}" + (f" (catch-all: {catch_all})" if catch_all else ""))


@domain.command("delete", context_settings=CONTEXT)
@click.argument("name")
@common_options
def domain_delete(name: str, data_dir: Path | None, config: Path | None) -> None:
    """Stop accepting mail for NAME (its accounts and aliases stay)."""
    name = _domain(name)
    settings = load(data_dir, config)
    require_database(settings)

    async def delete(store: Store) -> None:
        try:
            await store.delete_domain(name)
        except NotFound:
            fail(f"{name} is not a local domain; 'carteiro domain list' shows them")

    with_store(settings, delete)
    click.echo(f"deleted domain {name}")


@domain.command("catch-all", context_settings=CONTEXT)
@click.argument("name")
@click.argument("target", required=False)
@click.option("--off", is_flag=True, help="Refuse mail for unknown addresses again.")
@common_options
def domain_catch_all(
    name: str, target: str | None, off: bool, data_dir: Path | None, config: Path | None
) -> None:
    """Deliver mail for unknown addresses of NAME to TARGET."""
    name = _domain(name)
    if (target is None) == (not off):
        fail("give a TARGET address or --off", EXIT_USAGE)
    address = validate.address(target) if target is not None else None
    settings = load(data_dir, config)
    require_database(settings)

    async def apply(store: Store) -> None:
        try:
            await store.set_catch_all(name, address)
        except NotFound:
            fail(f"{name} is not a local domain; add it with 'carteiro domain add {name}'")

    with_store(settings, apply)
    click.echo(f"catch-all of {name}: {address or 'off'}")


@cli.group(context_settings=CONTEXT, no_args_is_help=True)
def alias() -> None:
    """Addresses that deliver to other addresses."""


@alias.command("add", context_settings=CONTEXT)
@click.argument("address")
@click.argument("targets", nargs=-1, required=True)
@common_options
def alias_add(
    address: str, targets: tuple[str, ...], data_dir: Path | None, config: Path | None
) -> None:
    """Deliver mail for ADDRESS to each TARGET (accounts or other aliases)."""
    address = validate.address(address)
    checked = [validate.address(t) for t in targets]
    settings = load(data_dir, config)
    prepare_data_dir(settings)

    async def add(store: Store) -> None:
        await store.add_alias(address, checked)

    with_store(settings, add)
    click.echo(f"{address} -> {', '.join(checked)}")


@alias.command("list", context_settings=CONTEXT)
@common_options
def alias_list(data_dir: Path | None, config: Path | None) -> None:
    """Every alias and its targets."""
    settings = load(data_dir, config)
    require_database(settings)

    async def listing(store: Store) -> dict[str, list[str]]:
        return await store.list_aliases()

    for address, targets in with_store(settings, listing).items():
        click.echo(f"{address} -> {', '.join(targets)}")


@alias.command("remove", context_settings=CONTEXT)
@click.argument("address")
@click.argument("target", required=False)
@common_options
def alias_remove(
    address: str, target: str | None, data_dir: Path | None, config: Path | None
) -> None:
    """Remove TARGET from ADDRESS, or the whole alias."""
    address = validate.address(address)
    settings = load(data_dir, config)
    require_database(settings)

    async def remove(store: Store) -> None:
        try:
            await store.remove_alias(address, target)
        except NotFound:
            fail(f"{address} has no such alias target; 'carteiro alias list' shows them")

    with_store(settings, remove)
    click.echo(
        f"removed {target or 'the alias'} from {address}" if target else f"removed {address}"
    )


@alias.command("allow-sender", context_settings=CONTEXT)
@click.argument("address")
@click.argument("account")
@common_options
def alias_allow_sender(
    address: str, account: str, data_dir: Path | None, config: Path | None
) -> None:
    """Let ACCOUNT send mail as ADDRESS (an alias, a shared address) over submission."""
    address, account = validate.address(address), validate.address(account)
    settings = load(data_dir, config)
    require_database(settings)

    async def allow(store: Store) -> None:
        if await store.get_account(account) is None:
            fail(f"there is no account {account}; 'carteiro user list' shows the accounts")
        await store.allow_sender(address, account)

    with_store(settings, allow)
    click.echo(f"{account} may send as {address}")


@alias.command("deny-sender", context_settings=CONTEXT)
@click.argument("address")
@click.argument("account")
@common_options
def alias_deny_sender(
    address: str, account: str, data_dir: Path | None, config: Path | None
) -> None:
    """Withdraw ACCOUNT's permission to send as ADDRESS."""
    address, account = validate.address(address), validate.address(account)
    settings = load(data_dir, config)
    require_database(settings)

    async def deny(store: Store) -> None:
        try:
            await store.disallow_sender(address, account)
        except NotFound:
            fail(f"{account} was not allowed to send as {address}")

    with_store(settings, deny)
    click.echo(f"{account} may no longer send as {address}")


@alias.command("senders", context_settings=CONTEXT)
@common_options
def alias_senders(data_dir: Path | None, config: Path | None) -> None:
    """Every address that accounts other than its owner may send as."""
    settings = load(data_dir, config)
    require_database(settings)

    async def listing(store: Store) -> dict[str, list[str]]:
        return await store.list_senders()

    for address, accounts in with_store(settings, listing).items():
        click.echo(f"{address} <- {', '.join(accounts)}")
