"""Wiring of the defence layer: settings → guard, security store, audit log, anomaly
detectors, alerts, limits and OAuth → one :class:`AuthService` for every protocol.

Kept apart from :mod:`carteiro.app` so the test harness builds exactly what the server
runs, from the same options.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carteiro.audit.alerts import AlertDispatcher, AlertSettings, alert_settings_from_settings
from carteiro.audit.anomalies import AnomalyPolicy, Detectors, anomaly_policy_from_settings
from carteiro.audit.log import AuditLog
from carteiro.auth.cache import CredentialCache
from carteiro.auth.guard import Guard, GuardPolicy, guard_policy_from_settings
from carteiro.auth.service import AuthService, Defence
from carteiro.auth.tokens import TokenValidator
from carteiro.config import Settings
from carteiro.delivery import deliver
from carteiro.net.limits import AuthGate, ConnectionLimiter
from carteiro.store.interface import Store
from carteiro.store.sqlite.security import SqliteSecurityStore

__all__ = ["SecurityOptions", "SecurityRuntime", "start_security"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SecurityOptions:
    data_dir: Path
    hostname: str = "localhost"
    trusted: tuple[IPNetwork, ...] = ()
    guard: GuardPolicy = field(default_factory=GuardPolicy)
    anomalies: AnomalyPolicy = field(default_factory=AnomalyPolicy)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    oauth_issuers: tuple[Any, ...] = ()
    config_dir: Path = field(default_factory=Path.cwd)
    #: None: ``<data_dir>/audit.jsonl``
    audit_log: Path | None = None
    audit_off: bool = False
    per_ip: int = 20
    per_account: int = 50
    concurrent_auth: int = 4
    failure_delay: float = 1.0
    #: verified-password cache; a ttl or size of 0 turns it off
    auth_cache_ttl: float = 300.0
    auth_cache_size: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings, failure_delay: float = 1.0) -> SecurityOptions:
        return cls(
            data_dir=settings.data_dir,
            hostname=settings.hostname,
            trusted=settings.trusted_networks,
            guard=guard_policy_from_settings(settings.defence),
            anomalies=anomaly_policy_from_settings(settings.anomalies),
            alerts=alert_settings_from_settings(settings.alerts),
            oauth_issuers=settings.oauth_issuers,
            config_dir=settings.config_dir,
            audit_log=settings.audit_log,
            audit_off=settings.audit_off,
            per_ip=settings.max_connections_per_ip,
            per_account=settings.max_connections_per_account,
            concurrent_auth=settings.max_concurrent_auth,
            failure_delay=failure_delay,
            auth_cache_ttl=settings.auth_cache_ttl,
            auth_cache_size=settings.auth_cache_size,
        )


@dataclass
class SecurityRuntime:
    auth: AuthService
    security: SqliteSecurityStore

    async def close(self) -> None:
        await self.auth.defence.drain()
        self.auth.defence.audit.close()
        await self.security.close()


async def start_security(store: Store, opts: SecurityOptions) -> SecurityRuntime:
    """Opens the security store, restores bans and counters, and returns the service."""
    security = SqliteSecurityStore(opts.data_dir / "security.db")
    await security.open()
    audit_path = None if opts.audit_off else (opts.audit_log or opts.data_dir / "audit.jsonl")
    audit = AuditLog(audit_path)
    guard = Guard(
        security,
        opts.guard,
        on_ban=lambda b: audit.ban(kind=b.kind, key=b.key, until=b.until, reason=b.reason),
    )
    await guard.load()

    async def send_mail(recipient: str, raw: bytes) -> None:
        await deliver(store, recipient, raw)

    defence = Defence(
        audit=audit,
        guard=guard,
        security=security,
        detectors=Detectors(opts.anomalies, security),
        alerts=AlertDispatcher(opts.alerts, audit, send_mail, hostname=opts.hostname),
        limiter=ConnectionLimiter(opts.per_ip, opts.per_account, opts.trusted),
        gate=AuthGate(opts.concurrent_auth),
    )
    tokens = (
        TokenValidator.from_settings(opts.oauth_issuers, opts.config_dir)
        if opts.oauth_issuers
        else None
    )
    cache = None
    if opts.auth_cache_ttl > 0 and opts.auth_cache_size > 0:
        cache = CredentialCache(opts.auth_cache_ttl, opts.auth_cache_size)
    auth = AuthService(store, defence, tokens=tokens, failure_delay=opts.failure_delay, cache=cache)
    return SecurityRuntime(auth, security)
