"""Every transcript in ``cases/`` replayed against the receiver and the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import RawClient, ServerThread
from tests.transcripts.runner import (
    READ_TIMEOUT,
    Transcript,
    load_all,
    replay_engine,
    replay_server,
)

TRANSCRIPTS = load_all()


def _params(which: str) -> list[object]:
    out = []
    for t in TRANSCRIPTS:
        reason = t.xfail_engine if which == "engine" else t.xfail_server
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason is not None else []
        out.append(pytest.param(t, id=t.name, marks=marks))
    return out


def test_enough_transcripts() -> None:
    assert len(TRANSCRIPTS) >= 20


@pytest.mark.parametrize("transcript", _params("engine"))
def test_engine(transcript: Transcript) -> None:
    replay_engine(transcript)


@pytest.mark.parametrize("transcript", _params("server"))
def test_server(transcript: Transcript, server: ServerThread, tmp_path: Path) -> None:
    if not transcript.server_config:
        replay_server(transcript, server, lambda: RawClient(server.port, timeout=READ_TIMEOUT))
        return
    own = ServerThread(tmp_path, **transcript.server_config)
    try:
        replay_server(transcript, own, lambda: RawClient(own.port, timeout=READ_TIMEOUT))
    finally:
        own.stop()
