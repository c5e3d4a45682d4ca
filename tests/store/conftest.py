"""Store conformance suite: every test runs against every backend in BACKENDS.

``async def`` tests run on the per-test event loop (fixture ``loop``), the same loop
the ``store`` fixture opened the store on; pytest-asyncio is not used.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import BACKENDS, Backend, new_location

from carteiro.store.interface import Store


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    ev = asyncio.new_event_loop()
    yield ev
    ev.run_until_complete(ev.shutdown_asyncgens())
    ev.run_until_complete(ev.shutdown_default_executor())
    ev.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, new_location(request.param, tmp_path))


@pytest.fixture
def store(backend: Backend, loop: asyncio.AbstractEventLoop) -> Iterator[Store]:
    opened = loop.run_until_complete(backend.open())
    yield opened
    loop.run_until_complete(opened.close())


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Callable[[Awaitable[Any]], Any]:
    return loop.run_until_complete


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    if "loop" not in pyfuncitem.fixturenames:
        raise pytest.UsageError("async store tests need the store or loop fixture")
    loop: asyncio.AbstractEventLoop = pyfuncitem._request.getfixturevalue("loop")
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop.run_until_complete(pyfuncitem.obj(**args))
    return True
