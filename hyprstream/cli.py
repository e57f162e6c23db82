"""The ``hyprstream`` command: start an Arrow Flight SQL server.

With no arguments it serves on 127.0.0.1:50051 with DuckDB in memory as the hot cache and
an embedded DuckDB file under ./hyprstream-data as the system of record, so a restart loses
nothing and no other service is needed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyprstream._version import __version__
from hyprstream.app import start
from hyprstream.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENGINES,
    LOG_LEVELS,
    load_config,
)
from hyprstream.errors import HyprstreamError

__all__ = ["build_parser", "main"]

log = logging.getLogger("hyprstream")


class _KeyValue(argparse.Action):
    """Collects ``k=v`` pairs (repeatable, several per flag) into a dict."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = dict(getattr(namespace, self.dest) or {})
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"{option_string} expects key=value, got {item!r}")
            current[key.strip()] = value.strip()
        setattr(namespace, self.dest, current)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hyprstream",
        description=(
            "Ingest metrics over Arrow Flight, keep real-time window aggregates, cache hot data "
            "in DuckDB, write every acknowledged batch through to a backend over ADBC, and serve "
            "it all as SQL over Arrow Flight SQL."
        ),
        epilog=(
            "Settings are layered: defaults < --config file < environment < flags. Credentials: "
            "HYPRSTREAM_ENGINE_USERNAME / HYPRSTREAM_ENGINE_PASSWORD, then --engine-username / "
            "--engine-password, then the connection URI. Ingest: DoPut on the path descriptor "
            "['metrics'] with columns metric_id (utf8), timestamp (Arrow timestamp) and value "
            "(float64); other columns are kept as labels."
        ),
    )
    p.add_argument("--version", action="version", version=f"hyprstream {__version__}")
    server = p.add_argument_group("server")
    server.add_argument(
        "--host", help=f"address to listen on (default {DEFAULT_HOST}: loopback only)"
    )
    server.add_argument(
        "--port", type=int, help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free port)"
    )
    server.add_argument(
        "--data-dir",
        type=Path,
        help=f"directory of the embedded store (default ./{DEFAULT_DATA_DIR})",
    )
    server.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    server.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity (default info)")

    engine = p.add_argument_group("backend (system of record)")
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        help="embedded (default): DuckDB file in --data-dir via ADBC; adbc: any ADBC "
        "driver, see --engine-connection; memory: volatile, for tests",
    )
    engine.add_argument(
        "--engine-connection",
        metavar="URI",
        help="backend connection URI, e.g. postgresql://host:5432/metrics "
        "(pool_max, pool_min, connect_timeout query options are hyprstream's)",
    )
    engine.add_argument(
        "--engine-options",
        nargs="+",
        action=_KeyValue,
        metavar="K=V",
        help="driver options, e.g. driver_path=/usr/lib/libadbc_driver_postgresql.so "
        "or driver=adbc_driver_sqlite; repeatable",
    )
    engine.add_argument(
        "--engine-username", help="backend user (HYPRSTREAM_ENGINE_USERNAME wins over this)"
    )
    engine.add_argument(
        "--engine-password",
        help="backend password (HYPRSTREAM_ENGINE_PASSWORD wins over this; prefer the "
        "environment: flags show in process listings)",
    )

    cache = p.add_argument_group("hot cache")
    cache.add_argument(
        "--enable-cache",
        action="store_true",
        default=None,
        help="enable the DuckDB hot cache (always on: queries are served from it)",
    )
    cache.add_argument("--cache-engine", choices=("duckdb",), help="hot cache engine (only duckdb)")
    cache.add_argument(
        "--cache-connection",
        metavar="DSN",
        help="DuckDB database of the hot cache (default ':memory:')",
    )
    cache.add_argument(
        "--cache-max-duration",
        metavar="DURATION",
        help="hot samples older than this (wall clock) leave the hot cache; queries that need "
        "them read through to the backend (default 24h; 'none' keeps everything)",
    )
    cache.add_argument(
        "--series-index",
        choices=("on", "off"),
        help="keep every hot sample and closed window a second time, grouped by metric, so "
        "that one-metric queries (SELECT ... FROM metrics or metrics_<size> WHERE metric_id "
        "= ...) and per-metric aggregates (... FROM metrics GROUP BY metric_id) skip DuckDB "
        "(default on; about 40 bytes per hot sample)",
    )
    cache.add_argument(
        "--cache-ttl",
        metavar="DURATION",
        help="how long a read-through (backend) query result is reused (default 60s)",
    )
    cache.add_argument(
        "--cache-max-bytes",
        metavar="SIZE",
        help="total size of read-through results kept, least recently used dropped first "
        "(default 256MiB)",
    )

    security = p.add_argument_group("security")
    security.add_argument(
        "--auth",
        choices=("none", "basic"),
        help="none (default; loopback only is the default bind): anyone may connect; basic: "
        "Basic logins and bearer tokens, users from --auth-users / HYPRSTREAM_AUTH_USERS",
    )
    security.add_argument(
        "--auth-users",
        type=Path,
        metavar="FILE",
        help="users, one 'name:password:role' per line (role read or write; password may be "
        "'scrypt:<salt>:<hash>'); HYPRSTREAM_AUTH_USERS adds comma-separated entries",
    )
    security.add_argument(
        "--auth-tokens",
        type=Path,
        metavar="FILE",
        help="static bearer tokens, one 'token:name:role' per line",
    )
    security.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="serve TLS with this certificate chain"
    )
    security.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert"
    )
    security.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="mutual TLS: require client certificates signed by this CA",
    )
    security.add_argument(
        "--query-timeout",
        metavar="DURATION",
        help="longest a client query may run before it is cancelled (default 60s)",
    )
    security.add_argument(
        "--query-memory",
        metavar="SIZE",
        help="memory a client query may use for sorts and hash tables before it spills "
        "(default 2GiB)",
    )
    security.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory the hot cache may use in all, its data and every query (default: 80%% of "
        "RAM); a query that needs more fails with a clear error",
    )

    windows = p.add_argument_group("windows")
    windows.add_argument(
        "--windows", metavar="SIZES", help="comma-separated window sizes (default 5m,30m,1h,1d)"
    )
    windows.add_argument(
        "--running-window",
        metavar="SIZE",
        help="window of the value_running_window_* columns (default: smallest size)",
    )
    windows.add_argument(
        "--quantiles",
        metavar="SIZES",
        help="window sizes that keep p50/p90/p99 sketches: comma-separated, 'all' or 'none' "
        "(default: sizes of 1h or more)",
    )
    windows.add_argument(
        "--allowed-lateness",
        metavar="DURATION",
        help="how far behind the newest sample a sample may arrive and still be "
        "merged into windows (default 1h)",
    )
    return p


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "engine": args.engine,
        "engine_connection": args.engine_connection,
        "engine_options": args.engine_options,
        "engine_username": args.engine_username,
        "engine_password": args.engine_password,
        "cache_enabled": args.enable_cache,
        "cache_engine": args.cache_engine,
        "cache_connection": args.cache_connection,
        "cache_max_duration": args.cache_max_duration,
        "cache_ttl": args.cache_ttl,
        "cache_max_bytes": args.cache_max_bytes,
        "series_index": args.series_index,
        "windows": args.windows,
        "running_window": args.running_window,
        "allowed_lateness": args.allowed_lateness,
        "quantile_windows": args.quantiles,
        "auth": args.auth,
        "auth_users_file": args.auth_users,
        "auth_tokens_file": args.auth_tokens,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "tls_client_ca": args.tls_client_ca,
        "query_timeout": args.query_timeout,
        "query_memory_limit": args.query_memory,
        "memory_limit": args.memory_limit,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(flags=_flags(args), environ=os.environ, config_file=args.config)
    except HyprstreamError as exc:
        print(f"hyprstream: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        node = start(config)
    except HyprstreamError as exc:
        log.error("cannot start: %s", exc.message)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except Exception as exc:  # e.g. the port is taken: pyarrow raises its own errors
        log.error("cannot start: %s", " ".join(str(exc).split()))
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    log.info(
        "backend: %s; hot cache: DuckDB %s",
        node.service.backend.description,
        config.cache_connection,
    )
    if config.auth == "none" and config.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "serving on %s without authentication: anyone who can connect may read and write",
            node.location,
        )
    # Tests and scripts wait for this line (with the real port when --port 0 was given).
    print(
        f"hyprstream {__version__} listening on {node.location}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(3600):
        pass
    node.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
