"""FSQL-40..FSQL-46: user lists, Basic credentials and bearer tokens (pure parts)."""

from __future__ import annotations

import base64

import pytest

from hyprstream.errors import ConfigError, Unauthenticated
from hyprstream.flightsql._credentials import (
    Credentials,
    Principal,
    TokenBook,
    hash_password,
    parse_basic,
    parse_users,
)


def test_user_entries_with_and_without_roles() -> None:
    users = parse_users(
        ["# operators", "", "alice:s3cret", "bob:pw:read", "carol:pw:write"], source="users"
    )
    assert {n: u.principal.role for n, u in users.items()} == {
        "alice": "write",
        "bob": "read",
        "carol": "write",
    }
    assert users["alice"].check("s3cret")
    assert not users["alice"].check("s3cret ")


def test_hashed_passwords_with_and_without_roles() -> None:
    hashed = hash_password("correct horse")
    users = parse_users([f"dave:{hashed}", f"erin:{hashed}:read"], source="users")
    assert users["dave"].check("correct horse")
    assert users["dave"].principal.role == "write"
    assert users["erin"].principal.role == "read"
    assert not users["erin"].check("wrong")


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("alice:Zq9pw:admin", "role must be read or write"),  # a mistyped role
        ("alice:Zq9pa:Zq9ss", "role must be read or write"),  # a password with ':'
        ("alice:Zq9pa:Zq9ss:read", "containing ':' must be given hashed"),
        ("alice", "expected name:password"),
        (":Zq9pw", "expected name:password"),
        ("alice:", "empty password"),
    ],
)
def test_bad_entries_are_refused_without_echoing_secrets(entry: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        parse_users([entry], source="users file")
    message = str(info.value)
    assert "entry 1" in message
    # Every secret here starts with "Zq9", which no message says otherwise: no part of one
    # (nor the role field after it, which may be a password's tail) may appear.
    assert "Zq9" not in message
    assert "admin" not in message


def test_a_user_listed_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        parse_users(["a:x", "a:y"], source="users")


def test_basic_credentials_padded_or_not() -> None:
    padded = base64.b64encode(b"alice:pw12").decode()
    assert padded.endswith("=")
    assert parse_basic(padded) == ("alice", "pw12")
    assert parse_basic(padded.rstrip("=")) == ("alice", "pw12")  # Go clients omit padding
    with pytest.raises(Unauthenticated, match="malformed Basic credentials"):
        parse_basic("%%%")
    with pytest.raises(Unauthenticated, match="malformed Basic credentials"):
        parse_basic(base64.b64encode(b"no-colon").decode())


def test_login_and_static_tokens() -> None:
    creds = Credentials.parse(["alice:pw"], source="users", tokens=["tok123:robot", "t2:ci:write"])
    assert creds.login("alice", "pw") == Principal("alice", "write")
    with pytest.raises(Unauthenticated, match="invalid user name or password"):
        creds.login("alice", "nope")
    with pytest.raises(Unauthenticated, match="invalid user name or password"):
        creds.login("mallory", "pw")
    assert creds.static_token("tok123") == Principal("robot", "read")
    assert creds.static_token("t2") == Principal("ci", "write")
    assert creds.static_token("tok12") is None
    with pytest.raises(ConfigError, match="token entry 1"):
        Credentials.parse([], source="users", tokens=["tok:ci:admin"])


def test_tokens_expire_and_are_bounded() -> None:
    book = TokenBook(ttl_ns=100, max_tokens=3)
    who = Principal("alice", "read")
    first = book.issue(who, now_ns=0)
    assert book.principal(first, now_ns=99) == who
    assert book.principal(first, now_ns=100) is None  # expired
    assert book.principal("never-issued", now_ns=0) is None
    tokens = [book.issue(who, now_ns=200 + i) for i in range(5)]
    assert len(book) == 3  # the oldest were forgotten to stay within the bound
    assert [book.principal(t, now_ns=210) for t in tokens] == [None, None, who, who, who]
    book.issue(who, now_ns=1_000)  # everything earlier has expired by now
    assert len(book) == 1
