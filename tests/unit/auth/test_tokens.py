"""TokenValidator: signatures, claims, key selection, JWKS sources and configuration."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from carteiro.auth import jwks
from carteiro.auth.jwks import check_url, parse_jwks
from carteiro.auth.tokens import IssuerConfig, TokenResult, TokenValidator

ISS = "https://idp.example.org/realms/mail"
AUD = "carteiro"
NOW = 1_800_000_000.0

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def jwk(key: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    data.update(extra)
    return data


def jwks_bytes(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "248289761001",
        "email": "Alice@Example.ORG",
        "preferred_username": "Alice",
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "jti": "tok-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa1", **over: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**over), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def standard_jwks() -> bytes:
    return jwks_bytes(jwk(RSA_KEY, "rsa1"), jwk(EC_KEY, "ec1"), jwk(ED_KEY, "ed1"))


def make(
    tmp_path: Path, data: bytes | None = None, clock: Clock | None = None, **config: Any
) -> TokenValidator:
    path = tmp_path / "jwks.json"
    path.write_bytes(standard_jwks() if data is None else data)
    issuer = IssuerConfig(**{"issuer": ISS, "audience": AUD, "jwks_file": path, **config})
    return TokenValidator([issuer], clock=clock or Clock())


def check(validator: TokenValidator, token: str) -> TokenResult:
    return asyncio.run(validator.validate(token))


# --- accepted tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [(RSA_KEY, "RS256", "rsa1"), (EC_KEY, "ES256", "ec1"), (ED_KEY, "EdDSA", "ed1")],
)
def test_valid_tokens_are_accepted(tmp_path: Path, key: Any, alg: str, kid: str) -> None:
    result = check(make(tmp_path), mint(key, alg, kid))
    assert result == TokenResult(
        ok=True,
        account="alice@example.org",
        issuer=ISS,
        token_id="tok-1",
        expires_at=NOW + 300,
    )


def test_ps256_with_the_same_rsa_key(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(RSA_KEY, "PS256", "rsa1")).ok


@pytest.mark.parametrize(
    ("claim", "account"), [("preferred_username", "Alice"), ("sub", "248289761001")]
)
def test_custom_username_claim(tmp_path: Path, claim: str, account: str) -> None:
    result = check(make(tmp_path, username_claim=claim), mint())
    assert result.ok and result.account == account


def test_email_shaped_account_in_another_claim_is_lower_cased(tmp_path: Path) -> None:
    token = mint(preferred_username="Bob@Mail.Example")
    result = check(make(tmp_path, username_claim="preferred_username"), token)
    assert result.account == "bob@mail.example"


def test_audience_lists_on_either_side(tmp_path: Path) -> None:
    validator = make(tmp_path, audience=("other", AUD))
    assert check(validator, mint()).ok
    assert check(validator, mint(aud=["x", "other"])).ok
    assert check(validator, mint(aud=["x", "y"])).error == "audience"


def test_token_without_kid_uses_the_only_suitable_key(tmp_path: Path) -> None:
    # the set holds one RSA key, so an RS256 token without kid is unambiguous
    assert check(make(tmp_path), mint(kid=None)).ok
    two_rsa = jwks_bytes(jwk(RSA_KEY, "rsa1"), jwk(RSA_KEY2, "rsa2"))
    assert check(make(tmp_path, two_rsa), mint(kid=None)).error == "unknown-key"


def test_jti_is_optional(tmp_path: Path) -> None:
    result = check(make(tmp_path), mint(jti=None))
    assert result.ok and result.token_id == ""


# --- time claims, with an injected clock ---------------------------------------------------


@pytest.mark.parametrize(
    ("leeway", "offset", "error"),
    [(60, 59, ""), (60, 60, "expired"), (0, -1, ""), (0, 0, "expired"), (60, 3600, "expired")],
)
def test_expiry_and_leeway(tmp_path: Path, leeway: int, offset: int, error: str) -> None:
    exp = int(NOW)
    clock = Clock(exp + offset)
    result = check(make(tmp_path, clock=clock, leeway=leeway), mint(exp=exp, iat=exp - 600))
    assert result.error == error
    assert result.ok is (error == "")
    assert result.expires_at == exp


@pytest.mark.parametrize(("nbf", "ok"), [(NOW + 60, True), (NOW + 61, False), (NOW - 5, True)])
def test_not_before(tmp_path: Path, nbf: float, ok: bool) -> None:
    result = check(make(tmp_path), mint(nbf=int(nbf)))
    assert result.ok is ok
    assert result.error == ("" if ok else "not-yet-valid")


def test_issued_in_the_future(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(iat=int(NOW) + 61)).error == "not-yet-valid"
    assert check(make(tmp_path), mint(iat=int(NOW) + 60)).ok


def test_missing_exp_is_refused(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(exp=None)).error == "claim-missing"


@pytest.mark.parametrize(
    "claim", [{"exp": "soon"}, {"exp": True}, {"nbf": "x"}, {"iat": [1]}, {"exp": 1e400}]
)
def test_non_numeric_times_are_malformed(tmp_path: Path, claim: dict[str, Any]) -> None:
    token = forge(
        {"alg": "RS256", "kid": "rsa1", "typ": "JWT"},
        {**claims(), **claim},
        lambda data: RSA_KEY.sign(data, _pkcs1(), _sha256()),
    )
    result = check(make(tmp_path), token)
    assert not result.ok and result.error == "malformed"


def _pkcs1() -> Any:
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15()


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


# --- refused tokens ------------------------------------------------------------------------


def test_wrong_audience(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(aud="webmail")).error == "audience"
    assert check(make(tmp_path), mint(aud=None)).error == "audience"


def test_unknown_issuer(tmp_path: Path) -> None:
    result = check(make(tmp_path), mint(iss="https://evil.example"))
    assert result == TokenResult(ok=False, error="issuer")
    assert check(make(tmp_path), mint(iss=None)).error == "issuer"
    assert check(make(tmp_path), mint(iss=ISS + "/")).error == "issuer"  # exact match only


def test_token_of_one_issuer_claiming_another(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_bytes(jwks_bytes(jwk(RSA_KEY2, "b1")))
    mine = tmp_path / "mine.json"
    mine.write_bytes(jwks_bytes(jwk(RSA_KEY, "a1")))
    validator = TokenValidator(
        [
            IssuerConfig("https://a.example", AUD, jwks_file=mine),
            IssuerConfig("https://b.example", AUD, jwks_file=other),
        ],
        clock=Clock(),
    )
    assert check(validator, mint(RSA_KEY2, kid="b1", iss="https://b.example")).ok
    # signed by b's key but claiming a: a's JWKS is the only one consulted
    assert check(validator, mint(RSA_KEY2, kid="b1", iss="https://a.example")).error == (
        "unknown-key"
    )
    result = check(validator, mint(RSA_KEY2, kid="a1", iss="https://a.example"))
    assert (result.error, result.issuer) == ("signature", "https://a.example")


def test_signed_by_another_key(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(RSA_KEY2, kid="rsa1")).error == "signature"
    other_ec = ec.generate_private_key(ec.SECP256R1())
    assert check(make(tmp_path), mint(other_ec, "ES256", "ec1")).error == "signature"


def test_tampered_payload(tmp_path: Path) -> None:
    header, _, signature = mint().split(".")
    payload = b64(json.dumps(claims(email="mallory@example.org")).encode())
    assert check(make(tmp_path), f"{header}.{payload}.{signature}").error == "signature"


def test_unknown_kid(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(kid="rsa9")).error == "unknown-key"


def test_alg_none_is_refused(tmp_path: Path) -> None:
    for alg in ("none", "None", "NONE", ""):
        token = forge({"alg": alg, "kid": "rsa1"}, claims(), lambda data: b"")
        assert check(make(tmp_path), token).error == "algorithm"
    token = forge({"alg": "none"}, claims(), lambda data: b"")
    assert check(make(tmp_path), token[: token.rindex(".") + 1]).error == "algorithm"


def test_hs256_alg_confusion_is_refused(tmp_path: Path) -> None:
    """The classic attack: HMAC with the issuer's *public* key (PEM or JWK bytes) as secret."""
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, der, json.dumps(jwk(RSA_KEY, "rsa1")).encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            for kid in ("rsa1", None):
                header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}

                def sign(data: bytes, secret: bytes = secret, digest: Any = digest) -> bytes:
                    return hmac.new(secret, data, digest).digest()

                result = check(make(tmp_path), forge(header, claims(), sign))
                assert not result.ok and result.error == "algorithm"


def test_hmac_algorithms_cannot_be_configured(tmp_path: Path) -> None:
    for alg in ("HS256", "none", "RS1"):
        with pytest.raises(ValueError, match="not allowed"):
            IssuerConfig(ISS, AUD, jwks_file=tmp_path / "x", algorithms=(alg,))


def test_symmetric_keys_in_the_jwks_are_ignored(tmp_path: Path) -> None:
    secret = b"s" * 32
    octet = {"kty": "oct", "kid": "hmac", "k": b64(secret), "alg": "HS256"}
    validator = make(tmp_path, jwks_bytes(octet, jwk(RSA_KEY, "rsa1")))
    token = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": "hmac"})
    assert check(validator, token).error == "algorithm"
    assert check(validator, mint()).ok


def test_algorithm_must_match_the_key_type(tmp_path: Path) -> None:
    # an ES256 token naming the RSA key's kid, and an RS256 token naming the EC key's kid
    assert check(make(tmp_path), mint(EC_KEY, "ES256", "rsa1")).error == "algorithm"
    assert check(make(tmp_path), mint(RSA_KEY, "RS256", "ec1")).error == "algorithm"


def test_algorithm_must_be_in_the_allow_list(tmp_path: Path) -> None:
    validator = make(tmp_path, algorithms=("RS256",))
    assert check(validator, mint()).ok
    assert check(validator, mint(EC_KEY, "ES256", "ec1")).error == "algorithm"
    assert check(validator, mint(RSA_KEY, "PS256", "rsa1")).error == "algorithm"


def test_jwk_alg_pins_the_algorithm(tmp_path: Path) -> None:
    validator = make(tmp_path, jwks_bytes(jwk(RSA_KEY, "rsa1", alg="RS256")))
    assert check(validator, mint()).ok
    assert check(validator, mint(RSA_KEY, "PS256")).error == "algorithm"


@pytest.mark.parametrize("claim", ["email", "preferred_username", "sub"])
def test_missing_username_claim(tmp_path: Path, claim: str) -> None:
    validator = make(tmp_path, username_claim=claim)
    absent: dict[str, Any] = {claim: None}
    empty: dict[str, Any] = {claim: ""}
    assert check(validator, mint(**absent)).error == "claim-missing"
    assert check(validator, mint(**empty)).error == "claim-missing"


def test_unusable_account_values(tmp_path: Path) -> None:
    for value in ("a b@example.org", "a\n@example.org", "x" * 321):
        assert check(make(tmp_path), mint(email=value)).error == "claim-missing"
    token = forge(
        {"alg": "RS256", "kid": "rsa1"},
        claims(email=["alice@example.org"]),
        lambda data: RSA_KEY.sign(data, _pkcs1(), _sha256()),
    )
    assert check(make(tmp_path), token).error == "claim-missing"


def test_email_the_issuer_marks_unverified_is_refused(tmp_path: Path) -> None:
    assert check(make(tmp_path), mint(email_verified=False)).error == "claim-missing"
    assert check(make(tmp_path), mint(email_verified=True)).ok


@pytest.mark.parametrize(
    ("grant", "ok"),
    [
        ({"scope": "openid mail profile"}, True),
        ({"scp": ["mail"]}, True),
        ({"scp": "openid mail"}, True),
        ({"scope": "openid mailbox"}, False),
        ({"scope": "openid", "scp": ["profile"]}, False),
        ({}, False),
    ],
)
def test_required_scope(tmp_path: Path, grant: dict[str, Any], ok: bool) -> None:
    result = check(make(tmp_path, required_scope="mail"), mint(**grant))
    assert result.ok is ok
    assert result.error == ("" if ok else "scope")
    assert result.issuer == ISS


def test_expired_result_still_names_the_token_for_the_audit(tmp_path: Path) -> None:
    result = check(make(tmp_path), mint(exp=int(NOW) - 3600, iat=int(NOW) - 7200))
    assert (result.ok, result.error, result.token_id) == (False, "expired", "tok-1")


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "....", "eyJ.eyJ.x", "x" * 20000, "é.é.é", "\x00"],
)
def test_malformed_strings(tmp_path: Path, token: str) -> None:
    result = check(make(tmp_path), token)
    assert not result.ok and result.error == "malformed"


def test_non_string_input_is_malformed(tmp_path: Path) -> None:
    assert check(make(tmp_path), b"a.b.c").error == "malformed"  # type: ignore[arg-type]


def test_header_and_payload_must_be_objects(tmp_path: Path) -> None:
    for header, payload in (([1], {}), ({"alg": "RS256"}, [1]), ({"alg": "RS256"}, "x")):
        token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.AA"
        assert check(make(tmp_path), token).error == "malformed"


def test_non_string_kid_is_malformed(tmp_path: Path) -> None:
    token = forge({"alg": "RS256", "kid": 7}, claims(), lambda data: b"x")
    assert check(make(tmp_path), token).error == "malformed"


@pytest.fixture(scope="module")
def shared_validator(tmp_path_factory: pytest.TempPathFactory) -> TokenValidator:
    return make(tmp_path_factory.mktemp("jwks"))


_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="),
    st.binary(max_size=200).map(b64),
    st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(max_size=5)).map(
        lambda d: b64(json.dumps(d).encode())
    ),
    st.sampled_from([b64(b'{"alg":"RS256","kid":"rsa1"}'), b64(json.dumps(claims()).encode()), ""]),
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.lists(_segment, min_size=1, max_size=5).map(".".join))
def test_random_strings_never_raise(shared_validator: TokenValidator, token: str) -> None:
    result = asyncio.run(shared_validator.validate(token))
    assert isinstance(result, TokenResult)
    assert not result.ok and result.error


# --- JWKS file -----------------------------------------------------------------------------


def test_jwks_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    validator = make(tmp_path, jwks_bytes(jwk(RSA_KEY, "old")))
    path = tmp_path / "jwks.json"
    assert check(validator, mint(kid="old")).ok
    assert check(validator, mint(RSA_KEY2, kid="new")).error == "unknown-key"

    path.write_bytes(jwks_bytes(jwk(RSA_KEY2, "new")))
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    assert check(validator, mint(RSA_KEY2, kid="new")).ok
    assert check(validator, mint(kid="old")).error == "unknown-key"


def test_jwks_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    validator = TokenValidator([IssuerConfig(ISS, AUD, jwks_file=path)], clock=Clock())
    assert check(validator, mint()).error == "jwks-unavailable"  # no file yet
    path.write_bytes(b"{not json")
    assert check(validator, mint()).error == "jwks-unavailable"
    path.write_bytes(standard_jwks())
    os.utime(path, ns=(0, 10**18))
    assert check(validator, mint()).ok
    # a broken replacement keeps the keys we had
    path.write_bytes(b'{"keys": 5}')
    os.utime(path, ns=(0, 2 * 10**18))
    assert check(validator, mint()).ok
    path.unlink()
    assert check(validator, mint()).ok


def test_oversized_jwks_file(tmp_path: Path) -> None:
    big = json.dumps({"keys": [jwk(RSA_KEY, "rsa1")], "pad": "x" * jwks.MAX_JWKS_SIZE})
    assert check(make(tmp_path, big.encode()), mint()).error == "jwks-unavailable"


# --- JWKS URL, with an in-process fetch (the real HTTP path is in tests/integration) --------


class FakeIssuer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.calls = 0
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.started: asyncio.Event | None = None

    async def __call__(self, url: str) -> bytes:
        assert url == "https://idp.example.org/jwks"
        self.calls += 1
        if self.started is not None:
            self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.body


def url_validator(
    issuer: FakeIssuer, clock: Clock, **config: Any
) -> tuple[TokenValidator, Callable[[str], Coroutine[Any, Any, TokenResult]]]:
    cfg = IssuerConfig(ISS, AUD, jwks_url="https://idp.example.org/jwks", **config)
    validator = TokenValidator([cfg], clock=clock, fetch=issuer)
    return validator, validator.validate


def test_url_keys_are_cached_until_the_ttl() -> None:
    issuer, clock = FakeIssuer(standard_jwks()), Clock()
    _, validate = url_validator(issuer, clock, cache_ttl=600)

    async def main() -> None:
        assert (await validate(mint())).ok
        assert (await validate(mint(EC_KEY, "ES256", "ec1"))).ok
        assert issuer.calls == 1
        clock.now += 599
        assert (await validate(mint(exp=int(clock.now) + 60))).ok
        assert issuer.calls == 1
        clock.now += 1
        assert (await validate(mint(exp=int(clock.now) + 60))).ok
        assert issuer.calls == 2

    asyncio.run(main())


def test_unknown_kid_refetches_at_most_once_a_minute() -> None:
    issuer, clock = FakeIssuer(jwks_bytes(jwk(RSA_KEY, "rsa1"))), Clock()
    _, validate = url_validator(issuer, clock)

    async def main() -> None:
        assert (await validate(mint())).ok
        issuer.body = jwks_bytes(jwk(RSA_KEY, "rsa1"), jwk(RSA_KEY2, "rsa2"))
        for i in range(50):
            assert (await validate(mint(kid=f"bogus{i}"))).error == "unknown-key"
        assert (await validate(mint(RSA_KEY2, kid="rsa2"))).error == "unknown-key"
        assert issuer.calls == 1
        clock.now += jwks.REFETCH_INTERVAL
        assert (await validate(mint(RSA_KEY2, kid="rsa2", exp=int(clock.now) + 60))).ok
        assert issuer.calls == 2
        for i in range(50):
            assert (await validate(mint(kid=f"bogus{i}", exp=int(clock.now) + 60))).ok is False
        assert issuer.calls == 2

    asyncio.run(main())


def test_concurrent_validations_share_one_fetch() -> None:
    issuer, clock = FakeIssuer(standard_jwks()), Clock()
    _, validate = url_validator(issuer, clock)

    async def main() -> list[TokenResult]:
        issuer.gate, issuer.started = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(validate(mint())) for _ in range(20)]
        await issuer.started.wait()
        issuer.gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    assert all(r.ok for r in results)
    assert issuer.calls == 1


def test_a_cancelled_validation_does_not_cancel_the_shared_fetch() -> None:
    issuer, clock = FakeIssuer(standard_jwks()), Clock()
    _, validate = url_validator(issuer, clock)

    async def main() -> TokenResult:
        issuer.gate, issuer.started = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(validate(mint()))
        await issuer.started.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.create_task(validate(mint()))
        issuer.gate.set()
        return await second

    assert asyncio.run(main()).ok
    assert issuer.calls == 1


@pytest.mark.parametrize(
    "failure", [OSError("connection refused"), TimeoutError(), RuntimeError("boom")]
)
def test_fetch_failures_keep_the_cached_keys(failure: Exception) -> None:
    issuer, clock = FakeIssuer(standard_jwks()), Clock()
    _, validate = url_validator(issuer, clock, cache_ttl=100)

    async def main() -> None:
        assert (await validate(mint())).ok
        issuer.fail = failure
        clock.now += 100  # stale: a refetch is due, and fails
        assert (await validate(mint(exp=int(clock.now) + 60))).ok
        assert issuer.calls == 2
        assert (await validate(mint(exp=int(clock.now) + 60))).ok
        assert issuer.calls == 2  # no new attempt for a minute
        assert (await validate(mint(kid="rsa9", exp=int(clock.now) + 60))).error == "unknown-key"

    asyncio.run(main())


@pytest.mark.parametrize(
    "body", [b"", b"<html>", b'{"keys": {}}', b"[" * 100_000, b" " * (jwks.MAX_JWKS_SIZE + 1)]
)
def test_no_keys_at_all_is_jwks_unavailable(body: bytes) -> None:
    issuer, clock = FakeIssuer(body), Clock()
    _, validate = url_validator(issuer, clock)

    async def main() -> None:
        assert (await validate(mint())) == TokenResult(
            ok=False, issuer=ISS, error="jwks-unavailable"
        )
        assert (await validate(mint())).error == "jwks-unavailable"
        assert issuer.calls == 1  # failures are retried after RETRY_INTERVAL, not per login
        clock.now += jwks.RETRY_INTERVAL
        issuer.body = standard_jwks()
        assert (await validate(mint(exp=int(clock.now) + 60))).ok
        assert issuer.calls == 2

    asyncio.run(main())


def test_validator_survives_event_loops() -> None:
    """A validator made before the loop (as the server does) works across asyncio.run calls."""
    issuer, clock = FakeIssuer(standard_jwks()), Clock()
    validator, _ = url_validator(issuer, clock)
    assert check(validator, mint()).ok
    clock.now += 7200
    assert check(validator, mint(exp=int(clock.now) + 60)).ok
    assert issuer.calls == 2


# --- error_json ----------------------------------------------------------------------------


def test_error_json_per_rfc7628(tmp_path: Path) -> None:
    discovery = "https://idp.example.org/.well-known/openid-configuration"
    validator = make(tmp_path, discovery_url=discovery, required_scope="mail")
    raw = validator.error_json(check(validator, mint(aud="x")))
    assert json.loads(raw.decode("utf-8")) == {
        "status": "invalid_token",
        "scope": "mail",
        "openid-configuration": discovery,
    }
    assert b" " not in raw and b"\n" not in raw  # compact
    assert validator.error_json() == raw  # no result: the first issuer's values


def test_error_json_names_the_tokens_issuer(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(standard_jwks())
    validator = TokenValidator(
        [
            IssuerConfig("https://a.example", AUD, jwks_file=path),
            IssuerConfig(ISS, AUD, jwks_file=path, discovery_url="https://idp.example.org/oidc"),
        ]
    )
    assert json.loads(validator.error_json(TokenResult(ok=False, issuer=ISS))) == {
        "status": "invalid_token",
        "openid-configuration": "https://idp.example.org/oidc",
    }
    assert json.loads(validator.error_json()) == {"status": "invalid_token"}


def test_unconfigured_validator(tmp_path: Path) -> None:
    validator = TokenValidator([])
    assert not validator.configured
    assert make(tmp_path).configured
    assert validator.error_json() == b'{"status":"invalid_token"}'
    assert check(validator, mint()).error == "issuer"


# --- logging -------------------------------------------------------------------------------


def test_the_token_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="carteiro")
    tokens = [mint(), mint(aud="x"), mint(RSA_KEY2), mint(exp=int(NOW) - 999), mint(kid="z")]
    validator = make(tmp_path)
    for token in tokens:
        check(validator, token)
    text = caplog.text
    assert "reason=audience" in text and "jti=tok-1" in text
    for token in tokens:
        for part in token.split("."):
            assert part not in text


# --- configuration -------------------------------------------------------------------------


def test_from_settings(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "idp.json").write_bytes(standard_jwks())
    validator = TokenValidator.from_settings(
        [
            {
                "issuer": ISS,
                "audience": ["carteiro", "imap"],
                "jwks_file": "keys/idp.json",
                "username_claim": "email",
                "algorithms": ["RS256"],
                "leeway": 30,
                "required_scope": "mail",
            },
            {"issuer": "https://login.example", "audience": "x", "jwks_url": "https://l/k"},
        ],
        tmp_path,
    )
    assert validator.configured
    now = int(time.time())  # from_settings uses the real clock
    assert check(validator, mint(scope="mail", iat=now, exp=now + 60)).ok
    assert check(validator, mint(scope="mail")).error == "not-yet-valid"
    assert check(validator, mint(EC_KEY, "ES256", "ec1", scope="mail")).error == "algorithm"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"audience": "x", "jwks_url": "https://a/k"}, "issuer is required"),
        ({"issuer": ISS, "jwks_url": "https://a/k"}, "audience is required"),
        ({"issuer": ISS, "audience": "x"}, "exactly one of jwks_file and jwks_url"),
        (
            {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "jwks_file": "k"},
            "exactly one",
        ),
        ({"issuer": ISS, "audience": "x", "jwks_url": "http://idp.example/k"}, "https"),
        ({"issuer": ISS, "audience": "x", "jwks_url": "ftp://a/k"}, "https"),
        ({"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "alg": "RS256"}, "'alg'"),
        (
            {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "algorithms": ["HS256"]},
            "HS256",
        ),
        (
            {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "algorithms": "RS256"},
            "algorithms must be a list",
        ),
        ({"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "leeway": True}, "leeway"),
        ({"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "leeway": -1}, "leeway"),
        ({"issuer": ISS, "audience": [], "jwks_url": "https://a/k"}, "audience"),
        ({"issuer": ISS, "audience": [1], "jwks_url": "https://a/k"}, "audience"),
        ({"issuer": "", "audience": "x", "jwks_url": "https://a/k"}, "issuer"),
        (
            {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "required_scope": "a b"},
            "required_scope",
        ),
        (
            {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k", "discovery_url": "x"},
            "discovery_url",
        ),
        ("nope", "must be a table"),
    ],
)
def test_bad_settings(tmp_path: Path, table: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        TokenValidator.from_settings([table], tmp_path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("oauth.issuers")


def test_duplicate_issuers_in_settings(tmp_path: Path) -> None:
    table = {"issuer": ISS, "audience": "x", "jwks_url": "https://a/k"}
    with pytest.raises(ValueError, match="configured twice"):
        TokenValidator.from_settings([table, dict(table)], tmp_path)
    with pytest.raises(ValueError, match="array of tables"):
        TokenValidator.from_settings("x", tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://idp.example/jwks", True),
        ("http://127.0.0.1:8080/jwks", True),
        ("http://[::1]:8080/jwks", True),
        ("http://localhost/jwks", False),
        ("http://127.0.0.2/jwks", False),
        ("http://idp.example/jwks", False),
        ("https:///jwks", False),
        ("file:///etc/passwd", False),
    ],
)
def test_check_url(url: str, ok: bool) -> None:
    if ok:
        check_url(url, "jwks_url")
    else:
        with pytest.raises(ValueError, match="https"):
            check_url(url, "jwks_url")


# --- JWKS parsing --------------------------------------------------------------------------


def test_parse_jwks_keeps_only_signature_keys() -> None:
    algs = ("RS256", "PS256", "ES256", "EdDSA")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = RSAAlgorithm.to_jwk(RSA_KEY2, as_dict=True) | {"kid": "priv"}
    private.pop("key_ops")  # PyJWT marks it ["sign"], which alone would exclude it
    keys = parse_jwks(
        jwks_bytes(
            jwk(RSA_KEY, "sig", use="sig"),
            jwk(RSA_KEY, "enc", use="enc"),
            jwk(RSA_KEY, "ops", key_ops=["encrypt"]),
            jwk(small, "short"),
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {"kid": "nokty"},
            "not an object",
            private,
            jwk(EC_KEY, "ec1"),
            jwk(ED_KEY, "ed1"),
        ),
        algs,
    )
    assert {k.kid: sorted(k.by_alg) for k in keys} == {
        "sig": ["PS256", "RS256"],
        "priv": ["PS256", "RS256"],
        "ec1": ["ES256"],
        "ed1": ["EdDSA"],
    }


def test_a_private_jwk_verifies_as_its_public_half(tmp_path: Path) -> None:
    private = RSAAlgorithm.to_jwk(RSA_KEY, as_dict=True) | {"kid": "rsa1"}
    assert private["key_ops"] == ["sign"]
    assert check(make(tmp_path, jwks_bytes(private)), mint()).error == "unknown-key"
    del private["key_ops"]
    assert check(make(tmp_path, jwks_bytes(private)), mint()).ok


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_parse_jwks_raises_only_value_error(data: bytes) -> None:
    try:
        keys = parse_jwks(data, ("RS256", "ES256", "EdDSA"))
    except ValueError:
        return
    assert isinstance(keys, tuple)


_jwk_value = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_jwk = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "x"]) | _jwk_value,
        "kid": _jwk_value,
        "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "HS256", "none"]) | _jwk_value,
        "crv": st.sampled_from(["P-256", "Ed25519", "X25519"]) | _jwk_value,
        "use": st.sampled_from(["sig", "enc"]) | _jwk_value,
        "key_ops": st.lists(st.sampled_from(["verify", "sign"])) | _jwk_value,
        "n": st.binary(max_size=300).map(b64) | _jwk_value,
        "e": st.just("AQAB") | _jwk_value,
        "x": st.binary(max_size=64).map(b64) | _jwk_value,
        "y": st.binary(max_size=64).map(b64) | _jwk_value,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_jwk | _jwk_value, max_size=4))
def test_parse_jwks_survives_odd_keys(keys: list[Any]) -> None:
    parsed = parse_jwks(jwks_bytes(*keys), ("RS256", "PS256", "ES256", "EdDSA"))
    for key in parsed:
        assert key.by_alg and set(key.by_alg) <= {"RS256", "PS256", "ES256", "EdDSA"}


def test_a_clock_stepped_back_does_not_freeze_the_keys() -> None:
    issuer, clock = FakeIssuer(jwks_bytes(jwk(RSA_KEY, "rsa1"))), Clock()
    _, validate = url_validator(issuer, clock)

    async def main() -> None:
        assert (await validate(mint())).ok
        issuer.body = jwks_bytes(jwk(RSA_KEY2, "rsa2"))
        clock.now -= 86400  # the last fetch now lies in the future
        token = mint(RSA_KEY2, kid="rsa2", iat=int(clock.now), exp=int(clock.now) + 60)
        assert (await validate(token)).ok
        assert issuer.calls == 2
        assert (await validate(mint(kid="bogus", exp=int(clock.now) + 60))).ok is False
        assert issuer.calls == 2

    asyncio.run(main())
