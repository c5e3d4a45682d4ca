"""PLAIN (RFC 4616), LOGIN, the call-order guard and the advertising policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.auth.sasl import (
    Challenge,
    CheckPassword,
    CheckToken,
    Failure,
    Login,
    MechanismOptions,
    OAuthBearer,
    PasswordVerdict,
    Plain,
    ProtocolMisuse,
    ScramSha256,
    Success,
    TokenVerdict,
    XOAuth2,
    available,
    create,
)
from carteiro.auth.sasl.plain import parse_plain

OK = PasswordVerdict(ok=True)


def options(
    *,
    tls: bool = True,
    bindings: dict[str, bytes] | None = None,
    plaintext: bool = False,
    oauth: bool = False,
) -> MechanismOptions:
    return MechanismOptions(
        tls=tls, channel_bindings=bindings or {}, allow_plaintext=plaintext, oauth=oauth
    )


# --- PLAIN -----------------------------------------------------------------------------


def test_plain_initial_response() -> None:
    mech = Plain()
    assert mech.start(b"\x00tim\x00tanstaaftanstaaf") == CheckPassword(
        authcid="tim", password="tanstaaftanstaaf", authzid=""
    )
    assert mech.resolve(OK) == Success(authcid="tim", authzid="", final=None)
    assert mech.done


def test_plain_rfc4616_example_with_authzid() -> None:
    mech = Plain()
    event = mech.start(b"Ursel\x00Kurt\x00xipj3plmq")
    assert event == CheckPassword(authcid="Kurt", password="xipj3plmq", authzid="Ursel")
    assert mech.resolve(OK) == Success(authcid="Kurt", authzid="Ursel", final=None)


@pytest.mark.parametrize("initial", [None, b""])
def test_plain_without_initial_response_asks_with_an_empty_challenge(
    initial: bytes | None,
) -> None:
    mech = Plain()
    assert mech.start(initial) == Challenge(b"")
    event = mech.respond("\x00jos\u00e9\x00p\u00e4ss w\u00f6rd".encode())
    assert event == CheckPassword(authcid="jos\u00e9", password="p\u00e4ss w\u00f6rd", authzid="")


def test_plain_empty_reply_after_challenge_is_malformed() -> None:
    mech = Plain()
    mech.start(None)
    event = mech.respond(b"")
    assert isinstance(event, Failure) and event.reason == "malformed"
    assert mech.done


def test_plain_verdict_canonicalises_the_account() -> None:
    mech = Plain()
    mech.start(b"\x00Tim@Example.COM\x00pw")
    event = mech.resolve(PasswordVerdict(ok=True, authcid="tim@example.com"))
    assert event == Success(authcid="tim@example.com", authzid="", final=None)


def test_plain_wrong_password_is_a_credentials_failure() -> None:
    mech = Plain()
    mech.start(b"\x00tim\x00wrong")
    event = mech.resolve(PasswordVerdict(ok=False))
    assert isinstance(event, Failure) and event.reason == "credentials"
    assert "wrong" not in event.message


def test_plain_authzid_refused_is_an_authorization_failure() -> None:
    mech = Plain()
    mech.start(b"boss\x00tim\x00pw")
    event = mech.resolve(PasswordVerdict(ok=True, authzid_allowed=False))
    assert isinstance(event, Failure) and event.reason == "authorization"


def test_plain_authzid_allowed_flag_is_irrelevant_without_authzid() -> None:
    mech = Plain()
    mech.start(b"\x00tim\x00pw")
    event = mech.resolve(PasswordVerdict(ok=True, authzid_allowed=False))
    assert event == Success(authcid="tim", authzid="", final=None)


def test_plain_password_may_contain_spaces_and_equals() -> None:
    assert parse_plain(b"\x00u\x00 a=b c ") == CheckPassword("u", " a=b c ", "")


@pytest.mark.parametrize(
    "message",
    [
        b"tim",  # no NUL
        b"\x00timpassword",  # one NUL
        b"\x00tim\x00pw\x00",  # extra NUL
        b"a\x00b\x00c\x00d",
        b"\x00\x00pw",  # empty authcid
        b"\x00tim\x00",  # empty password
        b"\x00\x00",
        b"\x00t\xffm\x00pw",  # bad UTF-8 in authcid
        b"\x00tim\x00p\xc3",  # truncated UTF-8 in password
        b"\xed\xa0\x80\x00tim\x00pw",  # encoded surrogate in authzid
        b"\x00" + b"u" * 1025 + b"\x00pw",  # oversized authcid
        b"\x00tim\x00" + b"p" * 1025,  # oversized password
        b"z" * 1025 + b"\x00tim\x00pw",  # oversized authzid
        b"\x00tim\x00" + b"p" * 5000,  # far too long overall
    ],
)
def test_plain_malformed(message: bytes) -> None:
    mech = Plain()
    event = mech.start(message)
    assert isinstance(event, Failure) and event.reason == "malformed"
    assert mech.done


def test_plain_fields_of_exactly_the_limit_are_accepted() -> None:
    event = parse_plain(b"a" * 1024 + b"\x00" + b"u" * 1024 + b"\x00" + b"p" * 1024)
    assert isinstance(event, CheckPassword) and len(event.password) == 1024


@given(st.text(min_size=1), st.text(min_size=1), st.text())
def test_plain_round_trip(authcid: str, password: str, authzid: str) -> None:
    message = b"\x00".join(s.encode("utf-8", "surrogatepass") for s in (authzid, authcid, password))
    event = parse_plain(message)
    fits = all(
        len(s.encode("utf-8", "surrogatepass")) <= 1024 for s in (authzid, authcid, password)
    )
    clean = not any("\x00" in s or _has_surrogate(s) for s in (authzid, authcid, password))
    if fits and clean:
        assert event == CheckPassword(authcid=authcid, password=password, authzid=authzid)
    else:
        assert isinstance(event, Failure) and event.reason == "malformed"


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


# --- LOGIN -----------------------------------------------------------------------------


def test_login_exchange() -> None:
    mech = Login()
    assert mech.start(None) == Challenge(b"Username:")
    assert mech.respond(b"tim") == Challenge(b"Password:")
    assert mech.respond(b"secret pw") == CheckPassword(
        authcid="tim", password="secret pw", authzid=""
    )
    assert mech.resolve(OK) == Success(authcid="tim", authzid="", final=None)


def test_login_initial_response_is_the_username() -> None:
    mech = Login()
    assert mech.start(b"tim") == Challenge(b"Password:")
    assert mech.respond(b"pw") == CheckPassword(authcid="tim", password="pw", authzid="")
    event = mech.resolve(PasswordVerdict(ok=False))
    assert isinstance(event, Failure) and event.reason == "credentials"


def test_login_empty_initial_response_asks_for_the_username() -> None:
    assert Login().start(b"") == Challenge(b"Username:")


def test_login_verdict_canonicalises_the_account() -> None:
    mech = Login()
    mech.start(b"TIM")
    mech.respond(b"pw")
    assert mech.resolve(PasswordVerdict(ok=True, authcid="tim")) == Success("tim", "", None)


@pytest.mark.parametrize("username", [b"", b"t\x00m", b"\xff", b"u" * 1025])
def test_login_malformed_username(username: bytes) -> None:
    mech = Login()
    mech.start(None)
    event = mech.respond(username)
    assert isinstance(event, Failure) and event.reason == "malformed"


@pytest.mark.parametrize("password", [b"", b"p\x00w", b"\xc3(", b"p" * 1025])
def test_login_malformed_password(password: bytes) -> None:
    mech = Login()
    mech.start(b"tim")
    event = mech.respond(password)
    assert isinstance(event, Failure) and event.reason == "malformed"


# --- call order ------------------------------------------------------------------------


def test_respond_before_start_is_misuse() -> None:
    with pytest.raises(ProtocolMisuse):
        Plain().respond(b"\x00a\x00b")


def test_resolve_without_a_request_is_misuse() -> None:
    mech = Login()
    mech.start(None)
    with pytest.raises(ProtocolMisuse):
        mech.resolve(OK)


def test_respond_while_a_verdict_is_pending_is_misuse() -> None:
    mech = Plain()
    mech.start(b"\x00a\x00b")
    with pytest.raises(ProtocolMisuse):
        mech.respond(b"\x00a\x00b")
    assert mech.resolve(OK) == Success("a", "", None)  # the misuse changed nothing


def test_start_twice_is_misuse() -> None:
    mech = Login()
    mech.start(None)
    with pytest.raises(ProtocolMisuse):
        mech.start(None)


def test_calls_after_the_end_are_misuse() -> None:
    mech = Plain()
    mech.start(b"\x00a\x00b")
    mech.resolve(OK)
    for call in (lambda: mech.start(None), lambda: mech.respond(b""), lambda: mech.resolve(OK)):
        with pytest.raises(ProtocolMisuse):
            call()
    with pytest.raises(ProtocolMisuse):
        mech.cancel()


def test_wrong_verdict_type_is_misuse() -> None:
    mech = Plain()
    mech.start(b"\x00a\x00b")
    with pytest.raises(ProtocolMisuse):
        mech.resolve(TokenVerdict(ok=True))
    with pytest.raises(ProtocolMisuse):
        mech.resolve(None)


def test_non_bytes_data_is_misuse() -> None:
    with pytest.raises(ProtocolMisuse):
        Plain().start("\x00a\x00b")  # type: ignore[arg-type]
    mech = Login()
    mech.start(None)
    with pytest.raises(ProtocolMisuse):
        mech.respond("tim")  # type: ignore[arg-type]


@pytest.mark.parametrize("factory", [Plain, Login, OAuthBearer, XOAuth2])
def test_cancel_ends_the_exchange(factory: type[Plain | Login | OAuthBearer | XOAuth2]) -> None:
    mech = factory()
    assert isinstance(mech.start(None), Challenge)
    assert mech.cancel() == Failure("cancelled", "authentication cancelled by the client")
    assert mech.done
    with pytest.raises(ProtocolMisuse):
        mech.respond(b"")


# --- advertising policy ----------------------------------------------------------------

CB = {"tls-server-end-point": b"\x01" * 32}


def test_available_over_tls_with_channel_binding_and_oauth() -> None:
    assert available(options(bindings=CB, oauth=True)) == [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-256",
        "PLAIN",
        "LOGIN",
        "OAUTHBEARER",
        "XOAUTH2",
    ]


def test_available_over_tls_without_channel_binding() -> None:
    assert available(options()) == ["SCRAM-SHA-256", "PLAIN", "LOGIN"]


def test_available_without_tls_offers_only_scram() -> None:
    assert available(options(tls=False, oauth=True)) == ["SCRAM-SHA-256"]


def test_available_channel_binding_data_is_ignored_without_tls() -> None:
    assert available(options(tls=False, bindings=CB)) == ["SCRAM-SHA-256"]


def test_available_without_tls_when_operator_allows_plaintext() -> None:
    assert available(options(tls=False, plaintext=True, oauth=True)) == [
        "SCRAM-SHA-256",
        "PLAIN",
        "LOGIN",
        "OAUTHBEARER",
        "XOAUTH2",
    ]


@pytest.mark.parametrize(
    "bindings", [{"tls-foo": b"x"}, {"tls-server-end-point": b""}, {}], ids=repr
)
def test_plus_needs_a_supported_binding_with_data(bindings: dict[str, bytes]) -> None:
    assert "SCRAM-SHA-256-PLUS" not in available(options(bindings=bindings))


def test_tls_exporter_data_enables_plus() -> None:
    assert available(options(bindings={"tls-exporter": b"k" * 32}))[0] == "SCRAM-SHA-256-PLUS"


def test_create_is_case_insensitive() -> None:
    opts = options(bindings=CB, oauth=True)
    assert isinstance(create("plain", opts), Plain)
    assert isinstance(create("Login", opts), Login)
    assert isinstance(create("oauthbearer", opts), OAuthBearer)
    assert isinstance(create("xoauth2", opts), XOAuth2)
    plus = create("scram-sha-256-plus", opts)
    assert isinstance(plus, ScramSha256) and plus.name == "SCRAM-SHA-256-PLUS"
    scram = create("SCRAM-sha-256", opts)
    assert isinstance(scram, ScramSha256) and scram.name == "SCRAM-SHA-256"


def test_create_returns_fresh_mechanisms() -> None:
    opts = options()
    assert create("PLAIN", opts) is not create("PLAIN", opts)


@pytest.mark.parametrize("name", ["CRAM-MD5", "SCRAM-SHA-1", "", "PLAIN ", "\u017fcram-sha-256"])
def test_create_unknown(name: str) -> None:
    assert create(name, options(bindings=CB, oauth=True)) is None


def test_create_refuses_what_is_not_available() -> None:
    cleartext = options(tls=False, oauth=True)
    for name in ("PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2", "SCRAM-SHA-256-PLUS"):
        assert create(name, cleartext) is None
    assert create("OAUTHBEARER", options()) is None  # no issuer configured
    assert create("SCRAM-SHA-256-PLUS", options()) is None  # no binding data
    assert isinstance(create("SCRAM-SHA-256", cleartext), ScramSha256)


def test_scram_iterations_are_bounded() -> None:
    with pytest.raises(ValueError):
        MechanismOptions(
            tls=True, channel_bindings={}, allow_plaintext=False, oauth=False, scram_iterations=1000
        )


def test_secrets_stay_out_of_reprs() -> None:
    assert "hunter2" not in repr(CheckPassword("tim", "hunter2", ""))
    assert "tok123" not in repr(CheckToken("tok123", "tim", "XOAUTH2"))
