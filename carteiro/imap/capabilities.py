"""The capability list, which depends on the session (TLS, state). Advertise only what works."""

from __future__ import annotations

from carteiro.imap.config import ImapConfig
from carteiro.imap.state import Session, State

_ALWAYS = ("IMAP4rev2", "IMAP4rev1", "SASL-IR", "ENABLE", "ID")
_AFTER_AUTH = (
    "IDLE",
    "NAMESPACE",
    "UIDPLUS",
    "UNSELECT",
    "CHILDREN",
    "MULTIAPPEND",
    "MOVE",
    "SPECIAL-USE",
    "BINARY",
    "ESEARCH",
    "SEARCHRES",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "STATUS=SIZE",
    "CONDSTORE",
    "QRESYNC",
    "COMPRESS=DEFLATE",
    "UNAUTHENTICATE",
    "CREATE-SPECIAL-USE",
    "WITHIN",
    "SAVEDATE",
    "OBJECTID",
    "PREVIEW",
    "UTF8=ACCEPT",
    "INPROGRESS",
    "PARTIAL",
    "REPLACE",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "UIDONLY",
    "NOTIFY",
)


def capabilities(session: Session, config: ImapConfig) -> list[str]:
    caps = list(_ALWAYS)
    # RFC 7888: never both; LITERAL+ is the superset, LITERAL- the operator's choice
    caps.insert(2, "LITERAL+" if config.literal_plus else "LITERAL-")
    if session.state is State.NOT_AUTHENTICATED:
        if not session.tls and config.tls_context is not None:
            caps.append("STARTTLS")
        caps.extend("AUTH=" + m for m in session.mechanisms)
        if not session.plaintext_auth_ok:
            caps.append("LOGINDISABLED")
    caps.extend(_AFTER_AUTH)
    caps.append(f"APPENDLIMIT={config.max_literal}")
    caps.append(f"MESSAGELIMIT={config.message_limit}")
    return caps


def capability_line(session: Session, config: ImapConfig) -> str:
    return " ".join(capabilities(session, config))
