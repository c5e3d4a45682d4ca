"""PROXY protocol v1/v2 on a listener marked as behind a load balancer: the real client
address reaches the audit log and the guard; a header from an untrusted sender, a
malformed header or none at all ends the connection."""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import scramp

from carteiro.audit.anomalies import AnomalyPolicy
from carteiro.auth.guard import GuardPolicy
from carteiro.auth.sasl import encode_scram_record, scram_credentials
from carteiro.net.proxy_protocol import encode_v1, encode_v2
from tests.integration.harness import OPEN, ServerThread
from tests.integration.mbox import simple

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture(scope="module")
def lb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    policy = GuardPolicy(ip_delay_after=0, account_delay_after=0, ip_ban_after=2, never_ban=())
    srv = ServerThread(
        tmp_path_factory.mktemp("proxy"), proxy_trusted=LOOPBACK, security={"guard": policy}
    )
    srv.proxy_port = srv.listen_proxy()  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def via_proxy(port: int, header: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    OPEN.append(sock)
    sock.sendall(header)
    return sock


def lines(sock: socket.socket, count: int) -> list[bytes]:
    buf = b""
    while buf.count(b"\r\n") < count:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf.split(b"\r\n")[:count]


def test_v1_and_v2_headers_give_the_real_address(lb_server: ServerThread) -> None:
    user = lb_server.new_user()
    port = lb_server.proxy_port  # type: ignore[attr-defined]
    for header, source in (
        (encode_v1(("198.51.100.7", 40000), ("192.0.2.1", 143)), "198.51.100.7"),
        (encode_v2(("2001:db8::42", 40001), ("2001:db8::1", 143)), "2001:db8::42"),
    ):
        sock = via_proxy(port, header + f"a LOGIN {user} secret\r\n".encode())
        greeting, reply = lines(sock, 2)
        assert greeting.startswith(b"* OK [CAPABILITY")
        # the real client is not on a trusted network: no cleartext password
        assert reply.startswith(b"a NO [PRIVACYREQUIRED]")
        events = [json.loads(x) for x in lb_server.audit_path.read_text().splitlines()]
        starts = [e for e in events if e["event"] == "session.start"]
        assert starts[-1]["source"] == source


def test_bans_see_the_real_address(lb_server: ServerThread) -> None:
    port = lb_server.proxy_port  # type: ignore[attr-defined]
    attacker = encode_v1(("203.0.113.66", 5555), ("192.0.2.1", 143))
    # a cleartext LOGIN is refused for privacy, which is not a guess: no strike
    sock = via_proxy(port, attacker + b"x LOGIN someone wrong\r\n")
    assert lines(sock, 2)[1].startswith(b"x NO [PRIVACYREQUIRED]")
    # two wrong SCRAM proofs (SCRAM is offered without TLS) from the attacker's address
    for attempt in range(2):
        client = scramp.ScramClient(["SCRAM-SHA-256"], "nobody@example.org", "guess")
        first = base64.b64encode(client.get_client_first().encode())
        sock = via_proxy(port, attacker + b"y AUTHENTICATE SCRAM-SHA-256 " + first + b"\r\n")
        greeting, challenge = lines(sock, 2)
        client.set_server_first(base64.b64decode(challenge[2:]).decode())
        sock.sendall(base64.b64encode(client.get_client_final().encode()) + b"\r\n")
        reply = lines(sock, 2 if attempt else 1)
        if attempt:  # the second strike bans the source and ends the session
            assert reply[0] == b"* BYE Too many failed logins from your address"
        assert reply[-1].startswith(b"y NO [AUTHENTICATIONFAILED]")
        sock.close()
    banned = via_proxy(port, attacker)
    assert lines(banned, 1)[0].startswith(b"* BYE ")
    # another client behind the same load balancer is not affected
    other = via_proxy(port, encode_v1(("198.51.100.8", 1), ("192.0.2.1", 143)))
    assert lines(other, 1)[0].startswith(b"* OK")


def test_untrusted_sender_and_bad_headers_are_refused(tmp_path: Path) -> None:
    srv = ServerThread(tmp_path)  # no trusted proxies at all
    try:
        port = srv.listen_proxy()
        spoof = via_proxy(port, encode_v1(("10.9.9.9", 1), ("192.0.2.1", 143)))
        assert lines(spoof, 1) == [b"* BYE PROXY protocol from an untrusted address"]
    finally:
        srv.stop()


def test_malformed_or_missing_header(lb_server: ServerThread) -> None:
    port = lb_server.proxy_port  # type: ignore[attr-defined]
    assert lines(via_proxy(port, b"a LOGIN x y\r\n"), 1) == [b"* BYE Bad PROXY protocol header"]
    assert lines(via_proxy(port, b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n"), 1) == [
        b"* BYE Bad PROXY protocol header"
    ]


def scram_login(port: int, header: bytes, user: str, password: str) -> tuple[socket.socket, bytes]:
    """Logs in with SCRAM-SHA-256 (allowed without TLS) from the address in ``header``;
    the socket after the tagged reply, and that reply."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], user, password)
    first = base64.b64encode(client.get_client_first().encode())
    sock = via_proxy(port, header + b"s AUTHENTICATE SCRAM-SHA-256 " + first + b"\r\n")
    _greeting, challenge = lines(sock, 2)
    client.set_server_first(base64.b64decode(challenge[2:]).decode())
    sock.sendall(base64.b64encode(client.get_client_final().encode()) + b"\r\n")
    reply = lines(sock, 1)[0]
    if reply.startswith(b"+ "):  # server-final: verified, then an empty reply
        client.set_server_final(base64.b64decode(reply[2:]).decode())
        sock.sendall(b"\r\n")
        reply = lines(sock, 1)[0]
    return sock, reply


def alerts(server: ServerThread, kind: str) -> list[dict[str, object]]:
    events = [json.loads(x) for x in server.audit_path.read_text().splitlines()]
    return [e for e in events if e["event"] == "alert" and e["kind"] == kind]


def wait_for_alert(server: ServerThread, kind: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = alerts(server, kind)
        if found:
            return found
        time.sleep(0.05)
    return []


def test_detectors_over_sockets(tmp_path: Path) -> None:
    """New network, password spraying and a large download, each from scripted
    sessions whose addresses come through the PROXY protocol; normal use stays quiet."""
    policy = AnomalyPolicy(spraying_accounts=3, download_session_bytes=200_000)
    srv = ServerThread(tmp_path, proxy_trusted=LOOPBACK, security={"anomalies": policy})
    try:
        port = srv.listen_proxy()
        user = srv.new_user()
        record = encode_scram_record(scram_credentials("secret"))
        srv.call(srv.store.set_scram(user, record))
        home = encode_v1(("198.51.100.20", 1000), ("192.0.2.1", 143))
        # normal use: the first login ever, then again from the same network
        for _ in range(3):
            sock, reply = scram_login(port, home, user, "secret")
            assert reply.startswith(b"s OK")
            sock.close()
        assert alerts(srv, "new-network") == []
        # the account from a network never seen for it
        away = encode_v1(("203.0.113.50", 1000), ("192.0.2.1", 143))
        scram_login(port, away, user, "secret")[0].close()
        found = wait_for_alert(srv, "new-network")
        assert found and found[0]["account"] == user and found[0]["source"] == "203.0.113.50"
        # one source failing on many accounts
        sprayer = encode_v1(("192.0.2.200", 1000), ("192.0.2.1", 143))
        for victim in ("a@example.org", "b@example.org", "c@example.org"):
            sock, reply = scram_login(port, sprayer, victim, "Summer2026!")
            assert reply.startswith(b"s NO")
            sock.close()
        spray = wait_for_alert(srv, "password-spraying")
        assert spray and spray[0]["source"] == "192.0.2.200"
        # a session downloading far more than usual
        for i in range(5):
            srv.deliver(user, simple(f"big {i}", "x" * 60_000))
        sock, _ = scram_login(port, home, user, "secret")
        sock.sendall(b"a SELECT INBOX\r\nb FETCH 1:* BODY[]\r\nc LOGOUT\r\n")
        while sock.recv(65536):
            pass
        big = wait_for_alert(srv, "large-download")
        assert big and big[0]["account"] == user
    finally:
        srv.stop()


class MemoryTLS:
    """A TLS client over a raw socket with memory BIOs, so that the PROXY header and the
    ClientHello can leave in one segment, as a load balancer may send them."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def client_hello(self) -> bytes:
        with pytest.raises(ssl.SSLWantReadError):
            self.obj.do_handshake()
        return self.outgoing.read()

    def _pump(self) -> None:
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.incoming.write(data)

    def finish_handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._pump()
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self.sock.sendall(self.outgoing.read())

    def readline(self) -> bytes:
        buf = b""
        while not buf.endswith(b"\r\n"):
            try:
                buf += self.obj.read(1)
            except ssl.SSLWantReadError:
                self._pump()
        return buf


def test_implicit_tls_behind_a_balancer(lb_server: ServerThread) -> None:
    """Port 993 behind a balancer: the PROXY header, then the TLS handshake, even when
    both arrive in the same segment."""
    port = lb_server.listen_proxy(implicit_tls=True)
    user = lb_server.new_user()
    ctx = ssl.create_default_context(cafile=str(lb_server.cert))
    ctx.check_hostname = False
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    OPEN.append(sock)
    tls = MemoryTLS(sock, ctx)
    header = encode_v2(("198.51.100.99", 4444), ("192.0.2.1", 993))
    sock.sendall(header + tls.client_hello())  # one segment
    tls.finish_handshake()
    greeting = tls.readline()
    assert greeting.startswith(b"* OK [CAPABILITY") and b"AUTH=PLAIN" in greeting
    tls.send(f"a LOGIN {user} secret\r\n".encode())
    assert tls.readline().startswith(b"a OK")
    events = [json.loads(x) for x in lb_server.audit_path.read_text().splitlines()]
    success = [e for e in events if e["event"] == "auth.success" and e["account"] == user]
    assert success[-1]["source"] == "198.51.100.99" and success[-1]["tls"] == "TLSv1.3"
    # and with an ordinary client that sends the header first, then the handshake
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    OPEN.append(raw)
    raw.sendall(encode_v1(("198.51.100.98", 1), ("192.0.2.1", 993)))
    wrapped = ctx.wrap_socket(raw, server_hostname="localhost")
    OPEN.append(wrapped)
    assert wrapped.recv(65536).startswith(b"* OK [CAPABILITY")
