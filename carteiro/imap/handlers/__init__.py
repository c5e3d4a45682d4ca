"""Importing this package registers every command handler in ``base.TABLE``."""

from carteiro.imap.handlers import (  # noqa: F401
    append,
    auth,
    copy_move,
    fetch,
    general,
    idle,
    mailboxes,
    notify,
    quota,
    replace,
    search,
    select,
    store_flags,
)
