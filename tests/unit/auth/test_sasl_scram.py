"""SCRAM-SHA-256[-PLUS] against scramp's real client, the RFC 7677 vector and a
hand-computed RFC 5802 client (for what scramp's client cannot send: authzids,
tls-exporter)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from scramp import ScramClient, ScramMechanism
from scramp.core import CBindData

from carteiro.auth.sasl import (
    Challenge,
    Failure,
    LookupScram,
    MechanismOptions,
    PasswordVerdict,
    ProtocolMisuse,
    ScramCredentials,
    ScramSha256,
    Success,
    create,
    decode_scram_record,
    encode_scram_record,
    scram_credentials,
    tls_server_end_point,
)
from carteiro.auth.sasl.scram import SALT_LENGTH

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.test")])


def self_signed(key: object, algorithm: hashes.HashAlgorithm | None) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=90))
    )
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cert_der() -> bytes:
    return self_signed(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


@pytest.fixture(scope="module")
def binding(cert_der: bytes) -> bytes:
    return tls_server_end_point(cert_der)


@pytest.fixture(scope="module")
def creds() -> ScramCredentials:
    return dataclasses.replace(scram_credentials("pencil"), authcid="user")


def opts(bindings: dict[str, bytes] | None = None, **kw: object) -> MechanismOptions:
    return MechanismOptions(
        tls=True, channel_bindings=bindings or {}, allow_plaintext=False, oauth=False, **kw
    )  # type: ignore[arg-type]


def client_exchange(
    mech: ScramSha256, client: ScramClient, creds: ScramCredentials | None
) -> tuple[Challenge, object]:
    """Run client-first and client-final; returns the server-first challenge and the end."""
    lookup = mech.start(client.get_client_first().encode())
    assert isinstance(lookup, LookupScram)
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    return first, mech.respond(client.get_client_final().encode())


# --- full exchanges with scramp's client ------------------------------------------------


def test_scram_sha_256_exchange(creds: ScramCredentials) -> None:
    mech = create("SCRAM-SHA-256", opts())
    assert isinstance(mech, ScramSha256)
    client = ScramClient(["SCRAM-SHA-256"], "user", "pencil")
    assert mech.start(client.get_client_first().encode()) == LookupScram("user", "")
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    end = mech.respond(client.get_client_final().encode())
    assert isinstance(end, Success) and end.authcid == "user" and end.authzid == ""
    assert end.final is not None
    client.set_server_final(end.final.decode())  # raises unless the server proved the key
    assert mech.done


def test_scram_without_initial_response(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    assert mech.start(None) == Challenge(b"")
    client = ScramClient(["SCRAM-SHA-256"], "user", "pencil")
    assert mech.respond(client.get_client_first().encode()) == LookupScram("user", "")
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    assert isinstance(mech.respond(client.get_client_final().encode()), Success)


def test_scram_plus_with_tls_server_end_point(creds: ScramCredentials, binding: bytes) -> None:
    mech = create("SCRAM-SHA-256-PLUS", opts({"tls-server-end-point": binding}))
    assert isinstance(mech, ScramSha256)
    client = ScramClient(
        ["SCRAM-SHA-256-PLUS"], "user", "pencil", channel_binding=("tls-server-end-point", binding)
    )
    _, end = client_exchange(mech, client, creds)
    assert isinstance(end, Success) and end.final is not None
    client.set_server_final(end.final.decode())


def test_scram_plus_with_tls_unique(creds: ScramCredentials) -> None:
    unique = b"\x07" * 12
    mech = ScramSha256(opts({"tls-unique": unique}), plus=True)
    client = ScramClient(["SCRAM-SHA-256-PLUS"], "user", "pencil", ("tls-unique", unique))
    _, end = client_exchange(mech, client, creds)
    assert isinstance(end, Success)


def test_verdict_canonicalises_the_account(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "User", "pencil")
    _, end = client_exchange(mech, client, creds)  # creds.authcid == "user"
    assert isinstance(end, Success) and end.authcid == "user"


def test_empty_canonical_name_keeps_the_clients(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "User", "pencil")
    _, end = client_exchange(mech, client, dataclasses.replace(creds, authcid=""))
    assert isinstance(end, Success) and end.authcid == "User"


def test_usernames_are_unescaped() -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "a,b=c", "pencil")
    first = client.get_client_first()
    assert first.startswith("n,,n=a=2Cb=3Dc,")
    assert mech.start(first.encode()) == LookupScram("a,b=c", "")


def test_usernames_are_saslprepped() -> None:
    mech = ScramSha256(opts(), plus=False)  # soft hyphen maps to nothing (RFC 4013 §2.2)
    assert mech.start("n,,n=I\u00adX,r=abc".encode()) == LookupScram("IX", "")


# --- RFC 7677 §3 test vector -----------------------------------------------------------

RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)


def test_rfc7677_vector() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored = scram_credentials("pencil", 4096, salt)
    mech = ScramSha256(opts(), plus=False, server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert mech.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == LookupScram("user", "")
    assert mech.resolve(stored) == Challenge(RFC7677_SERVER_FIRST)
    assert mech.respond(RFC7677_CLIENT_FINAL) == Success(
        authcid="user", authzid="", final=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


# --- failures --------------------------------------------------------------------------


def test_wrong_password_fails_at_client_final(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "user", "wrong")
    lookup = mech.start(client.get_client_first().encode())
    assert lookup == LookupScram("user", "")
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)  # nothing is revealed before the proof
    client.set_server_first(first.data.decode())
    end = mech.respond(client.get_client_final().encode())
    assert isinstance(end, Failure) and end.reason == "credentials"
    assert mech.done


SERVER_FIRST_SHAPE = re.compile(rb"r=(?P<nonce>[!-+\--~]+),s=(?P<salt>[A-Za-z0-9+/=]+),i=4096")


def server_first_of(mech: ScramSha256, username: str, creds: ScramCredentials | None) -> bytes:
    client = ScramClient(["SCRAM-SHA-256"], username, "pencil", c_nonce="clientnonce")
    mech.start(client.get_client_first().encode())
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    client.set_server_first(first.data.decode())
    end = mech.respond(client.get_client_final().encode())
    assert isinstance(end, Success if creds is not None else Failure)
    return first.data


def test_unknown_user_is_indistinguishable(creds: ScramCredentials) -> None:
    known = SERVER_FIRST_SHAPE.fullmatch(
        server_first_of(ScramSha256(opts(), plus=False), "user", creds)
    )
    unknown = SERVER_FIRST_SHAPE.fullmatch(
        server_first_of(ScramSha256(opts(), plus=False), "ghost", None)
    )
    assert known is not None and unknown is not None
    assert len(known["nonce"]) == len(unknown["nonce"])
    assert (
        len(base64.b64decode(known["salt"]))
        == len(base64.b64decode(unknown["salt"]))
        == SALT_LENGTH
    )


def test_unknown_user_fails_with_credentials_at_client_final() -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "ghost", "pencil")
    _, end = client_exchange(mech, client, None)
    assert end == Failure("credentials", "invalid username or password")


def salt_of(server_first: bytes) -> bytes:
    match = SERVER_FIRST_SHAPE.fullmatch(server_first)
    assert match is not None
    return base64.b64decode(match["salt"])


def test_unknown_user_salt_is_stable_per_name() -> None:
    first = salt_of(server_first_of(ScramSha256(opts(), plus=False), "ghost", None))
    again = salt_of(server_first_of(ScramSha256(opts(), plus=False), "ghost", None))
    other = salt_of(server_first_of(ScramSha256(opts(), plus=False), "phantom", None))
    assert first == again != other


def test_unknown_user_salt_follows_the_configured_secret() -> None:
    a = opts(scram_secret=b"k" * 32)
    b = opts(scram_secret=b"q" * 32)
    one = salt_of(server_first_of(ScramSha256(a, plus=False), "ghost", None))
    two = salt_of(server_first_of(ScramSha256(a, plus=False), "ghost", None))
    three = salt_of(server_first_of(ScramSha256(b, plus=False), "ghost", None))
    assert one == two != three


def test_unknown_user_uses_the_configured_iterations() -> None:
    mech = ScramSha256(opts(scram_iterations=5000), plus=False)
    mech.start(b"n,,n=ghost,r=abc")
    first = mech.resolve(None)
    assert isinstance(first, Challenge) and first.data.endswith(b",i=5000")


def test_plus_mismatched_binding_data_fails(creds: ScramCredentials, binding: bytes) -> None:
    mech = ScramSha256(opts({"tls-server-end-point": binding}), plus=True)
    other = hashlib.sha256(b"a certificate of a man in the middle").digest()
    client = ScramClient(["SCRAM-SHA-256-PLUS"], "user", "pencil", ("tls-server-end-point", other))
    _, end = client_exchange(mech, client, creds)
    assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_plus_without_binding_flag_fails(binding: bytes) -> None:
    for header in (b"n,,", b"y,,"):
        mech = ScramSha256(opts({"tls-server-end-point": binding}), plus=True)
        end = mech.start(header + b"n=user,r=abc")
        assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_plus_with_a_binding_type_without_data_fails(binding: bytes) -> None:
    mech = ScramSha256(opts({"tls-server-end-point": binding}), plus=True)
    end = mech.start(b"p=tls-unique,,n=user,r=abc")
    assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_downgrade_flag_y_is_refused_when_plus_is_advertised(binding: bytes) -> None:
    mech = create("SCRAM-SHA-256", opts({"tls-server-end-point": binding}))
    assert isinstance(mech, ScramSha256)
    # a client that supports binding but was shown no -PLUS (stripped by an attacker)
    client = ScramClient(["SCRAM-SHA-256"], "user", "pencil", ("tls-server-end-point", binding))
    first = client.get_client_first()
    assert first.startswith("y,,")
    end = mech.start(first.encode())
    assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_flag_y_is_fine_when_plus_is_not_advertised(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    client = ScramClient(["SCRAM-SHA-256"], "user", "pencil", ("tls-server-end-point", b"x" * 32))
    _, end = client_exchange(mech, client, creds)
    assert isinstance(end, Success)


def test_binding_flag_on_the_plain_mechanism_fails(binding: bytes) -> None:
    mech = ScramSha256(opts({"tls-server-end-point": binding}), plus=False)
    end = mech.start(b"p=tls-server-end-point,,n=user,r=abc")
    assert isinstance(end, Failure) and end.reason == "channel-binding"


@pytest.mark.parametrize(
    "message",
    [
        b"x",
        b"n,,",
        b"n,,r=abc",  # no username
        b"n,,n=user",  # no nonce
        b"n,,n=,r=abc",
        b"n,,n=user,r=",
        b"n,,n=user,r=a,b",
        b"n,,n=user,r=a\x00b",
        b"n,,n=us=er,r=abc",  # bad escape
        b"n,,n=\x07,r=abc",  # SASLprep prohibits controls
        b"n,,m=ext,n=user,r=abc",  # mandatory extension
        b"n,,r=abc,n=user",
        b"q,,n=user,r=abc",
        b"F,n,,n=user,r=abc",  # RFC 5801 non-standard flag: not part of SCRAM
        b"n,b=x,n=user,r=abc",
        b"n,a=,n=user,r=abc",
        b"n,a=x=41,n=user,r=abc",
        b"p=,,n=user,r=abc",
        b"p=tls_unique,,n=user,r=abc",
        b"n,,n=\xff,r=abc",
        b"n,,n=user,r=" + b"a" * 5000,
    ],
)
def test_malformed_client_first(message: bytes) -> None:
    mech = ScramSha256(opts(), plus=False)
    end = mech.start(message)
    assert isinstance(end, Failure) and end.reason == "malformed", end
    assert mech.done


def prepared(creds: ScramCredentials) -> tuple[ScramSha256, str]:
    mech = ScramSha256(opts(), plus=False)
    mech.start(b"n,,n=user,r=abc")
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    nonce = first.data.decode().split(",")[0][2:]
    return mech, nonce


@pytest.mark.parametrize(
    "final",
    [
        "",
        "garbage",
        "\udcff",
        "c=biws,r={nonce}",  # no proof
        "c=biws,r=abcdef,p=AAAA",  # wrong nonce
        "c=!!!,r={nonce},p=AAAA",  # channel binding not base64
        "c=biws,r={nonce},p=!!!",  # proof not base64
        "r={nonce},c=biws,p=AAAA",
        "c=biws,r={nonce},p=AAAA,x=1",
    ],
)
def test_malformed_client_final(creds: ScramCredentials, final: str) -> None:
    mech, nonce = prepared(creds)
    data = final.format(nonce=nonce).encode("utf-8", "surrogateescape")
    end = mech.respond(data)
    assert isinstance(end, Failure) and end.reason == "malformed", end


def test_client_final_with_foreign_binding_input_fails(creds: ScramCredentials) -> None:
    mech, nonce = prepared(creds)
    cbind = base64.b64encode(b"y,,").decode()  # the client sent n,, first
    end = mech.respond(f"c={cbind},r={nonce},p=AAAA".encode())
    assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_short_proof_is_a_credentials_failure(creds: ScramCredentials) -> None:
    mech, nonce = prepared(creds)
    end = mech.respond(f"c=biws,r={nonce},p=AAAA".encode())
    assert isinstance(end, Failure) and end.reason == "credentials"


@pytest.mark.parametrize(
    "change",
    [
        {"salt": b"short"},
        {"iterations": 100},
        {"stored_key": b"k" * 20},
        {"server_key": b""},
        {"salt": bytearray(16)},
        {"iterations": 4096.0},
    ],
)
def test_unusable_stored_credentials(creds: ScramCredentials, change: dict[str, object]) -> None:
    mech = ScramSha256(opts(), plus=False)
    mech.start(b"n,,n=user,r=abc")
    end = mech.resolve(dataclasses.replace(creds, **change))  # type: ignore[arg-type]
    assert isinstance(end, Failure) and end.reason == "unavailable"


def test_wrong_verdict_type_is_misuse() -> None:
    mech = ScramSha256(opts(), plus=False)
    mech.start(b"n,,n=user,r=abc")
    with pytest.raises(ProtocolMisuse):
        mech.resolve(PasswordVerdict(ok=True))


def test_cancel_while_waiting_for_client_final(creds: ScramCredentials) -> None:
    mech, _ = prepared(creds)
    assert mech.cancel().reason == "cancelled"
    with pytest.raises(ProtocolMisuse):
        mech.respond(b"c=biws")


# --- authzid and tls-exporter through a hand-computed RFC 5802 client -----------------


def manual_client_final(
    password: str, cbind_input: bytes, bare: str, server_first: str
) -> tuple[bytes, bytes]:
    """The client-final message and the expected server signature (RFC 5802 §3)."""
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    without_proof = f"c={base64.b64encode(cbind_input).decode()},r={attrs['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    return final, b"v=" + base64.b64encode(hmac.digest(server_key, auth_message, "sha256"))


def manual_exchange(
    mech: ScramSha256, header: bytes, cb_data: bytes, creds: ScramCredentials | None, password: str
) -> tuple[object, bytes]:
    bare = "n=user,r=clientnonce"
    lookup = mech.start(header + bare.encode())
    assert isinstance(lookup, LookupScram), lookup
    first = mech.resolve(creds)
    assert isinstance(first, Challenge)
    final, signature = manual_client_final(password, header + cb_data, bare, first.data.decode())
    return mech.respond(final), signature


def test_authzid_allowed(creds: ScramCredentials) -> None:
    mech = ScramSha256(opts(), plus=False)
    assert mech.start(b"n,a=ad=2Cmin,n=user,r=abc") == LookupScram("user", "ad,min")
    mech = ScramSha256(opts(), plus=False)
    end, signature = manual_exchange(mech, b"n,a=admin,", b"", creds, "pencil")
    assert end == Success(authcid="user", authzid="admin", final=signature)


def test_authzid_refused_after_a_valid_proof(creds: ScramCredentials) -> None:
    refused = dataclasses.replace(creds, authzid_allowed=False)
    end, _ = manual_exchange(ScramSha256(opts(), plus=False), b"n,a=admin,", b"", refused, "pencil")
    assert isinstance(end, Failure) and end.reason == "authorization"
    end, _ = manual_exchange(ScramSha256(opts(), plus=False), b"n,a=admin,", b"", refused, "nope")
    assert isinstance(end, Failure) and end.reason == "credentials"


def test_tls_exporter_when_its_data_is_supplied(creds: ScramCredentials) -> None:
    exporter = bytes(range(32))
    mech = ScramSha256(opts({"tls-exporter": exporter}), plus=True)
    end, signature = manual_exchange(mech, b"p=tls-exporter,,", exporter, creds, "pencil")
    assert end == Success(authcid="user", authzid="", final=signature)
    mech = ScramSha256(opts({"tls-exporter": exporter}), plus=True)
    end, _ = manual_exchange(mech, b"p=tls-exporter,,", b"\x00" * 32, creds, "pencil")
    assert isinstance(end, Failure) and end.reason == "channel-binding"


def test_plus_with_authzid(creds: ScramCredentials, binding: bytes) -> None:
    mech = ScramSha256(opts({"tls-server-end-point": binding}), plus=True)
    header = b"p=tls-server-end-point,a=admin,"
    end, signature = manual_exchange(mech, header, binding, creds, "pencil")
    assert end == Success(authcid="user", authzid="admin", final=signature)


# --- stored credentials ----------------------------------------------------------------


def test_scram_credentials_agree_with_scramp() -> None:
    salt = b"0123456789abcdef"
    ours = scram_credentials("p\u00e4ssword", 4096, salt)
    theirs = ScramMechanism("SCRAM-SHA-256").make_auth_info("p\u00e4ssword", 4096, salt)
    assert (ours.salt, ours.stored_key, ours.server_key, ours.iterations) == theirs


def test_scram_credentials_salt_is_random_and_sized() -> None:
    a, b = scram_credentials("pw"), scram_credentials("pw")
    assert len(a.salt) == SALT_LENGTH and a.salt != b.salt and a.iterations == 4096


@pytest.mark.parametrize(
    "kwargs",
    [{"iterations": 1000}, {"iterations": 10**8}, {"salt": b"short"}],
)
def test_scram_credentials_refuse_weak_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        scram_credentials("pw", **kwargs)  # type: ignore[arg-type]


def test_scram_credentials_refuse_prohibited_passwords() -> None:
    with pytest.raises(ValueError):
        scram_credentials("bad\x07password")


def test_record_format(creds: ScramCredentials) -> None:
    record = encode_scram_record(creds)
    parts = record.split("$")
    assert parts[:2] == ["SCRAM-SHA-256", "4096"]
    assert base64.b64decode(parts[2]) == creds.salt
    assert base64.b64decode(parts[3]) == creds.stored_key
    assert base64.b64decode(parts[4]) == creds.server_key
    assert decode_scram_record(record) == dataclasses.replace(creds, authcid="")


@given(
    salt=st.binary(min_size=12, max_size=64),
    iterations=st.integers(4096, 10_000_000),
    stored_key=st.binary(min_size=32, max_size=32),
    server_key=st.binary(min_size=32, max_size=32),
)
def test_record_round_trip(
    salt: bytes, iterations: int, stored_key: bytes, server_key: bytes
) -> None:
    creds = ScramCredentials(salt, iterations, stored_key, server_key)
    assert decode_scram_record(encode_scram_record(creds)) == creds


VALID = "SCRAM-SHA-256$4096$MDEyMzQ1Njc4OWFi$" + "A" * 43 + "=$" + "B" * 42 + "A="


@pytest.mark.parametrize(
    "record",
    [
        "",
        "junk",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        VALID.replace("SCRAM-SHA-256", "SCRAM-SHA-1"),
        VALID.replace("$4096$", "$04096$"),
        VALID.replace("$4096$", "$100$"),
        VALID.replace("$4096$", "$$"),
        VALID.replace("$4096$", "$\u0664\u0660\u0669\u0666$"),  # Arabic-Indic digits
        VALID.replace("$4096$", "$99999999999$"),
        VALID.replace("MDEyMzQ1Njc4OWFi", "c2FsdA=="),  # salt too short
        VALID.replace("MDEyMzQ1Njc4OWFi", "MDEy MzQ1Njc4OWFi"),
        VALID.replace("MDEyMzQ1Njc4OWFi", "MDEyMzQ1Njc4OWFi=="),
        VALID[:-1],
        VALID[:-2] + "B=",  # non-canonical base64 (padding bits set)
        VALID + "$",
        VALID + "$extra",
        VALID.replace("$", ","),
    ],
)
def test_junk_records_decode_to_none(record: str) -> None:
    assert decode_scram_record(record) is None


def test_valid_sample_record_decodes() -> None:
    creds = decode_scram_record(VALID)
    assert creds is not None and creds.salt == b"0123456789ab" and creds.iterations == 4096


@given(st.text())
def test_arbitrary_text_never_breaks_record_decoding(text: str) -> None:
    creds = decode_scram_record(text)
    assert creds is None or encode_scram_record(creds) == text


@given(
    st.lists(st.sampled_from(["SCRAM-SHA-256", "4096", "$", "A", "=", "MDEy", "x"]), max_size=30)
)
def test_near_miss_records(pieces: list[str]) -> None:
    text = "".join(pieces)
    creds = decode_scram_record(text)
    assert creds is None or encode_scram_record(creds) == text


def test_encode_refuses_unusable_credentials(creds: ScramCredentials) -> None:
    with pytest.raises(ValueError):
        encode_scram_record(dataclasses.replace(creds, iterations=10))


# --- tls-server-end-point --------------------------------------------------------------


def test_end_point_of_a_sha256_certificate(cert_der: bytes) -> None:
    assert tls_server_end_point(cert_der) == hashlib.sha256(cert_der).digest()
    assert tls_server_end_point(cert_der) == bytes(CBindData.from_der(cert_der))


def test_end_point_uses_the_signature_hash() -> None:
    der = self_signed(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    assert tls_server_end_point(der) == hashlib.sha384(der).digest()
    assert tls_server_end_point(der) == bytes(CBindData.from_der(der))


SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")


@pytest.mark.parametrize("weak_oid", ["06092a864886f70d010105", "06092a864886f70d010104"])
def test_end_point_replaces_sha1_and_md5_by_sha256(weak_oid: str) -> None:
    # OpenSSL no longer signs with SHA-1/MD5: relabel a SHA-256 signature (same length
    # OID); the binding hashes the DER without verifying the signature.
    der = self_signed(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), hashes.SHA256()
    )
    assert der.count(SHA256_WITH_RSA) == 2
    weak = der.replace(SHA256_WITH_RSA, bytes.fromhex(weak_oid))
    assert tls_server_end_point(weak) == hashlib.sha256(weak).digest()
    assert tls_server_end_point(weak) == bytes(CBindData.from_der(weak))


def test_end_point_is_undefined_for_ed25519() -> None:
    der = self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    with pytest.raises(ValueError):
        tls_server_end_point(der)


def test_end_point_of_junk() -> None:
    with pytest.raises(ValueError):
        tls_server_end_point(b"not a certificate")
