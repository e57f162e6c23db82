"""Principals, their passwords and bearer tokens (spec/flightsql.md, FSQL-40..FSQL-46).

Pure: parsing, password checks and token bookkeeping, with time as an argument. The server's
middleware (``_auth``) reads headers and calls these.

* A user list has one ``name:password:role`` entry per line (or comma-separated, from the
  environment); ``role`` is ``read`` (queries only) or ``write`` (also ingest, updates and
  DDL; the default). A password may be stored as ``scrypt:<salt hex>:<hash hex>`` (see
  :func:`hash_password`) instead of in clear text.
* ``Basic`` credentials are base64 of ``name:password``; unpadded base64 (Go clients send it)
  is accepted.
* A successful Basic login (or Flight handshake) issues a random bearer token, valid for a
  fixed time; static tokens may also be configured, as ``token:name:role``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hyprstream.errors import ConfigError, Unauthenticated

__all__ = [
    "READ",
    "WRITE",
    "Credentials",
    "Principal",
    "TokenBook",
    "hash_password",
    "parse_basic",
    "parse_users",
]

READ = "read"
WRITE = "write"
_ROLES = (READ, WRITE)
TOKEN_TTL_NS = 12 * 3600 * 10**9


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role == WRITE


ANONYMOUS = Principal("anonymous", WRITE)

_SCRYPT = "scrypt:"


def _scrypt(password: str, salt: bytes) -> bytes:
    # The one set of parameters: stored hashes verify only with the ones they were made with.
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


@dataclass(frozen=True, slots=True)
class _User:
    principal: Principal
    password: str = field(repr=False)

    def check(self, password: str) -> bool:
        if self.password.startswith(_SCRYPT):
            _, salt, digest = self.password.split(":", 2)
            return hmac.compare_digest(_scrypt(password, bytes.fromhex(salt)).hex(), digest)
        return hmac.compare_digest(password.encode(), self.password.encode())


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The ``scrypt:<salt>:<hash>`` form of ``password`` for a user file."""
    salt = salt or secrets.token_bytes(16)
    return f"{_SCRYPT}{salt.hex()}:{_scrypt(password, salt).hex()}"


def _entries(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """``(entry number, stripped line)``, skipping blank lines and ``#`` comments."""
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_users(entries: Iterable[str], *, source: str) -> dict[str, _User]:
    """``name:password[:role]`` entries (blank lines and ``#`` comments are skipped)."""
    users: dict[str, _User] = {}
    for number, line in _entries(entries):
        name, sep, rest = line.partition(":")
        if not sep or not name:
            raise ConfigError(f"{source}, entry {number}: expected name:password[:role]")
        # A clear-text password cannot contain ':' (a mistyped role must never silently
        # become part of the password); a hashed one has exactly the scrypt form's colons.
        parts = rest.split(":")
        fields = 3 if rest.startswith(_SCRYPT) else 1
        if len(parts) > fields + 1:
            raise ConfigError(
                f"{source}, entry {number}: expected name:password[:role] with role read or "
                "write (a password containing ':' must be given hashed, see hash_password)"
            )
        password = ":".join(parts[:fields])
        role = parts[fields] if len(parts) > fields else WRITE
        if role not in _ROLES:
            # The role is not echoed: it may be the tail of a password that contains ':'.
            raise ConfigError(
                f"{source}, entry {number}: role must be read or write (a password "
                "containing ':' must be given hashed, see hash_password)"
            )
        if not password:
            raise ConfigError(f"{source}, entry {number}: empty password for {name!r}")
        if name in users:
            raise ConfigError(f"{source}, entry {number}: user {name!r} appears twice")
        users[name] = _User(Principal(name, role), password)
    return users


def parse_basic(value: str) -> tuple[str, str]:
    """Name and password from a ``Basic`` header value (padded or not)."""
    encoded = value.strip()
    encoded += "=" * (-len(encoded) % 4)
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated(
            "malformed Basic credentials (expected base64 of name:password)"
        ) from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("malformed Basic credentials (expected base64 of name:password)")
    return name, password


class Credentials:
    """Who may connect: users (by password) and static tokens."""

    def __init__(
        self, users: Mapping[str, _User], tokens: Mapping[str, Principal] | None = None
    ) -> None:
        self._users = dict(users)
        self._static = dict(tokens or {})

    @classmethod
    def parse(cls, users: Iterable[str], *, source: str, tokens: Iterable[str] = ()) -> Credentials:
        static: dict[str, Principal] = {}
        for number, line in _entries(tokens):
            token, _, rest = line.partition(":")
            name, _, role = rest.partition(":")
            role = role or READ
            if not token or not name or role not in _ROLES:
                raise ConfigError(f"token entry {number}: expected token:name[:read|write]")
            static[token] = Principal(name, role)
        return cls(parse_users(users, source=source), static)

    def __len__(self) -> int:
        return len(self._users) + len(self._static)

    def login(self, name: str, password: str) -> Principal:
        user = self._users.get(name)
        if user is None or not user.check(password):
            raise Unauthenticated("invalid user name or password")
        return user.principal

    def static_token(self, token: str) -> Principal | None:
        for known, principal in self._static.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        return None


@dataclass(slots=True)
class TokenBook:
    """Bearer tokens issued at login, each valid for ``ttl_ns`` from its issue; at most
    ``max_tokens`` are kept (the oldest is forgotten first: its holder logs in again)."""

    ttl_ns: int = TOKEN_TTL_NS
    max_tokens: int = 100_000
    _tokens: dict[str, tuple[Principal, int]] = field(default_factory=dict)

    def issue(self, principal: Principal, now_ns: int) -> str:
        self._make_room(now_ns)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (principal, now_ns + self.ttl_ns)
        return token

    def principal(self, token: str, now_ns: int) -> Principal | None:
        entry = self._tokens.get(token)
        if entry is None or entry[1] <= now_ns:
            return None
        return entry[0]

    def __len__(self) -> int:
        return len(self._tokens)

    def _make_room(self, now_ns: int) -> None:
        """Forget expired tokens, and the oldest live ones while the book is full."""
        # Tokens are kept in issue order and all live equally long: the oldest expire first.
        while self._tokens:
            oldest, (_, until) = next(iter(self._tokens.items()))
            if until > now_ns and len(self._tokens) < self.max_tokens:
                return
            del self._tokens[oldest]
