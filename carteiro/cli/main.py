"""The ``carteiro`` command: serve, user add/passwd/list/delete, quota set/show, deliver, cert.

Every command takes ``--data-dir`` (env ``CARTEIRO_DATA_DIR``) and ``--config``
(env ``CARTEIRO_CONFIG``). Errors are one line on stderr (see :mod:`carteiro.cli.errors`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from carteiro.auth.passwords import generate_password, hash_password
from carteiro.cli import validate
from carteiro.cli.errors import EXIT_USAGE, CliError, fail, print_error
from carteiro.config import ConfigError, Settings, load_settings
from carteiro.store.errors import (
    AlreadyExists,
    NotFound,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)
from carteiro.store.interface import Quota, Store

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
@click.option("--pop3", metavar="HOST:PORT|off", help="POP3 listener with STLS [off].")
@click.option("--pop3s", metavar="HOST:PORT|off", help="Implicit-TLS POP3 listener [off].")
@click.option("--smtp", metavar="HOST:PORT|off", help="Inbound SMTP (MX) listener [0.0.0.0:25].")
@click.option(
    "--submission", metavar="HOST:PORT|off", help="Submission with STARTTLS [0.0.0.0:587]."
)
@click.option(
    "--submissions", metavar="HOST:PORT|off", help="Submission with implicit TLS [0.0.0.0:465]."
)
@click.option("--lmtp", metavar="HOST:PORT|PATH|off", help="LMTP listener or Unix socket [off].")
@click.option("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR [INFO].")
@common_options
def serve(
    imap: str | None,
    imaps: str | None,
    pop3: str | None,
    pop3s: str | None,
    smtp: str | None,
    submission: str | None,
    submissions: str | None,
    lmtp: str | None,
    log_level: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Run the server until SIGTERM or SIGINT."""
    settings = load(
        data_dir,
        config,
        {
            "imap": imap,
            "imaps": imaps,
            "pop3": pop3,
            "pop3s": pop3s,
            "smtp": smtp,
            "submission": submission,
            "submissions": submissions,
            "lmtp": lmtp,
            "log_level": log_level,
        },
    )
    listeners = [settings.imap, settings.imaps, settings.pop3, settings.pop3s]
    listeners += [settings.smtp, settings.submission, settings.submissions, settings.lmtp]
    if all(x is None for x in listeners) and settings.lmtp_socket is None:
        fail("every listener is off; enable --imap, --imaps, --pop3, --smtp, ...", EXIT_USAGE)
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
    scram = scram_record(password)
    prepare_data_dir(settings)

    async def add(store: Store) -> None:
        try:
            await store.create_account(address, password_hash)
            await store.set_scram(address, scram)
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

    scram = scram_record(password)

    async def passwd(store: Store) -> None:
        try:
            await store.set_password(address, password_hash)
            await store.set_scram(address, scram)
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


# --- quota ---------------------------------------------------------------------------


@cli.group("quota", context_settings=CONTEXT, no_args_is_help=True)
def quota_group() -> None:
    """Limit what an account may store (shown to IMAP clients by RFC 9208 QUOTA)."""


#: binary multiples, whichever way they are spelled: 1 KB = 1 KiB = 1024 octets
_UNITS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?", re.IGNORECASE)
_UNLIMITED = ("none", "unlimited")
#: the largest limit the store holds
MAX_LIMIT = 2**63 - 1
SIZE_HINT = (
    "give octets or a size with a KB, MB, GB or TB suffix (binary: 1 KB = 1024 octets), "
    "e.g. 2GB, or 'none' for no limit"
)


def parse_size(value: str) -> int | None:
    """``2GB``, ``1.5 GiB``, ``500m``, ``1024`` (octets) → octets; ``none``/``unlimited``
    → None. Suffixes are binary multiples however spelled (KB, K, KiB = 1024 octets),
    the unit IMAP uses for STORAGE; fractions are rounded down to whole octets."""
    text = value.strip()
    if text.lower() in _UNLIMITED:
        return None
    match = _SIZE.fullmatch(text)
    if match is None:
        fail(f"--storage {value!r} is not a size; {SIZE_HINT}", EXIT_USAGE)
    unit = (match.group(2) or match.group(3) or "").lower()
    octets = int(Decimal(match.group(1)) * 1024 ** _UNITS[unit])
    if octets > MAX_LIMIT:
        fail(f"--storage {value!r} is too large; the largest limit is 8 EiB", EXIT_USAGE)
    return octets


def parse_count(value: str) -> int | None:
    """A whole number of messages, or ``none``/``unlimited`` → None."""
    text = value.strip()
    if text.lower() in _UNLIMITED:
        return None
    if not text.isascii() or not text.isdigit():
        fail(
            f"--messages {value!r} is not a number of messages; "
            "give a whole number such as 100000, or 'none' for no limit",
            EXIT_USAGE,
        )
    count = int(text)
    if count > MAX_LIMIT:
        fail(f"--messages {value!r} is too large; the largest limit is {MAX_LIMIT}", EXIT_USAGE)
    return count


def human_size(octets: int) -> str:
    """``1.5 MiB``, ``2 GiB``, ``512 bytes``: binary units, at most one decimal."""
    if octets < 1024:
        return f"{octets} byte{'' if octets == 1 else 's'}"
    value = float(octets)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024 or unit == "EiB":
            break
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"


def _fill(used: int, limit: int) -> str:
    if used > limit:
        return "over the limit"
    if used == limit:
        return "full"
    return f"{used * 100 / limit:.1f}% used"


def _exact_size(octets: int) -> str:
    """``1.5 MiB (1572864 octets)``; below 1 KiB the human form is already exact."""
    text = human_size(octets)
    return text if octets < 1024 else f"{text} ({octets} octets)"


def describe_quota(q: Quota) -> list[str]:
    """The lines of ``carteiro quota show``: human sizes with the exact figures."""
    used = _exact_size(q.storage_used)
    if q.storage_limit is None:
        storage = f"{used} used, no limit"
    else:
        limit = _exact_size(q.storage_limit)
        storage = f"{used} of {limit}, {_fill(q.storage_used, q.storage_limit)}"
    if q.messages_limit is None:
        messages = f"{q.messages_used} used, no limit"
    else:
        messages = (
            f"{q.messages_used} of {q.messages_limit}, {_fill(q.messages_used, q.messages_limit)}"
        )
    return [f"storage: {storage}", f"messages: {messages}"]


def _limit_text(q: Quota) -> str:
    storage = "no limit" if q.storage_limit is None else human_size(q.storage_limit)
    messages = "no limit" if q.messages_limit is None else str(q.messages_limit)
    return f"storage {storage}, messages {messages}"


@quota_group.command("set", context_settings=CONTEXT)
@click.argument("address")
@click.option(
    "--storage",
    metavar="SIZE",
    help="Limit on the total size of the account's messages: octets or a KB/MB/GB/TB "
    "suffix (binary, 1 KB = 1024 octets), e.g. 2GB; 'none' or 'unlimited' removes it.",
)
@click.option(
    "--messages",
    metavar="COUNT",
    help="Limit on the number of messages; 'none' or 'unlimited' removes it.",
)
@common_options
def quota_set(
    address: str,
    storage: str | None,
    messages: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Set the quota of ADDRESS. A limit not given is left as it is."""
    address = validate.address(address)
    if storage is None and messages is None:
        fail("nothing to set; give --storage SIZE, --messages COUNT or both", EXIT_USAGE)
    new_storage = parse_size(storage) if storage is not None else None
    new_messages = parse_count(messages) if messages is not None else None
    settings = load(data_dir, config)
    require_database(settings)

    async def set_(store: Store) -> tuple[str, Quota]:
        account = await store.get_account(address)
        if account is None:
            unknown_account(address)
        old = await store.quota(account.id)
        await store.set_quota(
            account.id,
            new_storage if storage is not None else old.storage_limit,
            new_messages if messages is not None else old.messages_limit,
        )
        return account.address, await store.quota(account.id)

    stored, result = with_store(settings, set_)
    click.echo(f"set the quota of {stored}: {_limit_text(result)}")
    for line in describe_quota(result):
        click.echo(line)


@quota_group.command("show", context_settings=CONTEXT)
@click.argument("address")
@common_options
def quota_show(address: str, data_dir: Path | None, config: Path | None) -> None:
    """Show the limits and current usage of ADDRESS."""
    address = validate.address(address)
    settings = load(data_dir, config)
    require_database(settings)

    async def show(store: Store) -> tuple[str, Quota]:
        account = await store.get_account(address)
        if account is None:
            unknown_account(address)
        return account.address, await store.quota(account.id)

    stored, result = with_store(settings, show)
    click.echo(f"account: {stored}")
    for line in describe_quota(result):
        click.echo(line)


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
    """Store the message on standard input for ADDRESS: an account's INBOX, or wherever
    an alias, plus-addressing (alice+tag@ into folder "tag" if it exists) or the
    domain's catch-all leads."""
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
    from carteiro.addresses import resolve
    from carteiro.delivery import deliver as deliver_fn

    async def run(store: Store) -> int:
        recipients = await resolve(store, address)
        if not recipients:
            unknown_account(address)
        for r in recipients:
            try:
                await deliver_fn(store, r.account, raw, canonical, mailbox=r.mailbox)
            except NotFound:
                unknown_account(r.account)
            except QuotaExceeded as e:
                fail(
                    f"not delivered to {r.account}: {e}; free space in the account or raise "
                    f"its limit with 'carteiro quota set {r.account}'"
                )
        return len(recipients)

    with_store(settings, run)


# --- helpers -------------------------------------------------------------------------


def load(
    data_dir: Path | None, config: Path | None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    try:
        settings = load_settings(config, data_dir, overrides or {})
    except ConfigError as e:
        fail(str(e))
    from carteiro.auth.passwords import configure

    configure(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    return settings


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


def scram_record(password: str) -> str | None:
    """SCRAM-SHA-256 keys for the new password (None when SASLprep refuses it: the
    account then simply has no SCRAM)."""
    from carteiro.auth.sasl import encode_scram_record, scram_credentials

    try:
        return encode_scram_record(scram_credentials(password))
    except ValueError:
        return None


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


# registers the security commands on the groups above
from carteiro.cli import dkim as _dkim  # noqa: E402, F401
from carteiro.cli import domains as _domains  # noqa: E402, F401
from carteiro.cli import pop3 as _pop3  # noqa: E402, F401
from carteiro.cli import queue as _queue  # noqa: E402, F401
from carteiro.cli import security as _security  # noqa: E402, F401
