"""``carteiro dkim generate|list|delete`` and ``carteiro dns DOMAIN``.

Default selectors carry the algorithm and the month (``carteiro-rsa-202506``,
``carteiro-ed-202506``), so a key rotation next month gets a fresh name and both keys can
be published side by side while the old one drains. ``--selector NAME`` names a single
key; with ``--algorithm both`` it is a prefix (``NAME-rsa``, ``NAME-ed``).
"""

from __future__ import annotations

import time
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
from carteiro.config import Settings
from carteiro.smtp.dkim import dns_record, generate_key
from carteiro.store.errors import AlreadyExists, NotFound
from carteiro.store.interface import DkimKey, Store

__all__ = ["dkim", "dns", "txt_strings", "zone_records"]

_ALGORITHMS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}
_SHORT = {"rsa-sha256": "rsa", "ed25519-sha256": "ed"}


def _domain(value: str) -> str:
    """A domain name, checked like the domain of an address."""
    return validate.address(f"postmaster@{value}").split("@", 1)[1]


def _selector(value: str) -> str:
    labels = value.split(".")
    if not all(label and len(label) <= 63 for label in labels) or not all(
        c.isascii() and (c.isalnum() or c in "-_.") for c in value
    ):
        fail(f"{value!r} is not a valid selector; use letters, digits and '-'", EXIT_USAGE)
    return value.lower()


def txt_strings(value: str) -> str:
    """A TXT value in zone-file syntax: quoted strings of at most 255 characters."""
    parts = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)


def _key_line(key: DkimKey) -> str:
    return f"{key.selector}._domainkey.{key.domain}. IN TXT {txt_strings(dns_record(key))}"


def _warn_if_not_local(name: str, local: list[str]) -> None:
    if name not in local:
        click.echo(
            f"carteiro: warning: {name} is not a local domain; "
            f"add it with 'carteiro domain add {name}'",
            err=True,
        )


@cli.group(context_settings=CONTEXT, no_args_is_help=True)
def dkim() -> None:
    """DKIM signing keys of the local domains."""


@dkim.command("generate", context_settings=CONTEXT)
@click.argument("domain")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519", "both"]),
    default="both",
    show_default=True,
    help="RSA 2048 (rsa-sha256), Ed25519 (RFC 8463) or one of each.",
)
@click.option("--selector", metavar="NAME", help="Selector [carteiro-rsa|ed-YYYYMM].")
@common_options
def dkim_generate(
    domain: str,
    algorithm: str,
    selector: str | None,
    data_dir: Path | None,
    config: Path | None,
) -> None:
    """Create a signing key for DOMAIN and print the TXT record to publish."""
    domain = _domain(domain)
    chosen = ["rsa", "ed25519"] if algorithm == "both" else [algorithm]
    month = time.strftime("%Y%m", time.gmtime())
    selectors: list[str] = []
    for name in chosen:
        short = _SHORT[_ALGORITHMS[name]]
        if selector is None:
            selectors.append(f"carteiro-{short}-{month}")
        else:
            base = _selector(selector)
            selectors.append(f"{base}-{short}" if len(chosen) > 1 else base)
    settings = load(data_dir, config)
    prepare_data_dir(settings)
    now = time.time()
    keys = [
        DkimKey(domain, sel, _ALGORITHMS[name], generate_key(_ALGORITHMS[name]), now)
        for name, sel in zip(chosen, selectors, strict=True)
    ]

    async def add(store: Store) -> list[str]:
        existing = {k.selector for k in await store.dkim_keys(domain)}
        for key in keys:
            try:
                if key.selector in existing:
                    raise AlreadyExists(key.selector)
                await store.add_dkim_key(key)
            except AlreadyExists:
                fail(
                    f"{domain} already has a key with selector {key.selector}; "
                    "choose another with --selector or delete it with 'carteiro dkim delete'"
                )
        return [name for name, _ in await store.list_domains()]

    local = with_store(settings, add)
    _warn_if_not_local(domain, local)
    for key in keys:
        click.echo(f"generated {key.algorithm} key {key.selector} for {domain}")
    click.echo("publish in DNS:")
    for key in keys:
        click.echo(_key_line(key))


@dkim.command("list", context_settings=CONTEXT)
@click.argument("domain", required=False)
@common_options
def dkim_list(domain: str | None, data_dir: Path | None, config: Path | None) -> None:
    """DKIM keys (of DOMAIN, or all): domain, selector, algorithm, creation date."""
    name = _domain(domain) if domain is not None else None
    settings = load(data_dir, config)
    require_database(settings)

    async def keys(store: Store) -> list[DkimKey]:
        return await store.dkim_keys(name)

    for key in with_store(settings, keys):
        created = time.strftime("%Y-%m-%d", time.gmtime(key.created))
        click.echo(f"{key.domain} {key.selector} {key.algorithm} {created}")


@dkim.command("delete", context_settings=CONTEXT)
@click.argument("domain")
@click.argument("selector")
@common_options
def dkim_delete(domain: str, selector: str, data_dir: Path | None, config: Path | None) -> None:
    """Stop signing with a key (remove its DNS record after a few days, not before)."""
    domain = _domain(domain)
    selector = _selector(selector)
    settings = load(data_dir, config)
    require_database(settings)

    async def delete(store: Store) -> None:
        try:
            await store.delete_dkim_key(domain, selector)
        except NotFound:
            fail(f"{domain} has no DKIM key {selector}; 'carteiro dkim list' shows them")

    with_store(settings, delete)
    click.echo(f"deleted DKIM key {selector} of {domain}")


# --- carteiro dns --------------------------------------------------------------------


def zone_records(domain: str, hostname: str, settings: Settings, keys: list[DkimKey]) -> list[str]:
    """Every record a mail domain served by ``hostname`` needs, in zone-file syntax."""
    host = hostname.rstrip(".") + "."
    d = domain + "."
    lines = [
        f"; mail for {domain}, served by {hostname} (which needs A/AAAA records)",
        "$TTL 3600",
        f"{d} IN MX 10 {host}",
        f'{d} IN TXT "v=spf1 mx -all"',
    ]
    if keys:
        lines += [_key_line(key) for key in keys]
    else:
        lines.append(f"; no DKIM key yet: run 'carteiro dkim generate {domain}'")
    lines.append(f'_dmarc.{d} IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"')
    lines.append("; client autoconfiguration (RFC 6186, RFC 8314); port 0 and '.': off")
    services = (
        ("_submissions", settings.submissions, 0),
        ("_submission", settings.submission, 10),
        ("_imaps", settings.imaps, 0),
        ("_imap", settings.imap, 10),
        ("_pop3s", settings.pop3s, 0),
        ("_pop3", settings.pop3, 10),
    )
    for service, listen, priority in services:
        if listen is None:
            lines.append(f"{service}._tcp.{d} IN SRV 0 0 0 .")
        else:
            lines.append(f"{service}._tcp.{d} IN SRV {priority} 1 {listen[1]} {host}")
    lines += [f"autoconfig.{d} IN CNAME {host}", f"autodiscover.{d} IN CNAME {host}"]
    return lines


@cli.command("dns", context_settings=CONTEXT)
@click.argument("domain")
@click.option("--hostname", "hostname", metavar="HOST", help="The mail host [config hostname].")
@common_options
def dns(domain: str, hostname: str | None, data_dir: Path | None, config: Path | None) -> None:
    """Print the DNS records DOMAIN needs (MX, SPF, DKIM, DMARC, SRV) in zone-file syntax."""
    domain = _domain(domain)
    if hostname is not None:
        hostname = _domain(hostname)
    settings = load(data_dir, config)
    keys: list[DkimKey] = []
    local: list[str] = []
    if settings.database.exists():

        async def read(store: Store) -> tuple[list[DkimKey], list[str]]:
            found = await store.dkim_keys(domain)
            return found, [name for name, _ in await store.list_domains()]

        keys, local = with_store(settings, read)
    _warn_if_not_local(domain, local)
    for line in zone_records(domain, hostname or settings.hostname, settings, keys):
        click.echo(line)
