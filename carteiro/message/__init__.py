"""The message layer: MIME structure with byte offsets, ENVELOPE/BODYSTRUCTURE computed
once per message, BODY[section]/BINARY content and SEARCH text. Pure code: no I/O."""

from carteiro.message.decode import UnknownEncoding
from carteiro.message.meta import MessageMeta, analyse
from carteiro.message.parse import Part, parse_message

__all__ = ["MessageMeta", "Part", "UnknownEncoding", "analyse", "parse_message"]
