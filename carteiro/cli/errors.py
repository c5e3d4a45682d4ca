"""How the CLI reports errors: one line on stderr, ``carteiro: error: <what is wrong>.
<what to do>``, exit code 1 (2 for usage errors), never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "CliError", "fail", "print_error"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """Raised by :func:`fail`; :func:`carteiro.cli.main.main` prints it and exits."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def fail(message: str, exit_code: int = EXIT_FAILURE) -> NoReturn:
    """Stops the command with ``message`` ("what is wrong. What to do.")."""
    raise CliError(message, exit_code)


def print_error(message: str) -> None:
    """Writes the one-line error, flattening any line breaks in ``message``."""
    line = " ".join(message.split())
    if line and line[-1] not in ".!?":
        line += "."
    sys.stderr.write(f"carteiro: error: {line}\n")
    sys.stderr.flush()
