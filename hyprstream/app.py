"""Building a running node from a :class:`~hyprstream.config.Config` (the edge of the layers)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from hyprstream.backend import (
    AdbcBackend,
    Backend,
    DuckDBHotCache,
    MemoryBackend,
    connection_settings,
)
from hyprstream.backend._duckdb_cache import WINDOW_STORE_SCHEMA
from hyprstream.cachepolicy import CachePolicy
from hyprstream.config import Config
from hyprstream.errors import ConfigError
from hyprstream.flightsql._credentials import Credentials
from hyprstream.flightsql._server import FlightSqlServer, TlsFiles
from hyprstream.service import Hyprstream, ServiceOptions
from hyprstream.windows import WindowStore

__all__ = ["EMBEDDED_FILE", "Node", "build_backend", "build_service", "start"]

log = logging.getLogger("hyprstream")

#: The embedded system of record, inside ``--data-dir``.
EMBEDDED_FILE = "hyprstream.duckdb"


def build_backend(config: Config) -> Backend:
    if config.engine == "memory":
        log.warning("engine 'memory': samples are not stored durably and a restart loses them")
        return MemoryBackend()
    if config.engine == "embedded":
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data directory {str(config.data_dir)!r}: {exc.strerror}"
            ) from None
        path = config.data_dir / EMBEDDED_FILE
        settings = connection_settings(
            str(path),
            options={"driver": "duckdb", "pool_max": "1"},
            display=f"embedded DuckDB at {path}",
        )
        return AdbcBackend(settings, window_schema=WINDOW_STORE_SCHEMA)
    assert config.engine_connection is not None
    settings = connection_settings(
        config.engine_connection,
        options=config.engine_options,
        username=config.engine_username,
        password=config.engine_password.reveal() if config.engine_password is not None else None,
    )
    return AdbcBackend(settings, window_schema=WINDOW_STORE_SCHEMA)


def build_service(config: Config) -> Hyprstream:
    """A warmed-up service: backend connected, hot cache and windows loaded from it."""
    backend = build_backend(config)
    cache: DuckDBHotCache | None = None
    service: Hyprstream | None = None
    try:
        cache = DuckDBHotCache(
            config.cache_connection,
            window_labels=[w.label for w in config.windows],
            query_timeout_s=config.query_timeout_us / 1e6,
            query_memory=config.query_memory_limit,
            memory_limit=f"{config.memory_limit}B" if config.memory_limit else None,
            series_index=config.series_index,
        )
        store = WindowStore(
            sizes=config.windows,
            running=config.running_window,
            lateness_us=config.allowed_lateness_us,
            retention_us={w: config.retention_for(w) for w in config.windows},
            quantiles=config.quantile_sizes,
        )
        options = ServiceOptions(
            hot_max_duration_us=config.cache_max_duration_us,
            result_cache=CachePolicy(
                ttl_ns=config.cache_ttl_us * 1_000,
                max_bytes=config.cache_max_bytes,
                max_entries=1_000,
            ),
        )
        service = Hyprstream(backend=backend, cache=cache, store=store, options=options)
        loaded = service.warm()
    except BaseException:
        # A failed warm start leaves no threads or open files behind.
        if service is not None:
            service.close()
        else:
            if cache is not None:
                cache.close()
            backend.close()
        raise
    if loaded:
        log.info("loaded %d stored samples from %s", loaded, backend.description)
    return service


@dataclass
class Node:
    """A serving node: the service and its Flight SQL server."""

    service: Hyprstream
    server: FlightSqlServer
    #: ``grpc[+tls]://host:port``, with the real port when port 0 was asked for.
    location: str

    @property
    def port(self) -> int:
        return int(self.server.port)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.service.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {str(path)!r}: {exc.strerror}") from None


def build_credentials(config: Config) -> Credentials | None:
    if config.auth == "none":
        return None
    users: list[str] = []
    if config.auth_users_file is not None:
        users += _read(config.auth_users_file, "users file").decode().splitlines()
    if config.auth_users_env is not None:
        users += config.auth_users_env.reveal().split(",")
    tokens: list[str] = []
    if config.auth_tokens_file is not None:
        tokens = _read(config.auth_tokens_file, "tokens file").decode().splitlines()
    credentials = Credentials.parse(users, source="the user list", tokens=tokens)
    if not len(credentials):
        raise ConfigError("--auth basic: the user and token lists are empty")
    return credentials


def build_tls(config: Config) -> TlsFiles | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    ca = _read(config.tls_client_ca, "client CA") if config.tls_client_ca is not None else None
    return TlsFiles(
        cert=_read(config.tls_cert, "certificate"), key=_read(config.tls_key, "key"), client_ca=ca
    )


def start(config: Config) -> Node:
    credentials = build_credentials(config)
    tls = build_tls(config)
    service = build_service(config)
    host = f"[{config.host}]" if ":" in config.host else config.host
    scheme = "grpc+tls" if tls is not None else "grpc"
    try:
        server = FlightSqlServer(
            service, f"{scheme}://{host}:{config.port}", credentials=credentials, tls=tls
        )
    except BaseException:
        service.close()
        raise
    return Node(service=service, server=server, location=f"{scheme}://{host}:{server.port}")
