"""IMAP sequence sets (RFC 9051 §9 ``sequence-set``), shared by MSN and UID forms.

A set is kept as the client wrote it (``*`` unresolved) because ``*`` means a
different number for every command: it is resolved against the mailbox at use.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

# ``None`` in a range stands for ``*``.
Bound = int | None


@dataclass(frozen=True, slots=True)
class SequenceSet:
    ranges: tuple[tuple[Bound, Bound], ...]
    #: ``$`` (RFC 5182 SEARCHRES): the result saved by the last ``SEARCH RETURN (SAVE)``.
    saved: bool = False

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``star``, each ordered low..high, merged and sorted.

        ``star`` is the largest number in use (message count or highest UID); with an
        empty mailbox it is 0 and ``*`` matches nothing.
        """
        return list(_resolve(self.ranges, star))

    def contains(self, n: int, star: int) -> bool:
        """Membership; SEARCH asks this once per message, so the resolved ranges are
        memoised and searched by bisection."""
        ranges = _resolve(self.ranges, star)
        i = bisect_right(ranges, (n, _INF)) - 1
        return i >= 0 and ranges[i][0] <= n <= ranges[i][1]

    def select_from(self, sorted_values: Sequence[int], star: int) -> Iterator[int]:
        """Members of ``sorted_values`` (ascending) inside the set, in ascending order.

        Used with the list of UIDs of a mailbox: cost is O(ranges·log n + matches),
        so ``1:*`` over 100,000 UIDs does not build a 100,000-element set first.
        """
        for lo, hi in _resolve(self.ranges, star):
            i = bisect_left(sorted_values, lo)
            j = bisect_right(sorted_values, hi)
            yield from sorted_values[i:j]

    def indices_in(self, sorted_values: Sequence[int], star: int) -> Iterator[int]:
        """Indices (0-based) of the members of ``sorted_values`` inside the set."""
        for lo, hi in _resolve(self.ranges, star):
            yield from range(bisect_left(sorted_values, lo), bisect_right(sorted_values, hi))

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def b(x: Bound) -> str:
            return "*" if x is None else str(x)

        return ",".join(b(a) if a == b_ else f"{b(a)}:{b(b_)}" for a, b_ in self.ranges)


_INF = float("inf")


@lru_cache(maxsize=64)
def _resolve(ranges: tuple[tuple[Bound, Bound], ...], star: int) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        lo = star if a is None else a
        hi = star if b is None else b
        if lo > hi:
            lo, hi = hi, lo
        if hi <= 0:
            continue
        out.append((max(lo, 1), hi))
    out.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in out:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def from_numbers(numbers: Sequence[int]) -> SequenceSet:
    """Compact set covering ``numbers`` (used for COPYUID/APPENDUID and ESEARCH ALL)."""
    ranges: list[tuple[Bound, Bound]] = []
    for n in sorted(set(numbers)):
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return SequenceSet(tuple(ranges))


def ordered_uid_set(numbers: Sequence[int]) -> str:
    """Like ``str(from_numbers(...))`` but keeps the given order (COPYUID needs pairing)."""
    parts: list[str] = []
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)
