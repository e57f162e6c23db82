"""Authentication at the Flight boundary: Basic logins, bearer tokens, the Flight handshake.

Off by default on loopback. When credentials are configured, every call must carry either
``authorization: Basic <base64 name:password>`` (answered with a fresh ``authorization:
Bearer <token>`` response header) or ``authorization: Bearer <token>`` (issued earlier, or a
static token). The Flight handshake accepts the same headers, which is how the ADBC driver
logs in. Anything else is refused with UNAUTHENTICATED, and the principal's role is checked by
the handlers (a read-only principal may query but not ingest, update or run DDL).
"""

from __future__ import annotations

import time
from typing import Any

from pyarrow import flight

from hyprstream.errors import Unauthenticated
from hyprstream.flightsql._credentials import (
    ANONYMOUS,
    Credentials,
    Principal,
    TokenBook,
    parse_basic,
)

__all__ = ["AuthMiddleware", "AuthMiddlewareFactory", "HandshakeHandler", "principal_of"]

MIDDLEWARE_KEY = "hyprstream-auth"


class AuthMiddleware(flight.ServerMiddleware):  # type: ignore[misc]
    def __init__(self, principal: Principal, token: str | None = None) -> None:
        super().__init__()
        self.principal = principal
        self.token = token

    def sending_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Decides who is calling, from the call's headers, before any handler runs."""

    def __init__(self, credentials: Credentials | None) -> None:
        super().__init__()
        self._credentials = credentials
        self._tokens = TokenBook()

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> AuthMiddleware:
        if self._credentials is None:
            return AuthMiddleware(ANONYMOUS)
        values = headers.get("authorization") or headers.get("Authorization") or []
        for value in values:
            scheme, _, rest = value.partition(" ")
            if scheme.lower() == "basic":
                try:
                    name, password = parse_basic(rest)
                    principal = self._credentials.login(name, password)
                except Unauthenticated as exc:
                    raise flight.FlightUnauthenticatedError(exc.message) from None
                return AuthMiddleware(principal, self._tokens.issue(principal, time.monotonic_ns()))
            if scheme.lower() == "bearer":
                token = rest.strip()
                found = self._tokens.principal(token, time.monotonic_ns())
                found = found or self._credentials.static_token(token)
                if found is None:
                    raise flight.FlightUnauthenticatedError(
                        "invalid or expired bearer token; log in again with Basic credentials"
                    )
                return AuthMiddleware(found)
        raise flight.FlightUnauthenticatedError(
            "authentication required: send 'authorization: Basic <base64 name:password>' or a "
            "bearer token"
        )


class HandshakeHandler(flight.ServerAuthHandler):  # type: ignore[misc]
    """Lets the Flight handshake through: the middleware has already checked its headers."""

    def authenticate(self, outgoing: Any, incoming: Any) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""


def principal_of(context: Any) -> Principal:
    middleware = context.get_middleware(MIDDLEWARE_KEY)
    return middleware.principal if middleware is not None else ANONYMOUS
