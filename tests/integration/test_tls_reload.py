"""Certificate renewal without dropping sessions: after the files change, a reload (the
SIGHUP handler and the file watcher call the same function) serves the new
certificate to new connections while established TLS sessions carry on."""

from __future__ import annotations

import ssl
from pathlib import Path

from carteiro.config import Settings
from carteiro.net.tls import certificate_stamp, reload_certificate
from tests.integration.harness import ServerThread


def peer_certificate(server: ServerThread) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = server.connect_tls_with(ctx)
    der = conn.sock.getpeercert(binary_form=True)
    conn.logout()
    assert der is not None
    return der


def test_reload_serves_the_new_certificate_and_keeps_sessions(tmp_path: Path) -> None:
    server = ServerThread(tmp_path)
    try:
        user = server.new_user()
        before = peer_certificate(server)
        established = server.connect_tls(user)
        settings = Settings(data_dir=tmp_path, hostname="localhost")
        stamp = certificate_stamp(settings)
        for name in ("cert.pem", "key.pem"):  # the renewal: new files
            (settings.tls_dir / name).unlink()
        files = server.call(_reload(server, settings))
        assert files is not None and files.generated
        assert certificate_stamp(settings) != stamp
        after = peer_certificate(server)
        assert after != before
        # the session opened with the old certificate is still fine
        assert established.noop()[0] == "OK"
        established.logout()
        # a broken pair is refused and the current certificate stays
        (settings.tls_dir / "key.pem").write_text("not a key")
        assert server.call(_reload(server, settings)) is None
        assert peer_certificate(server) == after
    finally:
        server.stop()


async def _reload(server: ServerThread, settings: Settings):  # type: ignore[no-untyped-def]
    return reload_certificate(server.tls, settings)
