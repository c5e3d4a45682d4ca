"""RFC 9266 tls-exporter: both ends of a real TLS 1.3 connection compute the same 32
octets; TLS 1.2 and a connection that is not established give None."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from carteiro.config import Settings
from carteiro.net.tls import ensure_certificate
from carteiro.net.tls_exporter import tls_exporter


def pair(tmp_path: Path, version: ssl.TLSVersion) -> tuple[bytes | None, bytes | None]:
    files = ensure_certificate(Settings(data_dir=tmp_path, hostname="localhost"))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    server_ctx.maximum_version = version
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(files.cert)
    listener = socket.create_server(("127.0.0.1", 0))
    got: dict[str, bytes | None] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            got["server"] = tls_exporter(tls)
            tls.recv(1)

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(listener.getsockname()) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            got["client"] = tls_exporter(tls)
            tls.sendall(b"x")
    thread.join(10)
    listener.close()
    return got["server"], got["client"]


def test_both_ends_agree_on_tls13(tmp_path: Path) -> None:
    server, client = pair(tmp_path, ssl.TLSVersion.TLSv1_3)
    assert server is not None and len(server) == 32
    assert server == client


def test_not_offered_for_tls12_or_no_tls(tmp_path: Path) -> None:
    assert pair(tmp_path, ssl.TLSVersion.TLSv1_2) == (None, None)
    assert tls_exporter(None) is None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unstarted = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="x")
    assert tls_exporter(unstarted) is None
