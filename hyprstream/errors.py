"""Every error hyprstream raises, in one tree.

Errors say whose fault they are and carry the status a protocol boundary should send.
They are raised deep inside the layers and translated exactly once, at the edge that
speaks to a client (the Flight SQL server maps ``status`` to a Flight status code).
Messages never contain secrets: code that handles credentials builds messages from
redacted values only.

    HyprstreamError
    ├── ClientError                      the request was wrong; retrying it unchanged fails again
    │   ├── InvalidInput                 INVALID_ARGUMENT
    │   │   ├── InvalidBatch             a rejected ingest batch (names column and first bad row)
    │   │   └── InvalidQuery             SQL that cannot be parsed, bound or run
    │   ├── NotFound                     NOT_FOUND (unknown table, handle, ticket)
    │   ├── Unauthenticated              UNAUTHENTICATED
    │   ├── PermissionDenied             UNAUTHORIZED (principal may not do this; confined SQL)
    │   └── Unsupported                  UNIMPLEMENTED
    ├── ConfigError                      the operator's configuration is wrong (raised at start)
    ├── Unavailable                      UNAVAILABLE: a dependency (the backend) failed or timed out
    ├── ResourceExhausted                RESOURCE_EXHAUSTED: a query hit its memory limit
    │   └── TimedOut                     DEADLINE_EXCEEDED: a query hit its time limit
    └── InternalError                    INTERNAL: a bug in hyprstream
"""

from __future__ import annotations

import enum

__all__ = [
    "ClientError",
    "ConfigError",
    "HyprstreamError",
    "InternalError",
    "InvalidBatch",
    "InvalidInput",
    "InvalidQuery",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Status",
    "TimedOut",
    "Unauthenticated",
    "Unavailable",
    "Unsupported",
]


class Status(enum.Enum):
    """The protocol status an error maps to (named after gRPC / Flight codes)."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    UNAUTHORIZED = "unauthorized"
    UNIMPLEMENTED = "unimplemented"
    UNAVAILABLE = "unavailable"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"


class HyprstreamError(Exception):
    """Root of every error hyprstream raises on purpose."""

    status: Status = Status.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type[HyprstreamError], tuple[str]]:
        return (type(self), (self.message,))


class ClientError(HyprstreamError):
    """The client's request was wrong."""

    status = Status.INVALID_ARGUMENT


class InvalidInput(ClientError):
    status = Status.INVALID_ARGUMENT


class InvalidBatch(InvalidInput):
    """An ingest batch was rejected; nothing of it was stored.

    ``column`` names the offending column (or ``None`` for batch-level problems) and
    ``row`` the first bad row (0-based, within the record batch), when there is one.
    """

    def __init__(self, reason: str, column: str | None = None, row: int | None = None) -> None:
        parts = []
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row}")
        where = f" ({', '.join(parts)})" if parts else ""
        super().__init__(f"rejected batch{where}: {reason}")
        self.reason = reason
        self.column = column
        self.row = row

    def __reduce__(self) -> tuple[type[InvalidBatch], tuple[str, str | None, int | None]]:  # type: ignore[override]
        return (type(self), (self.reason, self.column, self.row))


class InvalidQuery(InvalidInput):
    status = Status.INVALID_ARGUMENT


class NotFound(ClientError):
    status = Status.NOT_FOUND


class Unauthenticated(ClientError):
    status = Status.UNAUTHENTICATED


class PermissionDenied(ClientError):
    status = Status.UNAUTHORIZED


class Unsupported(ClientError):
    status = Status.UNIMPLEMENTED


class ConfigError(HyprstreamError):
    """The operator's configuration is invalid; raised before the server starts serving."""

    status = Status.INVALID_ARGUMENT


class Unavailable(HyprstreamError):
    """A dependency (usually the backend) failed or timed out; the request may be retried."""

    status = Status.UNAVAILABLE


class ResourceExhausted(HyprstreamError):
    """A query needed more than its limits allow; a smaller query may succeed."""

    status = Status.RESOURCE_EXHAUSTED


class TimedOut(ResourceExhausted):
    """A query ran longer than its time limit and was cancelled."""

    status = Status.DEADLINE_EXCEEDED


class InternalError(HyprstreamError):
    """A bug: an invariant hyprstream relies on did not hold."""

    status = Status.INTERNAL
