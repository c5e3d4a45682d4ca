"""The ``carteiro`` command: serve, user add/passwd/list/delete, deliver, cert.

Every command takes ``--data-dir`` (env ``CARTEIRO_DATA_DIR``) and ``--config``
(env ``CARTEIRO_CONFIG``). Errors are one line on stderr (see :mod:`carteiro.cli.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from carteiro.auth.passwords import generate_password, hash_password
from carteiro.cli import validate
from carteiro.cli.errors import EXIT_USAGE, CliError, fail, print_error
from carteiro.config import ConfigError, Settings, load_settings
from carteiro.store.errors import AlreadyExists, NotFound, StoreError, StoreUnavailable
from carteiro.store.interface import Store

__all__ = ["cli", "main"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``carteiro`` script."""
    try:
        code = cli.main(args=argv, prog_name="carteiro", standalone_mode=False)
    except CliError as e:
        print_error(e.message)
        sys.exit(e.exit_code)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else e.format_message(), err=True)
        sys.exit(EXIT_USAGE)
    except click.UsageError as e:
        command = e.ctx.command_path if e.ctx else "carteiro"
        print_error(f"{e.format_message().rstrip('.')}. Run '{command} --help' for usage.")
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        print_error(e.format_message())
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        print_error("interrupted")
        sys.exit(130)
    except ConfigError as e:
        print_error(str(e))
        sys.exit(1)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        print_error(f"{e.strerror or e}{where}; check the path and its permissions")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def common_options(f: F) -> F:
    """``--data-dir`` and ``--config``, on every command."""
    f = click.option(
        "--config",
        "config",
        envvar="CARTEIRO_CONFIG",
        type=click.Path(dir_okay=False, path_type=Path),
        help="TOML config file (env CARTEIRO_CONFIG).",
    )(f)
    f = click.option(
        "--data-dir",
        "data_dir",
        envvar="CARTEIRO_DATA_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where mail, accounts and the generated certificate live "
        "(env CARTEIRO_DATA_DIR; default ~/.local/share/carteiro, /var/lib/carteiro for root).",
    )(f)
    return f


@click.group(context_settings=CONTEXT, no_args_is_help=True)
@click.version_option(package_name="carteiro", prog_name="carteiro")
def cli() -> None:
    """Carteiro, a self-hosted mail server whose heart is IMAP4rev2."""


# --- serve ---------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--imap", metavar="HOST:PORT|off", help="IMAP listener with STARTTLS [0.0.0.0:143].")
@click.option("--imaps", metavar="HOST:PORT|off", help="Implicit-TLS IMAP listener [0.0.0.0:993].")
@click.option("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR [INFO].")
@common_options
def serve(
    imap: str | None,
    imaps: str | None,
    log_level: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Run the server until SIGTERM or SIGINT."""
    settings = load(data_dir, config, {"imap": imap, "imaps": imaps, "log_level": log_level})
    if settings.imap is None and settings.imaps is None:
        fail("both listeners are off; enable --imap or --imaps", EXIT_USAGE)
    prepare_data_dir(settings)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from carteiro.net.tls import ensure_certificate

    files = ensure_certificate(settings)
    state = "generated now" if files.generated else "reused"
    kind = f"self-signed, {state}" if files.self_signed else "configured"
    click.echo(
        f"carteiro: TLS certificate {files.cert} ({kind}; SHA-256 {files.fingerprint})", err=True
    )
    click.echo(f"carteiro: data directory {settings.data_dir}", err=True)
    from carteiro.app import run

    run(settings)


# --- cert ----------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@common_options
def cert(data_dir: Path | None, config: Path | None) -> None:
    """Show the TLS certificate, generating the self-signed one if there is none yet."""
    settings = load(data_dir, config)
    prepare_data_dir(settings)
    from carteiro.net.tls import ensure_certificate

    files = ensure_certificate(settings)
    click.echo(f"certificate: {files.cert}")
    click.echo(f"key: {files.key}")
    click.echo(f"self-signed: {'yes' if files.self_signed else 'no'}")
    click.echo(f"sha256: {files.fingerprint}")
    click.echo(f"expires: {files.not_after:%Y-%m-%d}")


# --- user ----------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT, no_args_is_help=True)
def user() -> None:
    """Manage accounts."""


STDIN_HELP = (
    "Read the password from standard input (first line); otherwise one is generated and printed."
)


@user.command("add", context_settings=CONTEXT)
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
@common_options
def user_add(
    address: str, password_stdin: bool, data_dir: Path | None, config: Path | None
) -> None:
    """Create the account ADDRESS (local@domain) with the standard mailboxes."""
    address = validate.address(address)
    settings = load(data_dir, config)
    password = read_password() if password_stdin else generate_password()
    password_hash = hash_password(password)
    prepare_data_dir(settings)

    async def add(store: Store) -> None:
        try:
            await store.create_account(address, password_hash)
        except AlreadyExists:
            fail(
                f"account {address} already exists; "
                f"use 'carteiro user passwd {address}' to change its password"
            )

    with_store(settings, add)
    click.echo(f"created account {address}")
    if not password_stdin:
        click.echo(f"password: {password}")


@user.command("passwd", context_settings=CONTEXT)
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
@common_options
def user_passwd(
    address: str, password_stdin: bool, data_dir: Path | None, config: Path | None
) -> None:
    """Set a new password for ADDRESS."""
    address = validate.address(address)
    settings = load(data_dir, config)
    require_database(settings)
    password = read_password() if password_stdin else generate_password()
    password_hash = hash_password(password)

    async def passwd(store: Store) -> None:
        try:
            await store.set_password(address, password_hash)
        except NotFound:
            unknown_account(address)

    with_store(settings, passwd)
    click.echo(f"changed the password of {address}")
    if not password_stdin:
        click.echo(f"password: {password}")


@user.command("list", context_settings=CONTEXT)
@common_options
def user_list(data_dir: Path | None, config: Path | None) -> None:
    """Print every account's address, one per line."""
    settings = load(data_dir, config)
    require_database(settings)

    async def addresses(store: Store) -> list[str]:
        return sorted((a.address for a in await store.list_accounts()), key=str.lower)

    for address in with_store(settings, addresses):
        click.echo(address)


@user.command("delete", context_settings=CONTEXT)
@click.argument("address")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def user_delete(address: str, yes: bool, data_dir: Path | None, config: Path | None) -> None:
    """Delete ADDRESS and all its mail."""
    address = validate.address(address)
    settings = load(data_dir, config)
    require_database(settings)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"not deleting {address} without confirmation; add --yes", EXIT_USAGE)
        click.confirm(f"Delete {address} and all its mail?", abort=True)

    async def delete(store: Store) -> None:
        try:
            await store.delete_account(address)
        except NotFound:
            unknown_account(address)

    with_store(settings, delete)
    click.echo(f"deleted account {address} and all its mail")


# --- deliver -------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("address")
@click.option(
    "--flag",
    "flags",
    multiple=True,
    metavar="FLAG",
    help="Store the message with this flag, e.g. '\\Seen' or a keyword (repeatable).",
)
@common_options
def deliver(
    address: str, flags: tuple[str, ...], data_dir: Path | None, config: Path | None
) -> None:
    """Store the message on standard input in the INBOX of ADDRESS."""
    address = validate.address(address)
    canonical = [validate.flag(f) for f in flags]
    settings = load(data_dir, config)
    require_database(settings)
    raw = sys.stdin.buffer.read(settings.max_literal + 1)
    if not raw:
        fail("no message on standard input; pipe an RFC 5322 message in", EXIT_USAGE)
    if len(raw) > settings.max_literal:
        fail(
            f"the message is larger than max_literal ({settings.max_literal} octets); "
            "raise max_literal in the config to accept it"
        )
    from carteiro.delivery import deliver as deliver_fn

    async def run(store: Store) -> int:
        try:
            return await deliver_fn(store, address, raw, canonical)
        except NotFound:
            unknown_account(address)

    with_store(settings, run)


# --- helpers -------------------------------------------------------------------------


def load(
    data_dir: Path | None, config: Path | None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    try:
        return load_settings(config, data_dir, overrides or {})
    except ConfigError as e:
        fail(str(e))


def prepare_data_dir(settings: Settings) -> None:
    """Creates the data directory (mode 0700) and checks it is writable."""
    path = settings.data_dir
    hint = "choose another with --data-dir or fix its permissions"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        fail(f"data directory {path} exists but is not a directory; {hint}")
    except OSError as e:
        fail(f"cannot create data directory {path} ({e.strerror or e}); {hint}")
    if not os.access(path, os.W_OK | os.X_OK):
        fail(f"data directory {path} is not writable; {hint}")


def require_database(settings: Settings) -> None:
    """Commands other than ``user add`` and ``serve`` never create a database."""
    if not settings.database.exists():
        fail(
            f"there is no database in {settings.data_dir}; pass the right --data-dir "
            "(or CARTEIRO_DATA_DIR), or create an account first with 'carteiro user add'"
        )
    if not os.access(settings.data_dir, os.W_OK | os.X_OK):
        fail(
            f"data directory {settings.data_dir} is not writable; "
            "run as the user that owns it or fix its permissions"
        )


def with_store(settings: Settings, operation: Callable[[Store], Awaitable[T]]) -> T:
    """Opens the SQLite store, runs ``operation`` and closes the store."""

    async def run() -> T:
        from carteiro.store.sqlite import SqliteStore

        store = SqliteStore(settings.database)
        await store.open()
        try:
            return await operation(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as e:
        fail(
            f"cannot use the database {settings.database} ({e}); check that it is a "
            "Carteiro database and that the data directory is writable"
        )
    except StoreError as e:
        fail(f"{e or type(e).__name__}; see 'carteiro --help'")


def read_password() -> str:
    """The first line of standard input, or a hidden prompt (twice) on a terminal."""
    if sys.stdin.isatty():
        entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        return validate.password(entered)
    line = sys.stdin.readline()
    if not line:
        fail("no password on standard input; pipe one in, or leave out --password-stdin")
    return validate.password(line.rstrip("\r\n"))


def unknown_account(address: str) -> NoReturn:
    fail(f"there is no account {address}; 'carteiro user list' shows the accounts")
