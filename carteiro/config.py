"""Settings: a TOML file (``tomllib``) and command-line overrides → one frozen, validated
:class:`Settings`.

Every problem is reported as a :class:`ConfigError` whose message is one line saying what
is wrong and what to do about it; the CLI prints it as is.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TRUSTED_NETWORKS",
    "ConfigError",
    "IPNetwork",
    "Listen",
    "Settings",
    "default_data_dir",
    "format_listen",
    "load_settings",
    "parse_listen",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Listen = tuple[str, int]

MiB = 1024 * 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_TRUSTED_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
ENV_DATA_DIR = "CARTEIRO_DATA_DIR"
#: RFC 9738 §3: a smaller MESSAGELIMIT would be unusable for clients
MIN_MESSAGE_LIMIT = 1000


class ConfigError(Exception):
    """An unreadable or invalid configuration; ``str(error)`` is a one-line message."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    hostname: str = field(default_factory=socket.getfqdn)
    #: plaintext IMAP listener (STARTTLS offered); None when off
    imap: Listen | None = ("0.0.0.0", 143)  # noqa: S104 - listening everywhere is the point
    #: implicit-TLS IMAP listener; None when off
    imaps: Listen | None = ("0.0.0.0", 993)  # noqa: S104
    #: POP3 listeners (RFC 1939): off unless configured, e.g. ("0.0.0.0", 110) / 995
    pop3: Listen | None = None
    pop3s: Listen | None = None
    #: POP3 default for retrieved mail: "keep" (leave on server) or "delete" at QUIT
    pop3_retrieved: str = "keep"
    #: POP3 shows only mail it has not downloaded yet (accounts may choose otherwise)
    pop3_new_only: bool = False
    #: RFC 2449 LOGIN-DELAY: seconds between two POP3 logins of one account (0: none)
    pop3_login_delay: int = 0
    #: both None: a self-signed certificate is generated under ``data_dir/tls``
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: clients from these networks may LOGIN/AUTHENTICATE without TLS
    trusted_networks: tuple[IPNetwork, ...] = DEFAULT_TRUSTED_NETWORKS
    #: longest command line, in octets, not counting literals
    max_line: int = 65536
    #: largest literal, in octets; also advertised as APPENDLIMIT
    max_literal: int = 64 * MiB
    #: largest whole command (lines and literals together), in octets
    max_command: int = 128 * MiB
    #: seconds of client silence (also inside IDLE) before the autologout
    idle_timeout: float = 1800.0
    log_level: str = "INFO"
    #: advertise LITERAL+ (any non-synchronising literal); False: LITERAL-, whose
    #: non-synchronising literals stop at 4096 octets (RFC 7888)
    literal_plus: bool = True
    #: MESSAGELIMIT (RFC 9738): most messages one command may touch
    message_limit: int = 1_000_000
    #: security audit log (JSON lines); None: ``<data_dir>/audit.jsonl``; "off" disables
    audit_log: Path | None = None
    audit_off: bool = False
    #: raw tables, validated by their own modules at load time (see _check_tables)
    defence: Mapping[str, Any] = field(default_factory=dict)
    anomalies: Mapping[str, Any] = field(default_factory=dict)
    alerts: Mapping[str, Any] = field(default_factory=dict)
    oauth_issuers: tuple[Mapping[str, Any], ...] = ()
    #: where relative paths of those tables (jwks_file) are resolved
    config_dir: Path = field(default_factory=Path.cwd)
    #: connections per source address and per account, concurrent authentications
    max_connections_per_ip: int = 20
    max_connections_per_account: int = 50
    max_concurrent_auth: int = 4
    #: seconds a successful password verification is remembered (carteiro.auth.cache),
    #: so repeated logins skip argon2; 0 disables. Most accounts remembered at once.
    auth_cache_ttl: float = 300.0
    auth_cache_size: int = 10_000
    #: the plaintext IMAP listener sits behind a load balancer speaking the PROXY
    #: protocol, accepted only from ``proxy_trusted``
    #: argon2id cost for new password hashes (RFC 9106 "low memory" profile by default)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    #: seconds expunged messages stay recoverable (``carteiro restore-expunged``); 0: off
    expunge_retention: float = 7 * 86400.0
    imap_proxy: bool = False
    imaps_proxy: bool = False
    proxy_trusted: tuple[IPNetwork, ...] = ()
    #: SMTP listeners (issue 6): inbound MX (STARTTLS offered), submission with
    #: STARTTLS (RFC 6409) and with implicit TLS (RFC 8314); None when off
    smtp: Listen | None = ("0.0.0.0", 25)  # noqa: S104
    submission: Listen | None = ("0.0.0.0", 587)  # noqa: S104
    submissions: Listen | None = ("0.0.0.0", 465)  # noqa: S104
    #: LMTP (RFC 2033) behind another MTA: a TCP listener or a Unix socket; off by default
    lmtp: Listen | None = None
    lmtp_socket: Path | None = None
    #: SIZE (RFC 1870): the largest message accepted over SMTP/LMTP, in octets
    max_message_size: int = 50 * MiB
    #: recipients per message (RFC 5321 §4.5.3.1.8: at least 100)
    max_recipients: int = 100
    #: messages one account may submit per hour (0: no limit)
    send_rate: int = 500
    #: nameservers for MX, SPF, DKIM and DMARC lookups ("IP" or "IP:PORT"); empty: the
    #: system's resolv.conf
    dns_servers: tuple[tuple[str, int], ...] = ()
    #: [inbound] (SPF/DKIM/DMARC policy) and [queue] (outbound delivery) tables,
    #: validated by their own modules at load time
    inbound: Mapping[str, Any] = field(default_factory=dict)
    queue: Mapping[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "carteiro.db"

    @property
    def audit_path(self) -> Path | None:
        """The audit log file, None when ``audit_log = "off"``."""
        return None if self.audit_off else (self.audit_log or self.data_dir / "audit.jsonl")

    @property
    def tls_dir(self) -> Path:
        """Where the generated self-signed certificate lives."""
        return self.data_dir / "tls"


def default_data_dir() -> Path:
    """``/var/lib/carteiro`` for root, else ``~/.local/share/carteiro``."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/carteiro")
    return Path.home() / ".local" / "share" / "carteiro"


def parse_listen(value: str, key: str = "listen") -> Listen | None:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``off`` (→ None). Port 0 picks a free port."""
    text = value.strip()
    if text.lower() == "off":
        return None
    hint = f'use HOST:PORT, [IPv6]:PORT or off, e.g. {key} = "127.0.0.1:1143"'
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"{key}: {value!r} is not a listen address; {hint}.")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{key}: {host!r} is not an IPv6 address; {hint}.") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"{key}: {value!r} is not a listen address; {hint}.")
        if ":" in host:
            raise ConfigError(
                f"{key}: {value!r} has an IPv6 address without brackets; write [{host}]:PORT."
            )
        if not _valid_hostname(host):
            raise ConfigError(f"{key}: {host!r} is not a valid host; {hint}.")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: port {port_text!r} is not a number from 0 to 65535; {hint}.")
    return host, int(port_text)


def format_listen(listen: Listen | None) -> str:
    """The inverse of :func:`parse_listen`."""
    if listen is None:
        return "off"
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_KEYS = frozenset(
    {
        "data_dir",
        "hostname",
        "imap",
        "imaps",
        "pop3",
        "pop3s",
        "pop3_retrieved",
        "pop3_new_only",
        "pop3_login_delay",
        "tls_cert",
        "tls_key",
        "trusted_networks",
        "max_line",
        "max_literal",
        "max_command",
        "idle_timeout",
        "log_level",
        "literal_plus",
        "message_limit",
        "audit_log",
        "defence",
        "anomalies",
        "alerts",
        "oauth",
        "max_connections_per_ip",
        "max_connections_per_account",
        "max_concurrent_auth",
        "auth_cache_ttl",
        "auth_cache_size",
        "imap_proxy",
        "imaps_proxy",
        "proxy_trusted",
        "expunge_retention",
        "argon2_time_cost",
        "argon2_memory_kib",
        "argon2_parallelism",
        "smtp",
        "submission",
        "submissions",
        "lmtp",
        "max_message_size",
        "max_recipients",
        "send_rate",
        "dns_servers",
        "inbound",
        "queue",
    }
)


def load_settings(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Reads ``config_file`` (if given), applies ``overrides`` (same keys and value types
    as the TOML file; None values are ignored) and validates everything.

    The data directory is, in order: the ``data_dir`` argument, the environment variable
    ``CARTEIRO_DATA_DIR``, the config file's ``data_dir``, :func:`default_data_dir`.
    Relative paths in the config file are relative to the file's directory.
    """
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if config_file is not None:
        raw = _read_toml(config_file)
        base = config_file.parent
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        where = f"in {config_file}" if config_file is not None else "in the settings"
        raise ConfigError(
            f"unknown setting {unknown[0]!r} {where}; the keys are documented in README.md."
        )

    values: dict[str, Any] = {}
    env_dir = os.environ.get(ENV_DATA_DIR)
    if data_dir is not None:
        values["data_dir"] = data_dir.expanduser().absolute()
    elif env_dir:
        values["data_dir"] = Path(env_dir).expanduser().absolute()
    elif "data_dir" in raw:
        values["data_dir"] = _path(raw["data_dir"], "data_dir", base)
    else:
        values["data_dir"] = default_data_dir()

    if "hostname" in raw:
        hostname = _str(raw["hostname"], "hostname").strip().rstrip(".")
        if not _valid_hostname(hostname):
            raise ConfigError(
                f"hostname: {hostname!r} is not a valid host name; "
                'use the name clients connect to, e.g. hostname = "mail.example.org".'
            )
        values["hostname"] = hostname.lower()
    for key in ("imap", "imaps", "pop3", "pop3s", "smtp", "submission", "submissions"):
        if key in raw:
            values[key] = parse_listen(_str(raw[key], key), key)
    if "lmtp" in raw:
        text = _str(raw["lmtp"], "lmtp").strip()
        if text.startswith(("/", "./", "~")):
            values["lmtp_socket"] = _path(text, "lmtp", base)
        else:
            values["lmtp"] = parse_listen(text, "lmtp")
    for key, minimum in (("max_message_size", 1024), ("max_recipients", 1), ("send_rate", 0)):
        if key in raw:
            values[key] = _int(raw[key], key, minimum)
    if "dns_servers" in raw:
        values["dns_servers"] = _nameservers(raw["dns_servers"])
    for key in ("tls_cert", "tls_key"):
        if key in raw:
            values[key] = _path(raw[key], key, base)
    if ("tls_cert" in values) != ("tls_key" in values):
        raise ConfigError(
            "tls_cert and tls_key must be set together; "
            "set both, or neither to use a generated self-signed certificate."
        )
    if "trusted_networks" in raw:
        values["trusted_networks"] = _networks(raw["trusted_networks"])
    for key, minimum in (("max_line", 1024), ("max_literal", 1024), ("max_command", 1024)):
        if key in raw:
            values[key] = _int(raw[key], key, minimum)
    if "idle_timeout" in raw:
        values["idle_timeout"] = _seconds(raw["idle_timeout"], "idle_timeout")
    if "log_level" in raw:
        level = _str(raw["log_level"], "log_level").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level: {raw['log_level']!r} is not a log level; "
                f"use one of {', '.join(LOG_LEVELS)}."
            )
        values["log_level"] = level

    if "literal_plus" in raw:
        if not isinstance(raw["literal_plus"], bool):
            raise ConfigError(
                f"literal_plus: {raw['literal_plus']!r} is not a boolean; use true or false."
            )
        values["literal_plus"] = raw["literal_plus"]
    if "message_limit" in raw:
        values["message_limit"] = _int(raw["message_limit"], "message_limit", MIN_MESSAGE_LIMIT)

    if "audit_log" in raw:
        text = _str(raw["audit_log"], "audit_log")
        if text == "off":
            values["audit_off"] = True
        else:
            values["audit_log"] = _path(text, "audit_log", base)
    for key in ("defence", "anomalies", "alerts", "inbound", "queue"):
        if key in raw:
            if not isinstance(raw[key], Mapping):
                raise ConfigError(f"[{key}] must be a table; see README.md.")
            values[key] = dict(raw[key])
    if "oauth" in raw:
        table = raw["oauth"]
        if not isinstance(table, Mapping) or set(table) - {"issuers"}:
            raise ConfigError("[oauth] takes only [[oauth.issuers]] tables; see README.md.")
        issuers = table.get("issuers", [])
        if not isinstance(issuers, list):
            raise ConfigError("oauth.issuers must be an array of tables ([[oauth.issuers]]).")
        values["oauth_issuers"] = tuple(issuers)
    for key, minimum in (
        ("max_connections_per_ip", 0),
        ("max_connections_per_account", 0),
        ("max_concurrent_auth", 1),
        ("auth_cache_size", 0),
    ):
        if key in raw:
            values[key] = _int(raw[key], key, minimum)
    if "auth_cache_ttl" in raw:
        value = raw["auth_cache_ttl"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"auth_cache_ttl: expected seconds (0 turns it off), got {value!r}.")
        values["auth_cache_ttl"] = float(value)
    for key, minimum in (
        ("argon2_time_cost", 1),
        ("argon2_memory_kib", 8192),
        ("argon2_parallelism", 1),
    ):
        if key in raw:
            values[key] = _int(raw[key], key, minimum)
    if "expunge_retention" in raw:
        value = raw["expunge_retention"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(
                f"expunge_retention: expected seconds (0 turns it off), got {value!r}."
            )
        values["expunge_retention"] = float(value)
    if "pop3_login_delay" in raw:
        values["pop3_login_delay"] = _int(raw["pop3_login_delay"], "pop3_login_delay", 0)
    if "pop3_retrieved" in raw:
        if raw["pop3_retrieved"] not in ("keep", "delete"):
            raise ConfigError(f"pop3_retrieved: {raw['pop3_retrieved']!r} is not keep or delete.")
        values["pop3_retrieved"] = raw["pop3_retrieved"]
    for key in ("imap_proxy", "imaps_proxy", "pop3_new_only"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{key} must be true or false.")
            values[key] = raw[key]
    if "proxy_trusted" in raw:
        values["proxy_trusted"] = _networks(raw["proxy_trusted"])
    values["config_dir"] = base

    settings = Settings(**values)
    _check_tables(settings)
    if (settings.imap_proxy or settings.imaps_proxy) and not settings.proxy_trusted:
        raise ConfigError(
            "the PROXY protocol is on but proxy_trusted is empty; "
            "list the load balancers' addresses."
        )
    if settings.max_command < settings.max_line:
        raise ConfigError(
            f"max_command ({settings.max_command}) is smaller than max_line "
            f"({settings.max_line}); raise max_command or lower max_line."
        )
    return settings


def _check_tables(settings: Settings) -> None:
    """The security tables are parsed by the modules that use them; a mistake is
    reported now, at load time, as a one-line ConfigError."""
    from carteiro.audit.alerts import alert_settings_from_settings
    from carteiro.audit.anomalies import anomaly_policy_from_settings
    from carteiro.auth.guard import guard_policy_from_settings
    from carteiro.auth.tokens import TokenValidator
    from carteiro.smtp.mailauth import mailauth_policy_from_settings
    from carteiro.smtp.queue import queue_config_from_settings

    try:
        mailauth_policy_from_settings(settings.inbound)
        queue_config_from_settings(settings.queue)
        guard_policy_from_settings(settings.defence)
        anomaly_policy_from_settings(settings.anomalies)
        alert_settings_from_settings(settings.alerts)
        if settings.oauth_issuers:
            TokenValidator.from_settings(settings.oauth_issuers, settings.config_dir)
    except ValueError as exc:
        raise ConfigError(f"{exc}; see README.md.") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the --config path.") from None
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path}: {e.strerror or e}; check its permissions."
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e}); fix the syntax.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8.") from None


def _valid_hostname(host: str) -> bool:
    if not host or len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    for label in host.rstrip(".").split("."):
        if not 1 <= len(label) <= 63 or label.startswith("-") or label.endswith("-"):
            return False
        if not all(c.isalnum() or c == "-" for c in label):
            return False
    return True


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}; put the value in quotes.")
    return value


def _path(value: Any, key: str, base: Path) -> Path:
    text = _str(value, key)
    if not text:
        raise ConfigError(f"{key}: the path is empty; give a file system path.")
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).absolute()


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected a whole number of octets, got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{key}: {value} is too small; use at least {minimum}.")
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}.")
    if not value > 0:
        raise ConfigError(f"{key}: {value} is not positive; use a number of seconds above 0.")
    return float(value)


def _networks(value: Any) -> tuple[IPNetwork, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(
            'trusted_networks: expected a list, e.g. trusted_networks = ["127.0.0.0/8", "::1"].'
        )
    networks: list[IPNetwork] = []
    for item in value:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        text = _str(item, "trusted_networks")
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(
                f"trusted_networks: {text!r} is not a network; "
                'write an address or ADDRESS/PREFIX, e.g. "10.0.0.0/8".'
            ) from None
    return tuple(networks)


def _nameservers(value: Any) -> tuple[tuple[str, int], ...]:
    hint = 'e.g. dns_servers = ["127.0.0.1", "[::1]:53", "192.0.2.53:5353"]'
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"dns_servers: expected a list of addresses; {hint}.")
    out: list[tuple[str, int]] = []
    for item in value:
        text = _str(item, "dns_servers").strip()
        host, port = text, "53"
        if text.startswith("[") and "]:" in text:
            host, _, port = text[1:].partition("]:")
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"dns_servers: {text!r} is not an IP address (a nameserver cannot be given "
                f"by name); {hint}."
            ) from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"dns_servers: {text!r} has a bad port; {hint}.")
        out.append((str(address), int(port)))
    return tuple(out)
