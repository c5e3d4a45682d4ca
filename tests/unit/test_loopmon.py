from __future__ import annotations

import asyncio
import logging
import time

import pytest

from carteiro.loopmon import LoopMonitor


def test_a_blocked_loop_is_reported_with_the_culprit(caplog: pytest.LogCaptureFixture) -> None:
    def culprit_blocks_the_loop() -> None:
        time.sleep(0.15)

    async def main() -> LoopMonitor:
        mon = LoopMonitor(threshold=0.05, interval=0.005)
        mon.start()
        await asyncio.sleep(0.05)
        culprit_blocks_the_loop()
        await asyncio.sleep(0.1)  # let the watchdog see the loop run again
        await mon.stop()
        return mon

    with caplog.at_level(logging.WARNING, logger="carteiro.loop"):
        mon = asyncio.run(main())
    assert mon.stalls == 1 and 0.1 < mon.worst < 0.5
    assert "culprit_blocks_the_loop" in caplog.text


def test_a_healthy_loop_is_silent() -> None:
    async def main() -> LoopMonitor:
        mon = LoopMonitor(threshold=0.05, interval=0.005)
        mon.start()
        for _ in range(20):
            await asyncio.sleep(0.005)
        await mon.stop()
        return mon

    assert asyncio.run(main()).stalls == 0
