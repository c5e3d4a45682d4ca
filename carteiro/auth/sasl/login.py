"""LOGIN (draft-murchison-sasl-login): the username and the password, each answering a
challenge.  Obsolete but still the only mechanism some clients (Outlook, old phones)
offer; like PLAIN it is cleartext and offered only over TLS.

The challenges are the customary ``Username:`` and ``Password:``; clients ignore
their text.  An initial response is the username (draft §2).
"""

from __future__ import annotations

from carteiro.auth.sasl.base import Mechanism, decode_field, password_outcome
from carteiro.auth.sasl.events import Challenge, CheckPassword, Event, Failure, Verdict

__all__ = ["Login"]

USERNAME_PROMPT = b"Username:"
PASSWORD_PROMPT = b"Password:"


class Login(Mechanism):
    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def _start(self, initial: bytes | None) -> Event:
        if not initial:
            return Challenge(USERNAME_PROMPT)
        return self._respond(initial)

    def _respond(self, data: bytes) -> Event:
        if self._username is None:
            username = decode_field(data, "username")
            if isinstance(username, Failure):
                return username
            self._username = username
            return Challenge(PASSWORD_PROMPT)
        password = decode_field(data, "password")
        if isinstance(password, Failure):
            return password
        return CheckPassword(authcid=self._username, password=password, authzid="")

    def _resolve(self, verdict: Verdict) -> Event:
        assert self._username is not None
        return password_outcome(verdict, self.name, self._username, "")
