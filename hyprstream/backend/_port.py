"""The backend port: the system of record that every acknowledged batch is written through to.

Contract (spec/backend.md, BE-1 to BE-5):

* ``write`` returns only after the batch is durably committed, in one transaction; if it
  raises, nothing of the batch is committed. Failures of the datastore surface as
  :class:`~hyprstream.errors.Unavailable`.
* ``scan`` returns the stored samples at or after an instant, for warming the hot cache.
* A backend never sees or logs credentials in messages it raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import pyarrow as pa

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """Where acknowledged samples live durably."""

    @property
    def description(self) -> str:
        """A one-line, secret-free description for logs (driver and redacted location)."""
        ...

    def write(self, rows: pa.Table) -> None:
        """Commit ``rows`` (the full ``metrics`` schema, labels included) in one transaction."""
        ...

    def add_labels(self, fields: list[pa.Field]) -> None:
        """Add label columns to the stored table (nullable); existing rows read as NULL."""
        ...

    def scan(self, since_us: int | None) -> Iterator[pa.RecordBatch]:
        """Stored samples with ``timestamp >= since_us`` (all when ``None``)."""
        ...

    def close(self) -> None: ...
