"""Deadlines for blocking calls: one thread that calls ``expire`` for blocks that overrun.

What a ``threading.Timer`` per call did, without starting a thread for every query or batch.
Registering a deadline wakes the thread only when that deadline is the earliest it waits
for, so a steady stream of calls with the same time limit costs a dict insert each.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Watchdog"]


class Watchdog:
    def __init__(self, name: str) -> None:
        self._cond = threading.Condition()
        self._due: dict[object, tuple[float, Callable[[], None]]] = {}
        self._wakes_at = float("inf")  # when the thread next looks, if nobody wakes it
        self._closed = False
        threading.Thread(target=self._run, name=name, daemon=True).start()

    @contextlib.contextmanager
    def deadline(self, seconds: float, expire: Callable[[], None]) -> Iterator[None]:
        """Within the block, ``expire()`` is called (on the watchdog's thread) once
        ``seconds`` have passed; leaving the block first cancels it."""
        key = object()
        at = time.monotonic() + seconds
        with self._cond:
            self._due[key] = (at, expire)
            if at < self._wakes_at:
                self._wakes_at = at
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._due.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                expired = [key for key, (at, _) in self._due.items() if at <= now]
                if not expired:
                    nearest = min((at for at, _ in self._due.values()), default=None)
                    self._wakes_at = float("inf") if nearest is None else nearest
                    self._cond.wait(None if nearest is None else nearest - now)
                    continue
                callbacks = [self._due.pop(key)[1] for key in expired]
            for expire in callbacks:
                with contextlib.suppress(Exception):
                    expire()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
