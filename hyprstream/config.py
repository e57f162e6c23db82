"""Configuration: immutable, layered, printable without secrets (spec/config.md).

Layers, later winning: built-in defaults < the TOML file (``--config``) < environment
variables < command-line flags. Credentials follow the seed's order of precedence:
``HYPRSTREAM_ENGINE_USERNAME`` / ``HYPRSTREAM_ENGINE_PASSWORD``, then ``--engine-username`` /
``--engine-password``, then the user and password inside the connection URI.

``repr`` and ``describe()`` never show a password: it is held in a :class:`Secret`.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyprstream._secrets import REDACTED, SECRET_OPTION_KEYS, redact_uri
from hyprstream.errors import ConfigError
from hyprstream.windows import (
    DEFAULT_LATENESS_US,
    DEFAULT_SIZES,
    WindowSize,
    default_retention,
)

__all__ = ["ENGINES", "Config", "Secret", "load_config", "parse_bytes", "parse_duration"]

ENGINES = ("embedded", "adbc", "memory")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_PORT = 50051
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path("hyprstream-data")

_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}


class Secret:
    """A string that does not show itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_BYTES = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "kib": 2**10,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def parse_bytes(text: str | int) -> int:
    """``'256MiB'``, ``'1GB'``, ``'4096'`` in bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _BYTES.match(str(text))
    if not match:
        raise ConfigError(f"invalid size {text!r} (use e.g. 512MiB, 2GB, 1048576)")
    return int(match.group(1)) * _BYTE_UNITS[(match.group(2) or "b").lower()]


def parse_duration(text: str | int, *, what: str) -> int:
    """``'90s'``, ``'5m'``, ``'1h'``, ``'2d'`` (or a bare number of seconds) in microseconds."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text * 1_000_000
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"invalid duration for {what}: {text!r} (use e.g. 90s, 5m, 1h, 2d)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything a hyprstream node needs to start."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    log_level: str = "info"
    engine: str = "embedded"
    engine_connection: str | None = None
    engine_options: Mapping[str, str] = field(default_factory=dict)
    engine_username: str | None = None
    engine_password: Secret | None = None
    cache_enabled: bool = True
    cache_engine: str = "duckdb"
    cache_connection: str = ":memory:"
    #: Hot samples older than this (wall clock) leave the hot cache; None: kept forever.
    cache_max_duration_us: int | None = 24 * 3_600_000_000
    #: Read-through results: time to live and total size.
    cache_ttl_us: int = 60_000_000
    cache_max_bytes: int = 256 * 1024**2
    #: Keep the series index (CACHE-11): one-metric lookups without DuckDB, a second copy
    #: of the hot samples and closed windows in memory.
    series_index: bool = True
    windows: tuple[WindowSize, ...] = DEFAULT_SIZES
    running_window: WindowSize = DEFAULT_SIZES[0]
    allowed_lateness_us: int = DEFAULT_LATENESS_US
    window_retention_us: Mapping[WindowSize, int] = field(default_factory=dict)
    #: Authentication: "none" (the default on loopback) or "basic" (users and tokens below).
    auth: str = "none"
    auth_users_file: Path | None = None
    auth_tokens_file: Path | None = None
    #: ``name:password:role`` entries from HYPRSTREAM_AUTH_USERS (comma-separated).
    auth_users_env: Secret | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Per-query limits for client SQL on the hot cache.
    query_timeout_us: int = 60_000_000
    query_memory_limit: int = 2 * 1024**3
    #: Memory the hot cache may use in all (data and queries); None: DuckDB's default (80% RAM).
    memory_limit: int | None = None
    #: Sizes whose windows carry quantile sketches; None: the default (sizes of 1 h or more).
    quantile_windows: tuple[WindowSize, ...] | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine == "adbc" and not self.engine_connection:
            raise ConfigError("--engine adbc needs --engine-connection (a connection URI)")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {self.port}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.auth not in ("none", "basic"):
            raise ConfigError(f"--auth must be none or basic, got {self.auth!r}")
        if self.auth == "basic" and not (
            self.auth_users_file or self.auth_tokens_file or self.auth_users_env
        ):
            raise ConfigError(
                "--auth basic needs users: --auth-users FILE, --auth-tokens FILE or "
                "HYPRSTREAM_AUTH_USERS"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        if self.query_timeout_us <= 0:
            raise ConfigError("--query-timeout must be positive")
        if self.cache_engine != "duckdb":
            raise ConfigError(f"--cache-engine supports only 'duckdb', got {self.cache_engine!r}")
        if self.running_window not in self.windows:
            raise ConfigError(
                f"the running window {self.running_window} must be one of the window sizes "
                f"({', '.join(w.label for w in self.windows)})"
            )
        if self.allowed_lateness_us < 0:
            raise ConfigError("allowed lateness must not be negative")
        stray = [w.label for w in self.window_retention_us if w not in self.windows]
        if stray:
            raise ConfigError(
                f"[windows] retention names {', '.join(stray)}, which are not window sizes "
                f"({', '.join(w.label for w in self.windows)})"
            )
        if self.quantile_windows is not None:
            unknown = [w.label for w in self.quantile_windows if w not in self.windows]
            if unknown:
                raise ConfigError(
                    f"quantiles requested for {', '.join(unknown)}, which are not window sizes "
                    f"({', '.join(w.label for w in self.windows)})"
                )

    @property
    def quantile_sizes(self) -> tuple[WindowSize, ...]:
        """Sizes with quantile sketches: as configured, else those of an hour or more (at
        least the largest size): short windows hold too few samples for a useful p99, and
        sketches cost ingest time (spec/windows.md, WIN-18)."""
        if self.quantile_windows is not None:
            return self.quantile_windows
        hourly = tuple(w for w in self.windows if w.micros >= 3_600_000_000)
        return hourly or self.windows[-1:]

    def retention_for(self, size: WindowSize) -> int:
        return self.window_retention_us.get(size, default_retention(size))

    def describe(self) -> dict[str, Any]:
        """Every setting, with secrets redacted (for logs and ``--print-config``)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "engine_connection" and value:
                value = redact_uri(value)
            elif f.name in ("engine_password", "auth_users_env") and value is not None:
                value = REDACTED
            elif f.name == "engine_options":
                value = {
                    k: (REDACTED if k.lower() in SECRET_OPTION_KEYS else v)
                    for k, v in value.items()
                }
            elif f.name == "windows":
                value = [w.label for w in value]
            elif f.name == "running_window":
                value = value.label
            elif f.name == "window_retention_us":
                value = {w.label: us for w, us in value.items()}
            elif f.name == "quantile_windows":
                value = [w.label for w in self.quantile_sizes]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"Config({body})"


# -- loading ----------------------------------------------------------------------------------


#: The TOML file's sections and keys, each with the setting it gives (``load_config``'s names).
_TOML_KEYS: dict[str, dict[str, str]] = {
    "server": {"host": "host", "port": "port", "data_dir": "data_dir", "log_level": "log_level"},
    "storage": {
        "backend": "engine",
        "connection": "engine_connection",
        "options": "engine_options",
        "username": "engine_username",
        "password": "engine_password",
    },
    "cache": {
        "enabled": "cache_enabled",
        "engine": "cache_engine",
        "connection": "cache_connection",
        "max_duration": "cache_max_duration",
        "ttl": "cache_ttl",
        "max_bytes": "cache_max_bytes",
        "series_index": "series_index",
    },
    "auth": {"mode": "auth", "users_file": "auth_users_file", "tokens_file": "auth_tokens_file"},
    "tls": {"cert": "tls_cert", "key": "tls_key", "client_ca": "tls_client_ca"},
    "limits": {
        "query_timeout": "query_timeout",
        "query_memory": "query_memory_limit",
        "memory": "memory_limit",
    },
    "windows": {
        "sizes": "windows",
        "running": "running_window",
        "allowed_lateness": "allowed_lateness",
        "retention": "window_retention",
        "quantiles": "quantile_windows",
    },
}


def _switch(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"the {what} setting must be on or off, got {value!r}")


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {str(path)!r} is not valid TOML: {exc}") from None
    known = set(_TOML_KEYS)
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"unknown section(s) {sorted(unknown)} in {str(path)!r}; known: {sorted(known)}"
        )
    out: dict[str, Any] = {}
    for name, keys in _TOML_KEYS.items():
        section = _section(data, name, set(keys))
        out.update({setting: section[key] for key, setting in keys.items() if key in section})
    if "engine_options" in out:
        if not isinstance(out["engine_options"], dict):
            raise ConfigError('[storage] options must be a table of key = "value" pairs')
        out["engine_options"] = {str(k): str(v) for k, v in out["engine_options"].items()}
    return out


def _section(data: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}] must be a table")
    unknown = set(section) - keys
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{name}]; known: {sorted(keys)}")
    return section


def _sizes(value: Any) -> tuple[WindowSize, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    sizes = tuple(WindowSize.parse(str(item)) for item in items if str(item).strip())
    if not sizes:
        raise ConfigError("at least one window size is needed")
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"window sizes must be distinct, got {[s.label for s in sizes]}")
    return tuple(sorted(sizes))


#: Duration settings (the Config field adds ``_us``), with how errors name them.
_DURATION_SETTINGS = {
    "allowed_lateness": "allowed lateness",
    "cache_ttl": "cache ttl",
    "query_timeout": "query timeout",
}
_PATH_SETTINGS = (
    "data_dir",
    "auth_users_file",
    "auth_tokens_file",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
)


def load_config(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Merge defaults, the TOML file, the environment and flags (given as Config field names,
    with ``None`` meaning "not given") into one validated :class:`Config`."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(_from_toml(config_file))
    env = environ or {}
    if env.get("HYPRSTREAM_AUTH_USERS"):
        merged["auth_users_env"] = Secret(env["HYPRSTREAM_AUTH_USERS"])
    from_env: set[str] = set()
    for key, env_name in (
        ("engine_username", "HYPRSTREAM_ENGINE_USERNAME"),
        ("engine_password", "HYPRSTREAM_ENGINE_PASSWORD"),
    ):
        if env.get(env_name):
            merged[key] = env[env_name]
            from_env.add(key)
    for key, value in (flags or {}).items():
        if value is None or key in from_env:
            continue  # for credentials, the environment outranks flags (the seed's order)
        if key == "engine_options" and "engine_options" in merged:
            merged[key] = {**merged["engine_options"], **value}
        else:
            merged[key] = value

    kwargs: dict[str, Any] = {}
    for key, value in merged.items():
        if key == "windows":
            kwargs["windows"] = _sizes(value)
        elif key == "running_window":
            kwargs["running_window"] = WindowSize.parse(str(value))
        elif key in _DURATION_SETTINGS:
            kwargs[f"{key}_us"] = parse_duration(value, what=_DURATION_SETTINGS[key])
        elif key == "window_retention":
            if not isinstance(value, dict):
                raise ConfigError('[windows] retention must be a table like { "5m" = "6h" }')
            kwargs["window_retention_us"] = {
                WindowSize.parse(str(k)): parse_duration(v, what=f"retention of {k} windows")
                for k, v in value.items()
            }
        elif key == "cache_max_duration":
            text = str(value).strip().lower()
            kwargs["cache_max_duration_us"] = (
                None if text in ("none", "0") else parse_duration(value, what="cache max duration")
            )
        elif key in ("series_index", "cache_enabled"):
            kwargs[key] = _switch(value, key.replace("_", " "))
        elif key in ("cache_max_bytes", "query_memory_limit", "memory_limit"):
            kwargs[key] = parse_bytes(value)
        elif key in ("engine_password", "auth_users_env"):
            kwargs[key] = value if isinstance(value, Secret) else Secret(str(value))
        elif key in _PATH_SETTINGS:
            kwargs[key] = Path(value)
        elif key == "port":
            try:
                kwargs[key] = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"port must be a number, got {value!r}") from None
        else:
            kwargs[key] = value
    if "windows" in kwargs and "running_window" not in kwargs:
        kwargs["running_window"] = kwargs["windows"][0]
    if "quantile_windows" in kwargs:
        value = kwargs["quantile_windows"]
        text = value if isinstance(value, str) else ",".join(str(v) for v in value)
        choice = text.strip().lower()
        if choice == "none":
            kwargs["quantile_windows"] = ()
        elif choice == "all":
            kwargs["quantile_windows"] = kwargs.get("windows", DEFAULT_SIZES)
        else:
            kwargs["quantile_windows"] = _sizes(text)
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = set(kwargs) - fields
    if unknown:
        raise ConfigError(f"unknown setting(s): {sorted(unknown)}")
    return Config(**kwargs)
