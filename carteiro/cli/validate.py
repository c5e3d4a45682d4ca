"""Checks of command-line values; each returns the normalised value or raises
:class:`~carteiro.cli.errors.CliError` with exit code 2 (a usage error)."""

from __future__ import annotations

import string

from carteiro.cli.errors import EXIT_USAGE, fail
from carteiro.store.interface import SYSTEM_FLAGS

__all__ = ["address", "flag", "password"]

#: RFC 5322 atext
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
#: RFC 9051 atom-specials plus "]" (not allowed in a flag keyword)
_FLAG_SPECIALS = frozenset('(){ %*"\\]')


def address(value: str) -> str:
    """``local@domain``: a dot-atom local part (UTF-8 letters allowed) and a domain of
    letters, digits and hyphens. The domain is lower-cased."""
    hint = "give an address like alice@example.org"
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or not domain:
        fail(f"{value!r} is not an email address; {hint}", EXIT_USAGE)
    if len(local) > 64 or len(value) > 254:
        fail(f"{value!r} is too long for an email address; {hint}", EXIT_USAGE)
    atoms = local.split(".")
    if any(not a or not all(c in _ATEXT or ord(c) > 127 for c in a) for a in atoms):
        fail(
            f"{local!r} is not a valid local part; use letters, digits, dots (not leading, "
            "trailing or doubled) and !#$%&'*+-/=?^_`{|}~, as in alice@example.org",
            EXIT_USAGE,
        )
    labels = domain.lower().split(".")
    for label in labels:
        if (
            not label
            or len(label) > 63
            or label[0] == "-"
            or label[-1] == "-"
            or not all(c.isalnum() or c == "-" for c in label)
        ):
            fail(f"{domain!r} is not a valid domain; {hint}", EXIT_USAGE)
    return f"{local}@{'.'.join(labels)}"


def password(value: str) -> str:
    """Any non-empty text without NUL, CR or LF (SASL PLAIN and IMAP LOGIN cannot carry
    them), at most 1024 characters."""
    if not value:
        fail("the password is empty; give a non-empty password", EXIT_USAGE)
    if any(c in value for c in "\0\r\n"):
        fail("the password contains NUL, CR or LF; choose one without them", EXIT_USAGE)
    if len(value) > 1024:
        fail("the password is longer than 1024 characters; choose a shorter one", EXIT_USAGE)
    return value


def flag(value: str) -> str:
    """A system flag (any case → canonical, ``\\Recent`` refused) or a keyword atom."""
    if value.startswith("\\"):
        for system in SYSTEM_FLAGS:
            if value.lower() == system.lower():
                return system
        fail(
            f"{value!r} is not a flag a message can be delivered with; "
            f"use one of {', '.join(SYSTEM_FLAGS)} or a keyword",
            EXIT_USAGE,
        )
    if not value or any(c in _FLAG_SPECIALS or ord(c) <= 32 or ord(c) >= 127 for c in value):
        fail(
            f"{value!r} is not a valid keyword; use ASCII letters, digits and "
            'punctuation other than (){ %*"\\]',
            EXIT_USAGE,
        )
    return value
