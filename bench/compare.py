"""Carteiro and Dovecot side by side, same machine, same run, same users, same mail.

    .venv/bin/python bench/compare.py                 # every workload (about 20 minutes)
    .venv/bin/python bench/compare.py --quick         # a smoke run (about 4 minutes)
    .venv/bin/python bench/compare.py --only mixed,bigmailbox

Workloads (see bench/README.md): ``mixed`` (the mixed IMAP workload at 10, 50 and 200
clients, with credential caches, and at 10 clients without), ``bigmailbox`` (SELECT,
FETCH 1:* (FLAGS), UID FETCH ENVELOPE+BODYSTRUCTURE of 10,000, SEARCH UNSEEN, SEARCH TEXT
on 100,000 messages), ``idle`` (memory and CPU of 1,000 and 10,000 sessions in IDLE),
``append`` (APPEND alone at 10 clients), ``delivery`` (10,000 messages over LMTP until all
are visible over IMAP), ``tls`` (handshakes per second on the implicit-TLS port) and
``qresync`` (reconnect after 100 changes). Results go to ``bench/results/<timestamp>.md``
and ``.json`` (not committed).

Both servers are started here, on free ports of 127.0.0.1, and stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import workloads  # noqa: E402
from common import (  # noqa: E402
    PASSWORD,
    PYTHON,
    ROOT,
    USER,
    ServerProcess,
    ensure_populated,
    median,
    populated_date,
    populated_flags,
    populated_idle,
    populated_inbox,
    proc_cpu,
    raise_fd_limit,
    sample_messages,
    variant,
)

WORK = Path("/tmp/carteiro-compare")
RESULTS = ROOT / "bench" / "results"
LOAD_USERS = 50
LOAD_USER_FMT = "load{n}@example.org"
LOAD_MESSAGES = 100  # preloaded into each load user's INBOX
COMPARE_VERSION = 4  # bump when the preloaded content changes


def load_users() -> list[str]:
    return [LOAD_USER_FMT.format(n=n) for n in range(LOAD_USERS)]


def load_inbox(samples: list[bytes]) -> Iterator[tuple[bytes, frozenset[str], datetime.datetime]]:
    for i in range(LOAD_MESSAGES):
        yield (
            variant(samples, i, "L"),
            populated_flags(i, LOAD_MESSAGES),
            populated_date(i, LOAD_MESSAGES),
        )


#: argon2id costs the suite runs with: what Carteiro ships, and a light one under which
#: the protocol work (not the password hash) decides the mixed workload
HASHES = {
    "shipped": {"time_cost": 3, "memory_kib": 65536, "parallelism": 4},
    "light": {"time_cost": 1, "memory_kib": 8192, "parallelism": 1},
}


def password_hash(kind: str = "shipped") -> str:
    """One argon2id hash made by Carteiro's own hasher with the ``kind`` cost, used
    verbatim by both servers: same scheme, same cost, same salt."""
    cached = WORK / f"password-hash-{kind}"
    if cached.exists():
        return cached.read_text().strip()
    cost = HASHES[kind]
    out = subprocess.run(
        [PYTHON, "-c", "import sys; from carteiro.auth import passwords as p;"
         " p.configure(*map(int, sys.argv[2:])); print(p.hash_password(sys.argv[1]))",
         PASSWORD, str(cost["time_cost"]), str(cost["memory_kib"]), str(cost["parallelism"])],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    WORK.mkdir(parents=True, exist_ok=True)
    cached.write_text(out + "\n")
    return out


# --- the two servers -----------------------------------------------------------------
class Target(Protocol):
    name: str
    imap_port: int
    imaps_port: int
    lmtp_port: int
    pid: int

    def cpu(self) -> float: ...
    def pss_kib(self) -> int: ...
    def settings(self) -> dict[str, str]: ...
    def stop(self) -> None: ...


def tree_pss_kib(pid: int) -> int:
    from dovecot import tree_pss_kib as f

    return int(f(pid))


def _carteiro_pristine(messages: int, log: Callable[[str], None]) -> Path:
    """The big-mailbox data dir (common.ensure_populated) plus the load users."""
    big, _ = ensure_populated(messages, log)
    pristine = WORK / f"carteiro-{messages}"
    stamp = pristine / "READY"
    want = f"v{COMPARE_VERSION} n={messages}"
    if stamp.exists() and stamp.read_text().strip() == want:
        return pristine
    if pristine.exists():
        shutil.rmtree(pristine)
    log(f"preparing Carteiro data in {pristine} ...")
    shutil.copytree(big, pristine)
    subprocess.run(
        [PYTHON, __file__, "populate-carteiro", str(pristine), password_hash()],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        timeout=1800,
    )
    _settle_index(pristine, log)
    stamp.write_text(want + "\n")
    return pristine


def _settle_index(data_dir: Path, log: Callable[[str], None]) -> None:
    """Runs the server once on the data until its background full-text indexing is done,
    so that no run measures the catch-up of mail stored through the store API."""
    try:
        from carteiro.store.sqlite.fulltext import backlog_at
    except ImportError:  # a build without the index
        return
    db = data_dir / "carteiro.db"
    server = ServerProcess(data_dir)
    try:
        t0 = time.monotonic()
        first = backlog_at(db)
        deadline = t0 + 3600
        while backlog_at(db) > 0 and time.monotonic() < deadline:
            time.sleep(1.0)
        log(f"  full-text index: {first:,} messages indexed in {time.monotonic() - t0:.0f} s")
    finally:
        server.stop()


def _set_hash_main(data_dir: str, hashed: str) -> None:
    """Gives every account of a Carteiro data dir the same stored hash."""
    from carteiro.store.sqlite import SqliteStore

    async def run() -> None:
        store = SqliteStore(Path(data_dir) / "carteiro.db")
        await store.open()
        try:
            for account in await store.list_accounts():
                await store.set_password(account.address, hashed)
        finally:
            await store.close()

    asyncio.run(run())


def _populate_carteiro_main(data_dir: str, hashed: str) -> None:
    from carteiro.message.meta import analyse
    from carteiro.store.interface import NewMessage
    from carteiro.store.sqlite import SqliteStore

    samples = sample_messages()

    async def run() -> None:
        store = SqliteStore(Path(data_dir) / "carteiro.db")
        await store.open()
        try:
            for user in load_users():
                account = await store.create_account(user, hashed)
                inbox = await store.get_mailbox(account.id, "INBOX")
                assert inbox is not None
                await store.append(
                    inbox.id,
                    [
                        NewMessage(m, analyse(m).to_bytes(), flags, date)
                        for m, flags, date in load_inbox(samples)
                    ],
                )
        finally:
            await store.close()

    asyncio.run(run())


class CarteiroTarget:
    name = "Carteiro"

    def __init__(
        self,
        pristine: Path,
        *,
        cache: bool,
        max_sessions: int,
        hash_kind: str = "shipped",
        run_name: str = "carteiro-run",
    ) -> None:
        run = WORK / run_name
        if run.exists():
            shutil.rmtree(run)
        shutil.copytree(pristine, run)
        (run / "READY").unlink(missing_ok=True)
        cost = HASHES[hash_kind]
        subprocess.run(
            [PYTHON, __file__, "set-hash", str(run), password_hash(hash_kind)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            timeout=300,
        )
        self._settings = {
            "store": "SQLite (embedded default), data on the same disk as Dovecot's",
            "password hash": "argon2id t={time_cost} m={memory_kib}KiB p={parallelism}".format(
                **cost
            )
            + " (the same hash string as Dovecot's)",
            "max_connections_per_account": "0 (unlimited; default 50)",
            "auth_cache_ttl": "default (300 s)" if cache else "0 (cache off)",
            "[alerts] mail_owner": "false (the workload expunges a message per loop: the"
            " mass-deletion alert would put a notice in the INBOX, which the load generator"
            " rightly reports as a message it did not append; detectors still run)",
        }
        extra = "" if cache else "auth_cache_ttl = 0\n"
        # new hashes (none are made here) and rehash-on-login use the same cost
        extra += "".join(f"argon2_{k} = {v}\n" for k, v in cost.items())
        extra += "[alerts]\nmail_owner = false\n"  # a table: must come last
        self.server = ServerProcess(run, imaps=True, lmtp=True, config_extra=extra)
        self.imap_port = self.server.port
        self.imaps_port = self.server.imaps_port
        self.lmtp_port = self.server.lmtp_port
        self.pid = self.server.pid
        self.data_dir = run

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def pss_kib(self) -> int:
        return tree_pss_kib(self.pid)

    def settings(self) -> dict[str, str]:
        return self._settings

    def cert(self) -> tuple[Path, Path]:
        return self.data_dir / "tls" / "cert.pem", self.data_dir / "tls" / "key.pem"

    def stop(self) -> None:
        self.server.stop()


def _dovecot_pristine(messages: int, log: Callable[[str], None]) -> Path:
    """Dovecot's users and maildirs, with the same mail as Carteiro's."""
    from dovecot import write_maildir

    root = WORK / f"dovecot-{messages}"
    stamp = root / "READY"
    want = f"v{COMPARE_VERSION} n={messages}"
    if stamp.exists() and stamp.read_text().strip() == want:
        return root
    if root.exists():
        shutil.rmtree(root)
    log(f"preparing Dovecot maildirs in {root} ...")
    samples = sample_messages()
    t0 = time.perf_counter()

    def ts(items: Iterator[tuple[bytes, frozenset[str], datetime.datetime]]) -> Any:
        return ((m, f, d.timestamp()) for m, f, d in items)

    home = root / "home"
    write_maildir(home / USER / "Maildir", ts(populated_inbox(samples, messages)))
    start = populated_date(0, 1).timestamp()
    write_maildir(
        home / USER / "Maildir",
        ((m, frozenset({"\\Seen"}), start) for m in populated_idle(samples)),
        folder="Idle",
    )
    for user in load_users():
        write_maildir(home / user / "Maildir", ts(load_inbox(samples)))
    log(f"  maildirs written in {time.perf_counter() - t0:.0f} s")
    stamp.write_text(want + "\n")
    return root


class DovecotTarget:
    name = "Dovecot"

    def __init__(
        self,
        pristine: Path,
        *,
        cache: bool,
        max_sessions: int,
        cert: tuple[Path, Path],
        hash_kind: str = "shipped",
    ) -> None:
        from dovecot import Dovecot, DovecotUser

        run = WORK / "dovecot-run"
        if run.exists():
            shutil.rmtree(run)
        run.mkdir(parents=True)
        hashed = password_hash(hash_kind)
        users = [DovecotUser(u, hashed) for u in [USER, *load_users()]]
        self.dc = Dovecot(
            run,
            users,
            auth_cache=cache,
            tls_cert=cert[0],
            tls_key=cert[1],
            max_sessions=max_sessions,
            lmtp=True,
        )
        for user in [USER, *load_users()]:
            dest = self.dc.maildir(user)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            subprocess.run(
                ["cp", "-a", str(pristine / "home" / user / "Maildir"), str(dest)], check=True
            )
        self.dc.start()
        self.imap_port = self.dc.imap_port
        self.imaps_port = self.dc.imaps_port
        self.lmtp_port = self.dc.lmtp_port
        self.pid = self.dc.pid

    def cpu(self) -> float:
        return float(self.dc.cpu())

    def pss_kib(self) -> int:
        return int(self.dc.pss_kib())

    def settings(self) -> dict[str, str]:
        return dict(self.dc.settings())

    def stop(self) -> None:
        self.dc.stop()


# --- results -------------------------------------------------------------------------
@dataclass
class Results:
    started: str
    quick: bool
    machine: dict[str, Any]
    settings: dict[str, dict[str, str]] = field(default_factory=dict)
    workloads: dict[str, Any] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)

    def table(self, title: str, header: list[str], rows: list[list[str]], notes: str = "") -> None:
        out = [f"### {title}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + "|".join("---" for _ in header) + "|")
        out += ["| " + " | ".join(r) + " |" for r in rows]
        if notes:
            out += ["", notes]
        text = "\n".join(out) + "\n"
        self.tables.append(text)
        print("\n" + text, flush=True)


def ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}x"


# --- workload 1: the mixed workload ---------------------------------------------------
def run_mixed_on(
    target: Target, clients: int, duration: float, rate: float | None = None
) -> dict[str, Any]:
    cpu0 = target.cpu()
    marks: dict[str, float] = {}

    def on_start(start: float, end: float) -> None:
        marks["cpu0"] = target.cpu()

    s = loadgen.run_mixed(
        target.imap_port,
        load_users(),
        PASSWORD,
        clients=clients,
        duration=duration,
        procs=2,
        on_start=on_start,
        rate=rate,
    )
    s["server_cpu_s"] = target.cpu() - marks.get("cpu0", cpu0)
    s["server_cpu_ms_per_command"] = 1000 * s["server_cpu_s"] / max(1, s["commands"])
    s["server_pss_mib"] = target.pss_kib() / 1024
    print(f"  {target.name}: " + loadgen.format_summary(s).replace("\n", "\n  "), flush=True)
    return s


def mixed_rows(res: Results, label: str, c: dict[str, Any], d: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            f"{label}: commands/s",
            f"{c['commands_per_s']:,.0f}",
            f"{d['commands_per_s']:,.0f}",
            ratio(c["commands_per_s"], d["commands_per_s"]),
        ],
        [
            f"{label}: p50 / p99 latency (ms)",
            f"{c['p50_ms']:.2f} / {c['p99_ms']:.2f}",
            f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}",
            ratio(d["p99_ms"], c["p99_ms"]) + " (p99, Dovecot/Carteiro)",
        ],
        [
            f"{label}: server CPU s per 1,000 commands",
            f"{c['server_cpu_ms_per_command']:.2f}",
            f"{d['server_cpu_ms_per_command']:.2f}",
            ratio(d["server_cpu_ms_per_command"], c["server_cpu_ms_per_command"]),
        ],
        [
            f"{label}: server memory (PSS, MiB)",
            f"{c['server_pss_mib']:.0f}",
            f"{d['server_pss_mib']:.0f}",
            "",
        ],
        [
            f"{label}: generator errors / generator CPU s",
            f"{c['errors']} / {c['generator_cpu_s']:.1f}",
            f"{d['errors']} / {d['generator_cpu_s']:.1f}",
            "",
        ],
    ]
    kc, kd = c.get("connect"), d.get("connect")
    if kc and kd and kc["count"] and kd["count"]:
        rows.append(
            [
                f"{label}: connect to greeting p50 / p99 (ms), not a command",
                f"{kc['p50_ms']:.2f} / {kc['p99_ms']:.2f}",
                f"{kd['p50_ms']:.2f} / {kd['p99_ms']:.2f}",
                ratio(kd["p50_ms"], kc["p50_ms"]) + " (p50)",
            ]
        )
    for name in ("APPEND", "FETCH(body)", "LOGIN", "SELECT"):
        pc, pd = c["per_command"].get(name), d["per_command"].get(name)
        if pc and pd:
            rows.append(
                [
                    f"{label}: {name} p50 / p99 (ms)",
                    f"{pc['p50_ms']:.2f} / {pc['p99_ms']:.2f}",
                    f"{pd['p50_ms']:.2f} / {pd['p99_ms']:.2f}",
                    ratio(pd["p50_ms"], pc["p50_ms"]) + " (p50)",
                ]
            )
    return rows


#: the paced run: this many clients, offering this share of Dovecot's closed-loop rate
PACED_CLIENTS = 10
PACED_SHARE = 0.8
#: paced runs per server, alternating; the table shows the run with the median APPEND p50
PACED_REPEATS = 3


def _append_p50(run: dict[str, Any]) -> float:
    step = run["per_command"].get("APPEND")
    return float(step["p50_ms"]) if step else float("nan")


def _append_p50s(runs: Iterable[dict[str, Any]]) -> list[str]:
    return [f"{_append_p50(r):.2f}" for r in runs]


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=_append_p50)[len(runs) // 2]


# --- driver ---------------------------------------------------------------------------
WORKLOADS = ("mixed", "append", "bigmailbox", "idle", "delivery", "tls", "qresync")
#: the APPEND workload: sessions, messages each, alternating runs per server
APPEND_CLIENTS = 10
APPEND_MESSAGES = 300
APPEND_REPEATS = 3


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.messages = args.messages or (10_000 if args.quick else 100_000)
        self.res = Results(
            started=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            quick=self.quick,
            machine={
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "dovecot": subprocess.run(
                    ["dovecot", "--version"], capture_output=True, text=True
                ).stdout.strip()
                if shutil.which("dovecot")
                else "not installed",
            },
        )
        self.carteiro_pristine = _carteiro_pristine(self.messages, print)
        self.dovecot_pristine = _dovecot_pristine(self.messages, print)

    def servers(
        self, *, cache: bool = True, max_sessions: int = 1000, hash_kind: str = "shipped"
    ) -> tuple[Target, Target]:
        c = CarteiroTarget(
            self.carteiro_pristine, cache=cache, max_sessions=max_sessions, hash_kind=hash_kind
        )
        try:
            d = DovecotTarget(
                self.dovecot_pristine,
                cache=cache,
                max_sessions=max_sessions,
                cert=c.cert(),
                hash_kind=hash_kind,
            )
        except BaseException:
            c.stop()
            raise
        key = ("with caches" if cache else "without caches") + f", {hash_kind} hash"
        if max_sessions > 1000:
            key += f", {max_sessions:,} sessions"
        self.res.settings.setdefault(f"Carteiro ({key})", c.settings())
        self.res.settings.setdefault(f"Dovecot ({key})", d.settings())
        return c, d

    def mixed(self) -> None:
        duration = self.args.duration or (8.0 if self.quick else 30.0)
        counts = [10, 50] if self.quick else [10, 50, 200]
        configs = [
            # (hash, caches, client counts, label suffix)
            ("shipped", True, counts, ""),
            ("light", True, counts, ", light hash"),
            ("shipped", False, [10], ", no caches"),
        ]
        rows: list[list[str]] = []
        out: dict[str, Any] = {}
        for hash_kind, cache, ns, suffix in configs:
            c, d = self.servers(cache=cache, hash_kind=hash_kind)
            try:
                for n in ns:
                    label = f"{n} clients{suffix}"
                    print(f"mixed workload, {label} ...", flush=True)
                    rc = run_mixed_on(c, n, duration)
                    rd = run_mixed_on(d, n, duration)
                    out[label] = {"carteiro": rc, "dovecot": rd}
                    rows += mixed_rows(self.res, label, rc, rd)
                    if n == PACED_CLIENTS and hash_kind == "light":
                        # latency at equal load: both servers offered the same rate,
                        # below what Dovecot carries flat out
                        rate = round(PACED_SHARE * rd["commands_per_s"], -1)
                        label = f"{n} clients{suffix}, paced at {rate:,.0f}/s"
                        print(f"mixed workload, {label} ...", flush=True)
                        pairs = []
                        for _ in range(PACED_REPEATS):  # alternating: the machine drifts
                            pairs.append(
                                (
                                    run_mixed_on(c, n, duration, rate),
                                    run_mixed_on(d, n, duration, rate),
                                )
                            )
                        rc = _median_run([p[0] for p in pairs])
                        rd = _median_run([p[1] for p in pairs])
                        out[label] = {
                            "carteiro": rc,
                            "dovecot": rd,
                            "runs": [{"carteiro": a, "dovecot": b} for a, b in pairs],
                        }
                        rows += mixed_rows(self.res, label, rc, rd)
                        rows.append(
                            [
                                f"{label}: APPEND p50 in each of {PACED_REPEATS} alternating"
                                " runs (ms)",
                                " / ".join(_append_p50s(p[0] for p in pairs)),
                                " / ".join(_append_p50s(p[1] for p in pairs)),
                                "",
                            ]
                        )
            finally:
                c.stop()
                d.stop()
        self.res.workloads["mixed"] = out
        self.res.table(
            "Mixed workload",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
            "Each loop: LOGIN, LIST, STATUS, SELECT, UID FETCH new (FLAGS + 5 header fields),"
            " UID FETCH BODY.PEEK[], UID STORE, APPEND, UID STORE \\Deleted + EXPUNGE,"
            f" LOGOUT; {duration:.0f} s per run; {LOAD_USERS} users; every client logged in"
            " once before the measured window (caches warm). Hash: argon2id t=3 m=64MiB p=4"
            " (Carteiro's default) unless 'light hash' (t=1 m=8MiB p=1). Runs are a closed"
            " loop (each client sends its next command when the last reply is in) except"
            f" 'paced': there the {PACED_CLIENTS} clients together offer both servers the same"
            f" steady rate, {PACED_SHARE:.0%} of Dovecot's closed-loop rate in this run, and a"
            f" command's latency counts from when it was due; {PACED_REPEATS} runs per server,"
            " alternating, the table showing the run with the median APPEND p50.",
        )

    def bigmailbox(self) -> None:
        n = self.messages
        c, d = self.servers()
        try:
            print(f"big mailbox ({n:,} messages) ...", flush=True)
            rc = workloads.bigmailbox(c, n)
            print(f"  Carteiro: {rc}", flush=True)
            rd = workloads.bigmailbox(d, n)
            print(f"  Dovecot: {rd}", flush=True)
        finally:
            c.stop()
            d.stop()
        self.res.workloads["bigmailbox"] = {"carteiro": rc, "dovecot": rd}
        rows = []
        for key, label in (
            ("select_s", "SELECT INBOX (median of 5)"),
            ("fetch_flags_s", "FETCH 1:* (FLAGS)"),
            ("uid_fetch_s", f"UID FETCH {rc['uid_fetch_n']:,} scattered (ENVELOPE BODYSTRUCTURE)"),
            ("search_unseen_s", "UID SEARCH UNSEEN"),
            ("search_text_s", f'UID SEARCH TEXT "{rc["search_text_word"]}"'),
            ("search_rare_s", f'UID SEARCH TEXT "{rc["search_rare_token"]}" (a rare token)'),
            ("search_text_none_s", "UID SEARCH TEXT (a word found nowhere)"),
        ):
            rows.append(
                [label, f"{rc[key] * 1000:,.1f} ms", f"{rd[key] * 1000:,.1f} ms",
                 ratio(rd[key], rc[key]) + " faster" if rc[key] else ""]
            )  # fmt: skip
        rows.append(
            [
                "SEARCH hits: UNSEEN / TEXT word / rare token / nowhere (must agree)",
                f"{rc['search_unseen_hits']} / {rc['search_text_hits']} / "
                f"{rc['search_rare_hits']} / {rc['search_text_none_hits']}",
                f"{rd['search_unseen_hits']} / {rd['search_text_hits']} / "
                f"{rd['search_rare_hits']} / {rd['search_text_none_hits']}",
                "agree"
                if all(rc[k] == rd[k] for k in ("search_unseen_hits", "search_text_hits",
                                                "search_rare_hits", "search_text_none_hits"))
                else "DISAGREE",
            ]
        )  # fmt: skip
        rows.append(
            ["server CPU s (whole workload) / PSS MiB after",
             f"{rc['server_cpu_s']:.1f} / {rc['server_pss_mib']:.0f}",
             f"{rd['server_cpu_s']:.1f} / {rd['server_pss_mib']:.0f}", ""]
        )  # fmt: skip
        self.res.table(
            f"Big mailbox ({n:,} messages)",
            ["", "Carteiro", "Dovecot", "Dovecot/Carteiro time"],
            rows,
            "Medians of 3 timed runs (5 for SELECT) after one untimed warm-up run, to the"
            " last byte of the tagged reply.",
        )

    def idle(self) -> None:
        counts = [200, 1000] if self.quick else [1000, 10_000]
        rows = []
        out = {}
        for n in counts:
            # the light hash: logging 10,000 sessions in must not take Dovecot's auth
            # process (argon2id at ~4/s with the shipped cost) most of an hour
            c, d = self.servers(max_sessions=n + 100, hash_kind="light")
            try:
                print(f"idle sessions: {n:,} ...", flush=True)
                rc = workloads.idle(c, load_users(), n)
                print(f"  Carteiro: {rc}", flush=True)
                rd = workloads.idle(d, load_users(), n)
                print(f"  Dovecot: {rd}", flush=True)
            finally:
                c.stop()
                d.stop()
            out[str(n)] = {"carteiro": rc, "dovecot": rd}
            rows += [
                [f"{n:,} sessions: opened (errors)", f"{rc['opened']:,} ({rc['error_count']})",
                 f"{rd['opened']:,} ({rd['error_count']})", ""],
                [f"{n:,} sessions: memory per session (PSS KiB)",
                 f"{rc['pss_per_session_kib']:.1f}", f"{rd['pss_per_session_kib']:.1f}",
                 ratio(rd["pss_per_session_kib"], rc["pss_per_session_kib"]) + " less"],
                [f"{n:,} sessions: server PSS before -> after (MiB)",
                 f"{rc['pss_before_mib']:.0f} -> {rc['pss_after_mib']:.0f}",
                 f"{rd['pss_before_mib']:.0f} -> {rd['pss_after_mib']:.0f}", ""],
                [f"{n:,} sessions: server CPU while idle ({rc['idle_window_s']:.0f} s)",
                 f"{rc['idle_cpu_s']:.2f} s", f"{rd['idle_cpu_s']:.2f} s", ""],
                [f"{n:,} sessions: time / server CPU to open them",
                 f"{rc['open_seconds']:.1f} s / {rc['open_cpu_s']:.1f} s",
                 f"{rd['open_seconds']:.1f} s / {rd['open_cpu_s']:.1f} s", ""],
            ]  # fmt: skip
        self.res.workloads["idle"] = out
        self.res.table(
            "Idle sessions (LOGIN, SELECT INBOX, IDLE)",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
            "Memory: PSS of the server's whole process tree after the sessions opened minus"
            " before, per session. CPU: the server tree's CPU over the window, after 5 s of"
            " settling. Sessions spread over the 50 users; light argon2id hash.",
        )

    def delivery(self) -> None:
        n = 1000 if self.quick else 10_000
        c, d = self.servers()
        try:
            print(f"delivery: {n:,} messages over LMTP ...", flush=True)
            rc = workloads.delivery(c, load_users()[0], n)
            print(f"  Carteiro: {rc}", flush=True)
            rd = workloads.delivery(d, load_users()[0], n)
            print(f"  Dovecot: {rd}", flush=True)
        finally:
            c.stop()
            d.stop()
        self.res.workloads["delivery"] = {"carteiro": rc, "dovecot": rd}
        rows = [
            ["all visible over IMAP after", f"{rc['all_visible_s']:.2f} s",
             f"{rd['all_visible_s']:.2f} s", ratio(rd["all_visible_s"], rc["all_visible_s"])
             + " faster"],
            ["messages/s", f"{rc['per_s']:,.0f}", f"{rd['per_s']:,.0f}",
             ratio(rc["per_s"], rd["per_s"])],
            ["LMTP transaction p50 / p99 (ms)",
             f"{rc['lmtp_p50_ms']:.1f} / {rc['lmtp_p99_ms']:.1f}",
             f"{rd['lmtp_p50_ms']:.1f} / {rd['lmtp_p99_ms']:.1f}", ""],
            ["accepted / in INBOX / expected",
             f"{rc['accepted']:,} / {rc['final_messages']:,} / {rc['expected_messages']:,}",
             f"{rd['accepted']:,} / {rd['final_messages']:,} / {rd['expected_messages']:,}", ""],
            ["server CPU s", f"{rc['server_cpu_s']:.1f}", f"{rd['server_cpu_s']:.1f}",
             ratio(rd["server_cpu_s"], rc["server_cpu_s"]) + " less"],
        ]  # fmt: skip
        self.res.table(
            f"Delivery: {n:,} messages over LMTP, 10 sessions, into one INBOX",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
            "Time from the first MAIL until an IMAP session in IDLE has seen every message.",
        )

    def tls(self) -> None:
        duration = 5.0 if self.quick else 15.0
        c, d = self.servers()
        try:
            print("TLS handshakes ...", flush=True)
            rc = workloads.tls(c, duration)
            print(f"  Carteiro: {rc}", flush=True)
            rd = workloads.tls(d, duration)
            print(f"  Dovecot: {rd}", flush=True)
        finally:
            c.stop()
            d.stop()
        self.res.workloads["tls"] = {"carteiro": rc, "dovecot": rd}
        rows = [
            ["handshakes/s (connect, handshake, greeting, close)", f"{rc['per_s']:,.0f}",
             f"{rd['per_s']:,.0f}", ratio(rc["per_s"], rd["per_s"])],
            ["p50 / p99 (ms)", f"{rc['p50_ms']:.1f} / {rc['p99_ms']:.1f}",
             f"{rd['p50_ms']:.1f} / {rd['p99_ms']:.1f}", ""],
            ["errors", str(rc["errors"]), str(rd["errors"]), ""],
            ["negotiated", ", ".join(rc["versions"]), ", ".join(rd["versions"]), ""],
            ["server CPU s / client CPU s", f"{rc['server_cpu_s']:.1f} / {rc['client_cpu_s']:.1f}",
             f"{rd['server_cpu_s']:.1f} / {rd['client_cpu_s']:.1f}", ""],
        ]  # fmt: skip
        self.res.table(
            f"TLS handshakes on the implicit-TLS port ({duration:.0f} s, 16 connections at a"
            " time, the same ECDSA P-256 certificate)",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
        )

    def qresync(self) -> None:
        c, d = self.servers()
        try:
            print("QRESYNC reconnect ...", flush=True)
            rc = workloads.qresync(c, self.messages)
            print(f"  Carteiro: {rc}", flush=True)
            rd = workloads.qresync(d, self.messages)
            print(f"  Dovecot: {rd}", flush=True)
        finally:
            c.stop()
            d.stop()
        self.res.workloads["qresync"] = {"carteiro": rc, "dovecot": rd}
        rows = [
            ["reconnect: LOGIN + ENABLE + SELECT (QRESYNC), median of 3",
             f"{rc['reconnect_s'] * 1000:.1f} ms", f"{rd['reconnect_s'] * 1000:.1f} ms",
             ratio(rd["reconnect_s"], rc["reconnect_s"]) + " faster"],
            ["bytes received", f"{rc['bytes']:,}", f"{rd['bytes']:,}", ""],
            ["FETCH responses / VANISHED (EARLIER) sent", f"{rc['fetches']} / {rc['vanished_ok']}",
             f"{rd['fetches']} / {rd['vanished_ok']}", ""],
        ]  # fmt: skip
        self.res.table(
            f"QRESYNC reconnect to the {self.messages:,}-message INBOX after 100 changes",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
        )

    def append(self) -> None:
        """APPEND alone at 10 clients, three runs per server, alternating (the machine
        drifts; only alternating runs compare)."""
        per_client = 100 if self.quick else APPEND_MESSAGES
        c, d = self.servers(hash_kind="light")
        runs: dict[str, list[dict[str, Any]]] = {"carteiro": [], "dovecot": []}
        try:
            print(f"APPEND, {APPEND_CLIENTS} clients x {per_client} messages ...", flush=True)
            for _ in range(APPEND_REPEATS):
                for key, target in (("carteiro", c), ("dovecot", d)):
                    r = workloads.append_storm(
                        target, load_users(), clients=APPEND_CLIENTS, per_client=per_client
                    )
                    runs[key].append(r)
                    print(f"  {target.name}: {r}", flush=True)
        finally:
            c.stop()
            d.stop()
        self.res.workloads["append"] = runs

        def median_of(key: str, item: str) -> float:
            return median([r[item] for r in runs[key]])

        def each(key: str, item: str) -> str:
            return " / ".join(f"{r[item]:.2f}" for r in runs[key])

        rows = [
            ["APPEND p50 (ms), each run", each("carteiro", "p50_ms"), each("dovecot", "p50_ms"),
             ""],
            ["APPEND p50 (ms), median of the runs", f"{median_of('carteiro', 'p50_ms'):.2f}",
             f"{median_of('dovecot', 'p50_ms'):.2f}",
             ratio(median_of("dovecot", "p50_ms"), median_of("carteiro", "p50_ms")) + " faster"],
            ["mean / p99 (ms), medians of the runs",
             f"{median_of('carteiro', 'mean_ms'):.2f} / {median_of('carteiro', 'p99_ms'):.2f}",
             f"{median_of('dovecot', 'mean_ms'):.2f} / {median_of('dovecot', 'p99_ms'):.2f}", ""],
            ["APPENDs/s, median of the runs", f"{median_of('carteiro', 'per_s'):,.0f}",
             f"{median_of('dovecot', 'per_s'):,.0f}",
             ratio(median_of("carteiro", "per_s"), median_of("dovecot", "per_s"))],
            ["server CPU per APPEND (ms), median of the runs",
             f"{median_of('carteiro', 'server_cpu_ms_per_append'):.2f}",
             f"{median_of('dovecot', 'server_cpu_ms_per_append'):.2f}", ""],
            ["errors (no APPENDUID, failed or missing)",
             str(sum(r["errors"] for r in runs["carteiro"])),
             str(sum(r["errors"] for r in runs["dovecot"])), ""],
        ]  # fmt: skip
        self.res.table(
            f"APPEND at {APPEND_CLIENTS} clients: each session APPENDs {per_client} messages"
            " of ~8 KB to its INBOX, the next as soon as the last is answered (LITERAL+),"
            f" {APPEND_REPEATS} runs per server, alternating",
            ["", "Carteiro", "Dovecot", "ratio"],
            rows,
            "A closed loop like the mixed workload: with 10 sessions always waiting, the mean"
            " APPEND takes 10 / (APPENDs per second) by Little's law, so the latency here is"
            " the throughput seen from the other side. Both servers commit every message to"
            " disk before the tagged OK (Carteiro: SQLite `synchronous = FULL`, one fsync per"
            " group commit; Dovecot, default `mail_fsync = optimized`: `fdatasync` of the"
            " message file and of its index files, seen with strace).",
        )

    def run(self) -> int:
        only = self.args.only.split(",") if self.args.only else list(WORKLOADS)
        for name in only:
            getattr(self, name)()
            self.write()  # after each workload: a later failure loses nothing
        return 0

    def write(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = self.res.started.replace(":", "").replace("-", "")
        md = [
            f"# Carteiro vs Dovecot, {self.res.started}" + (" (quick)" if self.quick else ""),
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in self.res.machine.items()),
            "",
            *self.res.tables,
            "## Settings",
            "",
        ]
        for who, settings in self.res.settings.items():
            md.append(f"**{who}**: " + "; ".join(f"`{k}` = {v}" for k, v in settings.items()))
            md.append("")
        (RESULTS / f"{stamp}.md").write_text("\n".join(md))
        (RESULTS / f"{stamp}.json").write_text(json.dumps(self.res.__dict__, indent=1))
        print(f"\nresults: {RESULTS / stamp}.md and .json", flush=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "populate-carteiro":
        _populate_carteiro_main(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "set-hash":
        _set_hash_main(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help=",".join(WORKLOADS))
    ap.add_argument("--messages", type=int, default=0)
    ap.add_argument("--duration", type=float, default=0.0, help="seconds per mixed run")
    args = ap.parse_args()
    raise_fd_limit(65536)
    return Suite(args).run()


if __name__ == "__main__":
    sys.exit(main())
