"""RFC 9266 ``tls-exporter`` channel binding for SCRAM-SHA-256-PLUS.

With TLS 1.3, clients bind SCRAM to the connection with ``tls-exporter`` (tls-unique
is undefined there). It is 32 octets from OpenSSL's ``SSL_export_keying_material``
with the label ``EXPORTER-Channel-Binding`` and no context. Python's ssl module does
not expose that function, so it is called through ctypes on the ``SSL *`` that the
``_ssl`` object holds right after its Python header and its socket reference (the
layout of ``PySSLSocket`` since Python 3.3).

Reading a pointer out of an object is only acceptable because it is verified before
use: the TLS version and the cipher that OpenSSL reports for that pointer must be the
ones the ssl module reports for the connection. If anything differs, or the symbols are
missing, None is returned and the server simply does not offer ``tls-exporter``.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from typing import Any

__all__ = ["LABEL", "connection_bindings", "tls_exporter"]

log = logging.getLogger(__name__)

LABEL = b"EXPORTER-Channel-Binding"
LENGTH = 32


class _OpenSSL:
    def __init__(self) -> None:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)  # resolves through the module's own libssl
        self.export = lib.SSL_export_keying_material
        self.export.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
            ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
        ]  # fmt: skip
        self.export.restype = ctypes.c_int
        self.version = lib.SSL_get_version
        self.version.argtypes = [ctypes.c_void_p]
        self.version.restype = ctypes.c_char_p
        self.current_cipher = lib.SSL_get_current_cipher
        self.current_cipher.argtypes = [ctypes.c_void_p]
        self.current_cipher.restype = ctypes.c_void_p
        self.cipher_name = lib.SSL_CIPHER_get_name
        self.cipher_name.argtypes = [ctypes.c_void_p]
        self.cipher_name.restype = ctypes.c_char_p


_lib: _OpenSSL | None = None
_unavailable = False


def _openssl() -> _OpenSSL | None:
    global _lib, _unavailable
    if _lib is None and not _unavailable:
        try:
            _lib = _OpenSSL()
        except (OSError, AttributeError) as exc:
            log.info("tls-exporter channel binding unavailable: %s", exc)
            _unavailable = True
    return _lib


def _ssl_pointer(obj: Any) -> int | None:
    inner = getattr(obj, "_sslobj", None)
    if inner is None or type(inner).__name__ != "_SSLSocket":
        return None
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type
    address = id(inner) + head + ctypes.sizeof(ctypes.c_void_p)  # after the socket weakref
    value = ctypes.c_void_p.from_address(address).value
    return int(value) if value else None


def tls_exporter(obj: ssl.SSLObject | ssl.SSLSocket | None) -> bytes | None:
    """The binding data of an established TLS 1.3 connection, or None."""
    if obj is None or obj.version() != "TLSv1.3":
        # RFC 9266 §3: with TLS 1.2 only with extended master secret, which cannot be
        # checked from here; TLS 1.2 clients use tls-server-end-point or tls-unique
        return None
    lib = _openssl()
    pointer = _ssl_pointer(obj)
    if lib is None or pointer is None:
        return None
    cipher = obj.cipher()
    version = lib.version(pointer)
    current = lib.current_cipher(pointer)
    name = lib.cipher_name(current) if current else None
    if version != b"TLSv1.3" or cipher is None or name != cipher[0].encode():
        log.warning("tls-exporter: OpenSSL state does not match the connection; not offered")
        return None
    out = ctypes.create_string_buffer(LENGTH)
    if lib.export(pointer, out, LENGTH, LABEL, len(LABEL), None, 0, 0) != 1:
        return None
    return out.raw


def connection_bindings(
    static: tuple[tuple[str, bytes], ...], obj: ssl.SSLObject | None
) -> dict[str, bytes]:
    """Channel-binding data for one TLS connection: the certificate's (``static``) and
    this connection's tls-exporter when there is one."""
    bindings = dict(static)
    exporter = tls_exporter(obj)
    if exporter is not None:
        bindings["tls-exporter"] = exporter
    return bindings
