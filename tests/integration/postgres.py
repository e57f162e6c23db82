"""A pytest plugin with a session-scoped ``postgres`` fixture: a real PostgreSQL server.

The server is found, in this order:

a. ``HYPRSTREAM_TEST_POSTGRES_URI`` is set: that server is used as it is. It cannot be stopped
   or started (``controllable`` is false; ``stop()``/``start()`` raise ``RuntimeError``).
b. ``testcontainers`` is importable and a Docker engine answers ``docker info``: a
   ``PostgresContainer`` (image from ``HYPRSTREAM_TEST_POSTGRES_IMAGE``, default
   ``postgres:16-alpine``) bound to a free port on the host.
c. The PostgreSQL server binaries are installed (``scripts/ensure-postgres`` installs them): a
   throwaway cluster, ``initdb``-ed into a temporary directory and started with ``pg_ctl`` on a
   free port on 127.0.0.1. When running as root it runs as the ``postgres`` user.
d. Nothing worked: the fixture fails when ``CI=true`` and skips otherwise; either way the
   message says what was tried and why each option was unavailable.

TCP connections always need a password (scram-sha-256), so tests can check credential handling.
Register the plugin in the root conftest (``tests/conftest.py``)::

    pytest_plugins = ["tests.integration.postgres"]
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

__all__ = ["PostgresServer", "execute", "external_server", "fetch", "postgres", "with_password"]

URI_ENV = "HYPRSTREAM_TEST_POSTGRES_URI"
IMAGE_ENV = "HYPRSTREAM_TEST_POSTGRES_IMAGE"
DEFAULT_IMAGE = "postgres:16-alpine"
DEFAULT_DBNAME = "hyprstream_test"
DEFAULT_USER = "hyprstream"
OS_USER = "postgres"  # who runs the throwaway cluster when the tests run as root

_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_START_TIMEOUT_S = 60
_DOCKER_INFO_TIMEOUT_S = 5
_PORT_ATTEMPTS = 5


class _Controller(Protocol):
    """What a ``PostgresServer`` delegates process control and teardown to."""

    @property
    def controllable(self) -> bool: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...

    def is_running(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server for tests. ``uri`` names the database ``dbname`` and has the password."""

    uri: str = field(repr=False)
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    kind: str  # "external", "container" or "cluster": where the server came from
    _controller: _Controller = field(repr=False, compare=False)

    @property
    def controllable(self) -> bool:
        """Whether ``stop()`` and ``start()`` work (false for an external server)."""
        return self._controller.controllable

    def stop(self) -> None:
        """Shut the server down (fast shutdown: sessions are ended, committed data is kept)."""
        self._controller.stop()

    def start(self) -> None:
        """Start the server again, on the same port with the same data; returns once it is up."""
        self._controller.start()

    def is_running(self) -> bool:
        return self._controller.is_running()

    def uri_for(self, dbname: str) -> str:
        """``uri`` with the database replaced by ``dbname``."""
        parts = urlsplit(self.uri)
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database (dropping any old one of that name); returns its URI.

        ``name`` must be a lower-case SQL identifier; without it a unique name is made up.
        """
        name = name or f"t_{secrets.token_hex(6)}"
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(
                f"database name {name!r} is not a lower-case identifier ([a-z_][a-z0-9_]*, "
                "at most 63 characters)"
            )
        # WITH (FORCE) (PostgreSQL 13+) ends sessions a previous run may have left open.
        execute(
            self.uri,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}"',
        )
        return self.uri_for(name)


# --------------------------------------------------------------------------------------------
# Helpers


def _connect(uri: str) -> Any:
    import adbc_driver_postgresql.dbapi as pg

    return pg.connect(uri, autocommit=True)


def execute(uri: str, *statements: str) -> None:
    """Run ``statements`` on the database at ``uri``, each committed on its own."""
    with _connect(uri) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def fetch(uri: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the database at ``uri``."""
    with _connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def with_password(uri: str, password: str, *, user: str | None = None) -> str:
    """``uri`` with its password (and, given ``user``, its user name) replaced."""
    parts = urlsplit(uri)
    name = quote(user, safe="") if user is not None else parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{name}:{quote(password, safe='')}@{host}"))


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _make_uri(host: str, port: int, user: str, password: str, dbname: str) -> str:
    netloc_host = f"[{host}]" if ":" in host else host
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{netloc_host}:{port}/{quote(dbname, safe='')}"
    )


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_until_connectable(uri: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            execute(uri, "SELECT 1")
            return
        except Exception as e:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL at {_redact(uri)} did not accept connections within "
                    f"{timeout_s:.0f}s: {e}"
                ) from e
            time.sleep(0.2)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# a. An external server named by HYPRSTREAM_TEST_POSTGRES_URI


class _External:
    controllable = False

    def __init__(self, uri: str) -> None:
        self._uri = uri
        parts = urlsplit(uri)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 5432)

    def stop(self) -> None:
        raise RuntimeError(
            f"cannot stop an external server ({_redact(self._uri)} from {URI_ENV}); tests that "
            "stop or start PostgreSQL need a managed one: unset "
            f"{URI_ENV} so the fixture runs its own (skip such tests when "
            "`not postgres.controllable`)"
        )

    def start(self) -> None:
        raise RuntimeError(
            f"cannot start an external server ({_redact(self._uri)} from {URI_ENV}); tests that "
            "stop or start PostgreSQL need a managed one: unset "
            f"{URI_ENV} so the fixture runs its own (skip such tests when "
            "`not postgres.controllable`)"
        )

    def is_running(self) -> bool:
        try:
            with socket.create_connection(self._address, timeout=2):
                return True
        except OSError:
            return False

    def close(self) -> None:
        pass


def external_server(uri: str) -> PostgresServer:
    """A ``PostgresServer`` for an existing server at ``uri`` (which it neither starts nor stops)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{_redact(uri)} is not a postgresql:// URI")
    user = unquote(parts.username or "")
    return PostgresServer(
        uri=uri,
        host=parts.hostname or "",
        port=parts.port or 5432,
        user=user,
        password=unquote(parts.password or ""),
        dbname=unquote(parts.path.lstrip("/")) or user,
        kind="external",
        _controller=_External(uri),
    )


def _try_external() -> PostgresServer | None:
    uri = os.environ.get(URI_ENV, "")
    if not uri:
        return None
    try:
        server = external_server(uri)
        execute(uri, "SELECT 1")
    except Exception as e:
        problem = str(e)
    else:
        return server
    pytest.fail(
        f"{URI_ENV} is set to {_redact(uri)} but that server cannot be used: {problem}",
        pytrace=False,
    )


# --------------------------------------------------------------------------------------------
# b. A container through testcontainers


class _Container:
    controllable = True

    def __init__(self, container: Any, uri: str) -> None:
        self._container = container
        self._uri = uri

    def stop(self) -> None:
        if self.is_running():
            # `docker stop` sends the image's STOPSIGNAL, SIGINT: a fast shutdown.
            self._container.get_wrapped_container().stop(timeout=30)

    def start(self) -> None:
        if not self.is_running():
            self._container.get_wrapped_container().start()
        _wait_until_connectable(self._uri, _START_TIMEOUT_S)

    def is_running(self) -> bool:
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def close(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._container.stop()


def _try_container(reasons: list[str]) -> PostgresServer | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from testcontainers.postgres import (  # type: ignore[import-not-found,unused-ignore]
                PostgresContainer,
            )
    except ImportError as e:
        reasons.append(f"testcontainers: not importable ({e})")
        return None
    docker = shutil.which("docker")
    if docker is None:
        reasons.append("testcontainers: no `docker` CLI on PATH to check for a Docker engine")
        return None
    try:
        info = subprocess.run(
            [docker, "info"], capture_output=True, text=True, timeout=_DOCKER_INFO_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        reasons.append(f"testcontainers: `docker info` did not answer: {e}")
        return None
    if info.returncode != 0:
        why = _tail(info.stderr or info.stdout, 1) or "no output"
        reasons.append(
            f"testcontainers: no Docker engine (`docker info` exited {info.returncode}: {why})"
        )
        return None

    image = os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)
    password = secrets.token_urlsafe(18)
    container: Any = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A fixed host port, so that the container comes back on it after stop()/start().
            container = PostgresContainer(
                image, username=DEFAULT_USER, password=password, dbname=DEFAULT_DBNAME, driver=None
            ).with_bind_ports(5432, _free_port())
            container.start()
            host = container.get_container_host_ip()
            port = int(container.get_exposed_port(5432))
        host = "127.0.0.1" if host == "localhost" else host
        uri = _make_uri(host, port, DEFAULT_USER, password, DEFAULT_DBNAME)
        _wait_until_connectable(uri, _START_TIMEOUT_S)
    except Exception as e:
        reasons.append(f"testcontainers: starting a {image} container failed: {e!r}")
        if container is not None:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                container.stop()
        return None
    return PostgresServer(
        uri=uri,
        host=host,
        port=port,
        user=DEFAULT_USER,
        password=password,
        dbname=DEFAULT_DBNAME,
        kind="container",
        _controller=_Container(container, uri),
    )


# --------------------------------------------------------------------------------------------
# c. A throwaway cluster: initdb + pg_ctl


def _version_key(path: Path) -> tuple[float, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); /usr/pgsql-9.6/bin -> (9, 6)
    digits = re.findall(r"\d+", path.parent.name)
    return tuple(float(d) for d in digits) or (0.0,)


def find_bindir() -> tuple[Path | None, list[str]]:
    """The directory with ``initdb``, ``pg_ctl`` and ``postgres``, and what was tried."""
    tried: list[str] = []

    def usable(d: Path) -> bool:
        return all(os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres"))

    initdb = shutil.which("initdb")
    if initdb is None:
        tried.append("no initdb on PATH")
    else:
        d = Path(os.path.realpath(initdb)).parent
        if usable(d):
            return d, tried
        tried.append(f"{initdb} has no pg_ctl and postgres beside it (in {d})")

    pg_config = shutil.which("pg_config")
    if pg_config is None:
        tried.append("no pg_config on PATH")
    else:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            tried.append(f"`pg_config --bindir` failed: {e}")
        else:
            if out and usable(Path(out)):
                return Path(out), tried
            tried.append(f"`pg_config --bindir` is {out!r}, which has no initdb, pg_ctl, postgres")

    patterns = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
    found = sorted(
        (d for pattern in patterns for d in Path("/").glob(pattern.lstrip("/")) if usable(d)),
        key=_version_key,
        reverse=True,
    )
    if found:
        return found[0], tried
    tried.append(f"no server binaries under {', '.join(patterns)}")
    return None, tried


class _ClusterError(RuntimeError):
    pass


class _Cluster:
    """A PostgreSQL cluster in a temporary directory, run with ``pg_ctl``."""

    controllable = True

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.port = 0
        self._closed = False
        if self.as_root:
            import pwd

            try:
                entry = pwd.getpwnam(OS_USER)
            except KeyError:
                raise _ClusterError(
                    f"running as root, and there is no {OS_USER!r} user to run PostgreSQL as "
                    "(postgres refuses to run as root)"
                ) from None
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
            self._runuser = shutil.which("runuser")
        # As root, under /tmp so that every parent directory is searchable by the postgres user.
        self.base = Path(
            tempfile.mkdtemp(prefix="hyprstream-pg-", dir="/tmp" if self.as_root else None)
        )
        atexit.register(self.close)
        self.data = self.base / "data"
        self.run_dir = self.base / "run"  # unix socket, log file
        self.log = self.run_dir / "postgres.log"
        if self.as_root:
            self.base.chmod(0o755)
        for d in (self.data, self.run_dir):
            d.mkdir(mode=0o700)
            self._chown(d)

    def _chown(self, path: Path) -> None:
        if self.as_root:
            os.chown(path, self._uid, self._gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        extra: dict[str, Any] = {}
        if self.as_root:
            if self._runuser is not None:
                cmd = [self._runuser, "-u", OS_USER, "--", *cmd]
            else:
                extra = {"user": self._uid, "group": self._gid, "extra_groups": []}
        # PG* variables (PGDATA, PGPORT, PGHOST, ...) must not steer the throwaway cluster.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(
            cmd,
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
            check=False,
            **extra,
        )
        if check and proc.returncode != 0:
            raise _ClusterError(
                f"`{' '.join(cmd)}` exited {proc.returncode}:\n{_tail(proc.stdout + proc.stderr)}"
                + self._log_tail()
            )
        return proc

    def _log_tail(self) -> str:
        try:
            return f"\n--- {self.log} ---\n{_tail(self.log.read_text(errors='replace'))}"
        except OSError:
            return ""

    def init(self, user: str, password: str) -> None:
        pwfile = self.run_dir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            # --no-sync only skips initdb's final flush of the files it wrote; the server itself
            # runs with fsync=on and synchronous_commit=on, so commits are durable.
            self._run(
                "initdb",
                f"--pgdata={self.data}",
                f"--username={user}",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.run_dir}'",
            "password_encryption": "'scram-sha-256'",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "shared_buffers": "'16MB'",
            "max_connections": "100",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# hyprstream test fixture\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start_on_free_port(self) -> None:
        """Start on a free port, trying another if one is taken between choosing and binding."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = _free_port()
            try:
                self.start()
                return
            except _ClusterError:
                log = self._log_tail()
                if attempt == _PORT_ATTEMPTS or "could not bind" not in log:
                    raise

    def start(self) -> None:
        if self.is_running():
            return
        self._run(
            "pg_ctl",
            "start",
            "--wait",
            f"--timeout={_START_TIMEOUT_S}",
            f"--pgdata={self.data}",
            f"--log={self.log}",
            f"--options=-p {self.port}",
        )

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run(
                "pg_ctl",
                "stop",
                "--wait",
                f"--timeout={_START_TIMEOUT_S}",
                f"--pgdata={self.data}",
                f"--mode={mode}",
            )

    def is_running(self) -> bool:
        # pg_ctl status: 0 when running, 3 when not (4 when the data directory is unusable).
        return self._run("pg_ctl", "status", f"--pgdata={self.data}", check=False).returncode == 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self.stop(mode="immediate")
        except (_ClusterError, OSError, subprocess.SubprocessError):
            self._kill_postmaster()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)


def _try_cluster(reasons: list[str]) -> PostgresServer | None:
    bindir, tried = find_bindir()
    if bindir is None:
        reasons.append(
            "throwaway cluster: PostgreSQL server binaries not found ("
            + "; ".join(tried)
            + "); run scripts/ensure-postgres to install them"
        )
        return None
    try:
        cluster = _Cluster(bindir)
    except _ClusterError as e:
        reasons.append(f"throwaway cluster with {bindir}: {e}")
        return None
    password = secrets.token_urlsafe(18)
    try:
        cluster.init(DEFAULT_USER, password)
        cluster.start_on_free_port()
        admin_uri = _make_uri("127.0.0.1", cluster.port, DEFAULT_USER, password, "postgres")
        execute(admin_uri, f'CREATE DATABASE "{DEFAULT_DBNAME}"')
    except Exception as e:
        problem = str(e) + ("" if isinstance(e, _ClusterError) else cluster._log_tail())
        cluster.close()
    else:
        return PostgresServer(
            uri=_make_uri("127.0.0.1", cluster.port, DEFAULT_USER, password, DEFAULT_DBNAME),
            host="127.0.0.1",
            port=cluster.port,
            user=DEFAULT_USER,
            password=password,
            dbname=DEFAULT_DBNAME,
            kind="cluster",
            _controller=cluster,
        )
    # The binaries are there but do not work: a real problem, not a missing prerequisite.
    pytest.fail(
        f"could not run a throwaway PostgreSQL cluster with {bindir}: {problem}", pytrace=False
    )


# --------------------------------------------------------------------------------------------
# The fixture


def _unavailable(reasons: Sequence[str]) -> str:
    lines = "\n".join(f"  - {r}" for r in reasons)
    return (
        "no PostgreSQL server for the tests marked `postgres`. Tried, in order:\n"
        f"  - {URI_ENV}: not set\n{lines}\n"
        f"Set {URI_ENV}=postgresql://user:password@host:port/db, or install PostgreSQL "
        "(scripts/ensure-postgres does)."
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session; see this module's docstring."""
    reasons: list[str] = []
    server = _try_external() or _try_container(reasons) or _try_cluster(reasons)
    if server is None:
        message = _unavailable(reasons)
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server._controller.close()
