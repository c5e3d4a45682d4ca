"""The real ``carteiro serve`` in a subprocess on an ephemeral 127.0.0.1 port.

The server is started with ``--imap 127.0.0.1:0`` (the kernel picks a free port, so
there is no race between choosing a port and binding it) and the port is read from the
``carteiro: listening on HOST:PORT (...)`` line it prints on stdout. Every wait is
bounded; only the process started here is ever signalled, by its PID.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LISTENING = re.compile(r"^carteiro: listening on (\S+):(\d+) \((.*)\)$")


def carteiro_command() -> list[str]:
    """``python -m carteiro`` when the package has a ``__main__``, else the console
    script installed next to the running interpreter."""
    if importlib.util.find_spec("carteiro.__main__") is not None:
        return [sys.executable, "-m", "carteiro"]
    script = Path(sys.executable).with_name("carteiro")
    if not script.exists():
        raise RuntimeError(f"no carteiro console script at {script}; pip install -e .")
    return [str(script)]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CARTEIRO_")}


def run_cli(
    *args: str | Path, stdin: bytes = b"", timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*carteiro_command(), *map(str, args)],
        input=stdin,
        capture_output=True,
        env=clean_env(),
        timeout=timeout,
        check=False,
    )


def add_user(data_dir: Path, address: str, password: str) -> None:
    r = run_cli(
        "user", "add", address, "--password-stdin", "--data-dir", data_dir,
        stdin=password.encode() + b"\n",
    )  # fmt: skip
    assert r.returncode == 0, r


class ServerProcess:
    """``carteiro serve --data-dir D --imap 127.0.0.1:0 --imaps off``.

    stdout is read by a thread (so the pipe never fills) into ``lines``; stderr (the
    log) goes to ``log_path``.
    """

    def __init__(self, data_dir: Path, log_path: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30) -> ServerProcess:
        args = [
            *carteiro_command(), "serve", "--data-dir", str(self.data_dir),
            "--imap", "127.0.0.1:0", "--imaps", "off",
            "--smtp", "off", "--submission", "off", "--submissions", "off", *self.extra,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=clean_env()
            )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        line = self.wait_line(LISTENING, timeout)
        match = LISTENING.match(line)
        assert match is not None and match.group(1) == "127.0.0.1", line
        self.port = int(match.group(2))
        return self

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._queue.put(raw.decode(errors="replace").rstrip("\r\n"))
        self._queue.put(None)

    def wait_line(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The next stdout line matching ``pattern`` (earlier lines are kept in
        ``lines``); fails if the process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"carteiro printed no {pattern.pattern!r}: {self.log()}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(10) if self.proc else None
                raise AssertionError(f"carteiro exited ({code}) before {pattern.pattern!r}: "
                                     f"{self.lines} {self.log()}")  # fmt: skip
            self.lines.append(line)
            if pattern.match(line):
                return line

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kill(self, timeout: float = 10) -> int:
        """SIGKILL, and reap."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout)
        self._close_stdout()
        return code

    def terminate(self, timeout: float = 10) -> int:
        """SIGTERM and wait (bounded) for the exit status; SIGKILL if it does not come."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"carteiro did not exit {timeout}s after SIGTERM") from None
        self._close_stdout()
        return code

    def stop(self) -> None:
        """Cleanup: end the process if it still runs (by PID), never raising."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:  # exited between poll() and kill()
                self.proc.wait(10)
        self._close_stdout()

    def _close_stdout(self) -> None:
        """After the process ended: the reader thread sees EOF; close the pipe."""
        if self._reader is not None:
            self._reader.join(5)
        while True:  # what it printed last (e.g. "carteiro: shutting down")
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        assert self.proc is not None
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
