"""Window sizes and bucket math (spec/windows.md, WIN-1 to WIN-3).

Windows are tumbling, epoch-aligned in UTC and half-open: the window of size ``s`` that
holds instant ``t`` (microseconds since the epoch) is ``[t - t mod s, t - t mod s + s)``,
with ``mod`` the floored modulo, so instants before 1970 fall into the right window too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import overload

import numpy as np

from hyprstream.errors import ConfigError

__all__ = ["DEFAULT_SIZES", "WindowSize", "window_start"]

_UNITS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_TEXT = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


@dataclass(frozen=True, slots=True, order=True)
class WindowSize:
    """A tumbling window size, a whole number of seconds; ``label`` is its canonical text."""

    micros: int

    def __post_init__(self) -> None:
        if self.micros <= 0 or self.micros % _UNITS["s"]:
            raise ConfigError(
                f"a window size must be a positive whole number of seconds, got {self.micros} us"
            )

    @classmethod
    def parse(cls, text: str) -> WindowSize:
        """Parse ``'90s'``, ``'5m'``, ``'1h'``, ``'1d'``."""
        match = _TEXT.match(text)
        if not match or int(match.group(1)) == 0:
            raise ConfigError(
                f"invalid window size {text!r}: use a positive number and a unit s, m, h or d "
                "(for example 5m, 30m, 1h, 1d)"
            )
        return cls(int(match.group(1)) * _UNITS[match.group(2)])

    @property
    def label(self) -> str:
        """The size as text in the largest unit that divides it: 300 s is ``'5m'``."""
        for unit in ("d", "h", "m", "s"):
            if self.micros % _UNITS[unit] == 0:
                return f"{self.micros // _UNITS[unit]}{unit}"
        raise AssertionError("unreachable: sizes are whole seconds")

    def __str__(self) -> str:
        return self.label


DEFAULT_SIZES: tuple[WindowSize, ...] = tuple(
    WindowSize.parse(s) for s in ("5m", "30m", "1h", "1d")
)


@overload
def window_start(ts_us: int, size: WindowSize) -> int: ...
@overload
def window_start(ts_us: np.ndarray, size: WindowSize) -> np.ndarray: ...
def window_start(ts_us: int | np.ndarray, size: WindowSize) -> int | np.ndarray:
    """Start of the window of ``size`` holding ``ts_us`` (floored, so exact for negatives)."""
    # Python's and numpy's % are floored for a positive divisor.
    return ts_us - ts_us % size.micros
