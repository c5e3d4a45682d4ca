"""Issue 4 against the real server: SASL mechanisms with real client implementations
(scramp's SCRAM client, imaplib), app passwords and their limits, the two-factor rule,
per-account networks, OAuth bearer tokens, bans that survive a restart, connection
limits, the audit log and anomaly alerts."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest
import scramp
from cryptography.hazmat.primitives.asymmetric import rsa

from carteiro.audit.alerts import AlertSettings
from carteiro.audit.anomalies import AnomalyPolicy
from carteiro.auth.guard import GuardPolicy
from carteiro.auth.sasl import encode_scram_record, scram_credentials
from carteiro.auth.service import app_password_digest
from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple

APP_SECRET = "abcdef-ghijkm-npqrst-uvwxyz"


def audit_events(server: ServerThread) -> list[dict[str, object]]:
    if not server.audit_path.exists():
        return []
    return [json.loads(line) for line in server.audit_path.read_text().splitlines()]


def scram_user(server: ServerThread, password: str = "secret") -> str:
    user = server.new_user()
    record = encode_scram_record(scram_credentials(password))
    server.call(server.store.set_scram(user, record))
    return user


def scram_auth(client: scramp.ScramClient) -> Callable[[bytes], bytes]:
    """imaplib's authobject driving scramp's client through the three SCRAM steps."""
    step = iter(range(3))

    def respond(challenge: bytes) -> bytes:
        n = next(step)
        if n == 0:
            return client.get_client_first().encode()
        if n == 1:
            client.set_server_first(challenge.decode())
            return client.get_client_final().encode()
        client.set_server_final(challenge.decode())  # raises if the server is not genuine
        return b""

    return respond


# --- mechanisms ----------------------------------------------------------------------


def test_mechanisms_depend_on_tls(server: ServerThread, tmp_path: Path) -> None:
    caps = RawClient(server.port).greeting
    assert b"AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN" in caps  # 127.0.0.1 is trusted
    assert b"SCRAM-SHA-256-PLUS" not in caps  # no channel binding without TLS
    conn = server.connect_tls()
    try:
        assert {"AUTH=SCRAM-SHA-256-PLUS", "AUTH=SCRAM-SHA-256", "AUTH=PLAIN"} <= set(
            conn.capabilities
        )
    finally:
        conn.logout()
    strict = ServerThread(tmp_path, trusted_networks=())
    try:
        greeting = RawClient(strict.port).greeting
        assert b"AUTH=SCRAM-SHA-256 LOGINDISABLED" in greeting
        assert b"AUTH=PLAIN" not in greeting
    finally:
        strict.stop()


def test_scram_sha256_with_a_real_client(server: ServerThread) -> None:
    user = scram_user(server)
    conn = server.connect()
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, "secret")
    typ, _ = conn.authenticate("SCRAM-SHA-256", scram_auth(client))
    assert typ == "OK" and conn.state == "AUTH"
    conn.logout()
    wrong = server.connect()
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, "wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        wrong.authenticate("SCRAM-SHA-256", scram_auth(client))


def test_scram_plus_binds_the_tls_channel(server: ServerThread) -> None:
    user = scram_user(server)
    conn = server.connect_tls()
    # RFC 5929 §4.1, computed by the client from the certificate it received (signed
    # with ECDSA-SHA256, so the hash is SHA-256)
    der = conn.sock.getpeercert(binary_form=True)
    binding = ("tls-server-end-point", hashlib.sha256(der).digest())
    client = scramp.ScramClient(["SCRAM-SHA-256-PLUS"], user, "secret", channel_binding=binding)
    typ, _ = conn.authenticate("SCRAM-SHA-256-PLUS", scram_auth(client))
    assert typ == "OK"
    conn.logout()
    # a client that saw another certificate (a man in the middle) is refused
    conn = server.connect_tls()
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"], user, "secret",
        channel_binding=("tls-server-end-point", hashlib.sha256(b"other").digest()),
    )  # fmt: skip
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate("SCRAM-SHA-256-PLUS", scram_auth(client))
    conn.logout()


def test_scram_keys_are_derived_at_the_first_password_login(server: ServerThread) -> None:
    user = server.new_user()  # created without SCRAM keys
    assert server.call(server.store.credentials(user)).scram is None  # type: ignore[union-attr]
    server.connect(user).logout()
    conn = server.connect()
    typ, _ = conn.authenticate(
        "SCRAM-SHA-256", scram_auth(scramp.ScramClient(["SCRAM-SHA-256"], user, "secret"))
    )
    assert typ == "OK"
    conn.logout()


def test_login_mechanism_and_cancel(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    c.send(b"a AUTHENTICATE LOGIN\r\n")
    assert c.readline() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    c.send(base64.b64encode(user.encode()) + b"\r\n")
    assert c.readline() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    c.send(base64.b64encode(b"secret") + b"\r\n")
    assert c.readline().startswith(b"a OK [CAPABILITY")
    c2 = RawClient(server.port)
    c2.send(b"b AUTHENTICATE PLAIN\r\n")
    assert c2.readline() == b"+ \r\n"
    c2.send(b"*\r\n")
    assert c2.readline().startswith(b"b BAD")
    assert c2.cmd("NOOP", tag="n")[-1].startswith(b"n OK")


# --- app passwords, two factors, networks ---------------------------------------------


def add_app(
    server: ServerThread, user: str, name: str = "Phone", secret: str = APP_SECRET, **kw: object
) -> None:
    server.call(server.store.add_app_password(user, name, app_password_digest(secret), **kw))  # type: ignore[arg-type]


def login_ok(server: ServerThread, user: str, password: str) -> bool:
    conn = server.connect()
    try:
        conn.login(user, password)
    except imaplib.IMAP4.error:
        return False
    conn.logout()
    return True


def test_app_passwords_and_their_limits(server: ServerThread, user: str) -> None:
    add_app(server, user)
    assert login_ok(server, user, APP_SECRET)
    assert login_ok(server, user, "secret")  # the main password still works (no 2FA)
    apps = server.call(server.store.list_app_passwords(user))
    assert apps[0].last_used is not None and apps[0].last_address == "127.0.0.1"
    add_app(server, user, "Mailer", "mailer-secret-0", protocols=["smtp"])
    assert not login_ok(server, user, "mailer-secret-0")  # not for IMAP
    add_app(server, user, "Office", "office-secret-0", networks=["10.0.0.0/8"])
    assert not login_ok(server, user, "office-secret-0")  # not from 127.0.0.1
    add_app(server, user, "Old", "old-secret-000", expires=time.time() - 1)
    assert not login_ok(server, user, "old-secret-000")  # expired
    server.call(server.store.revoke_app_password(user, "Phone"))
    assert not login_ok(server, user, APP_SECRET)
    reasons = [e.get("reason") for e in audit_events(server) if e["event"] == "auth.failure"]
    assert {"app-password-protocol", "app-password-network", "app-password-expired"} <= set(reasons)


def test_two_factor_accounts_need_app_passwords(server: ServerThread) -> None:
    user = scram_user(server)
    add_app(server, user)
    server.call(server.store.set_totp(user, "JBSWY3DPEHPK3PXP"))
    assert not login_ok(server, user, "secret")
    conn = server.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate(
            "SCRAM-SHA-256", scram_auth(scramp.ScramClient(["SCRAM-SHA-256"], user, "secret"))
        )
    assert login_ok(server, user, APP_SECRET)
    failures = [e for e in audit_events(server) if e["event"] == "auth.failure"]
    assert any(e["reason"] == "two-factor-needs-app-password" for e in failures)


def test_main_password_networks(server: ServerThread, user: str) -> None:
    add_app(server, user)
    server.call(server.store.set_networks(user, ["10.0.0.0/8"]))
    assert not login_ok(server, user, "secret")
    assert login_ok(server, user, APP_SECRET)  # app passwords have their own limits
    server.call(server.store.set_networks(user, ["127.0.0.0/8"]))
    assert login_ok(server, user, "secret")


# --- OAuth bearer tokens --------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def oauth_server(
    tmp_path_factory: pytest.TempPathFactory, oauth_key: rsa.RSAPrivateKey
) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("oauth")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(oauth_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    (base / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    issuer = {
        "issuer": "https://id.example.org",
        "audience": "carteiro",
        "jwks_file": str(base / "jwks.json"),
        "discovery_url": "https://id.example.org/.well-known/openid-configuration",
    }
    srv = ServerThread(base / "data", security={"oauth_issuers": (issuer,)})
    yield srv
    srv.stop()


def token(key: rsa.RSAPrivateKey, email: str, **claims: object) -> str:
    now = int(time.time())
    body = {
        "iss": "https://id.example.org",
        "aud": "carteiro",
        "email": email,
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_oauthbearer_and_xoauth2(oauth_server: ServerThread, oauth_key: rsa.RSAPrivateKey) -> None:
    user = oauth_server.new_user()
    assert "AUTH=OAUTHBEARER" in oauth_server.connect().capabilities
    good = token(oauth_key, user)
    conn = oauth_server.connect()
    msg = f"n,a={user},\x01auth=Bearer {good}\x01\x01".encode()
    typ, _ = conn.authenticate("OAUTHBEARER", lambda _: msg)
    assert typ == "OK"
    conn.logout()
    conn = oauth_server.connect()
    typ, _ = conn.authenticate(
        "XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {good}\x01\x01".encode()
    )
    assert typ == "OK"
    conn.logout()


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": int(time.time()) - 3600},
        {"aud": "someone-else"},
        {"iss": "https://evil.example.org"},
    ],
    ids=["expired", "audience", "issuer"],
)
def test_bad_tokens_get_the_rfc7628_error(
    oauth_server: ServerThread, oauth_key: rsa.RSAPrivateKey, bad: dict[str, object]
) -> None:
    user = oauth_server.new_user()
    seen: list[bytes] = []

    def respond(challenge: bytes) -> bytes:
        seen.append(challenge)
        if len(seen) == 1:
            return f"n,a={user},\x01auth=Bearer {token(oauth_key, user, **bad)}\x01\x01".encode()
        return b"\x01"

    conn = oauth_server.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate("OAUTHBEARER", respond)
    error = json.loads(seen[-1])
    assert error["status"] == "invalid_token"
    assert error["openid-configuration"].endswith("/.well-known/openid-configuration")


def test_badly_signed_token_is_refused(oauth_server: ServerThread) -> None:
    user = oauth_server.new_user()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    conn = oauth_server.connect()
    msg = f"n,a={user},\x01auth=Bearer {token(other, user)}\x01\x01".encode()
    answers = iter([msg, b"\x01"])
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        conn.authenticate("OAUTHBEARER", lambda _: next(answers))


# --- throttling, bans, limits -----------------------------------------------------------


def test_ban_refuses_at_connect_and_survives_restart(tmp_path: Path) -> None:
    policy = GuardPolicy(ip_delay_after=0, account_delay_after=0, ip_ban_after=3, never_ban=())
    srv = ServerThread(tmp_path, security={"guard": policy})
    try:
        user = srv.new_user()
        for _ in range(2):
            assert not login_ok(srv, user, "wrong")
        c = RawClient(srv.port)
        lines = c.cmd(f"LOGIN {user} wrong", tag="x")
        assert lines[0] == b"* BYE Too many failed logins from your address\r\n"
        assert lines[1].startswith(b"x NO [AUTHENTICATIONFAILED]")
        refused = RawClient(srv.port)
        assert refused.greeting.startswith(b"* BYE ")
        assert any(e["event"] == "ban" for e in audit_events(srv))
    finally:
        srv.stop()
    again = ServerThread(tmp_path, security={"guard": policy})
    try:
        assert RawClient(again.port).greeting.startswith(b"* BYE ")
        # the right password does not help a banned source
        with pytest.raises(imaplib.IMAP4.error, match="BYE"):
            again.connect(user)
    finally:
        again.stop()


def test_connection_limit_per_address(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path, security={"per_ip": 2, "trusted": ()})
    try:
        a, b = RawClient(srv.port), RawClient(srv.port)
        assert a.greeting.startswith(b"* OK") and b.greeting.startswith(b"* OK")
        assert RawClient(srv.port).greeting == b"* BYE Too many connections from your address\r\n"
        a.cmd("LOGOUT", tag="l")
        a.close()
        for _ in range(50):  # the slot is freed when the server closes the session
            c = RawClient(srv.port)
            if c.greeting.startswith(b"* OK"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the slot of a closed connection was never released")
    finally:
        srv.stop()


def test_unknown_and_known_accounts_fail_alike(server: ServerThread, user: str) -> None:
    """Same reply, and the same time give or take noise: both verify an argon2 hash."""

    def attempt(name: str) -> tuple[float, bytes]:
        c = RawClient(server.port)
        start = time.perf_counter()
        reply = c.cmd(f"LOGIN {name} wrong-password", tag="t")[-1]
        return time.perf_counter() - start, reply

    known = [attempt(user) for _ in range(5)]
    unknown = [attempt(f"nobody{i}@example.org") for i in range(5)]
    assert (
        {r for _, r in known}
        == {r for _, r in unknown}
        == {b"t NO [AUTHENTICATIONFAILED] Authentication failed\r\n"}
    )
    k = statistics.median(t for t, _ in known)
    u = statistics.median(t for t, _ in unknown)
    assert abs(k - u) < 0.5 * max(k, u) + 0.02, (k, u)


# --- audit log and anomalies --------------------------------------------------------------


def test_audit_log_records_logins_without_secrets(server: ServerThread, user: str) -> None:
    c = RawClient(server.port)
    c.cmd('ID ("name" "pytest-client" "version" "1")', tag="i")
    assert c.cmd(f"LOGIN {user} secret", tag="l")[-1].startswith(b"l OK")
    c.cmd("LOGOUT", tag="o")
    assert not login_ok(server, user, "hunter2-not-the-password")
    events = audit_events(server)
    ok = [e for e in events if e["event"] == "auth.success" and e["account"] == user]
    assert ok and ok[-1]["mechanism"] == "LOGIN" and ok[-1]["credential"] == "password"
    assert ok[0]["client_id"] == {"name": "pytest-client", "version": "1"}
    failed = [e for e in events if e["event"] == "auth.failure" and e["username"] == user]
    assert failed and failed[-1]["source"] == "127.0.0.1"
    ends = [e for e in events if e["event"] == "session.end" and e.get("account") == user]
    assert ends and all(int(e["bytes_out"]) > 0 for e in ends)  # type: ignore[call-overload]
    text = server.audit_path.read_text()
    assert "secret" not in text.replace("secret_", "") and "hunter2" not in text
    history = server.call(server.security.security.recent_logins(user.casefold(), 10))
    assert [r.success for r in history][:2] == [False, True]


def test_guessing_and_mass_deletion_raise_alerts(tmp_path: Path) -> None:
    policy = AnomalyPolicy(guessing_failures=3, deletion_count=3)
    srv = ServerThread(
        tmp_path, security={"anomalies": policy, "alerts": AlertSettings(mail_owner=True)}
    )
    try:
        user = srv.new_user()
        for _ in range(3):
            assert not login_ok(srv, user, "guess")
        for i in range(4):
            srv.deliver(user, simple(f"to delete {i}"))
        c = RawClient(srv.port)
        c.cmd(f"LOGIN {user} secret", tag="l")
        c.cmd("SELECT INBOX", tag="s")
        found = c.cmd('SEARCH SUBJECT "to delete"', tag="f")[0].split()[2:]
        assert len(found) == 4  # the alert about the guessing is in the INBOX too
        c.cmd(b"STORE " + b",".join(found) + b" +FLAGS.SILENT (\\Deleted)", tag="d")
        assert c.cmd("EXPUNGE", tag="e")[-1].startswith(b"e OK")
        c.cmd("LOGOUT", tag="o")
        deadline = time.monotonic() + 10
        kinds: set[object] = set()
        while time.monotonic() < deadline:
            kinds = {e["kind"] for e in audit_events(srv) if e["event"] == "alert"}
            if {"targeted-guessing", "mass-deletion"} <= kinds:
                break
            time.sleep(0.05)
        assert {"targeted-guessing", "mass-deletion"} <= kinds
        # the owner is told by mail, in the INBOX
        conn = srv.connect(user)
        conn.select("INBOX")
        _, data = conn.search(None, 'SUBJECT "[Carteiro]"')
        assert len(data[0].split()) >= 2
        conn.logout()
    finally:
        srv.stop()


def test_connection_limit_per_account(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path, security={"per_account": 2})
    try:
        user = srv.new_user()
        first, second = srv.connect(user), srv.connect(user)
        third = RawClient(srv.port)
        reply = third.cmd(f"LOGIN {user} secret", tag="l")[-1]
        assert reply.startswith(b"l NO [LIMIT] Too many sessions for this account")
        assert third.cmd("NOOP", tag="n")[-1].startswith(b"n OK")  # still not logged in
        assert srv.connect(srv.new_user()).noop()[0] == "OK"  # other accounts are fine
        first.logout()
        for _ in range(50):  # the account's slot is freed when the session ends
            reply = third.cmd(f"LOGIN {user} secret", tag="m")[-1]
            if reply.startswith(b"m OK"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the account's slot was never released")
        second.logout()
    finally:
        srv.stop()


def test_global_deny_and_allow_lists(tmp_path: Path) -> None:
    import ipaddress

    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    denied = ServerThread(tmp_path / "deny", security={"guard": GuardPolicy(deny=loopback)})
    try:
        assert RawClient(denied.port).greeting.startswith(b"* BYE ")
    finally:
        denied.stop()
    only_lan = (ipaddress.ip_network("10.0.0.0/8"),)
    allowed = ServerThread(tmp_path / "allow", security={"guard": GuardPolicy(allow=only_lan)})
    try:
        assert RawClient(allowed.port).greeting.startswith(b"* BYE ")
    finally:
        allowed.stop()


def test_alerts_reach_a_webhook(tmp_path: Path) -> None:
    import http.server
    import threading

    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{hook.server_address[1]}/alerts"
    srv = ServerThread(
        tmp_path,
        security={
            "anomalies": AnomalyPolicy(guessing_failures=2),
            "alerts": AlertSettings(webhook_url=url, mail_owner=False),
        },
    )
    try:
        user = srv.new_user()
        for _ in range(2):
            assert not login_ok(srv, user, "guess")
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received and received[0]["kind"] == "targeted-guessing"
        assert received[0]["account"] == user
    finally:
        srv.stop()
        hook.shutdown()
        hook.server_close()
