"""A deliberately naive model of hyprstream's windows, to check the real thing against.

Plain lists, loops and ``math.fsum``: nothing here is clever, so that it is easy to believe.
It follows spec/windows.md (WIN-2, WIN-4..WIN-12) and spec/ingest.md (ING-2) literally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["NaiveWindows", "OracleRow", "OracleWindow"]


@dataclass(frozen=True)
class OracleRow:
    """One stored sample with its running columns (``None`` when late)."""

    metric_id: str
    timestamp: int  # UTC microseconds
    value: float
    running_count: int | None
    running_sum: float | None

    @property
    def running_avg(self) -> float | None:
        if self.running_count is None or self.running_sum is None:
            return None
        return self.running_sum / self.running_count


@dataclass(frozen=True)
class OracleWindow:
    count: int
    sum: float
    avg: float
    min: float
    max: float
    variance: float
    first_timestamp: int
    last_timestamp: int
    last_value: float
    quantiles: tuple[float, float, float]  # exact p50, p90, p99: the value of rank floor(q (n-1))


@dataclass
class NaiveWindows:
    """The whole window engine as lists: merged samples, stored rows, stream time."""

    sizes: dict[str, int]  # label -> size in microseconds
    running: str
    lateness_us: int
    retention_us: dict[str, int]
    merged: list[tuple[str, int, float]] = field(default_factory=list)
    rows: list[OracleRow] = field(default_factory=list)
    stream_time: int | None = None

    @staticmethod
    def start_of(ts: int, size: int) -> int:
        return ts - (ts % size)  # Python's % is floored: right for negative instants too

    def ingest(self, batch: list[tuple[str, int, float]]) -> tuple[int, int]:
        """Ingest one batch of (metric_id, timestamp_us, value); returns (accepted, late)."""
        watermark = None if self.stream_time is None else self.stream_time - self.lateness_us
        on_time = [s for s in batch if watermark is None or s[1] >= watermark]
        size = self.sizes[self.running]
        late = 0
        for metric, ts, value in batch:
            if watermark is not None and ts < watermark:
                self.rows.append(OracleRow(metric, ts, value, None, None))
                late += 1
                continue
            window = self.start_of(ts, size)
            values = [
                v for m, t, v in self.merged if m == metric and self.start_of(t, size) == window
            ]
            values += [
                v
                for m, t, v in on_time
                if m == metric and self.start_of(t, size) == window and t <= ts
            ]
            self.rows.append(OracleRow(metric, ts, value, len(values), math.fsum(values)))
        self.merged.extend(on_time)
        for _, ts, _ in on_time:
            if self.stream_time is None or ts > self.stream_time:
                self.stream_time = ts
        return len(batch), late

    def windows(self) -> dict[tuple[str, str, int], OracleWindow]:
        """Every kept window: (metric_id, size label, window start) -> its aggregates."""
        groups: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
        for label, size in self.sizes.items():
            for metric, ts, value in self.merged:
                start = self.start_of(ts, size)
                if (
                    self.stream_time is not None
                    and start + size <= self.stream_time - self.retention_us[label]
                ):
                    continue  # evicted (WIN-11)
                groups.setdefault((metric, label, start), []).append((ts, value))
        out = {}
        for key, samples in groups.items():
            values = [v for _, v in samples]
            n = len(values)
            mean = math.fsum(values) / n
            last_ts = max(t for t, _ in samples)
            out[key] = OracleWindow(
                count=n,
                sum=math.fsum(values),
                avg=mean,
                min=min(values),
                max=max(values),
                variance=math.fsum((v - mean) ** 2 for v in values) / n,
                first_timestamp=min(t for t, _ in samples),
                last_timestamp=last_ts,
                last_value=max(v for t, v in samples if t == last_ts),
                quantiles=tuple(  # type: ignore[arg-type]
                    sorted(values)[math.floor(q * (n - 1))] for q in (0.5, 0.9, 0.99)
                ),
            )
        return out
