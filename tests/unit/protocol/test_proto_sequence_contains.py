from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carteiro.imap.protocol.sequence_set import SequenceSet

bound = st.one_of(st.none(), st.integers(1, 60))


@given(
    st.lists(st.tuples(bound, bound), min_size=1, max_size=6),
    st.integers(0, 70),
    st.integers(0, 70),
)
def test_contains_matches_the_expanded_set(ranges, star: int, n: int) -> None:
    seqs = SequenceSet(tuple(ranges))
    expanded = set()
    for a, b in ranges:
        lo, hi = (star if a is None else a), (star if b is None else b)
        expanded |= set(range(min(lo, hi), max(lo, hi) + 1)) - {0}
    assert seqs.contains(n, star) == (n in expanded)
    assert list(seqs.select_from(list(range(1, 71)), star)) == sorted(
        x for x in expanded if 1 <= x <= 70
    )
