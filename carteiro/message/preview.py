"""RFC 8970 PREVIEW text: a short plain-text extract of a message's first text part.

:func:`preview` picks the body the user would see first (see :func:`_candidates`), undoes
its transfer encoding and charset, turns HTML into text, drops quoted reply lines and a
trailing signature (only when something is left), collapses white space and cuts the
result to :data:`MAX_CHARS` characters (RFC 8970 §3.3: no more than 256 characters;
Python strings count code points, so a cut never splits a character, and surrogate code
points are never returned, so the result always encodes as UTF-8).

A message with nothing to preview (no text part, encrypted, empty text) gets ``""``:
RFC 8970 §3.2 requires a zero-length string there, NIL being reserved for
``PREVIEW (LAZY)`` answers that were not computed.

The preview is computed once at delivery (:func:`carteiro.message.meta.analyse`); only
the first :data:`PLAIN_SCAN` / :data:`HTML_SCAN` bytes of a body are examined, so the
cost is bounded for any message size.
"""

from __future__ import annotations

import codecs
import functools
import html
import re
from collections.abc import Iterator

from carteiro.message.decode import UnknownEncoding, decode_transfer
from carteiro.message.headers import first_value, parse_fields
from carteiro.message.parse import Part

MAX_CHARS = 256
"""RFC 8970 §3.3: a preview is no more than 256 characters."""
PLAIN_SCAN = 64 * 1024
"""Bytes of a text/plain body (as stored, still transfer-encoded) examined."""
HTML_SCAN = 256 * 1024
"""Bytes of a text/html body examined (style sheets often come before any text)."""
MAX_CANDIDATES = 8
"""Text parts tried, in order, before giving up with an empty preview."""

_IDENTITY = frozenset({"7bit", "8bit", "binary", ""})
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})

# Removed: invisible formatting characters (often "preheader" padding), lone surrogates.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ud800-\udfff]"
)
# Replaced by a space: control characters other than white space.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_QUOTE_MARKS = re.compile(r"[ >]+")

# --- HTML -----------------------------------------------------------------------------

_HTML_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"  # comment (an unclosed one runs to the end)
    r"|<!\[CDATA\[.*?(?:\]\]>|\Z)"
    r"|<[!?][^>]*>?"  # doctype, processing instruction
    r"|<(/?)([a-zA-Z][^\s/>]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.DOTALL,
)
_HIDDEN = frozenset({"head", "script", "style", "title", "template", "xml"})
_BLOCK = frozenset(
    """address article aside blockquote body br center dd details dialog dir div dl dt
    fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr html li main menu
    nav ol p pre section summary table tbody td tfoot th thead tr ul""".split()
)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)


def html_to_text(markup: str, limit: int | None = None) -> str:
    """Visible text of an HTML document: tags dropped, the content of ``head``,
    ``script``, ``style``, ``title`` and ``template`` elements dropped, character
    references decoded; block elements and ``br`` become line breaks and the lines of a
    ``blockquote`` are marked with ``>`` like quoted plain text.

    With ``limit``, conversion stops once more than ``limit`` non-blank characters
    outside block quotes have been produced."""
    out: list[str] = []
    depth = 0  # blockquote nesting
    hidden: str | None = None  # the raw-text/hidden element being skipped
    line_start = True
    shown = 0
    pos = 0
    for m in _HTML_TOKEN.finditer(markup):
        if hidden is None and m.start() > pos:
            text = html.unescape(markup[pos : m.start()])
            line_start = _emit(out, text, depth, line_start)
            if not depth:
                shown += len(text.strip())
                if limit is not None and shown > limit:
                    return "".join(out)
        pos = m.end()
        name = m.group(2)
        if name is None:
            continue
        name = name.lower()
        closing = bool(m.group(1))
        if hidden is not None:
            if closing and name == hidden:
                hidden = None
            elif hidden == "head" and name == "body" and not closing:
                hidden = None  # an unclosed head ends where the body starts
            continue
        if name in _HIDDEN:
            if not closing and not m.group(3).rstrip().endswith("/"):
                hidden = name
            continue
        if name in _BLOCK:
            out.append("\n")
            line_start = True
            if name == "blockquote":
                depth = max(depth - 1, 0) if closing else depth + 1
    if hidden is None and pos < len(markup):
        _emit(out, html.unescape(markup[pos:]), depth, line_start)
    return "".join(out)


def _emit(out: list[str], text: str, depth: int, line_start: bool) -> bool:
    """Append ``text``, marking lines inside ``depth`` block quotes; returns whether the
    output now ends at the start of a line."""
    if not text:
        return line_start
    if depth:
        prefix = ">" * depth + " "
        lines = text.split("\n")
        text = "\n".join(prefix + line if i or line_start else line for i, line in enumerate(lines))
    out.append(text)
    return text.endswith("\n")


# --- plain text -----------------------------------------------------------------------


def _lines(text: str, delsp: bool) -> Iterator[str]:
    """The lines of ``text`` (any line ending); with ``delsp`` (RFC 3676
    ``format=flowed; delsp=yes``) a line ending in a space is joined to the next one
    without that space."""
    carry = ""
    pos = 0
    n = len(text)
    while pos < n:
        eol = text.find("\n", pos)
        if eol < 0:
            eol = n
        line = text[pos:eol]
        pos = eol + 1
        if line.endswith("\r"):
            line = line[:-1]
        if delsp and line.endswith(" ") and line != "-- " and not _is_quote(line):
            carry += line[:-1]
            continue
        if carry:
            line = carry + line
            carry = ""
        yield line
    if carry:
        yield carry


def _is_quote(line: str) -> bool:
    return line.lstrip(" ").startswith(">")


def _clean(line: str) -> str:
    """One line as shown: invisible characters removed, white space collapsed."""
    if not (line.isascii() and line.isprintable()):
        line = _CONTROL.sub(" ", _INVISIBLE.sub("", line))
    return " ".join(line.split())


def _gather(text: str, delsp: bool, drop_quotes: bool, drop_signature: bool) -> str:
    """The collapsed text of the lines shown in a preview, stopping once there is enough.

    ``drop_quotes`` leaves out quoted lines (``>``) and an attribution line ending in
    ``:`` right before them ("On Monday, Ann wrote:"); otherwise quote marks are
    removed from quoted lines. ``drop_signature`` stops at a ``-- `` line (RFC 3676
    §4.3)."""
    kept: list[str] = []
    size = 0
    pending = ""  # a line ending in ":" that is dropped if quoted lines follow
    for line in _lines(text, delsp):
        if drop_signature and line == "-- ":
            break
        quoted = _is_quote(line)
        if quoted:
            if drop_quotes:
                pending = ""
                continue
            line = _QUOTE_MARKS.sub("", line, count=1)
        shown = _clean(line)
        if not shown:
            continue
        if pending:
            kept.append(pending)
            size += len(pending) + 1
            pending = ""
        if drop_quotes and shown.endswith(":"):
            pending = shown
            continue
        kept.append(shown)
        size += len(shown) + 1
        if size > MAX_CHARS:
            break
    if pending:
        kept.append(pending)
    return " ".join(kept)


def text_preview(text: str, *, delsp: bool = False) -> str:
    """The preview of a decoded plain text (HTML already converted): quoted lines and
    the signature dropped when that leaves something, white space collapsed, cut to
    :data:`MAX_CHARS` characters."""
    result = (
        _gather(text, delsp, True, True)
        or _gather(text, delsp, False, True)
        or _gather(text, delsp, False, False)
    )
    return result[:MAX_CHARS].rstrip()


# --- choosing and decoding the part ---------------------------------------------------


def _fields(raw: bytes, part: Part) -> list[tuple[str, bytes]]:
    if part.headers is not None:
        return part.headers
    return parse_fields(raw, part.header_start, part.body_start)


def _is_attachment(raw: bytes, part: Part) -> bool:
    value = first_value(_fields(raw, part), "content-disposition")
    if not value:
        return False
    return value.split(b";", 1)[0].strip().lower() == b"attachment"


def _candidates(raw: bytes, part: Part, out: list[Part]) -> None:
    """Text parts worth previewing, best first: inline text/plain and text/html leaves
    in document order, except that inside multipart/alternative the alternatives whose
    first text is text/plain come first. Encapsulated messages are not entered."""
    if part.type == "multipart":
        if part.subtype == "alternative":
            groups: list[list[Part]] = []
            for child in part.children:
                sub: list[Part] = []
                _candidates(raw, child, sub)
                if sub:
                    groups.append(sub)
            groups.sort(key=lambda g: g[0].subtype != "plain")
            for g in groups:
                out.extend(g)
        else:
            for child in part.children:
                _candidates(raw, child, out)
    elif (
        part.type == "text" and part.subtype in ("plain", "html") and not _is_attachment(raw, part)
    ):
        out.append(part)


def _html_charset(body: bytes) -> str | None:
    m = _META_CHARSET.search(body, 0, 4096)
    return m.group(1).decode("ascii").lower() if m else None


@functools.lru_cache(maxsize=64)
def _is_text_codec(charset: str) -> bool:
    """Whether ``charset`` names a text encoding (not zlib, base64, rot13...)."""
    try:
        b"x".decode(charset)
    except LookupError:
        return False
    except (ValueError, UnicodeError):
        pass
    return True


def _decode(data: bytes, charset: str | None, truncated: bool) -> str:
    """``data`` as text: the declared charset, else UTF-8, else latin-1. When the data was
    cut short, an incomplete character at the end is dropped rather than spoiling the
    decoding of everything before it."""
    if charset and charset not in _UTF8 and _is_text_codec(charset):
        try:
            decoder = codecs.getincrementaldecoder(charset)("strict")
            return decoder.decode(data, final=not truncated)
        except (ValueError, UnicodeError):
            pass
    try:
        return codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=not truncated)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _part_preview(raw: bytes, part: Part) -> str:
    is_html = part.subtype == "html"
    limit = HTML_SCAN if is_html else PLAIN_SCAN
    end = min(part.body_end, part.body_start + limit)
    truncated = end < part.body_end
    body = raw[part.body_start : end]
    encoding = part.encoding
    if encoding not in _IDENTITY:
        if truncated and encoding == "base64":
            # keep whole 4-character groups so the last decoded bytes are real data
            body = body[: body.rfind(b"\n") + 1] or body
        elif truncated and encoding == "quoted-printable":
            body = body[: body.rfind(b"\n") + 1] or body
        try:
            body = decode_transfer(body, encoding)
        except UnknownEncoding:
            return ""
    charset = part.charset
    if charset is None and is_html:
        charset = _html_charset(body)
    text = _decode(body, charset, truncated)
    if is_html:
        return text_preview(html_to_text(text, 4 * MAX_CHARS))
    flowed = (part.param("format") or "").strip().lower() == "flowed"
    delsp = flowed and (part.param("delsp") or "").strip().lower() == "yes"
    return text_preview(text, delsp=delsp)


def preview(raw: bytes, tree: Part) -> str:
    """The RFC 8970 preview of the message ``raw`` whose part tree is ``tree`` (from
    :func:`carteiro.message.parse.parse_message` or ``MessageMeta.tree``): at most
    :data:`MAX_CHARS` characters, ``""`` when there is no text to show. Never raises."""
    found: list[Part] = []
    _candidates(raw, tree, found)
    for part in found[:MAX_CANDIDATES]:
        text = _part_preview(raw, part)
        if text:
            return text
    return ""
