"""PROXY protocol v1/v2 parsing: spec examples, field validation, TLVs, prefixes, trust."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.net.proxy_protocol import (
    MAX_HEADER,
    PP2_TYPE_ALPN,
    PP2_TYPE_AUTHORITY,
    PP2_TYPE_CRC32C,
    PP2_TYPE_NOOP,
    PP2_TYPE_SSL,
    PP2_TYPE_UNIQUE_ID,
    V2_SIGNATURE,
    Invalid,
    NeedMore,
    Parsed,
    ProxyInfo,
    crc32c,
    encode_v1,
    encode_v2,
    is_trusted,
    parse_proxy_header,
)

V6_MAX = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
PAYLOAD = b"a001 CAPABILITY\r\n\r\n\x00binary"


def parsed(data: bytes) -> Parsed:
    result = parse_proxy_header(data)
    assert isinstance(result, Parsed), result
    return result


def invalid(data: bytes) -> str:
    result = parse_proxy_header(data)
    assert isinstance(result, Invalid), result
    assert result.reason and "\n" not in result.reason and "\r" not in result.reason
    return result.reason


def assert_every_prefix_needs_more(header: bytes) -> None:
    for cut in range(len(header)):
        result = parse_proxy_header(header[:cut])
        assert isinstance(result, NeedMore), (cut, result)
        assert cut < result.minimum <= len(header), (cut, result)


def v2(command: int, family: int, block: bytes, *, length: int | None = None) -> bytes:
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes([0x20 | command, family]) + size.to_bytes(2, "big") + block


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


IP4_BLOCK = (
    bytes([192, 168, 0, 1, 10, 0, 0, 2]) + (56324).to_bytes(2, "big") + (443).to_bytes(2, "big")
)
IP6_BLOCK = (
    ipaddress.IPv6Address("2001:db8::1").packed
    + ipaddress.IPv6Address("2001:db8::2").packed
    + (1).to_bytes(2, "big")
    + (65535).to_bytes(2, "big")
)


# --- version 1 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "source", "destination"),
    [
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            ("192.168.0.1", 56324),
            ("192.168.0.11", 443),
        ),
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            ("255.255.255.255", 65535),
            ("255.255.255.255", 65535),
        ),
        (
            f"PROXY TCP6 {V6_MAX} {V6_MAX} 65535 65535\r\n".encode(),
            (V6_MAX, 65535),
            (V6_MAX, 65535),
        ),
        (b"PROXY TCP4 0.0.0.0 1.2.3.4 0 0\r\n", ("0.0.0.0", 0), ("1.2.3.4", 0)),
        (
            b"PROXY TCP6 2001:DB8::0001 ::ffff:10.0.0.1 10 20\r\n",
            ("2001:db8::1", 10),
            ("::ffff:a00:1", 20),
        ),
    ],
)
def test_v1_spec_examples(
    line: bytes, source: tuple[str, int], destination: tuple[str, int]
) -> None:
    result = parsed(line + PAYLOAD)
    assert result.consumed == len(line)
    assert result.info == ProxyInfo(1, False, source, destination, {})
    assert_every_prefix_needs_more(line)


def test_v1_longest_lines_fit_the_limit() -> None:
    tcp6 = f"PROXY TCP6 {V6_MAX} {V6_MAX} 65535 65535\r\n".encode()
    unknown = f"PROXY UNKNOWN {V6_MAX} {V6_MAX} 65535 65535\r\n".encode()
    assert len(tcp6) == 104 and len(unknown) == 107
    assert parsed(unknown).consumed == 107


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN whatever\tthe balancer\x00 sends\r\n",
        b"PROXY UNKNOWN \r\n",
        f"PROXY UNKNOWN {V6_MAX} {V6_MAX} 65535 65535\r\n".encode(),
    ],
)
def test_v1_unknown_ignores_the_rest(line: bytes) -> None:
    result = parsed(line + b"EHLO x\r\n")
    assert result.consumed == len(line)
    assert result.info == ProxyInfo(1, True, None, None, {})
    assert_every_prefix_needs_more(line)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # LF without CR
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",  # double space
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",  # trailing space
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # missing field
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  # extra field
        b"PROXY TCP4\r\n",
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY UNKNOWN\rnot a space\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",  # family mismatch
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",  # leading zero in an octet
        b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # scope id
        b"PROXY TCP6 ::g ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  # leading zero in a port
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 ٢\r\n".encode(),  # non-ASCII digit
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n",
    ],
)
def test_v1_invalid_lines(line: bytes) -> None:
    invalid(line)
    invalid(line + PAYLOAD)  # more data never rescues a bad line


@pytest.mark.parametrize(
    "start",
    [
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ",
        b"PROXY TCP4 1.2.3.4  ",
        b"PROXY TCP4 ::1 ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536",
        b"PROXY TCP9",
        b"PROXY X",
        b"PROXZ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        b"PROXY TCP4 1.2.3.4\r",
        b"PROXY TCP6 ::1 ::2 1 2\x00",
        b"PROXY TCP4 1:2",
    ],
)
def test_v1_hopeless_prefixes_are_refused_before_the_crlf(start: bytes) -> None:
    invalid(start)


def test_v1_line_longer_than_107_bytes() -> None:
    long_line = b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n"  # 107 bytes: fine
    assert parsed(long_line).consumed == 107
    too_long = b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n"  # 108 bytes
    assert isinstance(parse_proxy_header(too_long[:106]), NeedMore)
    assert "107" in invalid(too_long)
    assert "107" in invalid(too_long[:107])
    # the CRLF search is bounded: a huge buffer is not scanned
    assert "107" in invalid(b"PROXY UNKNOWN " + b"x" * 1_000_000)


def test_v1_need_more_minimum() -> None:
    assert parse_proxy_header(b"") == NeedMore(15)
    assert parse_proxy_header(b"PRO") == NeedMore(15)
    assert parse_proxy_header(b"PROXY TCP4 1.2.3.4 ") == NeedMore(20)


# --- version 2 -------------------------------------------------------------------------


def test_v2_tcp4() -> None:
    header = v2(1, 0x11, IP4_BLOCK)
    result = parsed(header + PAYLOAD)
    assert result.consumed == len(header) == 28
    assert result.info == ProxyInfo(2, False, ("192.168.0.1", 56324), ("10.0.0.2", 443), {})
    assert_every_prefix_needs_more(header)


def test_v2_tcp6() -> None:
    header = v2(1, 0x21, IP6_BLOCK)
    result = parsed(header + PAYLOAD)
    assert result.consumed == 52
    assert result.info == ProxyInfo(2, False, ("2001:db8::1", 1), ("2001:db8::2", 65535), {})
    assert_every_prefix_needs_more(header)


def test_v2_unix_has_no_ip_addresses() -> None:
    block = b"/run/haproxy.sock".ljust(108, b"\0") + b"/run/carteiro.sock".ljust(108, b"\0")
    header = v2(1, 0x31, block + tlv(PP2_TYPE_UNIQUE_ID, b"id-1"))
    result = parsed(header + PAYLOAD)
    assert result.consumed == len(header)
    assert result.info == ProxyInfo(2, False, None, None, {PP2_TYPE_UNIQUE_ID: b"id-1"})
    assert "shorter" in invalid(v2(1, 0x31, block[:-1]))


@pytest.mark.parametrize("family", [0x00, 0x11, 0x21, 0x31, 0x12, 0x22, 0x41, 0xFF])
def test_v2_local_discards_the_block_and_ignores_the_family(family: int) -> None:
    # section 2.2: LOCAL (health checks) keeps the socket's addresses, family ignored
    for block in (b"", IP4_BLOCK, b"\xff\xff"):
        header = v2(0, family, block)
        result = parsed(header + PAYLOAD)
        assert result.consumed == len(header)
        assert result.info == ProxyInfo(2, True, None, None, {})


def test_v2_proxy_unspec_keeps_socket_addresses() -> None:
    for block in (b"", b"anything at all"):
        result = parsed(v2(1, 0x00, block) + PAYLOAD)
        assert result.info == ProxyInfo(2, True, None, None, {})
        assert result.consumed == 16 + len(block)


@pytest.mark.parametrize("family", [0x12, 0x22, 0x32])
def test_v2_dgram_is_refused(family: int) -> None:
    assert "DGRAM" in invalid(v2(1, family, IP6_BLOCK + bytes(200)))
    # refused as soon as the family byte arrives
    assert "DGRAM" in invalid(v2(1, family, b"")[:14])


@pytest.mark.parametrize("family", [0x01, 0x02, 0x10, 0x13, 0x20, 0x41, 0x30, 0xF1])
def test_v2_undefined_family_bytes(family: int) -> None:
    invalid(v2(1, family, IP6_BLOCK + bytes(200)))


@pytest.mark.parametrize("ver_cmd", [0x11, 0x31, 0x01, 0xF1, 0x22, 0x2F])
def test_v2_bad_version_or_command(ver_cmd: int) -> None:
    header = V2_SIGNATURE + bytes([ver_cmd, 0x11]) + (12).to_bytes(2, "big") + IP4_BLOCK
    invalid(header)
    invalid(header[:13])  # detected from the 13th byte on


def test_v2_signature_mismatch() -> None:
    for index in range(12):
        header = bytearray(v2(1, 0x11, IP4_BLOCK))
        header[index] ^= 0x20
        invalid(bytes(header))
        invalid(bytes(header[: index + 1]))


@pytest.mark.parametrize(("family", "size"), [(0x11, 12), (0x21, 36)])
def test_v2_address_block_too_short(family: int, size: int) -> None:
    block = (IP4_BLOCK if size == 12 else IP6_BLOCK)[: size - 1]
    # refused from the length field, before the block arrives
    assert "shorter" in invalid(v2(1, family, block))
    assert "shorter" in invalid(v2(1, family, block)[:16])


def test_v2_tlvs() -> None:
    ssl = bytes([0x01]) + (0).to_bytes(4, "big") + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"CN=x")
    tlvs = (
        tlv(PP2_TYPE_ALPN, b"imap")
        + tlv(PP2_TYPE_NOOP, b"")
        + tlv(PP2_TYPE_AUTHORITY, b"mail.example.org")
        + tlv(PP2_TYPE_SSL, ssl)
        + tlv(PP2_TYPE_NOOP, b"\0" * 5)
        + tlv(0xE0, b"")
    )
    header = v2(1, 0x11, IP4_BLOCK + tlvs)
    result = parsed(header + PAYLOAD)
    assert result.consumed == len(header)
    assert dict(result.info.tlvs) == {
        PP2_TYPE_ALPN: b"imap",
        PP2_TYPE_AUTHORITY: b"mail.example.org",
        PP2_TYPE_SSL: ssl,  # sub-TLVs stay raw
        0xE0: b"",
    }
    assert_every_prefix_needs_more(header)
    with pytest.raises(TypeError):
        result.info.tlvs[1] = b"x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        (b"\x01", "truncated"),
        (b"\x01\x00", "truncated"),
        (b"\x01\x00\x05abcd", "past the end"),
        (tlv(1, b"a") + b"\x02\x00", "truncated"),
        (tlv(1, b"a") + tlv(1, b"b"), "twice"),
        (b"\x02\xff\xff", "past the end"),
    ],
)
def test_v2_malformed_tlv_chain(tail: bytes, words: str) -> None:
    assert words in invalid(v2(1, 0x11, IP4_BLOCK + tail) + PAYLOAD)


def test_v2_crc32c() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0
    header = encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {PP2_TYPE_ALPN: b"h2"}, checksum=True)
    result = parsed(header + PAYLOAD)
    assert set(result.info.tlvs) == {PP2_TYPE_ALPN, PP2_TYPE_CRC32C}
    # any corrupted address or TLV byte is caught (or breaks the structure) ...
    crc_type_at = len(header) - 7
    for index in range(16, len(header)):
        if index == crc_type_at:
            continue
        broken = bytearray(header)
        broken[index] ^= 0x01
        assert isinstance(parse_proxy_header(bytes(broken) + PAYLOAD), Invalid), index
    # ... except turning the checksum TLV into another type, which drops the check
    broken = bytearray(header)
    broken[crc_type_at] = 0xE0
    assert PP2_TYPE_CRC32C not in parsed(bytes(broken)).info.tlvs
    short = v2(1, 0x11, IP4_BLOCK + tlv(PP2_TYPE_CRC32C, b"\0\0\0"))
    assert "4 bytes" in invalid(short)
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {PP2_TYPE_CRC32C: b"abcd"}, checksum=True)


def test_v2_length_limit() -> None:
    big = encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {0xE0: b"x" * (65535 - 12 - 3)})
    assert len(big) == MAX_HEADER
    assert parsed(big + PAYLOAD).consumed == MAX_HEADER
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {0xE0: b"x" * (65535 - 12 - 2)})
    small = parse_proxy_header(big[:16], max_length=4096)
    assert isinstance(small, Invalid) and "4096" in small.reason
    assert parse_proxy_header(big[:16]) == NeedMore(MAX_HEADER)


def test_v2_need_more_minimum() -> None:
    assert parse_proxy_header(b"\r") == NeedMore(16)
    assert parse_proxy_header(V2_SIGNATURE + b"\x21\x11\x00") == NeedMore(16)
    assert parse_proxy_header(v2(1, 0x11, IP4_BLOCK)[:20]) == NeedMore(28)


def test_not_a_proxy_header() -> None:
    for data in (b"a001 LOGIN", b"\x16\x03\x01\x02\x00", b"GET / HTTP/1.1\r\n", b"\x00"):
        assert "PROXY" in invalid(data)


# --- encoders and round trips ----------------------------------------------------------


def test_encoders() -> None:
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    )
    assert encode_v1(None, ("1.2.3.4", 1)) == b"PROXY UNKNOWN\r\n"
    assert encode_v2(("192.168.0.1", 56324), ("10.0.0.2", 443)) == v2(1, 0x11, IP4_BLOCK)
    assert encode_v2(None, None, local=True) == v2(0, 0x00, b"")
    assert encode_v2(None, ("1.2.3.4", 1)) == v2(1, 0x00, b"")
    assert encode_v2(("::1", 1), ("::2", 2), [(4, b""), (1, b"a")]) == v2(
        1,
        0x21,
        ipaddress.IPv6Address("::1").packed
        + ipaddress.IPv6Address("::2").packed
        + b"\x00\x01\x00\x02"
        + tlv(4, b"")
        + tlv(1, b"a"),
    )


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (("1.2.3.4", 1), ("::1", 2)),
        (("1.2.3.4", -1), ("5.6.7.8", 2)),
        (("1.2.3.4", 1), ("5.6.7.8", 65536)),
        (("fe80::1%eth0", 1), ("::1", 2)),
        (("not an address", 1), ("::1", 2)),
    ],
)
def test_encoders_refuse_bad_endpoints(src: tuple[str, int], dst: tuple[str, int]) -> None:
    with pytest.raises(ValueError):
        encode_v1(src, dst)
    with pytest.raises(ValueError):
        encode_v2(src, dst)


def test_encode_v2_refuses_bad_tlvs() -> None:
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {256: b""})
    with pytest.raises(ValueError):
        encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), {1: b"x" * 65536})


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
endpoints = st.one_of(
    st.tuples(st.tuples(ipv4, ports), st.tuples(ipv4, ports)),
    st.tuples(st.tuples(ipv6, ports), st.tuples(ipv6, ports)),
)
tlv_maps = st.dictionaries(
    st.integers(0, 255).filter(lambda t: t not in (PP2_TYPE_NOOP, PP2_TYPE_CRC32C)),
    st.binary(max_size=40),
    max_size=6,
)


@given(ends=endpoints, payload=st.binary(max_size=40))
def test_v1_round_trip(ends: tuple[tuple[str, int], tuple[str, int]], payload: bytes) -> None:
    src, dst = ends
    header = encode_v1(src, dst)
    assert len(header) <= 107
    result = parsed(header + payload)
    assert result.consumed == len(header)
    assert result.info == ProxyInfo(1, False, src, dst, {})


@given(ends=endpoints, tlvs=tlv_maps, checksum=st.booleans(), payload=st.binary(max_size=40))
def test_v2_round_trip(
    ends: tuple[tuple[str, int], tuple[str, int]],
    tlvs: dict[int, bytes],
    checksum: bool,
    payload: bytes,
) -> None:
    src, dst = ends
    header = encode_v2(src, dst, tlvs, checksum=checksum)
    result = parsed(header + payload)
    assert result.consumed == len(header)
    expected = dict(tlvs)
    if checksum:
        expected[PP2_TYPE_CRC32C] = header[-4:]
    assert result.info == ProxyInfo(2, False, src, dst, expected)


@given(ends=endpoints, tlvs=tlv_maps, version=st.sampled_from([1, 2]))
def test_every_prefix_of_a_header_needs_more(
    ends: tuple[tuple[str, int], tuple[str, int]], tlvs: dict[int, bytes], version: int
) -> None:
    src, dst = ends
    header = encode_v1(src, dst) if version == 1 else encode_v2(src, dst, tlvs)
    assert_every_prefix_needs_more(header)


# --- trust -----------------------------------------------------------------------------

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("10.1.2.3", True),
        ("11.1.2.3", False),
        ("2001:db8::5", True),
        ("2001:db9::5", False),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 matches the IPv4 network
        ("::ffff:11.1.2.3", False),
        ("::10.1.2.3", False),  # IPv4-compatible is not IPv4-mapped
        ("2001:db8::5%eth0", True),
        ("", False),
        ("not an ip", False),
        ("10.1.2.3/8", False),
    ],
)
def test_is_trusted(peer: str, expected: bool) -> None:
    assert is_trusted(peer, TRUSTED) is expected


def test_nothing_is_trusted_by_an_empty_list() -> None:
    assert not is_trusted("127.0.0.1", [])
