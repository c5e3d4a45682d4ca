from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from carteiro.imap.mailbox_names import canonical_pattern, matches, parents, valid_name


def test_wildcards() -> None:
    assert matches("*", "a/b/c")
    assert matches("%", "a") and not matches("%", "a/b")
    assert matches("a/%", "a/b") and not matches("a/%", "a/b/c")
    assert matches("a*", "a/b/c") and matches("a%", "abc")
    assert not matches("a.b", "aXb")  # regex metacharacters are literal


def test_inbox_is_case_insensitive_in_patterns_only() -> None:
    assert canonical_pattern("", "inbox") == "INBOX"
    assert canonical_pattern("", "Inbox/Sub") == "INBOX/Sub"
    assert canonical_pattern("Work/", "%") == "Work/%"
    assert canonical_pattern("Work/", "/x") == "Work/x"


def test_names() -> None:
    assert valid_name("a/b") and not valid_name("") and not valid_name("a//b")
    assert not valid_name("a*") and not valid_name("x\r") and not valid_name("/a")
    assert parents("a/b/c") == ["a", "a/b"]


@given(st.lists(st.text(alphabet="abc/", min_size=1, max_size=4), min_size=1, max_size=4))
def test_star_matches_every_name_and_percent_only_one_level(levels: list[str]) -> None:
    name = "/".join(levels)
    assert matches("*", name)
    assert matches("%", name) == ("/" not in name)
