"""OAUTHBEARER (RFC 7628) and XOAUTH2: parsing the published examples, the error
challenge flow and malformed input."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.auth.sasl import (
    Challenge,
    CheckToken,
    Failure,
    OAuthBearer,
    PasswordVerdict,
    ProtocolMisuse,
    Success,
    TokenVerdict,
    XOAuth2,
)
from carteiro.auth.sasl.oauth import (
    DEFAULT_ERROR_JSON,
    BearerRequest,
    parse_oauthbearer,
    parse_xoauth2,
)

# RFC 7628 §4.1, the IMAP initial client response, verbatim
RFC7628_INITIAL = base64.b64decode(
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVy"
    "IHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
# RFC 7628 §4.3, the server's error challenge and the client's reply
RFC7628_ERROR = base64.b64decode(
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZp"
    "Z3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)
RFC7628_ERROR_REPLY = base64.b64decode("AQ==")
# Google's published XOAUTH2 example
XOAUTH2_INITIAL = base64.b64decode(
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
    "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
)


def test_rfc7628_example_parses() -> None:
    assert parse_oauthbearer(RFC7628_INITIAL) == BearerRequest(
        token=RFC7628_TOKEN, user="user@example.com", host="server.example.com", port="143"
    )


def test_rfc7628_success_exchange() -> None:
    mech = OAuthBearer()
    assert mech.start(RFC7628_INITIAL) == CheckToken(
        token=RFC7628_TOKEN, user="user@example.com", kind="OAUTHBEARER"
    )
    assert mech.resolve(TokenVerdict(ok=True)) == Success("user@example.com", "", None)
    assert mech.done


def test_rfc7628_failure_exchange() -> None:
    mech = OAuthBearer()
    mech.start(RFC7628_INITIAL)
    assert mech.resolve(TokenVerdict(ok=False, error_json=RFC7628_ERROR)) == Challenge(
        RFC7628_ERROR
    )
    end = mech.respond(RFC7628_ERROR_REPLY)
    assert isinstance(end, Failure) and end.reason == "credentials"
    assert mech.done


@pytest.mark.parametrize("reply", [b"", b"\x01\x01", b"whatever"])
def test_any_other_reply_to_the_error_also_fails(reply: bytes) -> None:
    mech = OAuthBearer()
    mech.start(RFC7628_INITIAL)
    mech.resolve(TokenVerdict(ok=False))
    end = mech.respond(reply)
    assert isinstance(end, Failure) and end.reason == "credentials"


def test_failure_without_error_json_sends_a_minimal_one() -> None:
    mech = OAuthBearer()
    mech.start(RFC7628_INITIAL)
    assert mech.resolve(TokenVerdict(ok=False)) == Challenge(DEFAULT_ERROR_JSON)
    assert DEFAULT_ERROR_JSON == b'{"status":"invalid_token"}'


def test_without_initial_response() -> None:
    for mech in (OAuthBearer(), XOAuth2()):
        assert mech.start(None) == Challenge(b"")
        assert isinstance(
            mech.respond(RFC7628_INITIAL if mech.name == "OAUTHBEARER" else XOAUTH2_INITIAL),
            CheckToken,
        )


def test_verdict_canonicalises_the_account() -> None:
    mech = OAuthBearer()
    mech.start(RFC7628_INITIAL)
    assert mech.resolve(TokenVerdict(ok=True, authcid="user")) == Success("user", "", None)


def test_without_authzid_the_verdict_names_the_account() -> None:
    mech = OAuthBearer()
    assert mech.start(b"n,,\x01auth=Bearer abc\x01\x01") == CheckToken("abc", "", "OAUTHBEARER")
    assert mech.resolve(TokenVerdict(ok=True, authcid="tim")) == Success("tim", "", None)


def test_a_verdict_naming_nobody_fails() -> None:
    mech = OAuthBearer()
    mech.start(b"n,,\x01auth=Bearer abc\x01\x01")
    end = mech.resolve(TokenVerdict(ok=True))
    assert isinstance(end, Failure) and end.reason == "credentials"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"n,,\x01auth=Bearer abc\x01\x01", BearerRequest("abc", "")),
        (b"y,,\x01auth=Bearer abc\x01\x01", BearerRequest("abc", "")),
        (b"n,a=u=2Cv=3D,\x01auth=Bearer abc\x01\x01", BearerRequest("abc", "u,v=")),
        (b"n,,\x01auth=bearer  a-b.c_d~e+f/g==\x01\x01", BearerRequest("a-b.c_d~e+f/g==", "")),
        (b"n,,\x01auth=BEARER abc\x01\x01", BearerRequest("abc", "")),
        (
            b"n,,\x01propA=valueA1, valueA2\x01auth=Bearer 567\x01propB=valueB\x01\x01",
            BearerRequest("567", ""),
        ),
        ("n,a=jos\u00e9,\x01auth=Bearer t\x01\x01".encode(), BearerRequest("t", "jos\u00e9")),
    ],
)
def test_oauthbearer_variants(message: bytes, expected: BearerRequest) -> None:
    assert parse_oauthbearer(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x01",  # the error acknowledgement is not a first message
        b"n,,",
        b"n,,\x01",
        b"n,,\x01\x01",  # no auth
        b"n,,\x01auth=Bearer abc\x01",  # missing the final kvsep
        b"n,,\x01auth=Bearer abc",
        b"n,,auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Bearer abc\x01\x01\x01",
        b"n,,\x01auth=Basic dXNlcjpwdw==\x01\x01",
        b"n,,\x01auth=Bearer\x01\x01",
        b"n,,\x01auth=Bearer \x01\x01",
        b"n,,\x01auth=Bearerabc\x01\x01",
        b"n,,\x01auth=Bearer a b\x01\x01",
        b"n,,\x01auth=Bearer a=b\x01\x01",
        b"n,,\x01auth=Bearer abc\x01auth=Bearer def\x01\x01",  # repeated key
        b"n,,\x01=x\x01auth=Bearer abc\x01\x01",
        b"n,,\x01k1=x\x01auth=Bearer abc\x01\x01",  # keys are ALPHA only
        b"n,,\x01host\x01auth=Bearer abc\x01\x01",
        b"n,,\x01host=\x00\x01auth=Bearer abc\x01\x01",
        "n,,\x01host=h\u00e9\x01auth=Bearer abc\x01\x01".encode(),  # values are VCHAR
        b"n,,\x01port=http\x01auth=Bearer abc\x01\x01",
        b"n,a=,\x01auth=Bearer abc\x01\x01",
        b"n,a=x=2,\x01auth=Bearer abc\x01\x01",
        b"n,b=x,\x01auth=Bearer abc\x01\x01",
        b"x,,\x01auth=Bearer abc\x01\x01",
        b"n,,extra\x01auth=Bearer abc\x01\x01",
        b"F,n,,\x01auth=Bearer abc\x01\x01",
        b"n,a=\xff,\x01auth=Bearer abc\x01\x01",
        b"n,,\x01auth=Bearer " + b"a" * 20000 + b"\x01\x01",
    ],
)
def test_oauthbearer_malformed(message: bytes) -> None:
    mech = OAuthBearer()
    end = mech.start(message)
    if not message:  # an empty initial response only asks again
        assert end == Challenge(b"")
        end = mech.respond(message)
    assert isinstance(end, Failure) and end.reason == "malformed", end
    assert mech.done


def test_oauthbearer_refuses_channel_binding() -> None:
    end = OAuthBearer().start(b"p=tls-unique,,\x01auth=Bearer abc\x01\x01")
    assert isinstance(end, Failure) and end.reason == "channel-binding"


# --- XOAUTH2 ---------------------------------------------------------------------------


def test_xoauth2_google_example() -> None:
    mech = XOAuth2()
    assert mech.start(XOAUTH2_INITIAL) == CheckToken(
        token="ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
        user="someuser@example.com",
        kind="XOAUTH2",
    )
    assert mech.resolve(TokenVerdict(ok=True)) == Success("someuser@example.com", "", None)


def test_xoauth2_failure_like_gmail() -> None:
    error = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
    mech = XOAuth2()
    mech.start(XOAUTH2_INITIAL)
    assert mech.resolve(TokenVerdict(ok=False, error_json=error)) == Challenge(error)
    end = mech.respond(b"")
    assert isinstance(end, Failure) and end.reason == "credentials"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"auth=Bearer t\x01user=u\x01\x01", BearerRequest("t", "u")),
        (b"user=\x01auth=Bearer t\x01\x01", BearerRequest("t", "")),
        (
            "user=\uad00\ub9ac\uc790@example.com\x01auth=Bearer t\x01\x01".encode(),
            BearerRequest("t", "\uad00\ub9ac\uc790@example.com"),
        ),
    ],
)
def test_xoauth2_variants(message: bytes, expected: BearerRequest) -> None:
    assert parse_xoauth2(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x01",
        b"user=u\x01\x01",
        b"auth=Bearer t\x01\x01",  # no user
        b"user=u\x01auth=Bearer t\x01",
        b"user=u\x01auth=Bearer t",
        b"user=u\x01auth=Bearer t\x01\x01\x01",
        b"user=u\x01user=v\x01auth=Bearer t\x01\x01",
        b"user=u\nx\x01auth=Bearer t\x01\x01",
        b"user=u\x01auth=Bearer t!\x01\x01",
        b"user=\xff\x01auth=Bearer t\x01\x01",
        b"n,a=u,\x01auth=Bearer t\x01\x01",
    ],
)
def test_xoauth2_malformed(message: bytes) -> None:
    assert isinstance(parse_xoauth2(message), Failure)


# --- properties ------------------------------------------------------------------------

TOKEN = st.from_regex(r"[A-Za-z0-9\-._~+/]{1,40}={0,2}", fullmatch=True)
# %x01 ends the GS2 header, so an authzid cannot contain it
SASLNAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x01")


@given(TOKEN, st.text(SASLNAME_CHARS, max_size=30), st.from_regex(r"[a-z.]{0,20}", fullmatch=True))
def test_oauthbearer_round_trip(token: str, user: str, host: str) -> None:
    escaped = user.replace("=", "=3D").replace(",", "=2C")
    header = f"n,a={escaped}," if user else "n,,"
    message = f"{header}\x01host={host}\x01auth=Bearer {token}\x01\x01".encode()
    assert parse_oauthbearer(message) == BearerRequest(token, user, host)


@given(TOKEN, st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30))
def test_xoauth2_round_trip(token: str, user: str) -> None:
    message = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    assert parse_xoauth2(message) == BearerRequest(token, user)


def test_wrong_verdict_type_is_misuse() -> None:
    mech = XOAuth2()
    mech.start(XOAUTH2_INITIAL)
    with pytest.raises(ProtocolMisuse):
        mech.resolve(PasswordVerdict(ok=True))


def test_respond_while_token_is_checked_is_misuse() -> None:
    mech = OAuthBearer()
    mech.start(RFC7628_INITIAL)
    with pytest.raises(ProtocolMisuse):
        mech.respond(b"\x01")
