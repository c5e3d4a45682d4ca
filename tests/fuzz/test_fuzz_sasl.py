"""Hypothesis drives every SASL mechanism through every reachable state with arbitrary,
mutated and valid client messages and arbitrary verdicts: only documented events come
out, exchanges end, and Success needs a favourable verdict (or, for SCRAM, the
password)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carteiro.auth.sasl import (
    Challenge,
    CheckPassword,
    CheckToken,
    Event,
    Failure,
    LookupScram,
    MechanismOptions,
    PasswordVerdict,
    Success,
    TokenVerdict,
    Verdict,
    available,
    create,
    scram_credentials,
)
from carteiro.auth.sasl.base import parse_gs2_header, unescape_saslname
from carteiro.auth.sasl.oauth import BearerRequest, parse_oauthbearer, parse_xoauth2
from carteiro.auth.sasl.plain import parse_plain

PASSWORD = "correct horse"
CB = {"tls-server-end-point": b"\x11" * 32, "tls-exporter": b"\x22" * 32}
OPTIONS = MechanismOptions(tls=True, channel_bindings=CB, allow_plaintext=False, oauth=True)
CREDS = dataclasses.replace(scram_credentials(PASSWORD), authcid="tim")
REASONS = {
    "malformed",
    "cancelled",
    "credentials",
    "authorization",
    "channel-binding",
    "unavailable",
}
EVENTS = (Challenge, CheckPassword, LookupScram, CheckToken, Success, Failure)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ARBITRARY = st.binary(max_size=200)


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes flipped, inserted or removed, or truncated."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data)))
        byte = draw(st.sampled_from([0, 1, ord(","), ord("="), 0xFF, 0xC3, ord("a")]))
        if op == "flip" and at < len(data):
            data[at] = byte
        elif op == "insert":
            data.insert(at, byte)
        elif op == "delete" and at < len(data):
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def some(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """Mostly valid messages (to reach the later states), else mutated or random ones."""
    choice = draw(st.integers(0, 9))
    if choice < 6:
        return draw(valid)
    return draw(valid.flatmap(mutated) if choice < 8 else ARBITRARY)


TEXT = st.text(max_size=12)
NAME = st.sampled_from(["tim", "a,b=c", "j\u00f6", "", "I\u00adX", "\x07"])


class Client:
    """Builds plausible client messages for one mechanism, remembering SCRAM context."""

    def __init__(self, mechanism: str, draw: st.DrawFn) -> None:
        self.mechanism = mechanism
        self.draw = draw
        self.header = b"n,,"
        self.bare = "n=tim,r=fuzznonce"
        self.proved = False  # the last client-final carried the right password's proof

    def message(self, last: Event | None) -> bytes:
        return self.draw(self._valid(last))

    def _valid(self, last: Event | None) -> st.SearchStrategy[bytes]:
        name = self.mechanism
        if name == "PLAIN":
            parts = st.tuples(TEXT, NAME, TEXT)
            return some(parts.map(lambda p: "\x00".join(p).encode("utf-8", "surrogatepass")))
        if name == "LOGIN":
            return some(st.one_of(NAME, TEXT).map(lambda t: t.encode("utf-8", "surrogatepass")))
        if name in ("OAUTHBEARER", "XOAUTH2"):
            if isinstance(last, Challenge) and last.data:  # the reply to the error JSON
                return some(st.sampled_from([b"\x01", b""]))
            token = st.sampled_from(["abc", "a-b.c~d+e/f==", "bad token", ""])
            user = NAME.map(lambda u: u.replace("=", "=3D").replace(",", "=2C"))
            if name == "OAUTHBEARER":
                build = st.tuples(st.sampled_from(["n", "y", "p=tls-unique"]), user, token).map(
                    lambda t: (
                        f"{t[0]},{'a=' + t[1] if t[1] else ''},\x01host=h\x01"
                        f"auth=Bearer {t[2]}\x01\x01".encode()
                    )
                )
            else:
                build = st.tuples(NAME, token).map(
                    lambda t: f"user={t[0]}\x01auth=Bearer {t[1]}\x01\x01".encode()
                )
            return some(build)
        return self._scram(last)

    def _scram(self, last: Event | None) -> st.SearchStrategy[bytes]:
        if isinstance(last, Challenge) and last.data.startswith(b"r="):
            return self._scram_final(last.data.decode())
        header = self.draw(
            st.sampled_from(
                [b"n,,", b"y,,", b"p=tls-server-end-point,,", b"p=tls-exporter,,", b"n,a=boss,"]
            )
        )
        user = self.draw(NAME).replace("=", "=3D").replace(",", "=2C")
        self.header = header
        self.bare = f"n={user},r={self.draw(st.sampled_from(['abc', 'x!y', 'n0nce']))}"
        return some(st.just(header + self.bare.encode("utf-8", "surrogatepass")))

    def _scram_final(self, server_first: str) -> st.SearchStrategy[bytes]:
        """A client-final message, with the right proof when ``honest`` is drawn."""
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        binding = CB.get(self.header[2:-2].decode(), b"") if self.header[:1] == b"p" else b""
        without = f"c={base64.b64encode(self.header + binding).decode()},r={attrs['r']}"
        if self.draw(st.integers(0, 3)) < 3:
            password = self.draw(st.sampled_from([PASSWORD, PASSWORD, PASSWORD, "wrong"]))
            salted = hashlib.pbkdf2_hmac(
                "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
            )
            key = hmac.digest(salted, b"Client Key", "sha256")
            auth = f"{self.bare},{server_first},{without}".encode()
            sig = hmac.digest(hashlib.sha256(key).digest(), auth, "sha256")
            proof = bytes(a ^ b for a, b in zip(key, sig, strict=True))
            self.proved = password == PASSWORD
        else:
            self.proved = False
            proof = self.draw(st.binary(max_size=40))
        return some(st.just(f"{without},p={base64.b64encode(proof).decode()}".encode()))


def verdicts(event: Event) -> st.SearchStrategy[Verdict]:
    if isinstance(event, CheckPassword):
        return st.builds(
            PasswordVerdict, st.booleans(), st.sampled_from(["", "canon"]), st.booleans()
        )
    if isinstance(event, LookupScram):
        return st.sampled_from(
            [
                None,
                CREDS,
                dataclasses.replace(CREDS, authzid_allowed=False),
                dataclasses.replace(CREDS, authcid=""),
                dataclasses.replace(CREDS, salt=b"short"),
            ]
        )
    assert isinstance(event, CheckToken)
    return st.builds(
        TokenVerdict,
        st.booleans(),
        st.sampled_from(["", "tim"]),
        st.sampled_from([b"", b'{"status":"invalid_token"}']),
    )


def check(event: Event, mechanism: str) -> None:
    assert isinstance(event, EVENTS), event
    if isinstance(event, Failure):
        assert event.reason in REASONS
        assert event.message and event.message.isascii() and event.message.isprintable()
    elif isinstance(event, Success):
        assert event.authcid
        assert (event.final is not None) == mechanism.startswith("SCRAM")


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("mechanism", available(OPTIONS))
def test_mechanisms_take_any_input(mechanism: str, data: st.DataObject) -> None:
    mech = create(mechanism, OPTIONS)
    assert mech is not None
    client = Client(mechanism, data.draw)
    kind = data.draw(st.sampled_from(["absent", "empty", "message"]))
    initial = client.message(None) if kind == "message" else b"" if kind == "empty" else None
    event = mech.start(initial)
    favourable = False
    for _ in range(6):
        check(event, mechanism)
        if isinstance(event, Challenge):
            if data.draw(st.integers(0, 19)) == 0:
                event = mech.cancel()
                assert event.reason == "cancelled"
            else:
                event = mech.respond(client.message(event))
        elif isinstance(event, CheckPassword | LookupScram | CheckToken):
            verdict = data.draw(verdicts(event))
            favourable = getattr(verdict, "ok", verdict is not None)
            event = mech.resolve(verdict)
        else:
            break
    check(event, mechanism)
    assert mech.done and isinstance(event, Success | Failure), "the exchange must end"
    if isinstance(event, Success):
        assert favourable
        if mechanism.startswith("SCRAM"):  # only the password's proof, only bound when advertised
            assert client.proved
            assert client.header.startswith(b"p=" if mechanism.endswith("PLUS") else b"n,")


@FUZZ
@given(ARBITRARY)
def test_parsers_take_any_bytes(message: bytes) -> None:
    assert isinstance(parse_plain(message), CheckPassword | Failure)
    assert isinstance(parse_oauthbearer(message), BearerRequest | Failure)
    assert isinstance(parse_xoauth2(message), BearerRequest | Failure)


def check_gs2(text: str) -> None:
    parsed = parse_gs2_header(text)
    if parsed is not None:
        header, rest = parsed
        assert header.text + rest == text and header.text.endswith(",")
    unescaped = unescape_saslname(text)
    if unescaped is not None:
        assert unescaped.replace("=", "=3D").replace(",", "=2C") == text


@FUZZ
@given(st.text(max_size=60))
def test_gs2_parsing_takes_any_text(text: str) -> None:
    check_gs2(text)


@FUZZ
@given(st.lists(st.sampled_from(["n", "y", "p=", "a=", ",", "=2C", "=3D", "=", "x", "\x00"])))
def test_gs2_near_misses(pieces: list[str]) -> None:
    check_gs2("".join(pieces))
