"""TOTP/HOTP against the RFC test vectors, verification rules, URIs and terminal QR codes."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from carteiro.auth.totp import (
    hotp,
    new_secret,
    provisioning_uri,
    terminal_qr,
    totp,
    verify,
)

# RFC 6238 appendix B uses a different ASCII seed length per algorithm.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
# RFC 4226 appendix D, secret "12345678901234567890", counters 0..9
RFC4226 = [
    "755224",
    "287082",
    "359152",
    "969429",
    "338314",
    "254676",
    "287922",
    "162583",
    "399871",
    "520489",
]


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


SECRET = b32(SEEDS["SHA1"])


@pytest.mark.parametrize(("at", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_vectors(at: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, code in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        secret = b32(SEEDS[algorithm])
        assert totp(secret, at, digits=8, algorithm=algorithm) == code
        assert totp(secret, float(at), digits=8, algorithm=algorithm) == code
        step = verify(secret, code, at, digits=8, algorithm=algorithm)
        assert step == at // 30


@pytest.mark.parametrize(("counter", "code"), list(enumerate(RFC4226)))
def test_rfc4226_vectors(counter: int, code: str) -> None:
    assert hotp(SECRET, counter) == code


def test_algorithm_name_is_case_insensitive_and_unknown_ones_are_refused() -> None:
    assert totp(SECRET, 59, digits=8, algorithm="sha1") == "94287082"
    with pytest.raises(ValueError, match="algorithm"):
        hotp(SECRET, 0, algorithm="MD5")


def test_new_secret_is_160_bits_of_unpadded_base32() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32 and "=" not in secret
        assert len(base64.b32decode(secret)) == 20


def test_secret_spelling_is_tolerated() -> None:
    # lower case, grouping spaces and explicit padding all name the same key
    secret = b32(b"\x01\x02\x03\x04\x05")
    assert len(secret) == 8
    spaced = " ".join(secret[i : i + 4] for i in range(0, 8, 4)).lower()
    assert hotp(spaced, 7) == hotp(secret, 7)
    odd = b32(b"abc")  # 5 characters, needs padding to decode
    assert hotp(odd, 1) == hotp(odd + "===", 1)


@pytest.mark.parametrize("secret", ["", "   ", "1234", "ABC!DEFG", "A", "ÄBCDEFGH", "===="])
def test_malformed_secret(secret: str) -> None:
    assert verify(secret, "123456", 59) is None
    with pytest.raises(ValueError):
        hotp(secret, 0)


def test_hotp_argument_checks() -> None:
    with pytest.raises(ValueError):
        hotp(SECRET, -1)
    with pytest.raises(ValueError):
        hotp(SECRET, 2**64)
    assert len(hotp(SECRET, 2**64 - 1)) == 6
    for digits in (5, 11):
        with pytest.raises(ValueError):
            hotp(SECRET, 0, digits=digits)
    assert len(hotp(SECRET, 0, digits=10)) == 10
    with pytest.raises(ValueError):
        totp(SECRET, 59, step=0)
    with pytest.raises(ValueError):
        totp(SECRET, float("nan"))


def test_totp_step_boundaries() -> None:
    assert totp(SECRET, 0) == hotp(SECRET, 0)
    assert totp(SECRET, 29.999) == hotp(SECRET, 0)
    assert totp(SECRET, 30) == hotp(SECRET, 1)
    assert totp(SECRET, 119, step=60) == hotp(SECRET, 1)


def test_window() -> None:
    now = 1_000_000.0
    t = int(now // 30)
    for offset in (-1, 0, 1):
        assert verify(SECRET, hotp(SECRET, t + offset), now) == t + offset
    for offset in (-3, -2, 2, 3):
        assert verify(SECRET, hotp(SECRET, t + offset), now) is None
        assert verify(SECRET, hotp(SECRET, t + offset), now, window=3) == t + offset
    assert verify(SECRET, hotp(SECRET, t + 1), now, window=0) is None
    assert verify(SECRET, hotp(SECRET, t), now, window=0) == t
    with pytest.raises(ValueError):
        verify(SECRET, "123456", now, window=-1)


def test_window_does_not_reach_before_the_epoch() -> None:
    assert verify(SECRET, hotp(SECRET, 0), 10.0, window=2) == 0


def test_replay_is_refused_through_last_step() -> None:
    now = 1_000_000.0
    t = int(now // 30)
    code = hotp(SECRET, t)
    step = verify(SECRET, code, now)
    assert step == t
    assert verify(SECRET, code, now, last_step=step) is None
    assert verify(SECRET, code, now + 5, last_step=step) is None
    # an older code still inside the window cannot be used after a newer one
    assert verify(SECRET, hotp(SECRET, t - 1), now, last_step=step) is None
    # the next step's code is fine
    assert verify(SECRET, hotp(SECRET, t + 1), now + 30, last_step=step) == t + 1
    assert verify(SECRET, hotp(SECRET, t + 1), now, last_step=step) == t + 1


def test_colliding_codes_resolve_to_the_nearest_step() -> None:
    # a wide window holds repeated 6-digit codes (birthday bound): the step nearest the
    # current one must win, and an equally distant tie goes to the earlier step
    now, window = 100_000 * 30.0, 3000
    t = int(now // 30)
    seen: dict[str, list[int]] = {}
    for s in range(t - window, t + window + 1):
        seen.setdefault(hotp(SECRET, s), []).append(s)
    repeated = {code: steps for code, steps in seen.items() if len(steps) > 1}
    assert repeated  # ~18 expected pairs; deterministic for this secret
    for code, steps in repeated.items():
        nearest = min(steps, key=lambda s: (abs(s - t), s))
        assert verify(SECRET, code, now, window=window) == nearest
        # once the nearest is used, a later duplicate is still acceptable, an earlier not
        later = [s for s in steps if s > nearest]
        expected = min(later, key=lambda s: (abs(s - t), s)) if later else None
        assert verify(SECRET, code, now, window=window, last_step=nearest) == expected


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "12345a", " 12345", "12 345", "١٢٣٤٥٦", "+12345", "-12345", "12345\n"],
)
def test_malformed_codes(code: str) -> None:
    assert verify(SECRET, code, 59) is None


def test_non_string_code_is_refused() -> None:
    assert verify(SECRET, 287082, 59) is None  # type: ignore[arg-type]
    assert verify(None, "287082", 59) is None  # type: ignore[arg-type]


@given(code=st.text(max_size=12), at=st.floats(min_value=0, max_value=4e10))
def test_verify_never_raises_on_user_input(code: str, at: float) -> None:
    result = verify(SECRET, code, at)
    assert result is None or (code == hotp(SECRET, result) and abs(result - int(at // 30)) <= 1)


@given(secret=st.text(max_size=40), code=st.text(max_size=8))
def test_verify_never_raises_on_any_secret(secret: str, code: str) -> None:
    assert verify(secret, code, 1e9) in (None, *range(33333332, 33333335))


def test_eight_digit_codes_keep_leading_zeros() -> None:
    assert totp(SECRET, 1111111109, digits=8) == "07081804"
    assert verify(SECRET, "07081804", 1111111109, digits=8) == 1111111109 // 30
    assert verify(SECRET, "7081804", 1111111109, digits=8) is None


def test_provisioning_uri_format() -> None:
    uri = provisioning_uri(SECRET.lower(), "alice@example.org")
    assert uri == (
        "otpauth://totp/Carteiro:alice@example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        "&issuer=Carteiro&algorithm=SHA1&digits=6&period=30"
    )


def test_provisioning_uri_encodes_special_characters() -> None:
    account = "José Ñ+x&y=z?#/%@ex.org"
    uri = provisioning_uri(SECRET, account, issuer="Mail & Co")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    assert " " not in uri and "+" not in uri and "#" not in uri
    assert parts.path == "/Mail%20%26%20Co:Jos%C3%A9%20%C3%91%2Bx%26y%3Dz%3F%23%2F%25@ex.org"
    issuer, _, name = unquote(parts.path[1:]).partition(":")
    assert (issuer, name) == ("Mail & Co", account)
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [SECRET],
        "issuer": ["Mail & Co"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


@pytest.mark.parametrize(
    ("secret", "account", "issuer"),
    [("!!", "a@b", "X"), (SECRET, "a:b", "X"), (SECRET, "a@b", "X:Y"), (SECRET, "", "X")],
)
def test_provisioning_uri_refuses_bad_input(secret: str, account: str, issuer: str) -> None:
    with pytest.raises(ValueError):
        provisioning_uri(secret, account, issuer=issuer)


INK = {" ": (False, False), "▀": (True, False), "▄": (False, True), "█": (True, True)}


def decode_rendering(text: str, *, light_background: bool) -> list[list[bool]]:
    """Rows of dark modules read back from the half-block rendering."""
    rows: list[list[bool]] = []
    for line in text.split("\n"):
        pairs = [INK[ch] for ch in line]
        rows.append([top == light_background for top, _ in pairs])
        rows.append([bottom == light_background for _, bottom in pairs])
    return rows


@pytest.mark.parametrize("light_background", [False, True])
@pytest.mark.parametrize(
    "data", ["x", provisioning_uri(SECRET, "alice@example.org"), "otpauth://" + "y" * 300]
)
def test_terminal_qr_round_trips_segno_matrix(data: str, light_background: bool) -> None:
    text = terminal_qr(data, light_background=light_background)
    qr = segno.make_qr(data, error="L")
    expected = [[bool(m) for m in row] for row in qr.matrix]
    size = len(expected)
    assert qr.symbol_size(border=0) == (size, size)
    lines = text.split("\n")
    width = size + 8
    assert len(lines) == (width + 1) // 2
    assert all(len(line) == width for line in lines)
    assert set(text) <= set(INK) | {"\n"}
    modules = decode_rendering(text, light_background=light_background)
    assert len(modules) == width + 1  # odd symbol + quiet zone: one padding row
    assert not any(modules[-1])  # the padding row is light
    # quiet zone of four light modules all around
    for row in modules[:4] + modules[-5:]:
        assert not any(row)
    for row in modules:
        assert not any(row[:4]) and not any(row[-4:])
    inner = [row[4:-4] for row in modules[4 : 4 + size]]
    assert inner == expected


def test_terminal_qr_default_inks_light_modules() -> None:
    text = terminal_qr("x")
    # the quiet zone is light, so on a dark terminal its rows are full blocks
    first = text.split("\n")[0]
    assert set(first) == {"█"}
    assert set(terminal_qr("x", light_background=True).split("\n")[0]) == {" "}
