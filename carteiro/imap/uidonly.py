"""UIDONLY (RFC 9586): once enabled, message sequence numbers are refused in requests
and never appear in responses.

Requests are checked once, before dispatch, so no handler needs to know; responses go
through :func:`fetch_start`, the one place that writes the head of a FETCH response.
"""

from __future__ import annotations

from carteiro.imap.protocol import commands as c
from carteiro.imap.protocol import search_keys as k

__all__ = ["fetch_start", "uses_sequence_numbers"]

#: commands whose plain (non-UID) form takes message sequence numbers (§3.2, §3.8)
_NUMBERED = (c.Fetch, c.Store, c.Search, c.Copy, c.Move, c.Replace)


def uses_sequence_numbers(cmd: c.Command) -> bool:
    """True when ``cmd`` names messages by sequence number: refused with
    ``BAD [UIDREQUIRED]`` under UIDONLY (§3)."""
    if isinstance(cmd, _NUMBERED) and not cmd.uid:
        return True
    if isinstance(cmd, c.Search):
        return _has_msn_key(cmd.key)  # §3.5: the bare <sequence set> criterion
    if isinstance(cmd, c.Select):
        # §3.7: QRESYNC's message sequence match data holds sequence numbers
        return cmd.qresync is not None and cmd.qresync.seq_match is not None
    return False


def _has_msn_key(key: k.SearchKey) -> bool:
    if isinstance(key, k.Not):
        return _has_msn_key(key.key)
    if isinstance(key, k.Or):
        return _has_msn_key(key.left) or _has_msn_key(key.right)
    if isinstance(key, k.And):
        return any(_has_msn_key(x) for x in key.keys)
    # "$" is a saved UID set (RFC 5182), allowed: only UID commands can fill it
    return isinstance(key, k.SeqKey) and not key.uid and not key.seqs.saved


def fetch_start(msn: int, uid: int, uidonly: bool) -> bytes:
    """``* msn FETCH (``, or ``* uid UIDFETCH (`` under UIDONLY (§3.3)."""
    if uidonly:
        return b"* %d UIDFETCH (" % uid
    return b"* %d FETCH (" % msn
