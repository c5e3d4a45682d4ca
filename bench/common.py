"""Shared pieces of the IMAP benchmarks: a lean raw-socket client, the server as a real
subprocess, the populated-data cache, a NOOP latency probe, /proc readings.

Also runnable on its own, for the helper processes the benchmark starts:

    python bench/common.py populate DIR N     # fill DIR with N messages (store API)
    python bench/common.py probe PORT USER PW MAX_SECONDS INTERVAL_MS

Everything talks to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import mailbox
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
CARTEIRO = str(VENV_BIN / "carteiro")
SAMPLE_MBOX = ROOT / "tests" / "data" / "sample-100.mbox"

USER = "bench@example.org"
PASSWORD = "bench-password-0123"
IDLE_MAILBOX = "Idle"
#: bump when the populated content changes, so stale caches are rebuilt
POPULATE_VERSION = 2
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- numbers -------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def raise_fd_limit(want: int = 8192) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, want)) if hard != resource.RLIM_INFINITY else max(soft, want)
    if new != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never one this process was given before: the kernel may
    hand the same ephemeral port out twice in a row once the probe socket is closed."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def client_cpu() -> float:
    """CPU seconds (user+system) of this process, all threads."""
    t = os.times()
    return t.user + t.system


# --- /proc -----------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads of ``pid`` (kB for the Vm* fields)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu(pid: int) -> float:
    """CPU seconds (utime+stime, every thread) of ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- messages ----------------------------------------------------------------------------
def sample_messages() -> list[bytes]:
    """The 100 sample messages, CRLF line ends."""
    box = mailbox.mbox(str(SAMPLE_MBOX), create=False)
    try:
        raw = [box.get_bytes(k) for k in box.keys()]
    finally:
        box.close()
    return [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in raw]


_MSGID = re.compile(rb"^Message-ID: <", re.I | re.M)


def variant(samples: Sequence[bytes], seq: int, tag: str = "p") -> bytes:
    """Copy ``seq`` of a sample, made unique (distinct content, Message-ID, Subject)."""
    base = samples[seq % len(samples)]
    m = _MSGID.sub(b"Message-ID: <%s%d." % (tag.encode(), seq), base, count=1)
    m = m.replace(b"\r\nSubject: ", b"\r\nSubject: [%d] " % seq, 1)
    return b"X-Bench-Seq: %s-%d\r\n" % (tag.encode(), seq) + m


# --- populated data, cached ----------------------------------------------------------------
def cache_root(messages: int) -> Path:
    return Path(f"/tmp/carteiro-bench-{messages}")


def ensure_populated(messages: int, log: callable = print) -> tuple[Path, float | None]:  # type: ignore[valid-type]
    """A pristine data dir holding ``messages`` in INBOX (built once, then reused).
    Returns (pristine dir, seconds spent populating or None when cached)."""
    root = cache_root(messages)
    pristine = root / "pristine"
    stamp = pristine / "READY"
    if stamp.exists() and stamp.read_text().strip() == f"v{POPULATE_VERSION} n={messages}":
        return pristine, None
    if pristine.exists():
        shutil.rmtree(pristine)
    pristine.mkdir(parents=True)
    log(f"populating {messages:,} messages into {pristine} (cached for later runs) ...")
    t0 = time.perf_counter()
    subprocess.run(
        [CARTEIRO, "user", "add", USER, "--password-stdin", "--data-dir", str(pristine)],
        input=PASSWORD + "\n",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [PYTHON, __file__, "populate", str(pristine), str(messages)],
        check=True,
        timeout=3600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    elapsed = time.perf_counter() - t0
    stamp.write_text(f"v{POPULATE_VERSION} n={messages}\n")
    return pristine, elapsed


def fresh_copy(pristine: Path) -> Path:
    """A throw-away copy of the pristine dir for one run (runs modify the data)."""
    run = pristine.parent / "run"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(pristine, run)
    (run / "READY").unlink(missing_ok=True)
    return run


POPULATE_START = datetime.datetime(2022, 1, 1, tzinfo=datetime.UTC)


def populated_flags(i: int, count: int) -> frozenset[str]:
    """Flags of message ``i`` of ``count`` in the populated INBOX: the newest 3 % unread,
    some answered, flagged or with a keyword."""
    f = set()
    if i < count * 0.97:
        f.add("\\Seen")
    if i % 17 == 0:
        f.add("\\Answered")
    if i % 50 == 0:
        f.add("\\Flagged")
    if i % 400 == 0:
        f.add("$Label1")
    return frozenset(f)


def populated_date(i: int, count: int) -> datetime.datetime:
    """Internal date of message ``i``: spread over three years."""
    step = datetime.timedelta(seconds=max(1, (3 * 365 * 86400) // max(count, 1)))
    return POPULATE_START + i * step


def populated_inbox(
    samples: Sequence[bytes], count: int
) -> Iterator[tuple[bytes, frozenset[str], datetime.datetime]]:
    """The populated INBOX, message by message (the same for every server under test)."""
    for i in range(count):
        yield variant(samples, i), populated_flags(i, count), populated_date(i, count)


def populated_idle(samples: Sequence[bytes]) -> list[bytes]:
    """The small mailbox ``Idle`` (20 messages, all \\Seen, dated POPULATE_START)."""
    return [variant(samples, i, "i") for i in range(20)]


def _populate_main(data_dir: str, count: int) -> None:
    from carteiro.message.meta import analyse
    from carteiro.store.interface import NewMessage
    from carteiro.store.sqlite import SqliteStore

    samples = sample_messages()
    start = POPULATE_START
    batch_size = 500

    async def run() -> None:
        store = SqliteStore(Path(data_dir) / "carteiro.db")
        await store.open()
        try:
            account = await store.get_account(USER)
            assert account is not None
            inbox = await store.get_mailbox(account.id, "INBOX")
            assert inbox is not None
            idle = await store.create_mailbox(account.id, IDLE_MAILBOX)
            small = populated_idle(samples)
            await store.append(
                idle.id,
                [NewMessage(m, analyse(m).to_bytes(), frozenset({"\\Seen"}), start) for m in small],
            )
            t0 = time.perf_counter()
            done = 0
            batch: list[NewMessage] = []
            for data, flags, date in populated_inbox(samples, count):
                batch.append(NewMessage(data, analyse(data).to_bytes(), flags, date))
                if len(batch) < batch_size and done + len(batch) < count:
                    continue
                await store.append(inbox.id, batch)
                done += len(batch)
                batch = []
                if done % 20000 == 0 or done == count:
                    rate = done / (time.perf_counter() - t0)
                    print(f"  populated {done:,}/{count:,} ({rate:,.0f} msg/s)", flush=True)
        finally:
            await store.close()

    asyncio.run(run())


# --- the server as a subprocess ----------------------------------------------------------
class ServerProcess:
    """``carteiro serve`` on 127.0.0.1:PORT (no TLS listener), output to a log file."""

    started = 0

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        *,
        pop3: bool = False,
        imaps: bool = False,
        lmtp: bool = False,
        config_extra: str = "",
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.pop3_port = free_port() if pop3 else 0
        self.imaps_port = free_port() if imaps else 0
        self.lmtp_port = free_port() if lmtp else 0
        extra = ["--pop3", f"127.0.0.1:{self.pop3_port}"] if pop3 else []
        extra += ["--imaps", f"127.0.0.1:{self.imaps_port}" if imaps else "off"]
        if lmtp:
            extra += ["--lmtp", f"127.0.0.1:{self.lmtp_port}"]
        ServerProcess.started += 1
        self.log_path = data_dir.parent / f"server-{ServerProcess.started}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        # one account opens a thousand sessions here: lift the per-account connection
        # limit (50 by default); everything else is the shipped configuration
        config = data_dir.parent / "bench.toml"
        config.write_text("max_connections_per_account = 0\n" + config_extra)
        self.proc = subprocess.Popen(
            [
                CARTEIRO,
                "serve",
                "--config",
                str(config),
                "--data-dir",
                str(data_dir),
                "--imap",
                f"127.0.0.1:{self.port}",
                "--smtp",
                "off",
                "--submission",
                "off",
                "--submissions",
                "off",
                *extra,
            ],  # fmt: skip
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early, see {self.log_path}")
            if f"127.0.0.1:{self.port}".encode() in self.log_path.read_bytes()[-20000:]:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start listening within 60 s")

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def rss_mb(self) -> float:
        return self.status()["VmRSS"] / 1024

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # this PID only: the server we started
                self.proc.wait(10)
        self._log.close()


class Profiler:
    """Optional py-spy recording of the server during one phase (``--profile DIR``)."""

    def __init__(self, out_dir: Path | None, pid: int) -> None:
        self.out_dir = out_dir
        self.pid = pid
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, name: str) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spy = str(VENV_BIN / "py-spy") if (VENV_BIN / "py-spy").exists() else "py-spy"
        self.proc = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(self.pid),
                "-r",
                "200",
                "-f",
                "raw",
                "--nonblocking",
                "-o",
                str(self.out_dir / f"{name}.txt"),
                "-d",
                "600",
                *os.environ.get("BENCH_PYSPY_ARGS", "").split(),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # let it attach

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


# --- a lean blocking client ----------------------------------------------------------------
class ImapError(Exception):
    pass


@dataclass
class Reply:
    data: bytes  # everything up to and including the tagged line (when kept)
    status: bytes  # the tagged line
    nbytes: int
    seconds: float


class Imap:
    """Raw-socket IMAP client: sends a command, reads until its tagged reply. Bulk replies
    are read in 1 MiB recv() calls and only the tail is inspected, so the client costs
    little CPU next to the server."""

    def __init__(self, port: int, timeout: float = 300) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self.greeting = self.readline()
        self.caps = self.greeting

    def next_tag(self) -> bytes:
        self.n += 1
        return b"C%05d" % self.n

    def readline(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ImapError("connection closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _until_tagged(self, tag: bytes, keep: bool) -> tuple[bytes, bytes, int]:
        chunks: list[bytes] = []
        total = 0
        tail = b"\r\n"
        want = tag + b" "
        data = self.buf
        self.buf = b""
        recv = self.sock.recv
        while True:
            if data:
                total += len(data)
                if keep:
                    chunks.append(data)
                tail = (tail + data[-4096:])[-4096:]
                if tail.endswith(b"\r\n"):
                    i = tail.rfind(b"\r\n", 0, len(tail) - 2)
                    if i >= 0 and tail.startswith(want, i + 2):
                        return b"".join(chunks), tail[i + 2 :], total
            data = recv(1 << 20)
            if not data:
                raise ImapError("connection closed while waiting for " + tag.decode())

    def command(self, line: bytes, *, keep: bool = True, literal: bytes | None = None) -> Reply:
        """``line`` without tag; with ``literal`` it ends in ``{n+}`` (LITERAL+)."""
        tag = self.next_tag()
        out = tag + b" " + line
        if literal is not None:
            out += b" {%d+}\r\n" % len(literal) + literal
        t0 = time.perf_counter()
        self.sock.sendall(out + b"\r\n")
        data, status, nbytes = self._until_tagged(tag, keep)
        elapsed = time.perf_counter() - t0
        return Reply(data, status, nbytes, elapsed)

    def ok(self, line: bytes, **kw: object) -> Reply:
        r = self.command(line, **kw)  # type: ignore[arg-type]
        if not r.status.split(b" ", 2)[1:2] == [b"OK"]:
            raise ImapError(f"{line[:60]!r}: {r.status!r}")
        return r

    def login(self, user: str = USER, password: str = PASSWORD) -> None:
        r = self.ok(b'LOGIN "%s" "%s"' % (user.encode(), password.encode()))
        self.caps = r.status

    def close(self) -> None:
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def uid_set(uids: Sequence[int]) -> bytes:
    """Compact IMAP set for sorted UIDs (runs become a:b)."""
    parts: list[bytes] = []
    it: Iterator[int] = iter(uids)
    try:
        start = prev = next(it)
    except StopIteration:
        return b""
    for u in it:
        if u == prev + 1:
            prev = u
            continue
        parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
        start = prev = u
    parts.append(b"%d" % start if start == prev else b"%d:%d" % (start, prev))
    return b",".join(parts)


# --- the NOOP probe (its own process, so it never shares a GIL with the load client) -----
class Probe:
    """A separate process holding one logged-in session that sends NOOP every
    ``interval_ms`` and records (monotonic send time, round trip seconds)."""

    def __init__(self, port: int, max_seconds: float, interval_ms: float = 10) -> None:
        self.proc = subprocess.Popen(
            [
                PYTHON,
                __file__,
                "probe",
                str(port),
                USER,
                PASSWORD,
                str(max_seconds),
                str(interval_ms),
            ],  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"probe failed to start: {line!r}")
        self.samples: list[tuple[float, float]] = []
        self.cpu = 0.0

    def finish(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        out = self.proc.stdout.read()
        self.proc.wait(30)
        result = json.loads(out)
        self.samples = [tuple(s) for s in result["samples"]]  # type: ignore[misc]
        self.cpu = result["cpu"]

    def window(self, t0: float, t1: float) -> list[float]:
        """Round trips (ms) of NOOPs sent in [t0, t1] or still outstanding at t0."""
        return [rtt * 1000 for (ts, rtt) in self.samples if t0 <= ts + rtt and ts <= t1]


def _probe_main(
    port: int, user: str, password: str, max_seconds: float, interval_ms: float
) -> None:
    import threading

    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    c = Imap(port)
    c.login(user, password)
    print("ready", flush=True)
    samples: list[tuple[float, float]] = []
    interval = interval_ms / 1000
    deadline = time.monotonic() + max_seconds
    max_count = int(max_seconds / interval) + 10
    nxt = time.monotonic()
    while not stop.is_set() and time.monotonic() < deadline and len(samples) < max_count:
        ts = time.monotonic()
        r = c.command(b"NOOP", keep=False)
        samples.append((ts, r.seconds))
        nxt += interval
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()
    c.close()
    print(json.dumps({"samples": samples, "cpu": client_cpu()}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "populate":
        _populate_main(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "probe":
        _probe_main(
            int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
        )
    else:
        raise SystemExit(f"unknown helper {sys.argv[1]!r}")
