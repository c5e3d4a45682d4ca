"""``carteiro user pop3 ADDRESS``: an account's POP3 choices."""

from __future__ import annotations

from pathlib import Path

import click

from carteiro.cli import validate
from carteiro.cli.main import (
    CONTEXT,
    common_options,
    load,
    require_database,
    unknown_account,
    user,
    with_store,
)
from carteiro.store.errors import NotFound
from carteiro.store.interface import Store

__all__ = ["user_pop3"]

_CHOICES = {"yes": True, "no": False, "default": None}


@user.command("pop3", context_settings=CONTEXT)
@click.argument("address")
@click.option(
    "--retrieved",
    type=click.Choice(["keep", "delete", "default"]),
    help="Leave retrieved mail on the server, or delete it at the end of the session.",
)
@click.option(
    "--new-only",
    type=click.Choice(["yes", "no", "default"]),
    help="Show POP3 only the mail it has not downloaded yet.",
)
@common_options
def user_pop3(
    address: str,
    retrieved: str | None,
    new_only: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Show or set ADDRESS's POP3 choices ("default" follows the server's setting)."""
    address = validate.address(address)
    settings = load(data_dir, config)
    require_database(settings)

    async def apply(store: Store) -> tuple[str | None, bool | None]:
        try:
            current = await store.pop3_options(address)
            if retrieved is not None or new_only is not None:
                keep = (
                    current[0]
                    if retrieved is None
                    else (None if retrieved == "default" else retrieved)
                )
                only = current[1] if new_only is None else _CHOICES[new_only]
                await store.set_pop3_options(address, keep, only)
            return await store.pop3_options(address)
        except NotFound:
            unknown_account(address)

    keep, only = with_store(settings, apply)
    kept = keep or f"{settings.pop3_retrieved} (server default)"
    shown = (
        f"{settings.pop3_new_only} (server default)".replace("True", "yes").replace("False", "no")
        if only is None
        else ("yes" if only else "no")
    )
    click.echo(f"{address}: retrieved mail: {kept}; only new mail: {shown}")
