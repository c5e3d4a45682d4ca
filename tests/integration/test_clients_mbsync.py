"""mbsync (isync 1.4) against the real server: a full two-way sync between the server and
a local Maildir, over STARTTLS and implicit TLS, checked message by message and flag by
flag on both sides.

mbsync keeps messages in Maildir with LF line ends; it turns CRLF into LF when it pulls
and LF into CRLF when it pushes, so a pulled file must equal the original with CRLF
replaced by LF, and a pushed message must equal the local file with LF replaced by CRLF.

mbsync 1.4 also inserts an ``X-TUID`` header at the end of the header of every message it
copies, in both directions; it is removed before comparing (see ``untuid``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import ServerThread
from tests.integration.mbox import sample_messages, simple

pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which("mbsync") is None, reason="mbsync (isync) not installed"),
]

#: the commands mbsync sends when it changes something on the server
WRITES = re.compile(rb">>> \d+ (APPEND|UID STORE|STORE|EXPUNGE|UID EXPUNGE|CREATE|DELETE|RENAME) ")


class Mbsync:
    """One local Maildir tree synchronised with one account by mbsync."""

    def __init__(
        self,
        server: ServerThread,
        user: str,
        tmp: Path,
        ssl_type: str = "STARTTLS",
        auth: str = "LOGIN",
    ) -> None:
        self.root = tmp / "Mail"
        self.root.mkdir()
        self.rc = tmp / "mbsyncrc"
        port = server.port if ssl_type == "STARTTLS" else server.tls_port
        self.rc.write_text(
            f"""\
IMAPAccount carteiro
Host 127.0.0.1
Port {port}
User {user}
Pass secret
SSLType {ssl_type}
CertificateFile {server.cert}
AuthMechs {auth}
Timeout 30

IMAPStore remote
Account carteiro

MaildirStore local
Path {self.root}/
Inbox {self.root}/INBOX
SubFolders Verbatim

Channel carteiro
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
        )

    def run(self, *flags: str) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(  # noqa: S603
            ["mbsync", *flags, "-c", str(self.rc), "-a"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, (
            f"mbsync exited {proc.returncode}\nstdout:\n{proc.stdout.decode(errors='replace')}"
            f"\nstderr:\n{proc.stderr.decode(errors='replace')}"
        )
        return proc

    def files(self, box: str = "INBOX") -> list[Path]:
        d = self.root / box
        return sorted([*(d / "new").iterdir(), *(d / "cur").iterdir()])

    def find(self, needle: bytes, box: str = "INBOX") -> Path:
        hits = [p for p in self.files(box) if needle in p.read_bytes()]
        assert len(hits) == 1, (needle, hits)
        return hits[0]

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the tree (Maildir messages and mbsync's state) with its content."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
        }


def maildir_flags(path: Path) -> str:
    name = path.name
    return name.split(":2,", 1)[1] if ":2," in name else ""


def set_flags(path: Path, flags: str) -> Path:
    """What a MUA does to change a message's flags: move it to cur/ with a new info part."""
    base = path.name.split(":2,", 1)[0]
    new = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
    path.rename(new)
    return new


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def untuid(raw: bytes) -> bytes:
    """``raw`` without the ``X-TUID`` header line mbsync 1.4 adds to every message it
    copies, in either direction (its crash-recovery tag, inserted last in the header)."""
    nl = b"\r\n" if b"\r\n" in raw else b"\n"
    head, sep, body = raw.partition(nl + nl)
    stripped = re.sub(rb"%sX-TUID: [A-Za-z0-9+/]{12}$" % nl, b"", head)
    assert stripped != head, f"no X-TUID header in {head!r}"
    return stripped + sep + body


def local(path: Path) -> bytes:
    """A Maildir file's bytes as the message was before mbsync copied it."""
    return untuid(path.read_bytes())


def server_messages(server: ServerThread, user: str, box: str = "INBOX") -> dict[int, tuple]:
    """UID -> (flags, bytes) of every message in ``box``, read with imaplib."""
    conn = server.connect(user)
    typ, _ = conn.select(box, readonly=True)
    assert typ == "OK"
    typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK", data
    out = {}
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()
            out[uid] = (set(flags), item[1])
    conn.logout()
    return out


def status(server: ServerThread, user: str) -> dict[str, bytes]:
    """STATUS (UIDVALIDITY UIDNEXT MESSAGES) of every mailbox."""
    conn = server.connect(user)
    typ, boxes = conn.list()
    assert typ == "OK"
    out = {}
    for line in boxes:
        name = line.rsplit(b" ", 1)[1].strip(b'"').decode()
        typ, data = conn.status(f'"{name}"', "(UIDVALIDITY UIDNEXT MESSAGES)")
        assert typ == "OK", data
        out[name] = data[0]
    conn.logout()
    return out


@pytest.mark.parametrize(("ssl_type", "auth"), [("STARTTLS", "LOGIN"), ("IMAPS", "PLAIN")])
def test_initial_pull_of_the_sample_mailbox_is_byte_exact(
    server: ServerThread, user: str, tmp_path: Path, ssl_type: str, auth: str
) -> None:
    msgs = sample_messages()
    for raw in msgs:
        server.deliver(user, raw)
    sync = Mbsync(server, user, tmp_path, ssl_type=ssl_type, auth=auth)
    proc = sync.run("-V")
    out = proc.stdout + proc.stderr
    assert b"Connection is now encrypted" in out
    # every mailbox of the account became a local Maildir
    for box in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert (sync.root / box / "cur").is_dir(), box
    files = sync.files()
    assert len(files) == len(msgs) == 100
    assert sorted(local(p) for p in files) == sorted(lf(m) for m in msgs)
    # mbsync names each file after the server UID it came from (",U=n" is the near-side
    # UID, but the state file pairs it with the far-side one, which must be 1..100)
    state = (sync.root / "INBOX" / ".mbsyncstate").read_text()
    far_uids = sorted(int(line.split()[0]) for line in state.splitlines() if line[:1].isdigit())
    assert far_uids == list(range(1, 101))
    assert all(maildir_flags(p) == "" for p in files)


def test_two_way_sync_pushes_new_flagged_and_deleted_messages(
    server: ServerThread, user: str, tmp_path: Path
) -> None:
    for i in range(5):
        server.deliver(user, simple(f"msg {i}"))
    server.deliver(user, simple("already seen"), flags=("\\Seen",))
    sync = Mbsync(server, user, tmp_path)
    sync.run()
    assert len(sync.files()) == 6
    assert maildir_flags(sync.find(b"Subject: already seen")) == "S"

    # a new message written by a local MUA (LF line ends, as on disk)
    local_raw = lf(simple("written locally", body="Line one.\r\nLine two.\r\n"))
    new_file = sync.root / "INBOX" / "new" / "1700000000.M1P1.testhost"
    new_file.write_bytes(local_raw)
    # flag one, mark one seen+answered, and delete one (trashed + expunged)
    set_flags(sync.find(b"Subject: msg 1"), "F")
    set_flags(sync.find(b"Subject: msg 2"), "RS")
    set_flags(sync.find(b"Subject: msg 3"), "T")
    sync.run()

    msgs = server_messages(server, user)
    by_subject = {
        re.search(rb"Subject: ([^\r\n]*)", raw).group(1).decode(): (uid, flags, raw)
        for uid, (flags, raw) in msgs.items()
    }
    assert sorted(by_subject) == [
        "already seen",
        "msg 0",
        "msg 1",
        "msg 2",
        "msg 4",
        "written locally",
    ]
    uid, flags, raw = by_subject["written locally"]
    assert untuid(raw) == local_raw.replace(b"\n", b"\r\n")
    assert uid == 7
    assert by_subject["msg 1"][1] == {"\\Flagged"}
    assert by_subject["msg 2"][1] == {"\\Answered", "\\Seen"}
    assert by_subject["msg 0"][1] == set()
    assert by_subject["already seen"][1] == {"\\Seen"}
    # the deleted message is gone on both sides, not merely marked \Deleted
    assert all("\\Deleted" not in f for f, _ in msgs.values())
    assert len(sync.files()) == 6
    assert not any(b"Subject: msg 3" in p.read_bytes() for p in sync.files())
    # the uploaded file was renamed after the UID the server gave it (UIDPLUS)
    assert not new_file.exists()
    sync.find(b"Subject: written locally")


def test_server_side_changes_are_pulled(server: ServerThread, user: str, tmp_path: Path) -> None:
    for i in range(4):
        server.deliver(user, simple(f"msg {i}"))
    sync = Mbsync(server, user, tmp_path)
    sync.run()
    assert len(sync.files()) == 4

    conn = server.connect(user)
    conn.select("INBOX")
    typ, data = conn.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    assert typ == "OK", data
    typ, data = conn.uid("STORE", "2", "+FLAGS", "(\\Flagged \\Answered)")
    assert typ == "OK", data
    typ, data = conn.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    assert typ == "OK", data
    typ, data = conn.expunge()
    assert typ == "OK", data
    for name in ("Projects", "Lists/python"):
        typ, data = conn.create(name)
        assert typ == "OK", data
    typ, data = conn.append("Projects", "(\\Seen)", None, simple("in projects"))
    assert typ == "OK", data
    typ, data = conn.append("Lists/python", None, None, simple("in lists"))
    assert typ == "OK", data
    conn.logout()
    delivered = simple("delivered later")
    server.deliver(user, delivered)

    sync.run()
    assert maildir_flags(sync.find(b"Subject: msg 0")) == "S"
    assert maildir_flags(sync.find(b"Subject: msg 1")) == "FR"
    assert maildir_flags(sync.find(b"Subject: msg 3")) == ""
    assert not any(b"Subject: msg 2" in p.read_bytes() for p in sync.files())
    assert local(sync.find(b"Subject: delivered later")) == lf(delivered)
    assert len(sync.files()) == 4
    projects = sync.files("Projects")
    assert [local(p) for p in projects] == [lf(simple("in projects"))]
    assert maildir_flags(projects[0]) == "S"
    lists = sync.files("Lists/python")
    assert [local(p) for p in lists] == [lf(simple("in lists"))]


def test_local_folder_is_created_on_the_server(
    server: ServerThread, user: str, tmp_path: Path
) -> None:
    sync = Mbsync(server, user, tmp_path)
    sync.run()
    box = sync.root / "Receipts"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    raw = lf(simple("receipt"))
    (box / "cur" / "1700000001.M2P2.testhost:2,S").write_bytes(raw)
    sync.run()
    assert "Receipts" in status(server, user)
    msgs = server_messages(server, user, "Receipts")
    [(flags, pushed)] = msgs.values()
    assert flags == {"\\Seen"}
    assert untuid(pushed) == raw.replace(b"\n", b"\r\n")


def test_second_run_changes_nothing(server: ServerThread, user: str, tmp_path: Path) -> None:
    for raw in sample_messages()[:20]:
        server.deliver(user, raw)
    server.deliver(user, simple("flagged"), flags=("\\Flagged", "\\Seen"))
    sync = Mbsync(server, user, tmp_path)
    sync.run()
    set_flags(sync.find(b"Subject: flagged"), "FRS")  # one local change for the next run
    # network debug: every command mbsync sends, as ">>> tag COMMAND ..."
    traffic = sync.run("-Dn").stdout
    assert WRITES.findall(traffic) == [b"UID STORE"], traffic.decode(errors="replace")[-4000:]

    before_local = sync.snapshot()
    before_server = status(server, user)
    before_msgs = server_messages(server, user)
    assert before_msgs[21][0] == {"\\Answered", "\\Flagged", "\\Seen"}
    traffic = sync.run("-Dn").stdout
    assert b">>> 1 STARTTLS" in traffic and b'SELECT "INBOX"' in traffic
    assert WRITES.findall(traffic) == [], traffic.decode(errors="replace")[-4000:]
    # nothing moved locally, and UIDVALIDITY / UIDNEXT / the messages are unchanged
    assert sync.snapshot() == before_local
    assert status(server, user) == before_server
    assert server_messages(server, user) == before_msgs
    # what mbsync recorded is what the server reports, so it never resyncs from scratch
    state = (sync.root / "INBOX" / ".mbsyncstate").read_text()
    header = dict(line.split(" ", 1) for line in state.split("\n\n", 1)[0].splitlines())
    values = dict(re.findall(rb"(UIDVALIDITY|UIDNEXT) (\d+)", before_server["INBOX"]))
    assert int(header["FarUidValidity"]) == int(values[b"UIDVALIDITY"])
    assert int(header["MaxPulledUid"]) == int(values[b"UIDNEXT"]) - 1 == 21
