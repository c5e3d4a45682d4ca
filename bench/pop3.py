"""POP3 benchmark (issue 5 targets) against a real ``carteiro serve`` with a POP3
listener:

* ``LIST`` and ``UIDL`` of a 50,000-message maildrop: < 300 ms each (median of 3,
  timed from the command to the last byte of the reply);
* ``RETR`` of 1,000 messages of 50 KB in one session (pipelined, as PIPELINING allows):
  >= 50 MB/s.

    .venv/bin/python bench/pop3.py [--messages 50000] [--retr 1000]

Reuses the populated-data cache of bench/imap_core.py for the big maildrop; the RETR
account is filled in the run copy before the server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import socket
import time
from pathlib import Path

from common import PASSWORD, USER, ServerProcess, ensure_populated, fresh_copy, median, proc_cpu

RETR_USER = "retr@example.org"
BODY_SIZE = 50 * 1024


def fill_retr_account(data_dir: Path, count: int) -> None:
    from carteiro.auth.passwords import hash_password
    from carteiro.delivery import new_message
    from carteiro.store.sqlite import SqliteStore

    async def run() -> None:
        store = SqliteStore(data_dir / "carteiro.db")
        await store.open()
        try:
            account = await store.create_account(RETR_USER, hash_password(PASSWORD))
            inbox = await store.get_mailbox(account.id, "INBOX")
            assert inbox is not None
            when = datetime.datetime.now(datetime.UTC)
            line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
            body = line * (BODY_SIZE // len(line))
            for start in range(0, count, 100):
                batch = []
                for i in range(start, min(count, start + 100)):
                    raw = (
                        f"From: a@example.org\r\nTo: {RETR_USER}\r\nSubject: retr {i}\r\n"
                        f"Message-ID: <retr{i}@example.org>\r\n\r\n"
                    ).encode() + body
                    batch.append(await new_message(raw, frozenset(), when))
                await store.append(inbox.id, batch)
        finally:
            await store.close()

    asyncio.run(run())


class Pop:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        assert self.line().startswith(b"+OK")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(1 << 20)
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def login(self, user: str) -> None:
        self.sock.sendall(f"USER {user}\r\nPASS {PASSWORD}\r\n".encode())
        assert self.line().startswith(b"+OK")
        reply = self.line()
        assert reply.startswith(b"+OK"), reply

    def multiline(self, command: bytes, replies: int = 1) -> tuple[float, int]:
        """Sends ``command`` (possibly several, pipelined) and reads ``replies``
        multi-line answers; (seconds, octets)."""
        start = time.perf_counter()
        self.sock.sendall(command)
        seen, total, tail = 0, 0, self.buf
        self.buf = b""
        while True:
            seen += tail.count(b"\r\n.\r\n")
            total += len(tail)
            if seen >= replies:
                break
            keep = tail[-4:]
            data = self.sock.recv(1 << 22)
            if not data:
                raise EOFError
            tail = keep + data
            total -= len(keep)
        return time.perf_counter() - start, total

    def close(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.sock.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--retr", type=int, default=1000)
    args = ap.parse_args()
    pristine, _ = ensure_populated(args.messages)
    run = fresh_copy(pristine)
    print(
        f"filling {args.retr:,} messages of {BODY_SIZE // 1024} KB for {RETR_USER} ...", flush=True
    )
    fill_retr_account(run, args.retr)
    server = ServerProcess(run, pop3=True)
    rows: list[tuple[str, str, str, bool]] = []
    try:
        big = Pop(server.pop3_port)
        big.login(USER)
        for verb in (b"LIST", b"UIDL"):
            times = [big.multiline(verb + b"\r\n")[0] for _ in range(3)]
            ms = median(times) * 1000
            rows.append((f"{verb.decode()} of {args.messages:,} messages, median of 3",
                         f"{ms:.0f} ms", "< 300 ms", ms < 300))  # fmt: skip
        big.close()
        pop = Pop(server.pop3_port)
        pop.login(RETR_USER)
        cpu0 = proc_cpu(server.pid)
        commands = b"".join(b"RETR %d\r\n" % i for i in range(1, args.retr + 1))
        seconds, octets = pop.multiline(commands, args.retr)
        cpu = proc_cpu(server.pid) - cpu0
        rate = octets / seconds / 1e6
        value = (
            f"{rate:.0f} MB/s ({octets / 1e6:.1f} MB in {seconds:.2f} s, server CPU {cpu:.2f} s)"
        )
        label = f"RETR {args.retr:,} x {BODY_SIZE // 1024} KB, pipelined, one session"
        rows.append((label, value, ">= 50 MB/s", rate >= 50))
        pop.close()
    finally:
        server.stop()
    width = max(len(r[0]) for r in rows) + 2
    for name, value, target, passed in rows:
        print(f"{name:<{width}}{value:<60}{target:<14}{'PASS' if passed else 'FAIL'}")
    missed = sum(not r[3] for r in rows)
    print("RESULT:", "all targets met" if not missed else f"{missed} target(s) missed")
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
