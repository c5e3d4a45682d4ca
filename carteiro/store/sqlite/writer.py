"""The writer thread (group commit) and the reader pool of the SQLite store.

All SQL runs off the event loop. Writes are queued to one thread that owns the only
write connection; it takes a queued operation, drains up to ``MAX_BATCH - 1`` others
already waiting, runs each inside its own SAVEPOINT (a failing operation is rolled back
alone), commits once and then resolves every caller's future on its event loop. Reads
run on a small pool of threads, each with its own connection; WAL lets them proceed
while the writer writes.

Background work (the full-text index) runs on the same thread once no operation has
come for ``IDLE_DELAY``: the ``idle`` hook gets short transactions of its own, committed
without an fsync (``synchronous = NORMAL``: a power cut may lose such a commit but
never corrupts the database, and the work is then simply done again). Operations
always go first; one waits at most for one short background transaction.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from carteiro.store.sqlite.schema import BUSY_TIMEOUT_MS, WAL_SIZE_LIMIT, configure, migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 256
#: seconds between background WAL checkpoints (SQLite's automatic ones are off)
CHECKPOINT_INTERVAL = 0.5
#: log size (frames of 4 KiB pages) past which the writer makes the log start over: the
#: size the file is cut back to then (passive checkpoints alone never get a moment
#: without readers on a busy server)
WAL_HIGH_WATER_FRAMES = WAL_SIZE_LIMIT // 4096
#: how long that checkpoint may hold new commits back while it waits for readers (ms)
RESTART_WAIT_MS = 100
#: after a RESTART that the readers outlasted, the next waits this long, doubling up to
#: RESTART_BACKOFF_MAX (seconds): a long read (a big FETCH) must not hold commits back
#: for RESTART_WAIT_MS at every checkpoint for as long as it lasts
RESTART_BACKOFF = 0.5
RESTART_BACKOFF_MAX = 4.0
#: background work waits until no operation has come for this long (seconds), so a
#: burst of writes (an APPEND storm, a big delivery) never waits behind it
IDLE_DELAY = 0.05

#: (account_id, mailbox_id or None) pairs to notify after commit
Events = set[tuple[int, int | None]]


@dataclass(slots=True)
class _Op(Generic[T]):
    fn: Callable[[sqlite3.Connection, Events], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    events: Events = field(default_factory=set)


def _connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    configure(conn, writer=writer)
    return conn


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # cancelled while we worked
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


class Writer:
    """One thread, one connection, group commit."""

    def __init__(
        self,
        path: Path,
        on_commit: Callable[[Events], None],
        max_batch: int = MAX_BATCH,
        idle: Callable[[sqlite3.Connection], bool] | None = None,
    ) -> None:
        """``idle(conn)``: a bounded step of background work, run inside a transaction
        when no operation has come for IDLE_DELAY; returns whether work remains."""
        self._path = path
        self._on_commit = on_commit
        self._idle = idle
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Op[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        #: set by the checkpointer once the log is past its high-water mark
        self._restart_due = False
        self._restart_backoff = 0.0  # seconds; 0 after a RESTART that completed
        self._restart_not_before = 0.0  # monotonic time of the next allowed attempt
        self.restarts = 0  # RESTART checkpoints that completed (statistics)
        self.restarts_refused = 0  # ... that readers outlasted
        self.batches = 0  # statistics, for benchmarks and tests
        self.ops = 0

    def start(self) -> None:
        """Opens the connection and migrates the schema (blocking: call from a thread)."""
        self._thread = threading.Thread(target=self._main, name="carteiro-sqlite-writer")
        self._thread.daemon = True
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def stop(self) -> None:
        """Finishes queued work and closes the connection (blocking)."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    async def submit(self, fn: Callable[[sqlite3.Connection, Events], T]) -> T:
        if self._thread is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, loop, fut))
        return await fut

    # --- thread side ---------------------------------------------------------------
    def _main(self) -> None:
        try:
            conn = _connect(self._path, writer=True)
            migrate(conn)
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        # checkpoints off the commit path: the writer only appends to the WAL
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        ckpt_stop = threading.Event()
        ckpt = threading.Thread(
            target=self._checkpointer, args=(ckpt_stop,), name="carteiro-sqlite-ckpt", daemon=True
        )
        ckpt.start()
        try:
            stop = False
            busy = self._idle is not None  # resume background work left at the last stop
            last = 0.0  # when the last batch ended
            while not stop:
                if busy:
                    wait = last + IDLE_DELAY - time.monotonic()
                    try:
                        first = (
                            self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        if wait <= 0:
                            busy = self._idle_step(conn)
                            if self._restart_due:
                                self._restart_log(conn)
                        continue
                else:
                    first = self._queue.get()
                if first is None:
                    break
                busy = self._idle is not None  # this batch may have queued some
                batch: list[_Op[Any]] = [first]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                try:
                    self._run_batch(conn, batch)
                except BaseException as exc:  # never let the writer die with callers waiting
                    log.exception("sqlite store: writer failure")
                    self._rollback(conn)
                    for op in batch:
                        _resolve(op, None, exc)
                last = time.monotonic()
                if self._restart_due:
                    self._restart_log(conn)
        finally:
            ckpt_stop.set()
            ckpt.join()
            conn.close()
            closed = RuntimeError("store closed")
            while True:  # submitted while closing: fail rather than hang
                try:
                    late = self._queue.get_nowait()
                except queue.Empty:
                    break
                if late is not None:
                    _resolve(late, None, closed)

    def _checkpointer(self, stop: threading.Event) -> None:
        """Copies WAL frames into the database every CHECKPOINT_INTERVAL seconds on its own
        connection, so that no commit waits for a checkpoint (PASSIVE never blocks the
        writer or the readers; the last close still checkpoints fully).

        A passive checkpoint copies the log but never makes it start over: the next
        commit restarts the log only if no reader is inside it at that moment, which on
        a busy server never happens (the mixed benchmark grew it by 2.7 GB in 2.5
        minutes, and every page lookup walks the log's index). Past
        WAL_HIGH_WATER_FRAMES this thread asks the writer for a RESTART checkpoint
        (see :meth:`_restart_log`)."""
        conn = _connect(self._path, writer=False)
        try:
            while not stop.wait(CHECKPOINT_INTERVAL):
                try:
                    _busy, frames, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                except sqlite3.Error:
                    log.exception("sqlite store: checkpoint failed")
                    continue
                if frames >= WAL_HIGH_WATER_FRAMES and time.monotonic() >= self._restart_not_before:
                    self._restart_due = True
        finally:
            conn.close()

    def _restart_log(self, conn: sqlite3.Connection) -> None:
        """Writer thread, between transactions: a RESTART checkpoint waits up to
        RESTART_WAIT_MS for the readers to leave the log (new commits wait meanwhile:
        this thread is the one that would make them), so that the next commit writes
        the log from its start and ``journal_size_limit`` cuts the file back. Run here
        rather than on the checkpointer's connection, which would have to win the write
        lock from a writer that takes it back after every batch. If the readers do not
        leave in time it is asked for again later, after a back-off that doubles."""
        self._restart_due = False
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
        except sqlite3.Error:
            log.exception("sqlite store: checkpoint failed")
            busy = 1
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if busy:
            self.restarts_refused += 1
            self._restart_backoff = min(
                RESTART_BACKOFF_MAX, max(RESTART_BACKOFF, 2 * self._restart_backoff)
            )
            self._restart_not_before = time.monotonic() + self._restart_backoff
        else:
            self._restart_backoff = 0.0
            self.restarts += 1

    def _idle_step(self, conn: sqlite3.Connection) -> bool:
        assert self._idle is not None
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            more = self._idle(conn)
            conn.execute("COMMIT")
            return more
        except Exception:
            log.exception("sqlite store: background work failed")
            self._rollback(conn)
            return False  # retried after the next batch, never in a hot loop
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("sqlite store: rollback failed")

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op[Any]]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        for op in batch:
            if op.future.cancelled():  # racy read, but only ever skips useless work
                outcomes.append((None, asyncio.CancelledError()))
                continue
            conn.execute("SAVEPOINT op")
            try:
                result = op.fn(conn, op.events)
            except Exception as exc:
                if not conn.in_transaction:  # SQLite rolled the whole transaction back
                    raise
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                op.events.clear()
                outcomes.append((None, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((result, None))
        conn.execute("COMMIT")
        self.batches += 1
        self.ops += len(batch)
        # listeners are scheduled before the callers resume: once a change's coroutine
        # returns, every listener has already been told about it
        events: Events = set()
        for op in batch:
            events |= op.events
        if events:
            try:
                self._on_commit(events)
            except Exception:
                log.exception("sqlite store: posting notifications failed")
        for op, (result, error) in zip(batch, outcomes, strict=True):
            _resolve(op, result, error)


def _resolve(op: _Op[Any], result: Any, exc: BaseException | None) -> None:
    """Thread side: settles the caller's future on its own loop."""
    try:
        op.loop.call_soon_threadsafe(_settle, op.future, result, exc)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting
        pass


class Readers:
    """A small pool of reader threads, each with its own read-only connection."""

    def __init__(self, path: Path, size: int = 4) -> None:
        self._path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="carteiro-sqlite-r")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path, writer=False)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for all statements of the read
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    def run_here(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs a read on the calling thread (the event loop's), on that thread's own
        connection. For point lookups of a few rows: tens of microseconds, where a hop
        to a reader thread and back costs more CPU than the query and, under load, waits
        for the GIL. A WAL reader never waits for the writer."""
        return self._call(fn)

    def close(self) -> None:
        """Blocking: waits for running reads, then closes every connection."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
