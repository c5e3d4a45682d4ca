"""OAuth 2.0 bearer-token validation for SASL OAUTHBEARER (RFC 7628) and XOAUTH2.

Access tokens are JWTs (RFC 7519; RFC 9068 profile) signed by issuers the operator names.
They are verified locally against the issuer's JWKS rather than by asking the issuer
(RFC 7662 introspection): a login costs one signature check, not a network round trip.

Hardening follows RFC 8725: the unverified ``iss`` only *chooses* an issuer configuration,
and everything else is checked against it; the header ``alg`` must be in that issuer's
allow-list *and* match the key's type; ``none`` and HMAC are never accepted (a public key
must never double as a shared secret, §2.1); ``exp`` is required. Time checks use an
injected clock so leeway edges are exact and testable.

Refusal reasons are for the log and audit only; clients get the single RFC 7628 §3.2.2
error document from :meth:`TokenValidator.error_json`. The token itself is never logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK
from jwt.exceptions import (
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)
from jwt.types import Options

from carteiro.auth.jwks import (
    SUPPORTED_ALGORITHMS,
    FileKeySource,
    KeySource,
    UrlKeySource,
    check_url,
    fetch_url,
    find_key,
)

__all__ = ["MAX_TOKEN_LENGTH", "IssuerConfig", "TokenResult", "TokenValidator"]

logger = logging.getLogger(__name__)

#: longer strings are refused unparsed (real access tokens are a few KiB)
MAX_TOKEN_LENGTH = 16384
MAX_ACCOUNT_LENGTH = 320
#: time claims are checked here against the injected clock, not by PyJWT's wall clock
_DECODE_OPTIONS: Options = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted issuer (a ``[[oauth.issuers]]`` table); invalid values raise ValueError."""

    issuer: str
    audience: str | tuple[str, ...]
    jwks_file: Path | None = None
    jwks_url: str | None = None
    username_claim: str = "email"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA", "PS256")
    leeway: int = 60
    cache_ttl: int = 3600
    discovery_url: str | None = None
    required_scope: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ValueError("issuer must be a non-empty string")
        audiences = (self.audience,) if isinstance(self.audience, str) else self.audience
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audience must be a non-empty string or list of strings")
        if not isinstance(self.audience, str):
            object.__setattr__(self, "audience", tuple(self.audience))
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("exactly one of jwks_file and jwks_url must be set")
        if self.jwks_file is not None:
            object.__setattr__(self, "jwks_file", Path(self.jwks_file))
        if self.jwks_url is not None:
            check_url(self.jwks_url, "jwks_url")
        if self.discovery_url is not None:
            check_url(self.discovery_url, "discovery_url")
        if not isinstance(self.username_claim, str) or not self.username_claim:
            raise ValueError("username_claim must be a non-empty string")
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        if not self.algorithms:
            raise ValueError("algorithms must not be empty")
        for alg in self.algorithms:
            if alg not in SUPPORTED_ALGORITHMS:
                allowed = ", ".join(sorted(SUPPORTED_ALGORITHMS))
                raise ValueError(f"algorithm {alg!r} is not allowed (choose from {allowed})")
        for name in ("leeway", "cache_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of seconds >= 0")
        scope = self.required_scope
        if scope is not None and (not isinstance(scope, str) or not scope or " " in scope):
            raise ValueError("required_scope must be one scope name")

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.audience,) if isinstance(self.audience, str) else self.audience


@dataclass(frozen=True, slots=True)
class TokenResult:
    """The verdict; ``error`` is a short reason for the log and audit, never for the client."""

    ok: bool
    account: str = ""
    issuer: str = ""
    error: str = ""
    token_id: str = ""
    expires_at: float | None = None


class TokenValidator:
    """Validates bearer tokens against the configured issuers; one per server."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        *,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[str], Awaitable[bytes]] | None = None,
    ) -> None:
        self._configs = tuple(issuers)
        self._issuers: dict[str, IssuerConfig] = {}
        self._sources: dict[str, KeySource] = {}
        self._clock = clock
        self._jwt = jwt.PyJWT()
        for config in self._configs:
            if config.issuer in self._issuers:
                raise ValueError(f"issuer {config.issuer!r} is configured twice")
            self._issuers[config.issuer] = config
            source: KeySource
            if config.jwks_file is not None:
                source = FileKeySource(config.jwks_file, config.algorithms, config.issuer)
            else:
                assert config.jwks_url is not None
                source = UrlKeySource(
                    config.jwks_url,
                    config.algorithms,
                    config.issuer,
                    fetch=fetch or fetch_url,
                    clock=clock,
                    cache_ttl=config.cache_ttl,
                )
            self._sources[config.issuer] = source

    @property
    def configured(self) -> bool:
        return bool(self._configs)

    async def validate(self, token: str) -> TokenResult:
        """Never raises (but for cancellation): every failure is ``ok=False`` with a reason."""
        try:
            return await self._validate(token)
        except Exception as exc:
            logger.error("oauth token check failed unexpectedly: %s", type(exc).__name__)
            return TokenResult(ok=False, error="malformed")

    async def _validate(self, token: str) -> TokenResult:
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
            return _refuse("malformed")
        try:
            unverified = self._jwt.decode_complete(token, options={"verify_signature": False})
        except Exception:
            return _refuse("malformed")
        header, claims = unverified["header"], unverified["payload"]
        claimed = claims.get("iss")
        config = self._issuers.get(claimed) if isinstance(claimed, str) else None
        if config is None:
            return _refuse("issuer", shown=repr(claimed)[:100])
        issuer = config.issuer
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in config.algorithms:
            return _refuse("algorithm", issuer)
        if kid is not None and not isinstance(kid, str):
            return _refuse("malformed", issuer)

        source = self._sources[issuer]
        keys = await source.keys()
        key = None if keys is None else find_key(keys, kid, alg)
        if key is None and not (keys and kid is not None and any(k.kid == kid for k in keys)):
            keys = await source.refresh()  # perhaps the issuer rotated its keys
            key = None if keys is None else find_key(keys, kid, alg)
        if keys is None:
            return _refuse("jwks-unavailable", issuer)
        if key is None:
            known = kid is not None and any(k.kid == kid for k in keys)
            return _refuse("algorithm" if known else "unknown-key", issuer)
        return self._verify(token, config, key, alg)

    def _verify(self, token: str, config: IssuerConfig, key: PyJWK, alg: str) -> TokenResult:
        issuer = config.issuer
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(config.audiences),
                issuer=issuer,
                options=_DECODE_OPTIONS,
            )
        except InvalidSignatureError:
            return _refuse("signature", issuer)
        except InvalidAlgorithmError:
            return _refuse("algorithm", issuer)
        except InvalidKeyError:
            return _refuse("unknown-key", issuer)
        except InvalidAudienceError:
            return _refuse("audience", issuer)
        except MissingRequiredClaimError as exc:
            return _refuse("audience" if exc.claim == "aud" else "claim-missing", issuer)
        except InvalidIssuerError:
            return _refuse("issuer", issuer)
        except PyJWTError:
            return _refuse("malformed", issuer)

        # the signature is good from here on: the jti may be trusted for the audit
        jti = claims.get("jti")
        token_id = jti if isinstance(jti, str) and len(jti) <= 200 and jti.isprintable() else ""
        exp, error = _check_times(claims, self._clock(), config.leeway)
        if not error:
            error = _check_scope(claims, config.required_scope)
        account = _account(claims, config.username_claim)
        if not error and not account:
            error = "claim-missing"
        if error:
            return _refuse(error, issuer, token_id, exp)
        logger.debug("oauth token accepted: issuer=%s jti=%s", issuer, token_id or "-")
        return TokenResult(True, account, issuer, "", token_id, exp)

    def error_json(self, result: TokenResult | None = None) -> bytes:
        """The RFC 7628 §3.2.2 failure document: status, and scope and discovery URL if known.

        The issuer is the result's, else the first configured one.
        """
        config = self._issuers.get(result.issuer) if result is not None else None
        if config is None and self._configs:
            config = self._configs[0]
        body = {"status": "invalid_token"}
        if config is not None and config.required_scope:
            body["scope"] = config.required_scope
        if config is not None and config.discovery_url:
            body["openid-configuration"] = config.discovery_url
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @staticmethod
    def from_settings(raw: Sequence[Mapping[str, Any]], base_dir: Path) -> TokenValidator:
        """From the ``[[oauth.issuers]]`` TOML tables; relative jwks_file paths are under
        ``base_dir``. Bad configuration raises ValueError with a one-line message."""
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
            raise ValueError("oauth.issuers must be an array of tables ([[oauth.issuers]])")
        configs = [_config_from_table(i, table, base_dir) for i, table in enumerate(raw)]
        try:
            return TokenValidator(configs)
        except ValueError as exc:
            raise ValueError(f"oauth.issuers: {exc}") from None


def _refuse(
    reason: str,
    issuer: str = "",
    token_id: str = "",
    expires_at: float | None = None,
    *,
    shown: str = "",
) -> TokenResult:
    shown = issuer or shown or "-"
    logger.info("oauth token refused: issuer=%s reason=%s jti=%s", shown, reason, token_id or "-")
    return TokenResult(False, "", issuer, reason, token_id, expires_at)


def _number(value: object) -> float | None:
    """A NumericDate (RFC 7519 §2): a finite JSON number, not a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _check_times(claims: Mapping[str, Any], now: float, leeway: int) -> tuple[float | None, str]:
    """(exp, error): RFC 7519 §4.1.4–4.1.6 with ``leeway`` seconds of skew either way."""
    if "exp" not in claims:
        return None, "claim-missing"
    exp = _number(claims["exp"])
    if exp is None:
        return None, "malformed"
    times = {name: _number(claims[name]) for name in ("nbf", "iat") if name in claims}
    if None in times.values():
        return exp, "malformed"
    if now >= exp + leeway:
        return exp, "expired"
    for value in times.values():
        assert value is not None
        if value > now + leeway:
            return exp, "not-yet-valid"
    iat = times.get("iat")
    if iat is not None and iat > exp:
        return exp, "malformed"
    return exp, ""


def _check_scope(claims: Mapping[str, Any], required: str | None) -> str:
    """ "scope" is space-separated (RFC 8693 §4.2); "scp" is that or a list (Azure, Okta)."""
    if required is None:
        return ""
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(v for v in value if isinstance(v, str))
    return "" if required in granted else "scope"


def _account(claims: Mapping[str, Any], claim: str) -> str:
    """The account name, or "" when the claim is absent or unusable.

    An email claim the issuer itself marks unverified (``email_verified: false``) does not
    count: anyone could have typed it into their profile.
    """
    value = claims.get(claim)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ACCOUNT_LENGTH:
        return ""
    if not value.isprintable() or any(c.isspace() for c in value):
        return ""
    if claim == "email" and claims.get("email_verified") is False:
        return ""
    return value.lower() if "@" in value else value


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "issuer": (str,),
    "audience": (str, list),
    "jwks_file": (str,),
    "jwks_url": (str,),
    "username_claim": (str,),
    "algorithms": (list,),
    "leeway": (int,),
    "cache_ttl": (int,),
    "discovery_url": (str,),
    "required_scope": (str,),
}


def _config_from_table(index: int, table: object, base_dir: Path) -> IssuerConfig:
    where = f"oauth.issuers[{index}]"
    if not isinstance(table, Mapping):
        raise ValueError(f"{where} must be a table")
    if isinstance(table.get("issuer"), str):
        where = f"{where} ({table['issuer']})"
    unknown = sorted(set(table) - {f.name for f in fields(IssuerConfig)})
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r}")
    for name in ("issuer", "audience"):
        if name not in table:
            raise ValueError(f"{where}: {name} is required")
    values: dict[str, Any] = {}
    for name, value in table.items():
        types = _FIELD_TYPES[name]
        if isinstance(value, bool) or not isinstance(value, types):
            kind = " or ".join("list" if t is list else t.__name__ for t in types)
            raise ValueError(f"{where}: {name} must be a {kind}")
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: {name} must be a list of strings")
            value = tuple(value)
        values[name] = value
    if "jwks_file" in values:
        values["jwks_file"] = base_dir / Path(values["jwks_file"]).expanduser()
    try:
        return IssuerConfig(**values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
