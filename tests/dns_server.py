"""A real authoritative DNS server for tests, on 127.0.0.1 (UDP and TCP, one ephemeral port).

Usage::

    with DnsServer({"example.org": {"MX": ["10 mx.example.org"],
                                    "TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
                    "mx.example.org": {"A": ["127.0.0.1"]}}) as dns:
        resolver = dns.resolver()

Values are zone-file rdata text, except TXT: a plain value is one record whose text is
split into 255-octet strings; a value starting with ``"`` is zone syntax, so
``'"v=spf1 " "-all"'`` gives one record of two strings. A name with a CNAME answers it
(plus the target's records when they are here) for every other type.
Unknown names answer NXDOMAIN, known names without the type NOERROR with no records,
names given to :meth:`fail` SERVFAIL and names given to :meth:`drop` never get an answer.
Every query is appended to :attr:`queries` as ``(name, type)``.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from carteiro.smtp.dns import Resolver

Records = Mapping[str, Mapping[str, Sequence[str]]]


def _key(name: str) -> str:
    return name.lower().rstrip(".") or "."


def _rdata(rtype: str, value: str) -> dns.rdata.Rdata:
    rdtype = dns.rdatatype.from_text(rtype)
    if rdtype == dns.rdatatype.TXT and not value.startswith('"'):
        raw = value.encode("utf-8", "surrogateescape")
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    return dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
    )


class DnsServer:
    """A real authoritative DNS server on 127.0.0.1 (UDP and TCP, same ephemeral port), in a
    thread."""

    def __init__(self, records: Records | None = None, ttl: int = 0) -> None:
        #: TTL of every answer: 0 so that resolvers that cache (carteiro's does) see
        #: changes made by tests at once; benchmarks give a real one
        self.ttl = ttl
        self._lock = threading.Lock()
        self._zone: dict[str, dict[str, list[dns.rdata.Rdata]]] = {}
        self._failing: set[str] = set()
        self._dropped: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        for name, types in (records or {}).items():
            self._zone.setdefault(_key(name), {})
            for rtype, values in types.items():
                self.set(name, rtype, values)
        self._thread: threading.Thread | None = None
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self.port = 0

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    # --- records ---------------------------------------------------------------------

    def set(self, name: str, rtype: str, values: Sequence[str]) -> None:
        """Replace the records of one type (an empty list keeps the name known)."""
        rdatas = [_rdata(rtype, v) for v in values]
        with self._lock:
            self._zone.setdefault(_key(name), {})[rtype.upper()] = rdatas

    def remove(self, name: str) -> None:
        """Forget a name entirely (it answers NXDOMAIN again)."""
        with self._lock:
            self._zone.pop(_key(name), None)

    def fail(self, name: str, on: bool = True) -> None:
        """SERVFAIL for that name (or stop doing so with ``on=False``)."""
        with self._lock:
            (self._failing.add if on else self._failing.discard)(_key(name))

    def drop(self, name: str, on: bool = True) -> None:
        """Never answer queries for that name (the client times out)."""
        with self._lock:
            (self._dropped.add if on else self._dropped.discard)(_key(name))

    def resolver(self, timeout: float = 1.0) -> Resolver:
        """A :class:`Resolver` pointed at this server, with a short timeout."""
        return Resolver([self.address], timeout=timeout)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> DnsServer:
        # UDP picks the port; TCP may find it taken by someone else's socket: try again
        for attempt in range(100):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if attempt == 99:
                    raise
                continue
            break
        self._udp, self._tcp = udp, tcp
        self.port = udp.getsockname()[1]
        tcp.listen(16)
        self._thread = threading.Thread(target=self._serve, name="DnsServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._wake_w.send(b"x")
            self._thread.join(timeout=10)
            self._thread = None
        for s in (self._udp, self._tcp, self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._udp, selectors.EVENT_READ)
            sel.register(self._tcp, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    if key.fileobj is self._udp:
                        self._serve_udp()
                    else:
                        self._serve_tcp()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        try:
            wire, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        reply = self._answer(wire, udp=True)
        if reply is not None:
            self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2.0)
            for _ in range(100):  # queries on one connection
                try:
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                    if wire is None:
                        return
                    reply = self._answer(wire, udp=False)
                    if reply is None:
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

    def _answer(self, wire: bytes, *, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname = _key(question.name.to_text())
        qtype = dns.rdatatype.to_text(question.rdtype)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        with self._lock:
            self.queries.append((qname, qtype))
            if qname in self._dropped:
                return None
            try:
                if qname in self._failing:
                    response.set_rcode(dns.rcode.SERVFAIL)
                else:
                    self._fill(response, question.name, qname, qtype)
            except Exception:  # a bad record in a test: SERVFAIL rather than a dead server
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.SERVFAIL)
        limit = 512
        if udp and query.edns >= 0:
            limit = max(512, query.payload)
        try:
            return response.to_wire(max_size=limit if udp else 65535)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def _fill(
        self, response: dns.message.Message, name: dns.name.Name, key: str, qtype: str
    ) -> None:
        for _ in range(8):  # CNAME chain, bounded
            types = self._zone.get(key)
            if types is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return
            cname = types.get("CNAME")
            if cname and qtype != "CNAME":
                response.answer.append(_rrset(name, "CNAME", cname, self.ttl))
                target = cname[0].target  # type: ignore[attr-defined]
                name, key = target, _key(target.to_text())
                continue
            values = types.get(qtype, [])
            if values:
                response.answer.append(_rrset(name, qtype, values, self.ttl))
            return


def _rrset(
    name: dns.name.Name, rtype: str, values: Sequence[dns.rdata.Rdata], ttl: int
) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
    for value in values:
        rrset.add(value, ttl=ttl)
    return rrset


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
