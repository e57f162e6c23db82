"""The deadline watchdog (backend/_watchdog.py): expiry within the block, never after it."""

from __future__ import annotations

import threading
import time

from hyprstream.backend._watchdog import Watchdog


def test_an_overrun_block_is_expired_and_a_prompt_one_is_not() -> None:
    watchdog = Watchdog("test-watchdog")
    try:
        fired: list[str] = []
        with watchdog.deadline(0.01, lambda: fired.append("slow")):
            time.sleep(0.2)
        with watchdog.deadline(5, lambda: fired.append("fast")):
            pass
        time.sleep(0.05)
        assert fired == ["slow"]
    finally:
        watchdog.close()


def test_leaving_a_block_waits_for_its_running_expire() -> None:
    # The expire callback starts just as the block ends; the block must not be left (and so
    # its resource reused) before the callback is done with it.
    watchdog = Watchdog("test-watchdog")
    try:
        started = threading.Event()
        events: list[str] = []

        def expire() -> None:
            started.set()
            time.sleep(0.2)
            events.append("expire done")

        with watchdog.deadline(0.01, expire):
            assert started.wait(5)
        events.append("block left")
        assert events == ["expire done", "block left"]
    finally:
        watchdog.close()
