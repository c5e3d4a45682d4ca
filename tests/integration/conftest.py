from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carteiro.auth.sasl import encode_scram_record, scram_credentials
from tests.integration.harness import OPEN, ServerThread, close_quietly

SAMPLE_MBOX = Path(__file__).resolve().parents[1] / "data" / "sample-100.mbox"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = ServerThread(tmp_path_factory.mktemp("carteiro"))
    yield srv
    srv.stop()


@pytest.fixture
def user(server: ServerThread) -> str:
    return server.new_user()


@pytest.fixture
def scram_user(server: ServerThread) -> str:
    """An account with SCRAM-SHA-256 keys for the password "secret"."""
    user = server.new_user()
    server.call(server.store.set_scram(user, encode_scram_record(scram_credentials("secret"))))
    return user


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        close_quietly(OPEN.pop())
