"""``carteiro dkim`` and ``carteiro dns`` run as real subprocesses on a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import dns.zone
import pytest

from carteiro.smtp.dkim import dns_record, sign, verify_dkim
from carteiro.store.interface import DkimKey
from tests.dns_server import DnsServer

# imports carteiro.cli.dkim explicitly so the commands exist even before cli/main.py
# registers the module itself
CLI = [
    sys.executable,
    "-c",
    "import carteiro.cli.dkim; from carteiro.cli.main import main; main()",
]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARTEIRO_")}
    proc = subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, env=environ, timeout=60, check=False
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result
    assert result.stderr.startswith("carteiro: error: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fragment in result.stderr


def stored_keys(data: Path) -> list[DkimKey]:
    from carteiro.store.sqlite import SqliteStore

    async def get() -> list[DkimKey]:
        store = SqliteStore(data / "carteiro.db")
        await store.open()
        try:
            return await store.dkim_keys()
        finally:
            await store.close()

    return asyncio.run(get())


def txt_records(output: str) -> dict[str, str]:
    """name → joined TXT value of every ``name. IN TXT "..." "..."`` line."""
    found = {}
    for line in output.splitlines():
        m = re.fullmatch(r"(\S+)\. IN TXT ((?:\"[^\"]*\" ?)+)", line)
        if m:
            found[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
    return found


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_generate_both_then_sign_and_verify_with_published_records(data: Path) -> None:
    result = run("dkim", "generate", "Example.ORG", "--data-dir", data)
    assert result.returncode == 0, result
    assert "not a local domain" in result.stderr
    records = txt_records(result.stdout)
    assert len(records) == 2
    for name, value in records.items():
        assert re.fullmatch(r"carteiro-(rsa|ed)-\d{6}\._domainkey\.example\.org", name)
        assert all(len(s) <= 255 for s in re.findall(r'"([^"]*)"', result.stdout))
        assert value.startswith("v=DKIM1; k=")
    keys = stored_keys(data)
    assert sorted(k.algorithm for k in keys) == ["ed25519-sha256", "rsa-sha256"]
    for key in keys:
        assert records[f"{key.selector}._domainkey.example.org"] == dns_record(key)

    # publish what the command printed; mail signed with the stored keys verifies
    message = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n\r\nbody\r\n"
    with DnsServer({name: {"TXT": [value]} for name, value in records.items()}) as server:
        signed = sign(message, keys) + message
        results = asyncio.run(verify_dkim(server.resolver(), signed))
    assert [r.result for r in results] == ["pass", "pass"]


def test_generate_one_with_selector_and_duplicates(data: Path) -> None:
    assert run("domain", "add", "example.org", "--data-dir", data).returncode == 0
    result = run(
        "dkim",
        "generate",
        "example.org",
        "--algorithm",
        "ed25519",
        "--selector",
        "Mail2024",
        "--data-dir",
        data,
    )
    assert result.returncode == 0, result
    assert result.stderr == ""
    assert list(txt_records(result.stdout)) == ["mail2024._domainkey.example.org"]
    again = run(
        "dkim",
        "generate",
        "example.org",
        "--algorithm",
        "rsa",
        "--selector",
        "mail2024",
        "--data-dir",
        data,
    )
    one_line_error(again, 1, "already has a key with selector mail2024")
    both = run("dkim", "generate", "example.org", "--selector", "s", "--data-dir", data)
    assert both.returncode == 0, both
    assert set(txt_records(both.stdout)) == {
        "s-rsa._domainkey.example.org",
        "s-ed._domainkey.example.org",
    }
    bad = run("dkim", "generate", "example.org", "--selector", "no good", "--data-dir", data)
    one_line_error(bad, 2, "not a valid selector")


def test_list_and_delete(data: Path) -> None:
    for domain in ("example.org", "example.net"):
        args = ("dkim", "generate", domain, "--algorithm", "ed25519", "--selector", "k1")
        assert run(*args, "--data-dir", data).returncode == 0
    listing = run("dkim", "list", "--data-dir", data)
    assert listing.returncode == 0, listing
    lines = listing.stdout.splitlines()
    assert len(lines) == 2
    assert {line.split()[0] for line in lines} == {"example.org", "example.net"}
    assert all(line.split()[1:3] == ["k1", "ed25519-sha256"] for line in lines)
    only = run("dkim", "list", "example.net", "--data-dir", data)
    assert [line.split()[0] for line in only.stdout.splitlines()] == ["example.net"]
    deleted = run("dkim", "delete", "example.net", "K1", "--data-dir", data)
    assert deleted.returncode == 0, deleted
    assert "deleted DKIM key k1 of example.net" in deleted.stdout
    assert run("dkim", "list", "example.net", "--data-dir", data).stdout == ""
    one_line_error(run("dkim", "delete", "example.net", "k1", "--data-dir", data), 1, "no DKIM key")


def test_list_without_database(data: Path) -> None:
    one_line_error(run("dkim", "list", "--data-dir", data), 1, "there is no database")


def test_dns_records(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "carteiro.toml"
    config.write_text('hostname = "mx.example.org"\npop3s = "0.0.0.0:995"\n')
    assert run("domain", "add", "example.org", "--data-dir", data).returncode == 0
    result = run("dns", "example.org", "--data-dir", data, "--config", config)
    assert result.returncode == 0, result
    assert result.stderr == ""
    out = result.stdout
    assert "example.org. IN MX 10 mx.example.org." in out
    assert 'example.org. IN TXT "v=spf1 mx -all"' in out
    assert "carteiro dkim generate example.org" in out
    assert (
        '_dmarc.example.org. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"'
        in out
    )
    assert "_submission._tcp.example.org. IN SRV 10 1 587 mx.example.org." in out
    assert "_submissions._tcp.example.org. IN SRV 0 1 465 mx.example.org." in out
    assert "_imap._tcp.example.org. IN SRV 10 1 143 mx.example.org." in out
    assert "_imaps._tcp.example.org. IN SRV 0 1 993 mx.example.org." in out
    assert "_pop3s._tcp.example.org. IN SRV 0 1 995 mx.example.org." in out
    assert "_pop3._tcp.example.org. IN SRV 0 0 0 ." in out

    # the whole output is valid zone-file syntax
    zone = dns.zone.from_text(out, origin="example.org.", relativize=False, check_origin=False)
    assert zone.get_rdataset("example.org.", "MX") is not None
    assert zone.get_rdataset("_imaps._tcp.example.org.", "SRV") is not None

    # with keys, and another host name
    assert run("dkim", "generate", "example.org", "--data-dir", data).returncode == 0
    keyed = run("dns", "example.org", "--hostname", "mail.example.net", "--data-dir", data)
    assert "IN MX 10 mail.example.net." in keyed.stdout
    assert "carteiro dkim generate" not in keyed.stdout
    records = txt_records(keyed.stdout)
    for key in stored_keys(data):
        assert records[f"{key.selector}._domainkey.example.org"] == dns_record(key)
    zone = dns.zone.from_text(
        keyed.stdout, origin="example.org.", relativize=False, check_origin=False
    )
    assert len(list(zone.iterate_rdatas("TXT"))) == 4


def test_dns_warns_for_foreign_domain_without_database(data: Path) -> None:
    result = run("dns", "example.com", "--hostname", "mx.example.org", "--data-dir", data)
    assert result.returncode == 0, result
    assert "warning: example.com is not a local domain" in result.stderr
    assert "example.com. IN MX 10 mx.example.org." in result.stdout
    assert not (data / "carteiro.db").exists()
