"""TokenValidator against a real JWKS URL: a ThreadingHTTPServer on 127.0.0.1 that counts
requests, fetched with the default fetch (urllib in a worker thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from carteiro.auth import jwks
from carteiro.auth.tokens import IssuerConfig, TokenResult, TokenValidator

ISS = "https://idp.example.org"
AUD = "carteiro"
NOW = 1_800_000_000.0

KEY1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY2 = ec.generate_private_key(ec.SECP256R1())


def key_set(*pairs: tuple[Any, str]) -> bytes:
    keys = []
    for key, kid in pairs:
        public = key.public_key()
        algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        keys.append(algorithm.to_jwk(public, as_dict=True) | {"kid": kid})
    return json.dumps({"keys": keys}).encode()


def mint(key: Any = KEY1, kid: str = "k1", now: float = NOW) -> str:
    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    payload = {
        "iss": ISS,
        "aud": AUD,
        "email": "carol@example.org",
        "iat": int(now),
        "exp": int(now) + 300,
    }
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class JwksServer:
    """Serves ``body`` at /jwks.json; counts requests."""

    def __init__(self) -> None:
        self.body = key_set((KEY1, "k1"))
        self.requests = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner.lock:
                    owner.requests += 1
                    body = owner.body
                if self.path.startswith("/redirect?"):
                    self.send_response(302)
                    self.send_header("Location", self.path.partition("?")[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server() -> Iterator[JwksServer]:
    srv = JwksServer()
    yield srv
    srv.stop()


def validator_for(url: str, clock: Clock, **config: Any) -> TokenValidator:
    return TokenValidator([IssuerConfig(ISS, AUD, jwks_url=url, **config)], clock=clock)


def test_keys_are_fetched_once_and_cached(server: JwksServer) -> None:
    validator = validator_for(server.url, Clock())

    async def main() -> list[TokenResult]:
        return [await validator.validate(mint()), await validator.validate(mint())]

    results = asyncio.run(main())
    assert [r.account for r in results] == ["carol@example.org"] * 2
    assert server.requests == 1


def test_concurrent_first_validations_share_one_request(server: JwksServer) -> None:
    validator = validator_for(server.url, Clock())

    async def main() -> list[TokenResult]:
        return await asyncio.gather(*(validator.validate(mint()) for _ in range(10)))

    assert all(r.ok for r in asyncio.run(main()))
    assert server.requests == 1


def test_rotation_is_picked_up_on_an_unknown_kid(server: JwksServer) -> None:
    clock = Clock()
    validator = validator_for(server.url, clock)

    async def main() -> None:
        assert (await validator.validate(mint())).ok
        server.body = key_set((KEY1, "k1"), (KEY2, "k2"))
        clock.now += jwks.REFETCH_INTERVAL
        assert (await validator.validate(mint(KEY2, "k2", clock.now))).ok
        assert server.requests == 2
        server.body = key_set((KEY2, "k2"))  # k1 retired: the cache keeps it until it expires
        assert (await validator.validate(mint(now=clock.now))).ok
        assert server.requests == 2

    asyncio.run(main())


def test_unknown_kids_cannot_make_us_hammer_the_issuer(server: JwksServer) -> None:
    clock = Clock()
    validator = validator_for(server.url, clock)

    async def main() -> None:
        for minute in range(3):
            results = await asyncio.gather(
                *(validator.validate(mint(kid=f"x{minute}-{i}", now=clock.now)) for i in range(40))
            )
            assert {r.error for r in results} == {"unknown-key"}
            clock.now += jwks.REFETCH_INTERVAL

    asyncio.run(main())
    assert server.requests == 3  # one per minute, 120 bogus tokens in all


def test_server_down(server: JwksServer) -> None:
    clock = Clock()
    validator = validator_for(server.url, clock, cache_ttl=600)
    cold = validator_for(server.url, clock)

    async def main() -> None:
        assert (await validator.validate(mint())).ok
        assert server.requests == 1
        server.stop()
        clock.now += 3600  # cache stale; the refetch fails, so the cached keys stay in use
        assert (await validator.validate(mint(now=clock.now))).ok
        assert (await validator.validate(mint(KEY2, "k2", clock.now))).error == "unknown-key"
        result = await cold.validate(mint(now=clock.now))
        assert (result.ok, result.error, result.issuer) == (False, "jwks-unavailable", ISS)

    asyncio.run(main())


def test_not_a_jwks_document(server: JwksServer) -> None:
    server.body = b"<html>login here</html>"
    result = asyncio.run(validator_for(server.url, Clock()).validate(mint()))
    assert result.error == "jwks-unavailable"


def test_http_error_status(server: JwksServer) -> None:
    url = server.url.replace("/jwks.json", "/missing")
    result = asyncio.run(validator_for(url, Clock()).validate(mint()))
    assert result.error == "jwks-unavailable"
    assert server.requests == 1


def test_oversized_body(server: JwksServer) -> None:
    server.body = b" " * (jwks.MAX_JWKS_SIZE + 1)
    result = asyncio.run(validator_for(server.url, Clock()).validate(mint()))
    assert result.error == "jwks-unavailable"


def test_redirects_only_to_acceptable_urls(server: JwksServer) -> None:
    base = server.url.replace("/jwks.json", "/redirect?")
    good = asyncio.run(validator_for(base + server.url, Clock()).validate(mint()))
    assert good.ok and server.requests == 2
    # plain http is for 127.0.0.1/::1 only: "localhost" reaches the same server if followed
    elsewhere = server.url.replace("127.0.0.1", "localhost")
    bad = asyncio.run(validator_for(base + elsewhere, Clock()).validate(mint()))
    assert bad.error == "jwks-unavailable" and server.requests == 3
