"""SPF (RFC 7208): may this IP address send mail for the MAIL FROM (or HELO) domain?

Written against :class:`~carteiro.smtp.dns.Resolver` directly rather than wrapping pyspf:
its lookups would otherwise need a worker thread and a patched DNS layer, while the
evaluator itself is small. Limits of §4.6.4: 10 DNS-querying terms (include, a, mx, ptr,
exists, redirect), 2 void lookups, 10 MX hosts and 10 PTR names; the whole check is
bounded by :data:`TIME_LIMIT` (§4.6.4 suggests at least 20 s).

Macros (§7) are expanded for s, l, o, d, i, v, h and, in explanations, c, r, t.
``%{p}`` always expands to ``unknown`` (§7.3 permits this: "p" SHOULD NOT be published,
and validating it costs several lookups).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass, field

from carteiro.smtp.dns import NoSuchDomain, Resolver, TemporaryDnsError

__all__ = ["RESULTS", "TIME_LIMIT", "SpfResult", "check_spf"]

RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror", "permerror")
TIME_LIMIT = 20.0
MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_MX = 10
MAX_PTR = 10

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class SpfResult:
    """``result`` is one of :data:`RESULTS`; ``domain`` the domain whose policy was checked
    (empty when none could be); ``explanation`` a short human-readable reason."""

    result: str
    domain: str
    explanation: str


class _PermError(Exception):
    pass


class _TempError(Exception):
    pass


_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)\Z", re.S)
_MECHANISM = re.compile(r"([+?~-]?)([A-Za-z][A-Za-z0-9_.-]*)(?:([:/])(.*))?\Z", re.S)
_MACRO = re.compile(r"%(?:\{([A-Za-z])(\d*)(r?)([.+,/_=-]*)\}|(.))", re.S | re.I)
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")
_TOPLABEL = re.compile(r"([A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])\Z")


@dataclass(frozen=True)
class _Term:
    qualifier: str
    name: str
    domain: str | None  # macro-string, unexpanded
    cidr4: int
    cidr6: int
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


@dataclass(frozen=True)
class _Record:
    terms: tuple[_Term, ...]
    redirect: str | None
    exp: str | None


@dataclass
class _Context:
    resolver: Resolver
    ip: IPAddress
    sender: str
    helo: str
    lookups: int = 0
    void: int = 0
    seen: set[str] = field(default_factory=set)

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _PermError(f"more than {MAX_LOOKUPS} DNS lookups")

    def void_lookup(self) -> None:
        self.void += 1
        if self.void > MAX_VOID:
            raise _PermError(f"more than {MAX_VOID} void DNS lookups")


async def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str) -> SpfResult:
    """check_host() of RFC 7208 for the MAIL FROM identity, or for
    ``postmaster@<helo>`` when the reverse-path is null (§2.4)."""
    try:
        address: IPAddress = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return SpfResult("none", "", f"{ip!r} is not an IP address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    sender = mail_from.strip().strip("<>")
    if not sender:
        sender = f"postmaster@{helo}"
    local, at, domain = sender.rpartition("@")
    if not at:
        local, domain = "postmaster", sender
    local = local or "postmaster"
    domain = domain.rstrip(".")
    sender = f"{local}@{domain}"
    if not _valid_domain(domain):
        return SpfResult("none", domain, f"{domain!r} is not a domain SPF can check")
    ctx = _Context(resolver, address, sender, helo)
    try:
        async with asyncio.timeout(TIME_LIMIT):
            result, explanation = await _check_host(ctx, domain)
    except TimeoutError:
        return SpfResult("temperror", domain, "SPF evaluation took too long")
    except _TempError as e:
        return SpfResult("temperror", domain, str(e))
    except _PermError as e:
        return SpfResult("permerror", domain, str(e))
    return SpfResult(result, domain, explanation)


def _valid_domain(domain: str) -> bool:
    """§4.3: a fully qualified name of valid labels (so no IP literals, no single label)."""
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253:
        return False
    return all(_LABEL.match(label) for label in labels) and bool(_TOPLABEL.match(labels[-1]))


async def _check_host(ctx: _Context, domain: str) -> tuple[str, str]:
    record = await _fetch(ctx, domain)
    if record is None:
        return "none", f"{domain} has no SPF record"
    parsed = _parse(record)
    for term in parsed.terms:
        if await _matches(ctx, term, domain):
            result = _QUALIFIERS[term.qualifier]
            if result == "fail":
                return result, await _explain(ctx, parsed, domain)
            return result, f"{domain} gives {result} for {ctx.ip} ({_show(term)})"
    if parsed.redirect is not None:
        ctx.count()
        target = _expand_domain(ctx, parsed.redirect, domain)
        if not _valid_domain(target):
            raise _PermError(f"redirect to invalid domain {target!r}")
        result, explanation = await _check_host(ctx, target)
        if result == "none":
            raise _PermError(f"redirect target {target} has no SPF record")
        return result, explanation
    return "neutral", f"{domain} gives no verdict for {ctx.ip}"


async def _fetch(ctx: _Context, domain: str) -> str | None:
    """The one SPF record of a domain (§4.5); None when there is none."""
    try:
        texts = await ctx.resolver.txt(domain)
    except NoSuchDomain:
        return None
    except TemporaryDnsError as e:
        raise _TempError(f"DNS error looking up SPF of {domain}: {e}") from e
    records = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if len(records) > 1:
        raise _PermError(f"{domain} publishes {len(records)} SPF records")
    return records[0] if records else None


def _parse(record: str) -> _Record:
    """Parse a whole record first: any syntax error is a permerror (§4.6)."""
    terms: list[_Term] = []
    redirect: str | None = None
    exp: str | None = None
    for word in record.split(" ")[1:]:
        if not word:
            continue
        modifier = _MODIFIER.match(word)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            _check_macros(value, explanation=False)
            if name == "redirect":
                if redirect is not None:
                    raise _PermError("more than one redirect= modifier")
                redirect = _domain_spec(value)
            elif name == "exp":
                if exp is not None:
                    raise _PermError("more than one exp= modifier")
                exp = _domain_spec(value)
            continue
        terms.append(_parse_mechanism(word))
    return _Record(tuple(terms), redirect, exp)


def _parse_mechanism(word: str) -> _Term:
    m = _MECHANISM.match(word)
    if m is None or m.group(2).lower() not in _MECHANISMS:
        raise _PermError(f"unknown SPF term {word!r}")
    qualifier = m.group(1) or "+"
    name = m.group(2).lower()
    sep, arg = m.group(3), m.group(4)
    rest = "" if sep is None else sep + arg
    if name == "all":
        if rest:
            raise _PermError(f"bad SPF term {word!r}")
        return _Term(qualifier, name, None, 32, 128)
    if name in ("ip4", "ip6"):
        if sep != ":":
            raise _PermError(f"bad SPF term {word!r}")
        return _Term(qualifier, name, None, 32, 128, _network(name, arg, word))
    if name in ("include", "exists"):
        if sep != ":" or not arg:
            raise _PermError(f"{name} needs a domain: {word!r}")
        return _Term(qualifier, name, _domain_spec(arg), 32, 128)
    # a, mx, ptr: optional domain, a and mx optional dual CIDR
    domain, cidr4, cidr6 = None, 32, 128
    if sep == ":":
        domain, slash, cidrs = arg.partition("/")
        rest = slash + cidrs
        if not domain:
            raise _PermError(f"empty domain in {word!r}")
        domain = _domain_spec(domain)
    if rest:
        if name == "ptr":
            raise _PermError(f"ptr takes no CIDR length: {word!r}")
        cidr4, cidr6 = _dual_cidr(rest, word)
    return _Term(qualifier, name, domain, cidr4, cidr6)


def _network(name: str, arg: str, word: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    address, slash, length = arg.partition("/")
    bits = 32 if name == "ip4" else 128
    try:
        if slash:
            if not length.isdigit() or (length != "0" and length.startswith("0")):
                raise ValueError(length)
            if int(length) > bits:
                raise ValueError(length)
        parsed = ipaddress.ip_address(address)
        if parsed.version != (4 if name == "ip4" else 6):
            raise ValueError(address)
        return ipaddress.ip_network(f"{parsed}/{length or bits}", strict=False)
    except ValueError as e:
        raise _PermError(f"bad address in {word!r}") from e


def _dual_cidr(text: str, word: str) -> tuple[int, int]:
    m = re.fullmatch(r"(?:/(\d{1,2}))?(?://(\d{1,3}))?", text)
    if m is None or not text:
        raise _PermError(f"bad CIDR length in {word!r}")
    v4 = int(m.group(1)) if m.group(1) is not None else 32
    v6 = int(m.group(2)) if m.group(2) is not None else 128
    if v4 > 32 or v6 > 128:
        raise _PermError(f"bad CIDR length in {word!r}")
    return v4, v6


def _domain_spec(text: str) -> str:
    _check_macros(text, explanation=False)
    if "%" not in text:
        labels = text.rstrip(".").split(".")
        if len(labels) < 2 or not _TOPLABEL.match(labels[-1]):
            raise _PermError(f"bad domain {text!r}")
    return text


def _check_macros(text: str, *, explanation: bool) -> None:
    position = 0
    for m in _MACRO.finditer(text):
        if "%" in text[position : m.start()]:
            raise _PermError(f"bad macro in {text!r}")
        position = m.end()
        letter, digits, simple = m.group(1), m.group(2), m.group(5)
        if simple is not None:
            if simple not in "%_-":
                raise _PermError(f"bad macro in {text!r}")
            continue
        allowed = "slodiphv" + ("crt" if explanation else "")
        if letter.lower() not in allowed or (digits and int(digits) == 0):
            raise _PermError(f"bad macro in {text!r}")
    if "%" in text[position:]:
        raise _PermError(f"bad macro in {text!r}")


def _expand(ctx: _Context, text: str, domain: str, *, explanation: bool = False) -> str:
    """Macro expansion (§7.3)."""

    def value(letter: str) -> str:
        local, _, sender_domain = ctx.sender.rpartition("@")
        if letter == "s":
            return ctx.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if ctx.ip.version == 4:
                return str(ctx.ip)
            return ".".join(ctx.ip.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if ctx.ip.version == 4 else "ip6"
        if letter == "h":
            return ctx.helo
        if letter == "c":
            return str(ctx.ip)
        if letter == "t":
            return str(int(time.time()))
        return "unknown"  # p, r

    def replace(m: re.Match[str]) -> str:
        simple = m.group(5)
        if simple is not None:
            return {"%": "%", "_": " ", "-": "%20"}[simple]
        letter, digits, reverse, delimiters = m.group(1), m.group(2), m.group(3), m.group(4)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value(letter.lower()))
        if reverse:
            parts.reverse()
        if digits:
            parts = parts[-int(digits) :]
        out = ".".join(parts)
        if letter.isupper():
            out = urllib.parse.quote(out, safe="")
        return out

    return _MACRO.sub(replace, text)


def _expand_domain(ctx: _Context, spec: str, domain: str) -> str:
    """Expand a domain-spec; over-long results lose labels on the left (§7.3)."""
    name = _expand(ctx, spec, domain).rstrip(".")
    while len(name) > 253 and "." in name:
        name = name.split(".", 1)[1]
    return name


async def _matches(ctx: _Context, term: _Term, domain: str) -> bool:
    if term.name == "all":
        return True
    if term.name in ("ip4", "ip6"):
        network = term.network
        return network is not None and ctx.ip.version == network.version and ctx.ip in network
    ctx.count()
    target = domain if term.domain is None else _expand_domain(ctx, term.domain, domain)
    if term.name == "include":
        if target.lower() in ctx.seen:
            raise _PermError(f"include loop at {target}")
        ctx.seen.add(target.lower())
        try:
            result, _ = await _check_host(ctx, target)
        finally:
            ctx.seen.discard(target.lower())
        if result == "none":
            raise _PermError(f"included domain {target} has no SPF record")
        return result == "pass"
    if term.name == "exists":
        return bool(await _lookup(ctx, target, 4))
    if term.name == "a":
        return _in(ctx, await _lookup(ctx, target, ctx.ip.version), term)
    if term.name == "mx":
        return await _match_mx(ctx, target, term)
    return await _match_ptr(ctx, target)


async def _lookup(ctx: _Context, name: str, version: int, *, void: bool = True) -> list[str]:
    try:
        found = await (ctx.resolver.a(name) if version == 4 else ctx.resolver.aaaa(name))
    except NoSuchDomain:
        found = []
    except TemporaryDnsError as e:
        raise _TempError(f"DNS error looking up {name}: {e}") from e
    if not found and void:
        ctx.void_lookup()
    return found


def _in(ctx: _Context, addresses: list[str], term: _Term) -> bool:
    length = term.cidr4 if ctx.ip.version == 4 else term.cidr6
    for text in addresses:
        try:
            network = ipaddress.ip_network(f"{text}/{length}", strict=False)
        except ValueError:
            continue
        if network.version == ctx.ip.version and ctx.ip in network:
            return True
    return False


async def _match_mx(ctx: _Context, target: str, term: _Term) -> bool:
    try:
        hosts = await ctx.resolver.mx(target)
    except NoSuchDomain:
        hosts = []
    except TemporaryDnsError as e:
        raise _TempError(f"DNS error looking up MX of {target}: {e}") from e
    hosts = [(p, h) for p, h in hosts if h != "."]
    if not hosts:
        ctx.void_lookup()
        return False
    if len(hosts) > MAX_MX:
        raise _PermError(f"{target} has more than {MAX_MX} MX records")
    for _, host in hosts:
        if _in(ctx, await _lookup(ctx, host, ctx.ip.version, void=False), term):
            return True
    return False


async def _match_ptr(ctx: _Context, target: str) -> bool:
    """§5.5: names of the IP whose forward lookup returns the IP, ending in target."""
    try:
        names = await ctx.resolver.ptr(str(ctx.ip))
    except NoSuchDomain:
        names = []
    except TemporaryDnsError:
        return False
    if not names:
        ctx.void_lookup()
        return False
    target = target.lower()
    for name in names[:MAX_PTR]:
        name = name.lower()
        if name != target and not name.endswith("." + target):
            continue
        try:
            forward = await _lookup(ctx, name, ctx.ip.version, void=False)
        except _TempError:
            continue
        if any(ipaddress.ip_address(a) == ctx.ip for a in forward):
            return True
    return False


async def _explain(ctx: _Context, record: _Record, domain: str) -> str:
    """The exp= text of §6.2 when it resolves cleanly, else a default."""
    default = f"{domain} does not designate {ctx.ip} as permitted sender"
    if record.exp is None:
        return default
    try:
        target = _expand_domain(ctx, record.exp, domain)
        texts = await ctx.resolver.txt(target)
        if len(texts) != 1:
            return default
        _check_macros(texts[0], explanation=True)
        text = _expand(ctx, texts[0], domain, explanation=True)
    except (NoSuchDomain, TemporaryDnsError, _PermError):
        return default
    return text if text.isascii() and text.isprintable() else default


def _show(term: _Term) -> str:
    text = term.name
    if term.network is not None:
        text += f":{term.network}"
    elif term.domain is not None:
        text += f":{term.domain}"
    return text
