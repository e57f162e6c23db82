"""Run a ``hyprstream`` server as a child process, as a user would, and stop it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServerProcess", "spawn_server"]

_LISTENING = re.compile(r"listening on grpc(?:\+tls)?://(?P<host>[^\s]+):(?P<port>\d+)")


@dataclass
class ServerProcess:
    """A running ``hyprstream`` process; ``log`` collects what it writes to stderr.

    Use it as a context manager to have it killed (if still running) on the way out.
    """

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    log: list[str] = field(default_factory=list)
    _drained: threading.Event = field(default_factory=threading.Event)

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig`` and wait; returns the exit code (kills after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drained.wait(10)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._drained.wait(10)

    def text(self) -> str:
        return "".join(self.log)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leaving a ``with spawn_server(...) as proc:`` block kills it if it still runs."""
        self.kill()


def spawn_server(
    args: Sequence[str] = (),
    *,
    data_dir: Path,
    port: int = 0,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start ``hyprstream --port <port> --data-dir <data_dir> <args>`` and wait until it serves."""
    command = [
        sys.executable,
        "-m",
        "hyprstream.cli",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *args,
    ]
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
    )
    log: list[str] = []
    found: dict[str, int] = {}
    ready = threading.Event()
    drained = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                log.append(line)
                match = _LISTENING.search(line)
                if match and not ready.is_set():
                    found["port"] = int(match["port"])
                    ready.set()
        ready.set()
        drained.set()

    threading.Thread(target=pump, name="hyprstream-stderr", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError(f"hyprstream did not start in {timeout} s:\n{''.join(log)}")
    if "port" not in found:
        process.wait(10)
        drained.wait(10)
        raise RuntimeError(
            f"hyprstream exited with {process.returncode} before serving:\n{''.join(log)}"
        )
    return ServerProcess(
        process=process, port=found["port"], data_dir=data_dir, log=log, _drained=drained
    )
