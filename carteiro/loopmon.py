"""Opt-in event-loop stall monitor (``CARTEIRO_LOOP_MONITOR=1``).

A coroutine on the loop stamps a heartbeat every few milliseconds; a daemon thread
watches it. When the heartbeat is older than the threshold (``CARTEIRO_LOOP_MONITOR_MS``,
default 20), the thread grabs the loop thread's Python stack *while it is still stuck*
and, once the loop runs again, one WARNING gives the stall's length and that stack:
the culprit, not just the symptom. Costs ~200 wake-ups/s of a sleeping thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger("carteiro.loop")


class LoopMonitor:
    def __init__(self, threshold: float = 0.020, interval: float = 0.005) -> None:
        self.threshold = threshold
        self.interval = interval
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self.stalls = 0
        self.worst = 0.0

    def start(self) -> None:
        """Call on the running loop."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())
        self._thread = threading.Thread(target=self._watch, name="carteiro-loopmon", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(self.interval)

    def _watch(self) -> None:
        stack: list[str] | None = None
        stalled_since = 0.0
        while not self._stop.wait(self.interval):
            beat = self._beat
            late = time.monotonic() - beat
            if late > self.threshold + self.interval:
                if stack is None:  # first look at this stall: who holds the loop?
                    stalled_since = beat
                    frame = sys._current_frames().get(self._loop_thread)
                    stack = traceback.format_stack(frame, limit=12) if frame else ["?"]
            elif stack is not None:  # the loop is back: report the stall once
                length = beat - stalled_since - self.interval
                self.stalls += 1
                self.worst = max(self.worst, length)
                log.warning(
                    "event loop blocked for %.0f ms (worst %.0f ms, %d stalls); loop stack:\n%s",
                    length * 1000,
                    self.worst * 1000,
                    self.stalls,
                    "".join(stack).rstrip(),
                )
                stack = None
