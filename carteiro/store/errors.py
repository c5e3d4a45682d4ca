"""Storage errors. They know nothing of IMAP; ``imap/errors.py`` maps them to response codes."""


class StoreError(Exception):
    """Base class; anything else escaping a store is a server fault."""


class NotFound(StoreError):
    """The account, mailbox or message does not exist (any more)."""


class AlreadyExists(StoreError):
    """A mailbox or account with that name exists."""


class HasChildren(StoreError):
    """The operation is not allowed on a mailbox with inferior mailboxes."""


class InvalidName(StoreError):
    """A mailbox name the store cannot hold (empty level, reserved, too long)."""


class NotAllowed(StoreError):
    """The operation is refused for this object (e.g. deleting INBOX)."""


class QuotaExceeded(StoreError):
    """Storing would exceed a limit (message size, quota)."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or used: a corrupt or foreign file, no permission."""
