"""Hypothesis fuzzing of the PROXY protocol parser: only the three documented results,
and results that are consistent as a buffer grows byte by byte (what a listener sees)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carteiro.net.proxy_protocol import (
    V2_SIGNATURE,
    Invalid,
    NeedMore,
    Parsed,
    ProxyInfo,
    encode_v1,
    encode_v2,
    parse_proxy_header,
)

Result = Parsed | NeedMore | Invalid


def check_one(data: bytes) -> Result:
    result = parse_proxy_header(data)
    assert isinstance(result, Parsed | NeedMore | Invalid)
    if isinstance(result, NeedMore):
        assert result.minimum > len(data)
    elif isinstance(result, Invalid):
        assert result.reason and "\n" not in result.reason and "\r" not in result.reason
    else:
        assert 15 <= result.consumed <= len(data)
        info = result.info
        assert isinstance(info, ProxyInfo) and info.version in (1, 2)
        if info.local:
            assert info.source is None and info.destination is None and not info.tlvs
        for end in (info.source, info.destination):
            assert end is None or 0 <= end[1] <= 65535
        if info.version == 1:
            assert data[result.consumed - 2 : result.consumed] == b"\r\n"
            assert result.consumed <= 107 and not info.tlvs
    return result


def check_growing(data: bytes) -> None:
    """Feed ``data`` one byte more at a time: NeedMore until decided, then never changed."""
    results = [check_one(data[:cut]) for cut in range(len(data) + 1)]
    decided = next((i for i, r in enumerate(results) if not isinstance(r, NeedMore)), None)
    if decided is None:
        return
    final = results[decided]
    for later in results[decided:]:
        if isinstance(final, Parsed):
            assert later == final
        else:
            assert isinstance(later, Invalid)
    if isinstance(final, Parsed):
        assert final.consumed == decided  # decided exactly when the header is complete
        for earlier in results[:decided]:
            assert isinstance(earlier, NeedMore) and earlier.minimum <= final.consumed


PREFIXES = st.sampled_from([b"", b"PROXY ", V2_SIGNATURE, V2_SIGNATURE + b"\x21", b"\r\n"])


@given(prefix=PREFIXES, data=st.binary(max_size=300))
def test_random_bytes(prefix: bytes, data: bytes) -> None:
    check_growing(prefix + data)


V1_TOKENS = st.sampled_from(
    [
        "TCP4",
        "TCP6",
        "UNKNOWN",
        "1.2.3.4",
        "255.255.255.255",
        "01.2.3.4",
        "::1",
        "::ffff:1.2.3.4",
        "fe80::1%lo",
        "0",
        "65535",
        "65536",
        "007",
        "",
        "\r",
        "\r\n",
        "x",
    ]
)


@given(
    tokens=st.lists(V1_TOKENS, max_size=7),
    separators=st.lists(st.sampled_from([" ", "  ", "\t", ""]), min_size=7, max_size=7),
    end=st.sampled_from(["\r\n", "\n", "", "\r\n\r\n"]),
)
def test_v1_token_soup(tokens: list[str], separators: list[str], end: str) -> None:
    line = "PROXY " + "".join(t + s for t, s in zip(tokens, separators, strict=False))
    check_growing(line.encode() + end.encode())


ports = st.integers(0, 65535)
endpoints = st.one_of(
    st.tuples(
        st.tuples(st.ip_addresses(v=4).map(str), ports),
        st.tuples(st.ip_addresses(v=4).map(str), ports),
    ),
    st.tuples(
        st.tuples(st.ip_addresses(v=6).map(str), ports),
        st.tuples(st.ip_addresses(v=6).map(str), ports),
    ),
)


@st.composite
def valid_headers(draw: st.DrawFn) -> bytes:
    src, dst = draw(endpoints)
    kind = draw(st.sampled_from(["v1", "v1-unknown", "v2", "v2-local"]))
    if kind == "v1":
        return encode_v1(src, dst)
    if kind == "v1-unknown":
        return encode_v1(None, None)
    tlvs = draw(
        st.lists(
            st.tuples(st.integers(0, 255).filter(lambda t: t != 3), st.binary(max_size=20)),
            max_size=4,
        )
    )
    if kind == "v2-local":
        return encode_v2(None, None, tlvs, local=True)
    return encode_v2(src, dst, tlvs, checksum=draw(st.booleans()))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_headers()) + draw(st.binary(max_size=20)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete" and data:
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@given(data=mutated())
def test_mutated_valid_headers(data: bytes) -> None:
    check_growing(data)


@given(header=valid_headers(), payload=st.binary(max_size=30))
def test_valid_headers_grow_consistently(header: bytes, payload: bytes) -> None:
    # duplicate TLV types make a v2 header invalid, otherwise the header parses exactly
    result = parse_proxy_header(header + payload)
    if isinstance(result, Parsed):
        assert result.consumed == len(header)
    else:
        assert isinstance(result, Invalid) and "twice" in result.reason
    check_growing(header + payload)
