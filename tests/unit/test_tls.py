import datetime
import ipaddress
import socket
import ssl
import stat
import threading
import warnings
from pathlib import Path

import pytest
from cryptography import x509

from carteiro.config import ConfigError, Settings
from carteiro.net.tls import ensure_certificate, server_context


def settings_for(tmp_path: Path, **kw) -> Settings:
    return Settings(data_dir=tmp_path, hostname="mail.example.test", **kw)


def test_generated_on_first_start_and_reused(tmp_path):
    settings = settings_for(tmp_path)
    first = ensure_certificate(settings)
    assert first.generated and first.self_signed
    assert first.cert == tmp_path / "tls" / "cert.pem"
    assert first.key == tmp_path / "tls" / "key.pem"
    assert stat.S_IMODE(first.key.stat().st_mode) == 0o600
    pem = first.cert.read_bytes()

    second = ensure_certificate(settings)
    assert not second.generated
    assert second.fingerprint == first.fingerprint
    assert first.cert.read_bytes() == pem
    server_context(settings)  # loads the same pair
    assert first.cert.read_bytes() == pem


def test_certificate_contents(tmp_path):
    files = ensure_certificate(settings_for(tmp_path))
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=824) < lifetime < datetime.timedelta(days=826)
    assert files.not_after == cert.not_valid_after_utc


def test_corrupt_generated_certificate_is_replaced(tmp_path):
    settings = settings_for(tmp_path)
    first = ensure_certificate(settings)
    first.cert.write_text("garbage")
    again = ensure_certificate(settings)
    assert again.generated and again.fingerprint != first.fingerprint


def test_configured_pair_is_used(tmp_path):
    generated = ensure_certificate(settings_for(tmp_path / "a"))
    settings = settings_for(tmp_path / "b", tls_cert=generated.cert, tls_key=generated.key)
    files = ensure_certificate(settings)
    assert not files.self_signed and not files.generated
    assert files.cert == generated.cert
    assert not (tmp_path / "b" / "tls").exists()
    server_context(settings)


def test_configured_pair_missing(tmp_path):
    settings = settings_for(tmp_path, tls_cert=tmp_path / "no.pem", tls_key=tmp_path / "no.key")
    with pytest.raises(ConfigError) as e:
        server_context(settings)
    assert "cannot read TLS certificate" in str(e.value)
    assert "\n" not in str(e.value)


def test_configured_key_does_not_match(tmp_path):
    a = ensure_certificate(settings_for(tmp_path / "a"))
    b = ensure_certificate(settings_for(tmp_path / "b"))
    with pytest.raises(ConfigError) as e:
        server_context(settings_for(tmp_path, tls_cert=a.cert, tls_key=b.key))
    assert "key matches the certificate" in str(e.value)


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str) -> str:
    """One TLS handshake over 127.0.0.1; returns the negotiated version or raises."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server_error: list[BaseException] = []

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK\r\n")
                    tls.recv(10)
            except (ssl.SSLError, OSError) as e:
                server_error.append(e)
            finally:
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=name) as tls:
                    assert tls.recv(10) == b"* OK\r\n"
                    version = tls.version()
                    tls.sendall(b"x")
        finally:
            thread.join(10)
        assert version is not None
        return version


def client_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


def old_client_context(cafile: Path) -> ssl.SSLContext:
    """A client that speaks TLS 1.0/1.1 only, with OpenSSL's own policy relaxed so that
    the refusal we see is the server's."""
    ctx = client_context(cafile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def test_tls12_and_tls13_accepted(tmp_path):
    settings = settings_for(tmp_path)
    ctx = server_context(settings)
    cafile = ensure_certificate(settings).cert
    assert handshake(ctx, client_context(cafile), "localhost") == "TLSv1.3"
    assert handshake(ctx, client_context(cafile), "mail.example.test") == "TLSv1.3"
    tls12 = client_context(cafile)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(ctx, tls12, "127.0.0.1") == "TLSv1.2"


def test_tls11_refused(tmp_path):
    settings = settings_for(tmp_path)
    ctx = server_context(settings)
    cafile = ensure_certificate(settings).cert
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(ctx, old_client_context(cafile), "localhost")

    # control: a permissive server accepts this very client when OpenSSL can speak
    # TLS 1.1 at all, so the refusal above is our context's doing
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    files = ensure_certificate(settings)
    permissive.load_cert_chain(files.cert, files.key)
    try:
        version = handshake(permissive, old_client_context(cafile), "localhost")
    except (ssl.SSLError, ConnectionError):
        pytest.skip("this OpenSSL cannot negotiate TLS 1.1 at all; refusal not attributable")
    assert version == "TLSv1.1"
