"""``carteiro queue list|flush|delete``: look at and act on the outbound queue.

The commands only change the store; a running server sees a flush the next time its
queue runner polls (``[queue] poll_interval``, 5 seconds by default).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from carteiro.cli.errors import EXIT_USAGE, fail
from carteiro.cli.main import (
    CONTEXT,
    cli,
    common_options,
    human_size,
    load,
    require_database,
    with_store,
)
from carteiro.store.errors import NotFound
from carteiro.store.interface import QueuedMessage, Store

__all__ = ["describe", "queue"]


def _age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 5m``, ``2d 4h``."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _when(at: float, now: float) -> str:
    if at <= now:
        return "now"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    return f"in {_age(at - now)} ({stamp})"


def describe(msg: QueuedMessage, now: float) -> list[str]:
    """The lines of ``carteiro queue list`` for one message."""
    sender = f"<{msg.sender}>" if msg.sender else "<> (a bounce)"
    head = f"{msg.id}  age {_age(now - msg.created)}  {human_size(msg.size)}  from {sender}"
    if msg.account:
        head += f"  (account {msg.account})"
    lines = [head]
    for r in msg.recipients:
        line = f"    <{r.address}>  {r.state}, {r.attempts} attempt{'' if r.attempts == 1 else 's'}"
        if r.state == "queued":
            line += f", next {_when(r.next_attempt, now)}"
        lines.append(line)
        if r.last_error:
            lines.append(f"        last error: {' '.join(r.last_error.split())}")
    return lines


@cli.group(context_settings=CONTEXT, no_args_is_help=True)
def queue() -> None:
    """The outbound mail queue."""


@queue.command("list", context_settings=CONTEXT)
@common_options
def queue_list(data_dir: Path | None, config: Path | None) -> None:
    """Every queued message with its recipients: state, attempts, next attempt, last error."""
    settings = load(data_dir, config)
    require_database(settings)

    async def listing(store: Store) -> list[QueuedMessage]:
        return await store.queue_list()

    messages = with_store(settings, listing)
    if not messages:
        click.echo("queue is empty")
        return
    now = time.time()
    for msg in messages:
        for line in describe(msg, now):
            click.echo(line)


@queue.command("flush", context_settings=CONTEXT)
@click.argument("message_id", metavar="[ID]", type=int, required=False)
@common_options
def queue_flush(message_id: int | None, data_dir: Path | None, config: Path | None) -> None:
    """Retry now: every queued message, or the one with this ID."""
    settings = load(data_dir, config)
    require_database(settings)

    async def flush(store: Store) -> int:
        if message_id is not None and await store.queue_get(message_id) is None:
            _unknown(message_id)
        return await store.queue_flush(message_id)

    count = with_store(settings, flush)
    noun = "recipient" if count == 1 else "recipients"
    click.echo(f"{count} {noun} due now; a running server retries within seconds")


@queue.command("delete", context_settings=CONTEXT)
@click.argument("message_id", metavar="ID", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
def queue_delete(message_id: int, yes: bool, data_dir: Path | None, config: Path | None) -> None:
    """Drop message ID from the queue, without a bounce to its sender."""
    settings = load(data_dir, config)
    require_database(settings)
    if not yes:
        if not sys.stdin.isatty():
            fail(
                f"not deleting queued message {message_id} without confirmation; add --yes",
                EXIT_USAGE,
            )
        click.confirm(
            f"Delete queued message {message_id} without notifying its sender?", abort=True
        )

    async def delete(store: Store) -> None:
        try:
            await store.queue_delete(message_id)
        except NotFound:
            _unknown(message_id)

    with_store(settings, delete)
    click.echo(f"deleted queued message {message_id}")


def _unknown(message_id: int) -> NoReturn:
    fail(f"there is no queued message {message_id}; 'carteiro queue list' shows them")
