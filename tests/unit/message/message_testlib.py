"""Helpers shared by the message-layer tests: the sample mbox and a small reader of IMAP
response data (NIL, numbers, quoted strings, literals, lists) to check the grammar."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample-100.mbox"

Value = None | int | bytes | list["Value"]


@cache
def sample_messages() -> tuple[bytes, ...]:
    data = SAMPLE.read_bytes()
    chunks = re.split(rb"(?m)^From [^\n]*\n", data)
    return tuple(c for c in chunks if c)


class SexprError(ValueError):
    pass


def parse_sexpr(data: bytes) -> Value:
    """Parse one IMAP value; raises SexprError on anything not in the grammar."""
    value, pos = _value(data, 0)
    if pos != len(data):
        raise SexprError(f"trailing data at {pos}: {data[pos : pos + 20]!r}")
    return value


def _value(data: bytes, pos: int) -> tuple[Value, int]:
    if data.startswith(b"NIL", pos):
        return None, pos + 3
    c = data[pos : pos + 1]
    if c == b"(":
        items: list[Value] = []
        pos += 1
        while True:
            if data[pos : pos + 1] == b")":
                return items, pos + 1
            if items and data[pos : pos + 1] == b" ":
                pos += 1
            item, pos = _value(data, pos)
            items.append(item)
    if c == b'"':
        out = bytearray()
        pos += 1
        while True:
            ch = data[pos : pos + 1]
            if not ch or ch in b"\r\n":
                raise SexprError("bad quoted string")
            if ch == b"\\":
                nxt = data[pos + 1 : pos + 2]
                if nxt not in (b"\\", b'"'):
                    raise SexprError("bad escape")
                out += nxt
                pos += 2
                continue
            if ch == b'"':
                return bytes(out), pos + 1
            if ch[0] > 0x7F:
                raise SexprError("8-bit in quoted string")
            out += ch
            pos += 1
    if c == b"{":
        m = re.compile(rb"\{(\d+)\}\r\n").match(data, pos)
        if m is None:
            raise SexprError("bad literal")
        n = int(m.group(1))
        return data[m.end() : m.end() + n], m.end() + n
    m = re.compile(rb"\d+").match(data, pos)
    if m is None:
        raise SexprError(f"unexpected {data[pos : pos + 20]!r} at {pos}")
    return int(m.group()), m.end()


def check_address_list(v: Value) -> None:
    if v is None:
        return
    assert isinstance(v, list) and v
    for addr in v:
        assert isinstance(addr, list) and len(addr) == 4
        for f in addr:
            assert f is None or isinstance(f, bytes)


def check_envelope(v: Value) -> None:
    assert isinstance(v, list) and len(v) == 10
    for i in (0, 1, 8, 9):
        assert v[i] is None or isinstance(v[i], bytes)
    for i in range(2, 8):
        check_address_list(v[i])


def check_body(v: Value, *, ext: bool) -> None:
    """Check one ``body`` against RFC 9051 §9 (body / body-type-1part / -mpart)."""
    assert isinstance(v, list) and v
    if isinstance(v[0], list):  # multipart
        nkids = 0
        while nkids < len(v) and isinstance(v[nkids], list):
            nkids += 1
        assert nkids >= 1
        for kid in v[:nkids]:
            check_body(kid, ext=ext)
        rest = v[nkids:]
        assert isinstance(rest[0], bytes)  # subtype
        if ext:
            assert len(rest) == 5, rest  # subtype param dsp lang loc
            _check_params(rest[1])
            _check_dsp(rest[2])
        else:
            assert len(rest) == 1
        return
    mtype, subtype = v[0], v[1]
    assert isinstance(mtype, bytes) and isinstance(subtype, bytes)
    _check_params(v[2])
    assert v[3] is None or isinstance(v[3], bytes)
    assert v[4] is None or isinstance(v[4], bytes)
    assert isinstance(v[5], bytes)
    assert isinstance(v[6], int)
    n = 7
    if (mtype, subtype) in ((b"MESSAGE", b"RFC822"), (b"MESSAGE", b"GLOBAL")):
        check_envelope(v[7])
        check_body(v[8], ext=ext)
        assert isinstance(v[9], int)
        n = 10
    elif mtype == b"TEXT":
        assert isinstance(v[7], int)
        n = 8
    if ext:
        assert len(v) == n + 4, v
        assert v[n] is None or isinstance(v[n], bytes)
        _check_dsp(v[n + 1])
    else:
        assert len(v) == n, v


def _check_params(p: Value) -> None:
    if p is None:
        return
    assert isinstance(p, list) and p and len(p) % 2 == 0
    assert all(isinstance(x, bytes) for x in p)


def _check_dsp(d: Value) -> None:
    if d is None:
        return
    assert isinstance(d, list) and len(d) == 2 and isinstance(d[0], bytes)
    _check_params(d[1])
