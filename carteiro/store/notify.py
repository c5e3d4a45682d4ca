"""Listener registry shared by the backends: listeners run on the event loop and can
never break the store (their exceptions are logged and swallowed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from carteiro.store.interface import Listener

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        self._listeners: dict[int, list[Listener]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The loop on which listeners are called (the one that opened the store)."""
        self._loop = loop

    def subscribe(self, account_id: int, listener: Listener) -> Callable[[], None]:
        self._listeners.setdefault(account_id, []).append(listener)

        def unsubscribe() -> None:
            registered = self._listeners.get(account_id)
            if registered is None:
                return
            try:
                registered.remove(listener)
            except ValueError:
                return
            if not registered:
                del self._listeners[account_id]

        return unsubscribe

    def post(self, events: Iterable[tuple[int, int | None]]) -> None:
        """Thread-safe: schedules delivery of ``events`` on the bound loop."""
        loop = self._loop
        if loop is None:
            return
        batch = sorted(events, key=lambda e: (e[0], -1 if e[1] is None else e[1]))
        try:
            loop.call_soon_threadsafe(self.deliver, batch)
        except RuntimeError:  # loop closed: nobody is listening any more
            pass

    def deliver(self, events: Iterable[tuple[int, int | None]]) -> None:
        """Calls the listeners now (on the loop)."""
        for account_id, mailbox_id in events:
            for listener in list(self._listeners.get(account_id, ())):
                try:
                    listener(account_id, mailbox_id)
                except Exception:
                    log.exception("store listener %r failed", listener)
