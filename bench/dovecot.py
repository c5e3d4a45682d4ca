"""A private Dovecot instance for side-by-side benchmarks with Carteiro.

Installs Dovecot if needed, writes its own configuration under a root directory (no
Debian ``conf.d``), fills users' Maildirs directly (``write_maildir``), starts the master
in the foreground on free ephemeral ports of 127.0.0.1, and stops it again. Dovecot keeps
its compiled defaults except for what ``Dovecot.settings()`` lists.

    python bench/dovecot.py selftest                 # functional checks, 300 IDLE sessions,
                                                     # write_maildir + first SELECT on 100,000
    python bench/dovecot.py selftest --messages 0    # skip the 100,000-message part
    python bench/dovecot.py serve --root DIR --users 2 --messages 10   # start, wait for ^C

``Dovecot.settings()`` keys: plain settings by name; blocks as ``passdb/driver``,
``service imap/process_limit``, ``service imap-login/inet_listener imap/port``;
``(...)`` keys are not Dovecot settings (master RLIMIT_NOFILE, a sysctl raised).
``extra_settings`` uses the same keys and is written into the config as is.

Measured (2 cores, Dovecot 2.3.19.1): write_maildir ~6,000-8,000 messages/s for ~8 KB
messages (filesystem bound: ~90 % kernel time); first SELECT of a 100,000-message INBOX
~0.5-0.9 s (Dovecot reads sizes and flags from the filenames); ~510 KiB PSS per IDLE
session (one imap process each); ~160 ms CPU per LOGIN (argon2id m=64 MiB t=3 p=4 in
the single auth process, also with auth_cache: the cache keeps the hash, not a verdict).

Everything talks to 127.0.0.1 only; every loop is bounded in count and time; only the
processes started here are signalled, by PID.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import grp
import imaplib
import os
import pwd
import re
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
MAIL_USER = "carteiro-bench"  # unprivileged system user owning the Maildirs
SPECIAL_MAILBOXES = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}
#: compiled defaults of Dovecot 2.3.19 (``doveconf -d``) for the limits we may raise
DEFAULT_MAIL_MAX_USERIP = 10
DEFAULT_IMAP_PROCESS_LIMIT = 1024
DEFAULT_PROCESS_LIMIT = 100  # default_process_limit; imap-login's process_limit = 0 means this
DEFAULT_CLIENT_LIMIT = 1000  # default_client_limit; anvil/auth/log/stats/config use it
#: sessions beyond max_sessions we leave room for (probes, checks, doveadm)
SESSION_SLACK = 10
_SYSTEM_FLAG_LETTERS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}


# --- installation ---------------------------------------------------------------------
def ensure_installed() -> None:
    """Install dovecot-imapd and dovecot-lmtpd with apt-get when ``dovecot`` is missing."""
    if shutil.which("dovecot") and shutil.which("doveadm"):
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "dovecot-imapd", "dovecot-lmtpd"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(cmd, env=env, check=False, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=900)
        subprocess.run(cmd, env=env, check=True, timeout=900)
    if not shutil.which("dovecot"):
        raise RuntimeError("dovecot still missing after apt-get install")


def _ensure_mail_user() -> tuple[int, int]:
    """uid/gid of the unprivileged system user the mail processes run as (created once)."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                MAIL_USER,
            ],
            check=True,
            timeout=60,
        )
        pw = pwd.getpwnam(MAIL_USER)
    return pw.pw_uid, pw.pw_gid


# --- Maildir --------------------------------------------------------------------------
_last_name_stamp: tuple[int, int] = (0, 0)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"


def _name_stamps(count_hint: int = 0) -> Iterable[tuple[int, int]]:
    """Strictly increasing (seconds, microseconds) pairs, like Dovecot's own generator, so
    that Dovecot (which sorts new filenames by these when it assigns UIDs) numbers the
    messages in the order they were given, also across calls."""
    global _last_name_stamp
    secs, usecs = max(_last_name_stamp, (int(time.time()), 0))
    while True:
        usecs += 1
        if usecs >= 1_000_000:
            secs, usecs = secs + 1, 0
        _last_name_stamp = (secs, usecs)
        yield secs, usecs


def _folder_dir(maildir: Path, folder: str | None) -> Path:
    if folder is None or folder.upper() == "INBOX":
        return maildir
    if not folder.isascii() or any(c in folder for c in "\0\r\n") or folder.startswith("."):
        raise ValueError(f"unsupported folder name {folder!r} (ASCII, no leading dot)")
    # Maildir++: hierarchy separator '.', so "a/b" is stored as ".a.b"
    return maildir / ("." + folder.replace("/", "."))


def _load_keywords(path: Path) -> list[str]:
    names: list[str] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            idx, _, name = line.partition(" ")
            if idx.isdigit() and name:
                while len(names) <= int(idx):
                    names.append("")
                names[int(idx)] = name
    return names


def write_maildir(
    maildir: Path,
    messages: Iterable[tuple[bytes, frozenset[str], float]],
    folder: str | None = None,
) -> None:
    """Write messages into a Maildir++ folder (None = INBOX) the way Dovecot stores them.

    Filenames ``<secs>.M<usecs>P<pid>.<host>,S=<size>,W=<rfc822 size>:2,<flags>``; system
    flags as D F R S T, keywords as letters a..z declared in the folder's
    ``dovecot-keywords``; file mtime = internal date. No fsync. Call it while the
    instance is stopped (``Dovecot.start`` hands the files to the mail user)."""
    fdir = _folder_dir(Path(maildir), folder)
    for sub in ("cur", "new", "tmp"):
        (fdir / sub).mkdir(parents=True, exist_ok=True)
    if fdir != Path(maildir):
        (fdir / "maildirfolder").touch()
    kw_path = fdir / "dovecot-keywords"
    keywords = _load_keywords(kw_path)
    kw_letter = {name: chr(ord("a") + i) for i, name in enumerate(keywords) if name}
    kw_dirty = False
    cur = str(fdir / "cur") + "/"
    pid = os.getpid()
    flags_cache: dict[frozenset[str], str] = {}
    open_flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stamps = iter(_name_stamps())
    for raw, flags, date in messages:
        letters = flags_cache.get(flags)
        if letters is None:
            system, kws = [], []
            for flag in flags:
                if flag.startswith("\\"):
                    if flag.lower() == "\\recent":
                        continue
                    letter = _SYSTEM_FLAG_LETTERS.get(flag.lower())
                    if letter is None:
                        raise ValueError(f"unknown system flag {flag!r}")
                    system.append(letter)
                else:
                    letter = kw_letter.get(flag)
                    if letter is None:
                        if len(kw_letter) >= 26:
                            raise ValueError("Maildir supports at most 26 keywords per folder")
                        letter = chr(ord("a") + len(keywords))
                        keywords.append(flag)
                        kw_letter[flag] = letter
                        kw_dirty = True
                    kws.append(letter)
            letters = "".join(sorted(system)) + "".join(sorted(kws))
            flags_cache[flags] = letters
        secs, usecs = next(stamps)
        size = len(raw)
        vsize = size + raw.count(b"\n") - raw.count(b"\r\n")  # bare LF counts as CRLF
        path = f"{cur}{secs}.M{usecs}P{pid}.{_HOST},S={size},W={vsize}:2,{letters}"
        fd = os.open(path, open_flags, 0o600)
        try:
            view = memoryview(raw)
            written = 0
            for _ in range(size + 1):  # bounded: each write makes progress
                if written >= size:
                    break
                written += os.write(fd, view[written:])
            os.utime(fd, (date, date))
        finally:
            os.close(fd)
    if kw_dirty:
        kw_path.write_text(
            "".join(f"{i} {name}\n" for i, name in enumerate(keywords) if name),
            encoding="utf-8",
        )


# --- /proc readings -------------------------------------------------------------------
def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].decode().split()


def _descendants(pid: int) -> list[int]:
    """pid and all its live descendants (walks /proc/*/stat ppid)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _read_stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo, seen = [], [pid], set()
    while todo and len(out) < 1_000_000:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_pss_kib(pid: int) -> int:
    """PSS (KiB) of pid and all its descendants, from /proc/<p>/smaps_rollup."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of pid and its live descendants (utime+stime), plus pid's
    cutime+cstime (children it has reaped: Dovecot's master reaps its imap processes)."""
    ticks = 0
    for p in _descendants(pid):
        fields = _read_stat(p)
        if fields is None:
            continue
        ticks += int(fields[11]) + int(fields[12])
        if p == pid:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports: all bound at once, so the kernel cannot hand out the
    same one twice (which made Dovecot refuse a duplicate listener)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


# --- the instance ---------------------------------------------------------------------
@dataclass
class DovecotUser:
    name: str
    password_hash: str  # PHC argon2id string, verified by Dovecot as {ARGON2ID}


class Dovecot:
    """A private Dovecot under ``root``: ``etc/`` (config, passwd-file), ``run/``
    (base_dir), ``state/``, ``log/``, ``home/<user>/Maildir``."""

    def __init__(
        self,
        root: Path,
        users: Sequence[DovecotUser],
        *,
        auth_cache: bool = True,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        max_sessions: int = 1000,
        lmtp: bool = True,
        extra_settings: dict[str, str] | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        for u in users:
            if not u.name or any(c in u.name for c in ":/\n\t ") or u.name != u.name.lower():
                raise ValueError(f"unsupported user name {u.name!r} (lowercase, no : / blanks)")
            if ":" in u.password_hash or "\n" in u.password_hash:
                raise ValueError(f"bad password hash for {u.name}")
        self.root = Path(root).resolve()
        self.users = list(users)
        self.auth_cache = auth_cache
        self.tls_cert = Path(tls_cert).resolve() if tls_cert else None
        self.tls_key = Path(tls_key).resolve() if tls_key else None
        self.max_sessions = max_sessions
        self.lmtp = lmtp
        self.extra_settings = dict(extra_settings or {})
        self.conf_path = self.root / "etc" / "dovecot.conf"
        self.passwd_path = self.root / "etc" / "passwd"
        self.base_dir = self.root / "run"
        self.state_dir = self.root / "state"
        self.log_path = self.root / "log" / "dovecot.log"
        self.stdout_path = self.root / "log" / "master.out"
        self.imap_port = 0
        self.imaps_port = 0
        self.lmtp_port = 0
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._uid, self._gid = -1, -1
        self._first_valid_uid: int | None = None
        self._nofile = 0
        self._sysctl: dict[str, str] = {}

    # -- paths
    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def maildir(self, user: str) -> Path:
        return self.home(user) / "Maildir"

    # -- settings
    def _limits(self) -> dict[str, str]:
        """The session-related limits above Dovecot's compiled defaults, and nothing else."""
        need = self.max_sessions + SESSION_SLACK
        out: dict[str, str] = {}
        if need > DEFAULT_MAIL_MAX_USERIP:
            # all sessions may belong to one user, from one IP (127.0.0.1)
            out["mail_max_userip_connections"] = str(need)
        if need > DEFAULT_IMAP_PROCESS_LIMIT:
            # one imap process per session (client_limit = 1, service_count = 1 kept)
            out["service imap/process_limit"] = str(need)
        if need > DEFAULT_PROCESS_LIMIT:
            # imap-login keeps service_count = 1 (one login process per connection; it
            # stays as the TLS proxy of an imaps session), so process_limit caps the
            # connections in login plus the imaps sessions
            out["service imap-login/process_limit"] = str(need)
        # auth and anvil hold one connection per login process (and lmtp, imap-urlauth-login
        # processes); their client_limit = 0 means default_client_limit. Dovecot warns at
        # startup when it is below that sum: keep it just above.
        login_limit = max(need, DEFAULT_PROCESS_LIMIT)
        client_need = login_limit + 2 * DEFAULT_PROCESS_LIMIT + SESSION_SLACK
        if client_need > DEFAULT_CLIENT_LIMIT:
            out["default_client_limit"] = str(client_need)
        return out

    def settings(self) -> dict[str, str]:
        """Every setting that differs from Dovecot's compiled defaults (``doveconf -d``);
        service settings as ``service <name>/<setting>``, listeners as
        ``service <name>/inet_listener <l>/<setting>``."""
        s: dict[str, str] = {
            "instance_name": f"carteiro-bench-{self.root.name}",
            "base_dir": str(self.base_dir),
            "state_dir": str(self.state_dir),
            "log_path": str(self.log_path),
            "listen": "127.0.0.1",
            "protocols": "imap lmtp" if self.lmtp else "imap",
            "disable_plaintext_auth": "no",
            "ssl": "yes" if self.tls_cert else "no",
        }
        if self.tls_cert and self.tls_key:
            s["ssl_cert"] = f"<{self.tls_cert}"
            s["ssl_key"] = f"<{self.tls_key}"
        if self.auth_cache:
            s["auth_cache_size"] = "10 M"
            s["auth_cache_ttl"] = "1 hour"  # Dovecot's default, stated for the table
        # else auth_cache_size = 0 is the default
        s["passdb/driver"] = "passwd-file"
        s["passdb/args"] = f"scheme=ARGON2ID {self.passwd_path}"
        s["userdb/driver"] = "passwd-file"
        s["userdb/args"] = str(self.passwd_path)
        s["mail_location"] = "maildir:~/Maildir"
        if self._first_valid_uid is not None:
            s["first_valid_uid"] = str(self._first_valid_uid)
        s["namespace inbox/inbox"] = "yes"
        for name, use in SPECIAL_MAILBOXES.items():
            s[f"namespace inbox/mailbox {name}/special_use"] = use
            s[f"namespace inbox/mailbox {name}/auto"] = "subscribe"
        s["service imap-login/inet_listener imap/address"] = "127.0.0.1"
        s["service imap-login/inet_listener imap/port"] = str(self.imap_port)
        s["service imap-login/inet_listener imaps/address"] = "127.0.0.1"
        s["service imap-login/inet_listener imaps/port"] = str(self.imaps_port)
        if self.lmtp:
            s["service lmtp/inet_listener lmtp/address"] = "127.0.0.1"
            s["service lmtp/inet_listener lmtp/port"] = str(self.lmtp_port)
        s.update(self._limits())
        s.update(self.extra_settings)
        if self._nofile:
            s["(master RLIMIT_NOFILE)"] = str(self._nofile)
        for k, v in self._sysctl.items():
            s[f"(sysctl {k})"] = v
        return s

    def _config_text(self) -> str:
        """Render settings() as a dovecot.conf (nested blocks from the '/' paths)."""
        tree: dict[str, object] = {}
        for key, value in self.settings().items():
            if key.startswith("("):
                continue
            parts = key.split("/")
            node = tree
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[parts[-1]] = value

        def render(node: dict[str, object], indent: int) -> list[str]:
            lines = []
            for k, v in node.items():
                pad = "  " * indent
                if isinstance(v, dict):
                    lines.append(f"{pad}{k} {{")
                    lines.extend(render(v, indent + 1))
                    lines.append(f"{pad}}}")
                else:
                    lines.append(f"{pad}{k} = {v}")
            return lines

        head = [
            "# Generated by bench/dovecot.py: Dovecot's compiled defaults except below.",
            "# No include of /etc/dovecot.",
        ]
        return "\n".join(head + render(tree, 0)) + "\n"

    # -- lifecycle
    def _prepare(self) -> None:
        ensure_installed()
        self._uid, self._gid = _ensure_mail_user()
        if self._uid < 500:  # first_valid_uid default
            self._first_valid_uid = self._uid
        for d in (self.root / "etc", self.root / "log", self.root / "home", self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        # the mail processes (uid carteiro-bench) must reach root/home/<user>
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "home", 0o755)
        for parent in self.root.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise RuntimeError(
                    f"{parent} is not searchable by others; the mail user cannot reach {self.root}"
                )
        # passwd-file: user:password:uid:gid:gecos:home:shell (auth runs as 'dovecot')
        lines = [
            f"{u.name}:{{ARGON2ID}}{u.password_hash}:{self._uid}:{self._gid}::"
            f"{self.home(u.name)}::\n"
            for u in self.users
        ]
        self.passwd_path.write_text("".join(lines), encoding="utf-8")
        try:
            os.chown(self.passwd_path, 0, grp.getgrnam("dovecot").gr_gid)
            os.chmod(self.passwd_path, 0o640)
        except KeyError:
            os.chmod(self.passwd_path, 0o644)
        for u in self.users:
            self.maildir(u.name).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["chown", "-R", f"{self._uid}:{self._gid}", str(self.root / "home")],
            check=True,
            timeout=600,
        )
        for u in self.users:
            os.chmod(self.home(u.name), 0o700)

    def _raise_inotify_instances(self) -> None:
        """All imap processes run as one uid; each IDLE session holds an inotify instance
        (kernel default limit 128 per uid, beyond which Dovecot warns and falls back to
        polling every mailbox_idle_check_interval). Raise the sysctl, never lower it."""
        path = Path("/proc/sys/fs/inotify/max_user_instances")
        want = self.max_sessions + SESSION_SLACK + 128
        try:
            current = int(path.read_text())
            if current < want:
                path.write_text(f"{want}\n")
                current = want
            self._sysctl["fs.inotify.max_user_instances"] = str(current)
        except OSError as exc:
            print(f"dovecot.py: cannot raise {path} to {want}: {exc}", file=sys.stderr)

    def _nofile_wanted(self) -> int:
        need = self.max_sessions + SESSION_SLACK
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # raising the hard limit needs CAP_SYS_RESOURCE (absent in containers): cap at it
        cap = hard if hard != resource.RLIM_INFINITY else 1 << 20
        return max(soft, min(cap, 8 * need + 4096))

    def start(self) -> None:
        """Configure and start on free 127.0.0.1 ports; wait for the IMAP greeting."""
        if self._proc is not None:
            raise RuntimeError("already started")
        self._prepare()
        self._nofile = self._nofile_wanted()
        self._raise_inotify_instances()
        last_error = ""
        for _attempt in range(3):  # a port taken between probe and bind: retry
            self.imap_port, imaps, lmtp = _free_ports(3)
            self.imaps_port = imaps if self.tls_cert else 0
            self.lmtp_port = lmtp if self.lmtp else 0
            self.conf_path.write_text(self._config_text(), encoding="utf-8")
            try:
                self._spawn()
                return
            except RuntimeError as exc:
                last_error = str(exc)
                if "in use" not in last_error:
                    raise
        raise RuntimeError(last_error)

    def _spawn(self) -> None:
        nofile = self._nofile

        def limits() -> None:  # in the child, before exec
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, max(hard, nofile)))

        log_pos = self.log_path.stat().st_size if self.log_path.exists() else 0
        out = open(self.stdout_path, "ab")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=limits,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            out.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + 30
        error = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                error = f"dovecot exited with {self._proc.returncode}"
                break
            if self._greeting_ok():
                pid_file = self.base_dir / "master.pid"
                with contextlib.suppress(OSError, ValueError):
                    self.pid = int(pid_file.read_text().split()[0])
                if self.pid != self._proc.pid:
                    error = f"master.pid {self.pid} is not our child {self._proc.pid}"
                    break
                return
            time.sleep(0.05)
        else:
            error = "no IMAP greeting within 30 s"
        tail = self.log_tail(log_pos)
        self.stop()
        raise RuntimeError(f"{error}\n{tail}")

    def _greeting_ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.imap_port), timeout=2) as s:
                return s.recv(512).startswith(b"* OK")
        except OSError:
            return False

    def log_tail(self, since: int = 0, max_bytes: int = 4000) -> str:
        parts = []
        for path, pos in ((self.stdout_path, 0), (self.log_path, since)):
            if path.exists():
                with open(path, "rb") as f:
                    f.seek(max(pos, path.stat().st_size - max_bytes))
                    parts.append(f"--- {path}\n" + f.read().decode(errors="replace"))
        return "\n".join(parts)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to our master, wait, SIGKILL after ``timeout`` (then SIGKILL any of its
        descendants still alive, by PID). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        tree = [p for p in _descendants(proc.pid) if p != proc.pid] if proc.poll() is None else []
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        # the master kills its children on SIGTERM (shutdown_clients = yes); after a
        # SIGKILL, or a slow exit, finish the ones we saw, by PID, still our own
        deadline = time.monotonic() + 5
        alive = tree
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if (_read_stat(p) or ["Z"])[0] != "Z"]
            if alive:
                time.sleep(0.05)
        for p in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self._proc = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- measurements and tools
    def cpu(self) -> float:
        return tree_cpu(self.pid)

    def pss_kib(self) -> int:
        return tree_pss_kib(self.pid)

    def nondefault_settings(self) -> dict[str, str]:
        """``doveconf -n`` of our config, flattened like ``settings()`` keys."""
        text = subprocess.run(
            ["doveconf", "-c", str(self.conf_path), "-n", "-P"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        out: dict[str, str] = {}
        stack: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("{"):
                stack.append(line[:-1].strip())
            elif line == "}":
                stack.pop()
            else:
                key, _, value = line.partition("=")
                if value.strip():  # doveconf -n also prints some empty defaults
                    out["/".join([*stack, key.strip()])] = value.strip()
        return out

    def doveadm(self, *args: str, timeout: float = 120) -> str:
        """Run ``doveadm -c <our conf> ARGS`` and return its stdout."""
        r = subprocess.run(
            ["doveadm", "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
        return r.stdout


# --- self-check -----------------------------------------------------------------------
def _hash(password: str) -> str:
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from carteiro.auth.passwords import hash_password

        return hash_password(password)
    except ImportError:
        from argon2 import PasswordHasher

        return PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(password)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1, made the way
    Carteiro makes its own on first start."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from carteiro.net.tls import generate_self_signed

    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    generate_self_signed("localhost", cert_path, key_path)
    return cert_path, key_path


def _sample_message(user: str, seq: int, body_bytes: int = 600) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog, again and again. 0123456789\r\n"
    body = line * max(1, body_bytes // len(line))
    head = (
        f"From: Sender {seq} <sender{seq}@example.net>\r\nTo: {user}\r\n"
        f"Subject: message {seq} for {user}\r\n"
        f"Date: Mon, 4 Mar 2024 10:{seq % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{seq}.{user}@bench.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    return head.encode() + body


_FETCH_RE = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]+)\"|RFC822\.SIZE (\d+)")


def _check_fetch(m: imaplib.IMAP4, expected: list[tuple[bytes, frozenset[str], float]]) -> None:
    typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    got = [d for d in data if isinstance(d, tuple)]
    assert len(got) == len(expected), (len(got), len(expected))
    for (meta, body), (raw, flags, date) in zip(got, expected, strict=True):
        found: dict[str, bytes] = {}
        for mt in _FETCH_RE.finditer(meta):
            for name, val in zip(("uid", "flags", "date", "size"), mt.groups(), strict=True):
                if val is not None:
                    found[name] = val
        got_flags = frozenset(found["flags"].decode().split()) - {"\\Recent"}
        assert got_flags == flags, (got_flags, flags)
        got_date = datetime.datetime.strptime(found["date"].decode(), "%d-%b-%Y %H:%M:%S %z")
        assert int(got_date.timestamp()) == int(date), (got_date, date)
        assert int(found["size"]) == len(raw), (found["size"], len(raw))
        assert body == raw, "BODY[] differs"


class _RawSession:
    """A minimal blocking IMAP client for the many-sessions check."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        assert self._line().startswith(b"* OK")

    def _line(self) -> bytes:
        for _ in range(10_000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2 :]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        raise ConnectionError("line too long")

    def command(self, tag: str, text: str) -> bytes:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        for _ in range(100_000):
            line = self._line()
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return line
        raise RuntimeError("no tagged reply")

    def idle(self) -> None:
        self.sock.sendall(b"i IDLE\r\n")
        for _ in range(100):
            if self._line().startswith(b"+"):
                return
        raise RuntimeError("no IDLE continuation")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _our_pids_alive(pids: Iterable[int]) -> list[int]:
    return [p for p in pids if (_read_stat(p) or ["Z"])[0] != "Z"]


def selftest(messages: int = 100_000, sessions: int = 300, keep: bool = False) -> None:
    t_all = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="dovecot-selftest-", dir="/tmp"))
    os.chmod(root, 0o755)  # the mail user must reach root/dv/home
    print(f"root {root}")
    users = [("alice@example.org", "alice-pw-1"), ("bob@example.org", "bob-pw-2")]
    t0 = time.monotonic()
    dusers = [DovecotUser(name, _hash(pw)) for name, pw in users]
    print(f"hashed 2 passwords in {time.monotonic() - t0:.2f} s")
    cert, key = _self_signed(root)
    dv = Dovecot(root / "dv", dusers, tls_cert=cert, tls_key=key, max_sessions=sessions)
    base = 1_600_000_000.0
    flag_sets = [frozenset({"\\Seen"}), frozenset({"\\Flagged", "$Forwarded", "Work"}), frozenset()]
    written: dict[str, list[tuple[bytes, frozenset[str], float]]] = {}
    for n, (name, _pw) in enumerate(users):
        msgs = [(_sample_message(name, i), flag_sets[i], base + 86_400 * i + n) for i in range(3)]
        write_maildir(dv.maildir(name), msgs)
        written[name] = msgs
    folder_msgs = [
        (_sample_message("alice", 10), frozenset({"\\Answered", "\\Seen"}), base),
        (_sample_message("alice", 11), frozenset({"\\Draft", "Later"}), base + 7),
    ]
    write_maildir(dv.maildir(users[0][0]), folder_msgs, folder="Lists/Dev")
    try:
        dv.start()
        print(
            f"started: pid {dv.pid}, imap {dv.imap_port}, imaps {dv.imaps_port}, "
            f"lmtp {dv.lmtp_port}"
        )
        for k, v in dv.settings().items():
            print(f"  {k} = {v}")
        # -- every setting doveconf -n reports as non-default is in settings()
        listed = dv.settings()
        for k, v in dv.nondefault_settings().items():
            assert listed.get(k) == v, f"doveconf -n has {k} = {v}, settings() {listed.get(k)}"
        # -- IMAP: capabilities, FETCH of what was written
        for name, pw in users:
            m = imaplib.IMAP4("127.0.0.1", dv.imap_port, timeout=30)
            m.login(name, pw)
            typ, caps = m.capability()
            capset = set(caps[0].decode().upper().split())
            for need in ("IDLE", "UIDPLUS", "CONDSTORE", "QRESYNC", "LITERAL+", "SPECIAL-USE"):
                assert need in capset, f"{need} not in {sorted(capset)}"
            typ, data = m.select("INBOX")
            assert typ == "OK" and int(data[0]) == 3, data
            _check_fetch(m, written[name])
            typ, listing = m.list()
            names = b"\n".join(listing)
            for mbox, use in SPECIAL_MAILBOXES.items():
                assert mbox.encode() in names and use.encode() in names, (mbox, listing)
            if name == users[0][0]:
                typ, data = m.select("Lists.Dev")
                assert typ == "OK" and int(data[0]) == 2, data
                _check_fetch(m, folder_msgs)
            m.logout()
        print("IMAP: CAPABILITY, FLAGS/keywords, INTERNALDATE, RFC822.SIZE, BODY[] ok")
        # -- doveadm against our config
        out = dv.doveadm("mailbox", "status", "-u", users[0][0], "all", "INBOX")
        assert "messages=3" in out, out
        print(f"doveadm mailbox status: {out.strip()}")
        # -- LMTP delivery, seen over IMAP
        lmtp_msg = _sample_message(users[1][0], 99)
        with smtplib.LMTP("127.0.0.1", dv.lmtp_port, timeout=30) as lm:
            refused = lm.sendmail("sender@example.net", [users[1][0]], lmtp_msg)
            assert not refused, refused
        m = imaplib.IMAP4("127.0.0.1", dv.imap_port, timeout=30)
        m.login(*users[1])
        typ, data = m.select("INBOX")
        assert int(data[0]) == 4, data
        typ, data = m.fetch("4", "(BODY.PEEK[])")
        assert lmtp_msg.split(b"\r\n\r\n", 1)[1] in data[0][1], "LMTP body not found"
        m.logout()
        print("LMTP delivery seen over IMAP ok")
        # -- imaps with the given certificate
        ctx = ssl.create_default_context(cafile=str(cert))
        m = imaplib.IMAP4_SSL("127.0.0.1", dv.imaps_port, ssl_context=ctx, timeout=30)
        m.login(*users[0])
        assert m.select("INBOX")[0] == "OK"
        m.logout()
        print("IMAPS with the given certificate ok")
        # -- many sessions in IDLE
        time.sleep(1)
        pss0, cpu0 = dv.pss_kib(), dv.cpu()
        opened: list[_RawSession] = []

        def open_one(i: int) -> _RawSession:
            name, pw = users[i % 2]
            s = _RawSession(dv.imap_port)
            s.command("a", f'LOGIN "{name}" "{pw}"')
            s.command("b", "SELECT INBOX")
            s.idle()
            return s

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            opened = list(pool.map(open_one, range(sessions)))
        t_open = time.monotonic() - t0
        time.sleep(2)
        pss1, cpu1 = dv.pss_kib(), dv.cpu()
        nproc = len(_descendants(dv.pid))
        print(
            f"{sessions} IDLE sessions opened in {t_open:.1f} s "
            f"({sessions / t_open:.0f} logins/s, argon2 per LOGIN); {nproc} processes"
        )
        print(
            f"tree PSS {pss0 / 1024:.1f} MiB idle -> {pss1 / 1024:.1f} MiB with sessions: "
            f"{(pss1 - pss0) / sessions:.0f} KiB per session; tree CPU "
            f"{cpu0:.2f} -> {cpu1:.2f} s ({(cpu1 - cpu0) / sessions * 1000:.1f} ms/session)"
        )
        # the last session (beyond the kernel's default 128 inotify instances per uid)
        # hears an LMTP delivery at once
        last = opened[-1]
        name = users[(sessions - 1) % 2][0]
        t0 = time.monotonic()
        with smtplib.LMTP("127.0.0.1", dv.lmtp_port, timeout=30) as lm:
            lm.sendmail("sender@example.net", [name], _sample_message(name, 100))
        last.sock.settimeout(10)
        for _ in range(100):
            if last._line().endswith(b"EXISTS"):
                break
        print(f"IDLE session #{sessions} saw EXISTS {time.monotonic() - t0:.2f} s after LMTP")
        pids = _descendants(dv.pid)
        for s in opened:
            s.close()
    finally:
        dv.stop()
    ports = [dv.imap_port, dv.imaps_port, dv.lmtp_port]
    left = _our_pids_alive(pids)
    assert not left, f"processes left: {left}"
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
    assert dv.stop() is None  # idempotent
    print(f"stopped: none of {len(pids)} processes left, ports closed")
    if messages:
        _big(root / "big", messages)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"selftest ok in {time.monotonic() - t_all:.0f} s")


def _big(root: Path, count: int) -> None:
    """Time write_maildir of ``count`` ~8 KB messages and the first SELECT on them."""
    name, pw = "big@example.org", "big-pw-3"
    dv = Dovecot(root, [DovecotUser(name, _hash(pw))], lmtp=False, max_sessions=10)
    templates = [_sample_message(name, i, 7_600 + 40 * (i % 20)) for i in range(100)]
    flagsets = [frozenset({"\\Seen"})] * 30 + [
        frozenset({"\\Seen", "\\Answered"}),
        frozenset({"\\Flagged"}),
        frozenset(),
    ]
    base = 1_600_000_000.0

    def gen() -> Iterable[tuple[bytes, frozenset[str], float]]:
        for i in range(count):
            yield (
                b"X-Bench-Seq: %d\r\n" % i + templates[i % 100],
                flagsets[i % len(flagsets)],
                base + 900 * i,
            )

    t0 = time.monotonic()
    n_gen = sum(1 for _ in gen())
    t_gen = time.monotonic() - t0
    t0 = time.monotonic()
    write_maildir(dv.maildir(name), gen())
    t_write = time.monotonic() - t0 - t_gen
    size = sum(len(templates[i % 100]) + 20 for i in range(count))
    print(
        f"write_maildir: {n_gen} messages ({size / 1e6:.0f} MB) in {t_write:.1f} s "
        f"= {n_gen / t_write:.0f} messages/s (message generation {t_gen:.2f} s excluded)"
    )
    try:
        t0 = time.monotonic()
        dv.start()
        print(f"start (incl. chown of the Maildir) {time.monotonic() - t0:.1f} s")
        m = imaplib.IMAP4("127.0.0.1", dv.imap_port, timeout=600)
        m.login(name, pw)
        times = []
        for _ in range(3):
            cpu0 = dv.cpu()
            t0 = time.monotonic()
            typ, data = m.select("INBOX")
            times.append((time.monotonic() - t0, dv.cpu() - cpu0))
            assert typ == "OK" and int(data[0]) == count, data
            m.close()
        print(
            f"first SELECT INBOX ({count} messages, index built): {times[0][0]:.2f} s "
            f"wall, {times[0][1]:.2f} s CPU; then {times[1][0] * 1000:.0f} ms, "
            f"{times[2][0] * 1000:.0f} ms"
        )
        m.select("INBOX")
        for uid in (1, count // 2, count):  # UIDs follow the order messages were given
            typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (X-Bench-Seq)])")
            assert typ == "OK" and b"X-Bench-Seq: %d\r\n" % (uid - 1) in data[0][1], data
        m.logout()
    finally:
        dv.stop()
    shutil.rmtree(root, ignore_errors=True)


def _serve(root: Path, n_users: int, n_messages: int, max_sessions: int) -> None:
    users = [(f"user{i}@example.org", f"password-{i}") for i in range(n_users)]
    dv = Dovecot(root, [DovecotUser(n, _hash(p)) for n, p in users], max_sessions=max_sessions)
    for name, _pw in users:
        if not any(dv.maildir(name).glob("cur/*")):
            write_maildir(
                dv.maildir(name),
                ((_sample_message(name, i), frozenset(), time.time()) for i in range(n_messages)),
            )
    dv.start()
    print(f"pid {dv.pid} imap 127.0.0.1:{dv.imap_port} lmtp 127.0.0.1:{dv.lmtp_port}")
    print(f"doveadm -c {dv.conf_path} ...; users: " + ", ".join(f"{n} / {p}" for n, p in users))
    try:
        for _ in range(7 * 24 * 3600):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        dv.stop()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("selftest", help="functional checks and a few figures")
    st.add_argument(
        "--messages",
        type=int,
        default=100_000,
        help="size of the write_maildir / first SELECT check (0 = skip)",
    )
    st.add_argument("--sessions", type=int, default=300)
    st.add_argument("--keep", action="store_true", help="keep the temporary root")
    sv = sub.add_parser("serve", help="start an instance and wait for ^C")
    sv.add_argument("--root", type=Path, required=True)
    sv.add_argument("--users", type=int, default=2)
    sv.add_argument("--messages", type=int, default=10)
    sv.add_argument("--max-sessions", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        selftest(args.messages, args.sessions, args.keep)
    else:
        _serve(args.root, args.users, args.messages, args.max_sessions)


if __name__ == "__main__":
    main()
