"""Settings the IMAP server needs, derived from the global Settings (kept small so the
handlers do not depend on the whole configuration)."""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass

from carteiro.net.proxy_protocol import is_trusted as address_in

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ImapConfig:
    hostname: str = "localhost"
    tls_context: ssl.SSLContext | None = None
    trusted_networks: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    max_line: int = 65536
    max_literal: int = 64 * 1024 * 1024
    max_command: int = 80 * 1024 * 1024
    idle_timeout: float = 1800.0
    #: unauthenticated sessions are dropped sooner
    login_timeout: float = 60.0
    #: a failed login waits this long before answering (slows guessing)
    auth_failure_delay: float = 1.0
    #: LITERAL+ when True, LITERAL- (non-synchronising literals up to 4096) when False
    literal_plus: bool = True
    #: RFC 9585 INPROGRESS: a command running longer than this reports its progress,
    #: then again after each further interval
    progress_interval: float = 1.0
    #: TLS channel-binding data for SCRAM-SHA-256-PLUS that does not depend on the
    #: connection (RFC 5929 tls-server-end-point of the certificate); tls-exporter is
    #: added per connection
    channel_bindings: tuple[tuple[str, bytes], ...] = ()
    #: PROXY protocol (v1/v2) senders: load balancers whose header is believed
    proxy_trusted: tuple[Network, ...] = ()
    #: MESSAGELIMIT (RFC 9738)
    message_limit: int = 1_000_000

    def is_trusted(self, peer: str) -> bool:
        return address_in(peer.split("%", 1)[0], self.trusted_networks)
