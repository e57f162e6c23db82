"""Deadlines for blocking calls: one thread that calls ``expire`` for blocks that overrun.

What a ``threading.Timer`` per call did, without starting a thread for every query or batch.
Registering a deadline wakes the thread only when that deadline is the earliest it waits
for, so a steady stream of calls with the same time limit costs a dict insert each. Leaving a
block waits for its ``expire`` if that is already running, so an ``expire`` never reaches
past its block (for example, cancelling a pooled cursor's next query).
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
        self._expiring: set[object] = set()  # keys whose ``expire`` is running
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
                while key in self._expiring:
                    self._cond.wait()

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
                callbacks = [(key, self._due.pop(key)[1]) for key in expired]
                self._expiring.update(key for key, _ in callbacks)
            for key, expire in callbacks:
                with contextlib.suppress(Exception):
                    expire()
                with self._cond:
                    self._expiring.discard(key)
                    self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
