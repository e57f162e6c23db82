"""Building a running node from a :class:`~hyprstream.config.Config` (the edge of the layers)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hyprstream._secrets import redact_uri
from hyprstream.backend import AdbcBackend, Backend, DuckDBHotCache, MemoryBackend, resolve_driver
from hyprstream.config import Config
from hyprstream.errors import ConfigError
from hyprstream.flightsql._server import FlightSqlServer
from hyprstream.service import Hyprstream
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
        spec = resolve_driver("", driver="duckdb")
        return AdbcBackend(str(path), spec=spec, display=f"embedded DuckDB at {path}")
    assert config.engine_connection is not None
    options = dict(config.engine_options)
    spec = resolve_driver(
        config.engine_connection,
        driver=options.pop("driver", None),
        driver_path=options.pop("driver_path", None),
    )
    return AdbcBackend(
        config.engine_connection,
        spec=spec,
        db_kwargs=options,
        display=f"{spec.name} at {redact_uri(config.engine_connection)}",
    )


def build_service(config: Config) -> Hyprstream:
    """A warmed-up service: backend connected, hot cache and windows loaded from it."""
    backend = build_backend(config)
    try:
        cache = DuckDBHotCache(
            config.cache_connection, window_labels=[w.label for w in config.windows]
        )
        store = WindowStore(
            sizes=config.windows,
            running=config.running_window,
            lateness_us=config.allowed_lateness_us,
            retention_us={w: config.retention_for(w) for w in config.windows},
            quantiles=config.quantile_sizes,
        )
        service = Hyprstream(backend=backend, cache=cache, store=store)
        loaded = service.warm()
    except BaseException:
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

    @property
    def port(self) -> int:
        return int(self.server.port)

    def shutdown(self) -> None:
        self.server.shutdown()
        self.service.close()


def start(config: Config) -> Node:
    service = build_service(config)
    try:
        host = f"[{config.host}]" if ":" in config.host else config.host
        server = FlightSqlServer(service, f"grpc://{host}:{config.port}")
    except BaseException:
        service.close()
        raise
    return Node(service=service, server=server)
