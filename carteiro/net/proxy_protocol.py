"""HAProxy PROXY protocol, versions 1 (text) and 2 (binary), as a sans-IO parser.

A listener behind a load balancer sees the balancer's address on every socket; the
balancer prepends a PROXY header naming the real client so that bans and logs can use it.
The parser is pure so that the listener can feed it whatever bytes it has read so far
and re-parse from the start as more arrive: headers are small (a v1 line is at most 107
bytes, section 2.1; a v2 header at most 16 + 65535), so re-parsing is cheap and the
search for the v1 CRLF never looks past 107 bytes.

The results are monotonic, which is what makes incremental feeding safe: any prefix of
a valid header is :class:`NeedMore` (never :class:`Invalid`), appending bytes to an
:class:`Invalid` buffer keeps it invalid, and a :class:`Parsed` result never changes
once the header is complete (``consumed`` is exact; the rest is the protocol stream).

Strictness follows the spec's advice to receivers: anything the spec does not define
(unknown v2 command or family byte, DGRAM transport, bad field in a v1 line, duplicate
TLV) is refused, because a PROXY listener must never guess a client address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "MAX_HEADER",
    "PP2_TYPE_ALPN",
    "PP2_TYPE_AUTHORITY",
    "PP2_TYPE_CRC32C",
    "PP2_TYPE_NETNS",
    "PP2_TYPE_NOOP",
    "PP2_TYPE_SSL",
    "PP2_TYPE_UNIQUE_ID",
    "V1_MAX_LINE",
    "V2_SIGNATURE",
    "Invalid",
    "NeedMore",
    "Parsed",
    "ProxyInfo",
    "crc32c",
    "encode_v1",
    "encode_v2",
    "is_trusted",
    "parse_proxy_header",
]

V1_MAX_LINE = 107  # section 2.1: worst case "PROXY UNKNOWN <v6> <v6> 65535 65535\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # section 2.2, 12 bytes
V2_FIXED = 16  # signature, ver/cmd, fam, 2-byte length
MAX_HEADER = V2_FIXED + 0xFFFF

# Section 2.2.1 TLV types (values are returned raw; PP2_TYPE_SSL sub-TLVs are not split).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_TYPE_NETNS = 0x30

_V1_PREFIX = b"PROXY "
_V1_MIN = len(b"PROXY UNKNOWN\r\n")
_V1_PROTOCOLS = {"TCP4": 4, "TCP6": 6}
_NOT_PROXY = "connection did not start with a PROXY protocol header"
_CMD_LOCAL = 0x0
_CMD_PROXY = 0x1
# fam byte (address family << 4 | transport) → size of the address block, section 2.2
_FAMILIES = {0x00: 0, 0x11: 12, 0x21: 36, 0x31: 216}
_DGRAM = {0x12, 0x22, 0x32}
_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_V4_CHARS = frozenset("0123456789.")
_EMPTY: Mapping[int, bytes] = MappingProxyType({})

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ProxyInfo:
    """What the balancer said about the connection.

    ``local`` means "use the socket's own addresses" (v2 LOCAL, such as a health check;
    v1 UNKNOWN; v2 PROXY with family UNSPEC). ``source`` is None whenever there is no IP
    address to use, which includes AF_UNIX. ``tlvs`` excludes PP2_TYPE_NOOP padding.
    """

    version: int
    local: bool
    source: Address | None
    destination: Address | None
    tlvs: Mapping[int, bytes] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class NeedMore:
    """Not decided yet; ``minimum`` is a lower bound on the whole header's length."""

    minimum: int


@dataclass(frozen=True, slots=True)
class Invalid:
    """Not a (valid) PROXY header: the listener closes the connection."""

    reason: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """A complete header of ``consumed`` bytes; the bytes after it belong to the protocol."""

    info: ProxyInfo
    consumed: int


def parse_proxy_header(data: bytes, *, max_length: int = MAX_HEADER) -> Parsed | NeedMore | Invalid:
    """Parse the PROXY header at the start of ``data`` (v1 or v2, detected by signature).

    ``max_length`` lets a listener refuse v2 headers longer than it cares to buffer.
    """
    if not data:
        return NeedMore(_V1_MIN)
    if data[0] == V2_SIGNATURE[0]:
        return _parse_v2(data, max_length)
    if data[0] == _V1_PREFIX[0]:
        return _parse_v1(data)
    return Invalid(_NOT_PROXY)


# --- version 1 (section 2.1) ------------------------------------------------------------


def _parse_v1(data: bytes) -> Parsed | NeedMore | Invalid:
    window = bytes(data[:V1_MAX_LINE])
    end = window.find(b"\r\n")
    if end < 0:
        if len(window) >= V1_MAX_LINE:
            return Invalid("PROXY v1 line is longer than 107 bytes")
        problem = _v1_prefix_problem(window)
        if problem is not None:
            return Invalid(problem)
        return NeedMore(max(_V1_MIN, len(window) + 1))
    result = _v1_line(window[:end])
    if isinstance(result, str):
        return Invalid(result)
    return Parsed(result, end + 2)


def _v1_line(line: bytes) -> ProxyInfo | str:
    """Validate a complete v1 line (without its CRLF)."""
    if not line.startswith(_V1_PREFIX):
        return _NOT_PROXY
    rest = line[len(_V1_PREFIX) :]
    if rest == b"UNKNOWN" or rest.startswith(b"UNKNOWN "):
        return ProxyInfo(version=1, local=True, source=None, destination=None)
    try:
        text = rest.decode("ascii")
    except UnicodeDecodeError:
        return "PROXY v1 line is not ASCII"
    fields = text.split(" ")
    if len(fields) != 5:
        return "PROXY v1 line must be: protocol, 2 addresses, 2 ports, single-space separated"
    proto, src, dst, sport, dport = fields
    version = _V1_PROTOCOLS.get(proto)
    if version is None:
        return f"PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, not {proto[:16]!r}"
    src_ip, dst_ip = _v1_address(src, version), _v1_address(dst, version)
    if src_ip is None or dst_ip is None:
        bad = src if src_ip is None else dst
        return f"PROXY v1 address {bad[:46]!r} is not a valid {proto} address"
    src_port, dst_port = _v1_port(sport), _v1_port(dport)
    if src_port is None or dst_port is None:
        bad = sport if src_port is None else dport
        return f"PROXY v1 port {bad[:8]!r} is not a decimal 0-65535 without leading zeros"
    return ProxyInfo(
        version=1, local=False, source=(src_ip, src_port), destination=(dst_ip, dst_port)
    )


def _v1_address(text: str, version: int) -> str | None:
    # ipaddress refuses IPv4 octets with leading zeros; a scope id ("%eth0") is not an
    # address the balancer can have seen on the wire, so it is refused too.
    if not text or len(text) > 45 or "%" in text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(addr) if addr.version == version else None


def _v1_port(text: str) -> int | None:
    if not 1 <= len(text) <= 5 or not (text.isascii() and text.isdigit()):
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    port = int(text)
    return port if port <= 0xFFFF else None


def _v1_prefix_problem(part: bytes) -> str | None:
    """Why no valid line can start with ``part`` (no CRLF yet), or None if one can.

    Complete fields are checked fully; the field still arriving only by its characters,
    so a few hopeless prefixes wait for the CRLF (or the 107-byte limit) to be refused.
    """
    if len(part) <= len(_V1_PREFIX):
        return None if _V1_PREFIX.startswith(part) else _NOT_PROXY
    if not part.startswith(_V1_PREFIX):
        return _NOT_PROXY
    rest = part[len(_V1_PREFIX) :]
    if b"UNKNOWN".startswith(rest) or rest.startswith(b"UNKNOWN "):
        return None  # after "UNKNOWN ", everything up to the CRLF is ignored
    if rest.endswith(b"\r"):  # the next byte must be LF, ending the line: judge it now
        line = _v1_line(part[:-1])
        return line if isinstance(line, str) else None
    try:
        text = rest.decode("ascii")
    except UnicodeDecodeError:
        return "PROXY v1 line is not ASCII"
    fields = text.split(" ")
    if len(fields) > 5:
        return "PROXY v1 line has too many fields"
    *complete, last = fields
    version = 0
    if complete:
        version = _V1_PROTOCOLS.get(complete[0]) or 0
        if not version:
            return f"PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, not {complete[0][:16]!r}"
    for index, value in enumerate(complete[1:], start=1):
        ok = _v1_address(value, version) if index < 3 else _v1_port(value)
        if ok is None:
            return f"PROXY v1 field {value[:46]!r} is invalid"
    if _v1_partial_ok(last, len(complete), version):
        return None
    return f"PROXY v1 field {last[:46]!r} is invalid"


def _v1_partial_ok(value: str, index: int, version: int) -> bool:
    if index == 0:
        return "TCP4".startswith(value) or "TCP6".startswith(value)
    if index < 3:
        chars, limit = (_V4_CHARS, 15) if version == 4 else (_V6_CHARS, 45)
        return len(value) <= limit and all(c in chars for c in value)
    # a port that is not valid yet (leading zero, too big) cannot become valid
    return not value or _v1_port(value) is not None


# --- version 2 (section 2.2) ------------------------------------------------------------


def _parse_v2(data: bytes, max_length: int) -> Parsed | NeedMore | Invalid:
    head = bytes(data[:V2_FIXED])
    known = min(len(head), len(V2_SIGNATURE))
    if head[:known] != V2_SIGNATURE[:known]:
        return Invalid(_NOT_PROXY)
    command = -1
    if len(head) > 12:
        version, command = head[12] >> 4, head[12] & 0x0F
        if version != 2:
            return Invalid(f"PROXY v2 header has version {version}, not 2")
        if command not in (_CMD_LOCAL, _CMD_PROXY):
            return Invalid(f"PROXY v2 command {command} is neither LOCAL nor PROXY")
    family = head[13] if len(head) > 13 else -1
    if command == _CMD_PROXY and family >= 0 and family not in _FAMILIES:
        if family in _DGRAM:
            return Invalid("PROXY v2 DGRAM transport is not supported on a stream listener")
        return Invalid(f"PROXY v2 address family/transport byte 0x{family:02x} is undefined")
    if len(head) < V2_FIXED:
        return NeedMore(V2_FIXED)
    total = V2_FIXED + int.from_bytes(head[14:16], "big")
    if total > max_length:
        return Invalid(f"PROXY v2 header of {total} bytes exceeds the limit of {max_length}")
    if command == _CMD_PROXY and total - V2_FIXED < _FAMILIES[family]:
        return Invalid("PROXY v2 address block is shorter than its family's addresses")
    if len(data) < total:
        return NeedMore(total)
    if command == _CMD_LOCAL or family == 0x00:
        # LOCAL: "discard the protocol block including the family"; UNSPEC: "ignore
        # address information" — either way the socket's own endpoints stand.
        return Parsed(ProxyInfo(version=2, local=True, source=None, destination=None), total)
    header = bytes(data[:total])
    size = _FAMILIES[family]
    tlvs = _parse_tlvs(header, V2_FIXED + size)
    if isinstance(tlvs, str):
        return Invalid(tlvs)
    source, destination = _v2_addresses(header[V2_FIXED : V2_FIXED + size], family)
    info = ProxyInfo(
        version=2,
        local=False,
        source=source,
        destination=destination,
        tlvs=MappingProxyType(tlvs),
    )
    return Parsed(info, total)


def _v2_addresses(block: bytes, family: int) -> tuple[Address | None, Address | None]:
    if family == 0x31:
        return None, None  # AF_UNIX paths are not addresses a ban can use
    width = 4 if family == 0x11 else 16
    src = ipaddress.ip_address(block[:width])
    dst = ipaddress.ip_address(block[width : 2 * width])
    ports = block[2 * width : 2 * width + 4]
    return (
        (str(src), int.from_bytes(ports[:2], "big")),
        (str(dst), int.from_bytes(ports[2:], "big")),
    )


def _parse_tlvs(header: bytes, start: int) -> dict[int, bytes] | str:
    """TLVs from ``start`` to the end of ``header`` (section 2.2.1), CRC32c verified."""
    tlvs: dict[int, bytes] = {}
    crc_at = -1
    pos = start
    while pos < len(header):
        if len(header) - pos < 3:
            return "PROXY v2 TLV chain ends with a truncated TLV header"
        kind = header[pos]
        end = pos + 3 + int.from_bytes(header[pos + 1 : pos + 3], "big")
        if end > len(header):
            return f"PROXY v2 TLV 0x{kind:02x} runs past the end of the header"
        if kind != PP2_TYPE_NOOP:
            if kind in tlvs:
                return f"PROXY v2 TLV 0x{kind:02x} appears twice"
            tlvs[kind] = header[pos + 3 : end]
            if kind == PP2_TYPE_CRC32C:
                crc_at = pos + 3
        pos = end
    if crc_at >= 0:
        # Section 2.2.5: the CRC covers the whole header with the checksum field zeroed.
        if len(tlvs[PP2_TYPE_CRC32C]) != 4:
            return "PROXY v2 CRC32C TLV is not 4 bytes long"
        zeroed = header[:crc_at] + b"\0\0\0\0" + header[crc_at + 4 :]
        if crc32c(zeroed).to_bytes(4, "big") != tlvs[PP2_TYPE_CRC32C]:
            return "PROXY v2 CRC32C checksum does not match"
    return tlvs


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720 appendix B.4), as PP2_TYPE_CRC32C requires."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- encoders (tests, benchmark client) -------------------------------------------------


def _ip_pair(src: Address, dst: Address) -> tuple[IPAddress, IPAddress]:
    src_ip, dst_ip = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if src_ip.version != dst_ip.version:
        raise ValueError("source and destination must be of the same address family")
    for ip in (src_ip, dst_ip):
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            raise ValueError("scoped IPv6 addresses cannot be sent in a PROXY header")
    for port in (src[1], dst[1]):
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} is out of range")
    return src_ip, dst_ip


def encode_v1(src: Address | None, dst: Address | None) -> bytes:
    """A v1 line; ``None`` for either end gives ``PROXY UNKNOWN``."""
    if src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    src_ip, dst_ip = _ip_pair(src, dst)
    line = f"PROXY TCP{src_ip.version} {src_ip} {dst_ip} {src[1]} {dst[1]}\r\n"
    return line.encode("ascii")


def encode_v2(
    src: Address | None,
    dst: Address | None,
    tlvs: Mapping[int, bytes] | Iterable[tuple[int, bytes]] = (),
    *,
    local: bool = False,
    checksum: bool = False,
) -> bytes:
    """A v2 header: LOCAL when ``local``, PROXY/UNSPEC when an end is None, else TCP.

    ``tlvs`` may be a sequence of pairs to control order (or repeat NOOP padding);
    ``checksum`` appends a PP2_TYPE_CRC32C TLV covering the header.
    """
    items = list(tlvs.items()) if isinstance(tlvs, Mapping) else list(tlvs)
    if local:
        command, family, block = _CMD_LOCAL, 0x00, b""
    elif src is None or dst is None:
        command, family, block = _CMD_PROXY, 0x00, b""
    else:
        src_ip, dst_ip = _ip_pair(src, dst)
        command, family = _CMD_PROXY, 0x11 if src_ip.version == 4 else 0x21
        block = src_ip.packed + dst_ip.packed
        block += src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big")
    if checksum:
        if any(kind == PP2_TYPE_CRC32C for kind, _ in items):
            raise ValueError("pass checksum=True or a CRC32C TLV, not both")
        items.append((PP2_TYPE_CRC32C, b"\0\0\0\0"))
    parts = [block]
    for kind, value in items:
        if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
            raise ValueError(f"TLV 0x{kind:x} of {len(value)} bytes cannot be encoded")
        parts.append(bytes([kind]) + len(value).to_bytes(2, "big") + bytes(value))
    body = b"".join(parts)
    if len(body) > 0xFFFF:
        raise ValueError("PROXY v2 header would exceed 65535 bytes of addresses and TLVs")
    header = V2_SIGNATURE + bytes([0x20 | command, family]) + len(body).to_bytes(2, "big")
    header += body
    if checksum:
        header = header[:-4] + crc32c(header).to_bytes(4, "big")
    return header


# --- trust ----------------------------------------------------------------------------


def is_trusted(peer_ip: str, trusted: Sequence[Network]) -> bool:
    """True when the socket peer may send a PROXY header (it is one of our balancers).

    An IPv4-mapped IPv6 peer (``::ffff:10.0.0.1``, as a dual-stack socket reports IPv4
    clients) also matches the IPv4 networks; an unparsable address is never trusted.
    """
    try:
        addr = ipaddress.ip_address(peer_ip)
    except ValueError:
        return False
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    return any(candidate in network for network in trusted for candidate in candidates)
