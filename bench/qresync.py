"""QRESYNC reconnect benchmark (issue 3 target): a client that knows a mailbox's
HIGHESTMODSEQ reconnects to a 100,000-message INBOX after 100 changes made elsewhere
(80 flag changes, 20 expunges) and must get only those: < 50 ms, < 20 KB.

    .venv/bin/python bench/qresync.py [--messages 100000] [--changes 100]

Uses the populated-data cache of bench/imap_core.py and a real `carteiro serve`.
"""

from __future__ import annotations

import argparse
import random
import re
import time

from common import Imap, ServerProcess, ensure_populated, fresh_copy, median


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=100)
    args = ap.parse_args()
    n, changes = args.messages, args.changes
    pristine, _ = ensure_populated(n)
    server = ServerProcess(fresh_copy(pristine))
    rows: list[tuple[str, str, str, bool | None]] = []
    try:
        a = Imap(server.port)
        a.login()
        a.ok(b"ENABLE QRESYNC")
        sel = a.ok(b"SELECT INBOX").data
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", sel)[1])
        known = int(re.search(rb"HIGHESTMODSEQ (\d+)", sel)[1])
        a.close()

        rng = random.Random(7)
        b = Imap(server.port)
        b.login()
        b.ok(b"SELECT INBOX")
        picked = rng.sample(range(1, n + 1), changes)
        flips, gone = picked[: changes * 4 // 5], sorted(picked[changes * 4 // 5 :])
        for uid in flips:
            b.ok(b"UID STORE %d +FLAGS.SILENT (\\Flagged)" % uid)
        for uid in gone:
            b.ok(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid)
        b.ok(b"UID EXPUNGE " + b",".join(b"%d" % u for u in gone))
        b.close()

        times, sizes = [], []
        for _ in range(5):
            c = Imap(server.port)
            c.login()
            c.ok(b"ENABLE QRESYNC")
            r = c.ok(b"SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, known))
            times.append(r.seconds)
            sizes.append(r.nbytes)
            fetched = r.data.count(b" FETCH (")
            vanished = re.search(rb"VANISHED \(EARLIER\) ([\d:,]+)", r.data)
            c.ok(b"UNSELECT")
            t0 = time.perf_counter()
            plain = c.ok(b"SELECT INBOX")
            plain_s = time.perf_counter() - t0
            c.close()
        assert 0 < fetched <= len(flips), fetched  # some were \\Flagged already
        assert vanished is not None
        t, size = median(times), median(sizes)
        rows.append(
            (
                f"SELECT (QRESYNC) after {changes} changes, {n:,} msgs (median of 5)",
                f"{t * 1000:.1f} ms",
                "< 50 ms",
                t < 0.050,
            )
        )
        rows.append(
            (
                "  bytes the server sent for it",
                f"{size:,} B  ({fetched} FETCH, VANISHED {vanished[1].decode()})",
                "< 20 KB",
                size < 20_000,
            )
        )
        rows.append(
            (
                "  for comparison: plain SELECT",
                f"{plain_s * 1000:.1f} ms, {plain.nbytes:,} B",
                "",
                None,
            )
        )
    finally:
        server.stop()
    width = max(len(r[0]) for r in rows)
    for metric, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{metric:<{width}}  {value:<48} {target:<8} {verdict}")
    return 0 if all(r[3] is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
