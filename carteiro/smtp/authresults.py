"""The Authentication-Results header field (RFC 8601): writing ours, removing forgeries.

Each method result goes on its own folded line so the field stays under 78 columns for
ordinary values; comments (the reasons) are shortened and stripped of characters that
would break the syntax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from carteiro.smtp.dkim import DkimResult
from carteiro.smtp.dmarc import DmarcResult
from carteiro.smtp.spf import SpfResult

__all__ = ["build", "strip_forged"]

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
# local-part@domain without specials, which RFC 8601 §2.2 lets stand unquoted
_PVALUE = re.compile(r"([!#$%&'*+\-/=?^_`{|}~.0-9A-Za-z]+@)?[0-9A-Za-z._-]+\Z")
_COMMENT_MAX = 60
_WIDTH = 78


def _value(text: str, pattern: re.Pattern[str] = _TOKEN) -> str:
    if text and pattern.match(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{_safe(escaped, 200)}"'


def _safe(text: str, limit: int) -> str:
    """Printable ASCII only, no line breaks; shortened with an ellipsis."""
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _comment(text: str) -> list[str]:
    text = _safe(re.sub(r"[()\\]", "", text).strip(), _COMMENT_MAX)
    return [f"({text})"] if text else []


def build(
    authserv_id: str,
    *,
    spf: SpfResult,
    mail_from: str,
    helo: str,
    dkim: Sequence[DkimResult],
    dmarc: DmarcResult,
) -> bytes:
    """``Authentication-Results: <authserv_id>; spf=…; dkim=…; dmarc=…`` ending CRLF.

    SPF names ``smtp.mailfrom`` (the reverse-path) or, for the null sender,
    ``smtp.helo``; one dkim= entry per signature (``dkim=none`` without any);
    dmarc= names ``header.from``."""
    items: list[list[str]] = []
    spf_item = [f"spf={spf.result}"]
    if spf.result not in ("pass", "none"):
        spf_item += _comment(spf.explanation)
    if mail_from:
        spf_item.append(f"smtp.mailfrom={_value(mail_from, _PVALUE)}")
    elif helo:
        spf_item.append(f"smtp.helo={_value(helo, _PVALUE)}")
    items.append(spf_item)
    if not dkim:
        items.append(["dkim=none"])
    for d in dkim:
        item = [f"dkim={d.result}"]
        if d.result != "pass":
            item += _comment(d.reason)
        if d.domain:
            item.append(f"header.d={_value(d.domain, _PVALUE)}")
        if d.selector:
            item.append(f"header.s={_value(d.selector)}")
        if d.algorithm:
            item.append(f"header.a={_value(d.algorithm)}")
        items.append(item)
    dmarc_item = [f"dmarc={dmarc.result}"]
    if dmarc.result not in ("none", "pass") or dmarc.policy != "none":
        dmarc_item.append(f"(p={dmarc.policy} dis={dmarc.disposition})")
    if dmarc.domain:
        dmarc_item.append(f"header.from={_value(dmarc.domain, _PVALUE)}")
    items.append(dmarc_item)
    lines = [f"Authentication-Results: {_value(authserv_id)};"]
    for n, item in enumerate(items):
        words = item + [";"] if n < len(items) - 1 else item
        line = "\t" + words[0]
        for word in words[1:]:
            if word == ";":
                line += word
            elif len(line) + 1 + len(word) <= _WIDTH - 1:  # room for a final ";"
                line += " " + word
            else:
                lines.append(line)
                line = "\t " + word
        lines.append(line)
    return "\r\n".join(lines).encode("ascii") + b"\r\n"


# --- removing forged fields ----------------------------------------------------------

_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")
_NAME = re.compile(rb"authentication-results[ \t]*:", re.I)


def _authserv_id(value: bytes) -> bytes:
    """The first token of a field value: comments skipped, a quoted string unquoted."""
    text = value.replace(b"\r", b"").replace(b"\n", b"")
    for _ in range(20):  # leading white space and comments, bounded
        text = text.lstrip(b" \t")
        if not text.startswith(b"("):
            break
        depth, i = 0, 0
        while i < len(text):
            c = text[i : i + 1]
            if c == b"\\":
                i += 1
            elif c == b"(":
                depth += 1
            elif c == b")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        text = text[i + 1 :]
    if text.startswith(b'"'):
        m = re.match(rb'"((?:[^"\\]|\\.)*)"', text)
        return re.sub(rb"\\(.)", rb"\1", m.group(1)) if m else b""
    m = re.match(rb"[^\s;()]+", text)
    return m.group(0) if m else b""


def strip_forged(message: bytes, authserv_id: str) -> bytes:
    """The message without Authentication-Results fields claiming to come from us
    (RFC 8601 §5), compared case-insensitively; every other byte is kept as it was."""
    ours = authserv_id.lower().encode("ascii", "replace")
    out: list[bytes] = []
    dropping = False
    position = 0
    for m in _LINE.finditer(message):
        line = m.group(0)
        if line in (b"\n", b"\r\n"):
            break  # end of header: the rest is kept whole
        if line[:1] in (b" ", b"\t") and position > 0:
            if not dropping:
                out.append(line)
            position = m.end()
            continue
        dropping = False
        if _NAME.match(line):
            value = line[line.index(b":") + 1 :]
            for cont in _LINE.finditer(message, m.end()):  # the value's folded lines
                if cont.group(0)[:1] not in (b" ", b"\t"):
                    break
                value += cont.group(0)
            dropping = _authserv_id(value).lower() == ours
        if not dropping:
            out.append(line)
        position = m.end()
    return b"".join(out) + message[position:]
