"""Inbound SMTP delivery benchmark (issue 6 target): 10,000 messages of 10 KB from 20
concurrent SMTP clients on port 25 at >= 500 messages/s, each visible over IMAP within
1 s of its ``250`` reply.

    .venv/bin/python bench/smtp.py                  # full: 10,000 messages, 20 clients
    .venv/bin/python bench/smtp.py --quick          # smoke: 1,000 messages
    .venv/bin/python bench/smtp.py --messages N --clients N --size BYTES
    .venv/bin/python bench/smtp.py --no-mailauth    # without SPF/DKIM/DMARC checks
    .venv/bin/python bench/smtp.py --profile DIR    # py-spy raw profile of the server

A real ``carteiro serve --smtp 127.0.0.1:PORT --imap 127.0.0.1:PORT`` on a fresh data
dir; the account is made with ``carteiro user add``. Inbound checks (SPF, DKIM, DMARC)
are on as shipped, answered by a local authoritative DNS server (tests/dns_server.py,
its own process) that publishes SPF and DMARC for the senders' domain.

Three kinds of helper process, so none shares a GIL with another:

* loaders (``--procs``, default 1): asyncio over raw streams, each client one session
  sending its share as PIPELINING allows (MAIL, RCPT, DATA in one write, then the
  message); the monotonic time of every ``250`` after the data is recorded;
* a watcher: one IMAP session in IDLE on INBOX that records when each ``* n EXISTS``
  arrives, then maps message numbers to the ``X-Bench-Seq`` header of each message;
* the DNS server.

Visibility latency = EXISTS arrival − 250 arrival (CLOCK_MONOTONIC is shared by all
processes); it can be slightly negative, since the store commits before the reply.
Everything is on 127.0.0.1, every loop and wait is bounded, the server is stopped by
its PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    CARTEIRO,
    PYTHON,
    ROOT,
    Imap,
    Profiler,
    ServerProcess,
    client_cpu,
    free_port,
    percentile,
    proc_cpu,
    proc_status,
    sample_messages,
)

USER = "bench@example.org"
PASSWORD = "bench-password-0123"
SENDER_DOMAIN = "sender.test"
WORK = Path("/tmp/carteiro-bench-smtp")
HELPER_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
TARGET_RATE = 500.0
TARGET_LATENCY = 1.0
#: how long the watcher waits for the last messages once the loaders are done
WATCH_GRACE = 30.0


# --- the server ----------------------------------------------------------------------------
class SmtpServerProcess(ServerProcess):
    """:class:`ServerProcess` with the inbound SMTP listener on and this benchmark's
    config file (the base class turns SMTP off and writes its own config); stop(),
    cpu() and status() are the base class's."""

    def __init__(self, data_dir: Path, config: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.smtp_port = free_port()
        self.pop3_port = 0
        ServerProcess.started += 1
        self.log_path = data_dir.parent / f"server-{ServerProcess.started}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        config_path = data_dir.parent / "bench.toml"
        config_path.write_text(config)
        self.proc = subprocess.Popen(
            [
                CARTEIRO,
                "serve",
                "--config",
                str(config_path),
                "--data-dir",
                str(data_dir),
                "--imap",
                f"127.0.0.1:{self.port}",
                "--imaps",
                "off",
                "--smtp",
                f"127.0.0.1:{self.smtp_port}",
                "--submission",
                "off",
                "--submissions",
                "off",
                "--lmtp",
                "off",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=HELPER_ENV,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early, see {self.log_path}")
            if all(_accepts(p) for p in (self.port, self.smtp_port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start listening within 60 s")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


# --- messages ------------------------------------------------------------------------------
def text_pool() -> bytes:
    """Plain-text lines (CRLF) taken from the text/plain parts of the sample mbox: the
    bodies of the generated messages are slices of it."""
    lines: list[bytes] = []
    for raw in sample_messages():
        head, _, body = raw.partition(b"\r\n\r\n")
        if b"text/plain" not in head.lower() or b"multipart" in head.lower():
            continue
        for line in body.split(b"\r\n"):
            if line and line.isascii() and not line.startswith((b".", b"-", b">")):
                lines.append(line[:76])
    pool = b"\r\n".join(lines) + b"\r\n"
    return pool * (1 + 200_000 // len(pool))


def make_message(seq: int, client: int, size: int, pool: bytes) -> bytes:
    """A text/plain message of about ``size`` octets (headers included), unique per
    ``seq``; no line starts with a dot, so no dot-stuffing is needed."""
    head = (
        f"From: Sender {client} <s{client}@{SENDER_DOMAIN}>\r\n"
        f"To: Bench <{USER}>\r\n"
        f"Subject: [{seq}] inbound benchmark\r\n"
        f"Date: {email.utils.formatdate(localtime=True)}\r\n"
        f"Message-ID: <{seq}.{client}.bench@{SENDER_DOMAIN}>\r\n"
        f"X-Bench-Seq: {seq}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="us-ascii"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode()
    want = max(0, size - len(head))
    start = pool.find(b"\r\n", (seq * 7919) % (len(pool) // 2)) + 2
    body = pool[start : start + want]
    cut = body.rfind(b"\r\n")
    return head + (body[: cut + 2] if cut >= 0 else b"")


# --- loader process --------------------------------------------------------------------------
async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply (multi-line ones joined)."""
    out = b""
    for _ in range(100):
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed: " + out.decode(errors="replace"))
        out += line
        if line[3:4] != b"-":
            return out
    raise ConnectionError("reply of more than 100 lines")


async def _client(
    port: int,
    client: int,
    seqs: list[int],
    size: int,
    pool: bytes,
    go: asyncio.Event,
    ready: list[int],
    acks: list[tuple[int, float, float]],
    failures: list[tuple[int, str]],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        greeting = await _reply(reader)
        if not greeting.startswith(b"220"):
            raise ConnectionError(f"greeting {greeting!r}")
        writer.write(b"EHLO loader%d.%s\r\n" % (client, SENDER_DOMAIN.encode()))
        ehlo = await _reply(reader)
        if b"PIPELINING" not in ehlo:
            raise ConnectionError("no PIPELINING")
        ready.append(client)
        await go.wait()
        for seq in seqs:
            data = make_message(seq, client, size, pool)
            sent = time.monotonic()
            writer.write(
                b"MAIL FROM:<s%d@%s> SIZE=%d\r\nRCPT TO:<%s>\r\nDATA\r\n"
                % (client, SENDER_DOMAIN.encode(), len(data), USER.encode())
            )
            mail = await _reply(reader)
            rcpt = await _reply(reader)
            go_ahead = await _reply(reader)
            if not go_ahead.startswith(b"354"):
                failures.append((seq, (mail + rcpt + go_ahead).decode(errors="replace")))
                writer.write(b"RSET\r\n")
                await _reply(reader)
                continue
            writer.write(data + b".\r\n")
            done = await _reply(reader)
            if done.startswith(b"250"):
                acks.append((seq, sent, time.monotonic()))
            else:
                failures.append((seq, done.decode(errors="replace")))
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.close()
        await writer.wait_closed()


def _load_main(port: int, first: int, count: int, clients: int, messages: int, size: int) -> None:
    """Clients ``first``..``first+count-1`` of ``clients``; client c sends the
    messages whose number is c modulo ``clients``. Prints "ready", waits for "go" on
    stdin, prints a JSON result."""
    pool = text_pool()

    async def run() -> dict[str, Any]:
        go = asyncio.Event()
        ready: list[int] = []
        acks: list[tuple[int, float, float]] = []
        failures: list[tuple[int, str]] = []
        tasks = [
            asyncio.create_task(
                _client(
                    port,
                    c,
                    list(range(c, messages, clients)),
                    size,
                    pool,
                    go,
                    ready,
                    acks,
                    failures,
                )
            )
            for c in range(first, first + count)
        ]
        deadline = time.monotonic() + 60
        while len(ready) < count:
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        print("ready" if len(ready) == count else "failed", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        cpu0 = client_cpu()
        if line.strip() == "go":
            go.set()
        else:
            for t in tasks:
                t.cancel()
        errors = []
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                errors.append(repr(result))
        return {
            "acks": acks,
            "failures": failures,
            "errors": errors,
            "cpu": client_cpu() - cpu0,
        }

    print(json.dumps(asyncio.run(run())), flush=True)


# --- watcher process ---------------------------------------------------------------------
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r\n", re.M)
_SEQ = re.compile(rb"\* (\d+) FETCH .*?X-Bench-Seq: (\d+)", re.S | re.I)


def _watch_main(port: int, max_seconds: float) -> None:
    """IDLE on INBOX; prints "ready"; a line on stdin gives the number of messages to
    wait for; then prints a JSON result {seq: seen time}."""
    target: list[int] = []
    got_target = threading.Event()

    def read_target() -> None:
        line = sys.stdin.readline()
        target.append(int(line.strip() or 0))
        got_target.set()

    threading.Thread(target=read_target, daemon=True).start()
    imap = Imap(port)
    imap.login(USER, PASSWORD)
    selected = imap.ok(b"SELECT INBOX").data
    start = int(_EXISTS.search(selected)[1])  # type: ignore[index]
    imap.sock.sendall(b"I IDLE\r\n")
    if not imap.readline().startswith(b"+"):
        raise SystemExit("IDLE refused")
    print("ready", flush=True)
    cpu0 = client_cpu()
    seen_at: list[float] = []  # seen_at[i]: when message start+i+1 was announced
    deadline = time.monotonic() + max_seconds
    buf = imap.buf
    imap.buf = b""
    while time.monotonic() < deadline:
        if got_target.is_set():
            if len(seen_at) >= target[0]:
                break
            deadline = min(deadline, time.monotonic() + WATCH_GRACE)
        ready, _, _ = select.select([imap.sock], [], [], 0.2)
        if not ready:
            continue
        data = imap.sock.recv(1 << 16)
        now = time.monotonic()
        if not data:
            break
        buf += data
        cut = buf.rfind(b"\r\n") + 2
        if cut < 2:  # no complete line yet
            continue
        for m in _EXISTS.finditer(buf[:cut]):
            n = int(m[1]) - start
            while len(seen_at) < n:
                seen_at.append(now)
        buf = buf[cut:]
    imap.buf = buf
    imap.sock.sendall(b"DONE\r\n")
    imap._until_tagged(b"I", keep=False)
    seqs: dict[int, float] = {}
    if seen_at:
        r = imap.ok(
            b"FETCH %d:%d (BODY.PEEK[HEADER.FIELDS (X-Bench-Seq)])"
            % (start + 1, start + len(seen_at))
        )
        for m in _SEQ.finditer(r.data):
            i = int(m[1]) - start - 1
            if 0 <= i < len(seen_at):
                seqs[int(m[2])] = seen_at[i]
    cpu = client_cpu() - cpu0
    imap.close()
    print(json.dumps({"seen": seqs, "cpu": cpu}), flush=True)


# --- DNS process -------------------------------------------------------------------------
def _dns_main() -> None:
    from tests.dns_server import DnsServer

    records = {
        SENDER_DOMAIN: {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
        f"_dmarc.{SENDER_DOMAIN}": {"TXT": ["v=DMARC1; p=reject"]},
    }
    try:  # answers that a caching resolver may keep, as real zones have
        server = DnsServer(records, ttl=3600)
    except TypeError:  # a DnsServer without the ttl parameter answers with TTL 60
        server = DnsServer(records)
    with server as dns:
        print(dns.port, flush=True)
        for _ in range(1000):  # "count" lines until end of file
            if not sys.stdin.readline():
                break
            print(len(dns.queries), flush=True)


# --- the run -------------------------------------------------------------------------------
def _helper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=HELPER_ENV,
    )


def _first_line(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    if not line or line == "failed":
        raise RuntimeError(f"{what} did not start ({line!r})")
    return line


def _finish(proc: subprocess.Popen[str], send: str, timeout: float) -> dict[str, Any]:
    """Sends ``send`` (then end of file) and returns the helper's last output line, JSON."""
    out, _ = proc.communicate(send, timeout=timeout)
    return dict(json.loads(out.strip().splitlines()[-1]))


def _dns_queries(dns: subprocess.Popen[str]) -> int:
    """Queries the DNS helper has answered so far."""
    assert dns.stdin is not None
    dns.stdin.write("count\n")
    dns.stdin.flush()
    return int(_first_line(dns, "DNS query count", 10))


def _stop(proc: subprocess.Popen[str]) -> None:
    """Ends a helper this script started (by its own handle, i.e. its PID)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--size", type=int, default=10 * 1024, help="octets per message")
    ap.add_argument("--quick", action="store_true", help="1,000 messages")
    ap.add_argument("--procs", type=int, default=1, help="loader processes")
    ap.add_argument("--no-mailauth", action="store_true", help="[inbound] check = false")
    ap.add_argument("--timeout", type=float, default=600, help="give up after this many seconds")
    ap.add_argument("--profile", type=Path, help="py-spy raw profile of the server here")
    args = ap.parse_args()
    messages = 1000 if args.quick else args.messages
    clients = max(1, args.clients)
    procs = max(1, min(args.procs, clients))

    run_dir = WORK / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    subprocess.run(
        [CARTEIRO, "user", "add", USER, "--password-stdin", "--data-dir", str(run_dir)],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=120,
        env=HELPER_ENV,
    )  # fmt: skip

    helpers: list[subprocess.Popen[str]] = []
    server: SmtpServerProcess | None = None
    dns: subprocess.Popen[str] | None = None
    dns_cpu = 0.0
    try:
        config = "max_connections_per_account = 0\n"
        if args.no_mailauth:
            config += "\n[inbound]\ncheck = false\n"
        else:
            dns = _helper("_dns")
            helpers.append(dns)
            dns_port = int(_first_line(dns, "DNS server"))
            config = f'dns_servers = ["127.0.0.1:{dns_port}"]\n' + config
        server = SmtpServerProcess(run_dir, config)
        profiler = Profiler(args.profile, server.pid)

        watcher = _helper("_watch", str(server.port), str(args.timeout))
        helpers.append(watcher)
        _first_line(watcher, "IMAP watcher")
        loaders = []
        per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
        first = 0
        for count in per:
            loaders.append(
                _helper(
                    "_load",
                    str(server.smtp_port),
                    str(first),
                    str(count),
                    str(clients),
                    str(messages),
                    str(args.size),
                )
            )
            helpers.append(loaders[-1])
            first += count
        for loader in loaders:
            _first_line(loader, "loader")

        profiler.start("smtp")
        load0 = os.getloadavg()[0]
        cpu0 = server.cpu()
        dns_cpu = proc_cpu(dns.pid) if dns is not None else 0.0
        dns_queries0 = _dns_queries(dns) if dns is not None else 0
        for loader in loaders:
            assert loader.stdin is not None
            loader.stdin.write("go\n")
            loader.stdin.flush()
        results = [_finish(loader, "", args.timeout) for loader in loaders]
        acks = [tuple(a) for r in results for a in r["acks"]]
        failures = [tuple(f) for r in results for f in r["failures"]]
        errors = [e for r in results for e in r["errors"]]
        server_cpu = server.cpu() - cpu0
        dns_cpu = proc_cpu(dns.pid) - dns_cpu if dns is not None else 0.0
        dns_queries = _dns_queries(dns) - dns_queries0 if dns is not None else 0
        load1 = os.getloadavg()[0]
        seen = _finish(watcher, f"{len(acks)}\n", WATCH_GRACE + 30)
        profiler.stop()
        status = proc_status(server.pid)
    finally:
        for helper in helpers:
            _stop(helper)
        if server is not None:
            server.stop()

    seen_at = {int(k): v for k, v in seen["seen"].items()}
    t_first = min((a[1] for a in acks), default=0.0)
    t_last = max((a[2] for a in acks), default=0.0)
    wall = t_last - t_first
    latencies = [seen_at[a[0]] - a[2] for a in acks if a[0] in seen_at]
    unseen = [a[0] for a in acks if a[0] not in seen_at]
    round_trips = [a[2] - a[1] for a in acks]
    rate = len(acks) / wall if wall > 0 else 0.0
    unsent = messages - len(acks) - len(failures)
    bad = messages - len(acks) + len(unseen)
    loader_cpu = sum(r["cpu"] for r in results)

    def ms(x: float) -> str:
        return f"{x * 1000:,.1f} ms"

    def spread(values: list[float]) -> str:
        p50, p99 = percentile(values, 50), percentile(values, 99)
        return f"p50 {ms(p50)}  p99 {ms(p99)}  max {ms(max(values, default=0.0))}"

    def core(cpu: float) -> str:
        return f"{cpu / wall * 100 if wall else 0:.0f} % of one core"

    auth = "off" if args.no_mailauth else "on"
    rows = [
        f"inbound SMTP: {messages:,} messages of ~{args.size:,} B, {clients} clients, "
        f"{procs} loader process(es), mail auth {auth}",
        f"  accepted            {len(acks):,} in {wall:.2f} s",
        f"  throughput          {rate:,.0f} messages/s ({rate * args.size / 1e6:.1f} MB/s)",
        f"  server CPU          {server_cpu:.2f} s "
        f"({server_cpu / max(len(acks), 1) * 1e3:.2f} ms/message, {core(server_cpu)})",
        f"  server RSS          {status['VmRSS'] / 1024:.0f} MB "
        f"(peak {status['VmHWM'] / 1024:.0f} MB)",
        f"  loader CPU          {loader_cpu:.2f} s ({core(loader_cpu)}); "
        f"watcher CPU {seen['cpu']:.2f} s",
    ]
    if not args.no_mailauth:
        rows.append(
            f"  DNS server          {dns_queries:,} queries "
            f"({dns_queries / max(len(acks), 1):.1f} per message), {dns_cpu:.2f} s CPU"
        )
    rows += [
        f"  load average        {load0:.1f} before, {load1:.1f} after, on {os.cpu_count()} cores",
        f"  SMTP round trip     {spread(round_trips)} (MAIL to the 250 after the data)",
        f"  visible over IMAP   {spread(latencies)} (EXISTS minus 250)",
        f"  failures            {bad} (refused {len(failures)}, not sent {unsent} "
        f"[{len(errors)} session errors], never seen over IMAP {len(unseen)})",
    ]
    rows += [f"    #{seq}: {reply.strip()[:200]}" for seq, reply in failures[:5]]
    rows += [f"    {error[:200]}" for error in errors[:5]]
    ok_rate = rate >= TARGET_RATE
    ok_latency = bool(latencies) and max(latencies) <= TARGET_LATENCY and not unseen
    rows += [
        "",
        f"  {'PASS' if ok_rate else 'FAIL'}  >= {TARGET_RATE:.0f} messages/s",
        f"  {'PASS' if ok_latency else 'FAIL'}  every message visible within "
        f"{TARGET_LATENCY:.0f} s",
        f"  {'PASS' if bad == 0 else 'FAIL'}  no failures",
    ]
    print("\n" + "\n".join(rows))
    if args.profile:
        print(f"  profile: {args.profile / 'smtp.txt'}")
    return 0 if ok_rate and ok_latency and bad == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        _load_main(*(int(a) for a in sys.argv[2:8]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_watch":
        _watch_main(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_dns":
        _dns_main()
    else:
        sys.exit(main())
