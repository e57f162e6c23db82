"""Keeping secrets out of text: redaction of URIs and free text (spec/config.md, CFG-6).

Pure. Every message built from a connection string, a driver error or a configuration
value passes through here before it can reach a log, an error or a ``repr``.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["REDACTED", "SECRET_OPTION_KEYS", "redact_text", "redact_uri"]

REDACTED = "***"

#: Option and query-parameter names whose values are secrets.
SECRET_OPTION_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "sslpassword",
        "private_key",
        "private_key_passphrase",
        "client_secret",
    }
)

_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@"
)
_KEYVALUE = re.compile(
    r"(?P<key>\b(?:" + "|".join(sorted(SECRET_OPTION_KEYS, key=len, reverse=True)) + r"))"
    r"(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<val>[^'\"\s&;,]*)(?P=q)",
    re.IGNORECASE,
)


def redact_uri(uri: str) -> str:
    """``uri`` with any password in its userinfo or query replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if query:
        cleaned = [(k, REDACTED if k.lower() in SECRET_OPTION_KEYS else v) for k, v in query]
        q = urllib.parse.urlencode(cleaned, safe="*")
    else:
        q = parts.query
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, q, parts.fragment))


def redact_text(text: str) -> str:
    """Free text with URI passwords and ``password=...``-style values replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _KEYVALUE.sub(lambda m: f"{m['key']}{m['sep']}{m['q']}{REDACTED}{m['q']}", text)
