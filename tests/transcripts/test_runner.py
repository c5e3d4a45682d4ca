"""The transcript format itself: parsing, patterns, and that mismatches are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.transcripts.runner import (
    READ_TIMEOUT,
    Expect,
    Mismatch,
    Part,
    Send,
    SetQuota,
    TranscriptError,
    compile_expect,
    parse,
    replay_engine,
    replay_server,
    wire_bytes,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.imap"
    path.write_text(text, encoding="utf-8")
    return path


def _pattern(text: str, env: dict[str, str] | None = None) -> object:
    return compile_expect(Expect(1, "one", [Part(text)]), env or {})


def test_standalone_star_is_a_wildcard_but_not_inside_words() -> None:
    p = _pattern("* OK [PERMANENTFLAGS (\\Seen \\*)] *")
    assert p.fullmatch("* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted") is not None
    assert p.fullmatch("* OK [PERMANENTFLAGS (\\Seen \\Deleted)] Flags") is None
    caps = _pattern("a1 OK [CAPABILITY IMAP4rev2 *] *")
    assert caps.fullmatch("a1 OK [CAPABILITY IMAP4rev2 IDLE MOVE] x") is not None
    assert _pattern("* 1 FETCH 1:*").fullmatch("* 1 FETCH 1:5") is None


def test_sets_captures_and_variables() -> None:
    p = _pattern("* 1 FETCH (FLAGS ({set:\\Seen \\Recent}))")
    assert p.fullmatch("* 1 FETCH (FLAGS (\\Recent \\Seen))") == {}
    assert p.fullmatch("* 1 FETCH (FLAGS (\\Recent))") is None
    assert _pattern("* OK [UIDVALIDITY {=uv}] *").fullmatch("* OK [UIDVALIDITY 42] x") == {
        "uv": "42"
    }
    uid = _pattern("a OK [APPENDUID {uv} 1] *", {"uv": "42"})
    assert uid.fullmatch("a OK [APPENDUID 42 1] .") is not None
    assert uid.fullmatch("a OK [APPENDUID 7 1] .") is None


def test_literals_are_assembled_with_their_sizes(tmp_path: Path) -> None:
    t = parse(
        _write(
            tmp_path,
            "C: a1 APPEND INBOX {#+}\nD: Subject: x\nD: \nC+:  (\\Seen) {3}\nD-: abc\nS: a1 OK *\n",
        )
    )
    send = t.steps[0]
    assert isinstance(send, Send)
    assert wire_bytes(send, {}) == (
        b"a1 APPEND INBOX {14+}\r\nSubject: x\r\n\r\n (\\Seen) {3}\r\nabc\r\n"
    )


def test_malformed_transcripts_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="announces 4 bytes"):
        parse(_write(tmp_path, "C: a1 LOGIN {4}\nD-: abc\nS: a1 OK *\n"))
    with pytest.raises(TranscriptError, match="S\\* must be followed"):
        parse(_write(tmp_path, "C: a1 NOOP\nS*: * *\n"))
    with pytest.raises(TranscriptError, match="D line outside"):
        parse(_write(tmp_path, "C: a1 NOOP\nD: x\n"))
    with pytest.raises(TranscriptError, match="unknown directive"):
        parse(_write(tmp_path, "@nonsense\n"))
    with pytest.raises(TranscriptError, match="key=value"):
        parse(_write(tmp_path, "@server progress_interval\n"))
    t = parse(_write(tmp_path, "@server a=0 b=1.5 c=false\nC: a1 NOOP\nS: a1 OK *\n"))
    assert t.server_config == {"a": 0, "b": 1.5, "c": False}


def test_engine_replay_accepts_utf8_after_enable_utf8_accept(tmp_path: Path) -> None:
    text = 'C: a1 CREATE "Café"\nS: a1 BAD *\nC: a2 ENABLE UTF8=ACCEPT\nS: a2 OK *\n'
    replay_engine(parse(_write(tmp_path, text + 'C: a3 CREATE "Café"\nS: a3 OK *\n')))


def test_quota_directive(tmp_path: Path, server: ServerThread) -> None:
    t = parse(_write(tmp_path, "@quota 2 -\n@quota - 7\nC: a1 NOOP\nS: a1 OK *\n"))
    assert t.steps[:2] == [SetQuota(1, 2048, None), SetQuota(2, None, 7)]
    replay_engine(t)  # ignored there
    for bad in ("@quota 1\n", "@quota x 1\n", "@quota 1 -2\n"):
        with pytest.raises(TranscriptError, match="@quota"):
            parse(_write(tmp_path, bad))
    text = (
        '@quota 1 3\nC: a1 LOGIN {user} secret\nS: a1 OK *\nC: a2 GETQUOTA ""\n'
        'S: * QUOTA "" (STORAGE 0 1 MESSAGE 0 3)\nS: a2 OK *\n'
    )
    replay_server(
        parse(_write(tmp_path, text)), server, lambda: RawClient(server.port, timeout=READ_TIMEOUT)
    )


def test_engine_replay_notices_a_wrong_expectation(tmp_path: Path) -> None:
    # the command is fine, but the transcript claims a BAD: the receiver disagrees
    t = parse(_write(tmp_path, "C: a1 NOOP\nS: a1 BAD *\n"))
    with pytest.raises(Mismatch, match="expected CommandError"):
        replay_engine(t)
    t = parse(_write(tmp_path, "C: a1 NOOP junk\nS: a1 OK *\n"))
    with pytest.raises(Mismatch, match="expected CommandReceived"):
        replay_engine(t)


@pytest.mark.parametrize(
    "text",
    [
        "C: a1 NOOP\nS: a1 NO *\n",  # wrong status
        "C: a1 CAPABILITY\nS: a1 OK *\n",  # an untagged line nobody expected
        "C: a1 NOOP\nS: a1 OK *\nC: a2 CAPABILITY\nS: * CAPABILITY *\n",  # left over
        'C: a1 LOGIN {user} secret\nS: a1 OK *\nC: a2 LIST "" %\nS|: * LIST * INBOX\nS: a2 OK *\n',
    ],
)
def test_server_replay_notices_mismatches(tmp_path: Path, server: ServerThread, text: str) -> None:
    t = parse(_write(tmp_path, text))
    with pytest.raises(Mismatch):
        replay_server(t, server, lambda: RawClient(server.port, timeout=READ_TIMEOUT))
