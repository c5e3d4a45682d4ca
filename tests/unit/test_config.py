import ipaddress
import os
from pathlib import Path

import pytest

from carteiro.config import (
    ConfigError,
    Settings,
    default_data_dir,
    format_listen,
    load_settings,
    parse_listen,
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTEIRO_DATA_DIR", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carteiro.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path):
    s = load_settings(None, tmp_path, {})
    assert s.data_dir == tmp_path
    assert s.imap == ("0.0.0.0", 143)
    assert s.imaps == ("0.0.0.0", 993)
    assert s.tls_cert is None and s.tls_key is None
    assert s.trusted_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert s.max_line == 65536
    assert s.max_literal == 64 * 1024 * 1024
    assert s.max_command >= s.max_literal
    assert s.idle_timeout == 1800.0
    assert s.log_level == "INFO"
    assert s.hostname
    assert s.database == tmp_path / "carteiro.db"


def test_settings_are_frozen(tmp_path):
    s = load_settings(None, tmp_path, {})
    with pytest.raises(AttributeError):
        s.max_line = 1  # type: ignore[misc]


def test_valid_file(tmp_path):
    (tmp_path / "certs").mkdir()
    config = write(
        tmp_path,
        """
data_dir = "mail"
hostname = "Mail.Example.org."
imap = "off"
imaps = "[::1]:1993"
tls_cert = "certs/fullchain.pem"
tls_key = "/etc/ssl/private/key.pem"
trusted_networks = ["10.0.0.0/8", "::1", "192.168.1.7"]
max_line = 8192
max_literal = 10485760
max_command = 20971520
idle_timeout = 600
log_level = "debug"
""",
    )
    s = load_settings(config, None, {})
    assert s == Settings(
        data_dir=tmp_path / "mail",
        hostname="mail.example.org",
        imap=None,
        imaps=("::1", 1993),
        tls_cert=tmp_path / "certs" / "fullchain.pem",
        tls_key=Path("/etc/ssl/private/key.pem"),
        trusted_networks=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("192.168.1.7/32"),
        ),
        max_line=8192,
        max_literal=10485760,
        max_command=20971520,
        idle_timeout=600.0,
        log_level="DEBUG",
        config_dir=tmp_path,
    )


def test_data_dir_precedence(tmp_path, monkeypatch):
    config = write(tmp_path, 'data_dir = "/from/config"\n')
    assert load_settings(config, None, {}).data_dir == Path("/from/config")
    monkeypatch.setenv("CARTEIRO_DATA_DIR", str(tmp_path / "env"))
    assert load_settings(config, None, {}).data_dir == tmp_path / "env"
    assert load_settings(config, tmp_path / "arg", {}).data_dir == tmp_path / "arg"


def test_default_data_dir(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_data_dir() == Path("/var/lib/carteiro")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_data_dir() == Path.home() / ".local/share/carteiro"
    assert load_settings(None, None, {}).data_dir == Path.home() / ".local/share/carteiro"


def test_overrides_win_and_none_is_ignored(tmp_path):
    config = write(tmp_path, 'imap = "127.0.0.1:143"\nimaps = "127.0.0.1:993"\n')
    s = load_settings(config, tmp_path, {"imap": "127.0.0.1:1143", "imaps": None})
    assert s.imap == ("127.0.0.1", 1143)
    assert s.imaps == ("127.0.0.1", 993)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:1143", ("127.0.0.1", 1143)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("localhost:143", ("localhost", 143)),
        ("[::1]:993", ("::1", 993)),
        ("[::]:993", ("::", 993)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected
    if expected is not None:
        assert parse_listen(format_listen(expected)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "143", ":143", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
     "127.0.0.1:http", "::1:143", "[::1]", "[::1]143", "[nope]:143", "bad host:143"],
)  # fmt: skip
def test_bad_listen(text, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(None, tmp_path, {"imap": text})
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("imap: ")


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("imap = 143", "expected a string"),
        ('imaps = "yes"', "imaps"),
        ('tls_cert = "/c.pem"', "tls_cert and tls_key must be set together"),
        ('trusted_networks = "10.0.0.0/8"', "expected a list"),
        ('trusted_networks = ["10.0.0.0/33"]', "not a network"),
        ("max_line = 10", "too small"),
        ('max_literal = "64M"', "whole number"),
        ("max_line = true", "whole number"),
        ("max_line = 100000\nmax_command = 50000", "smaller than max_line"),
        ("idle_timeout = 0", "not positive"),
        ('log_level = "loud"', "not a log level"),
        ('hostname = "bad_host!"', "not a valid host name"),
        ("colour = 1", "unknown setting 'colour'"),
        ('literal_plus = "no"', "not a boolean"),
        ('pop3_retrieved = "archive"', "not keep or delete"),
        ('pop3_new_only = "yes"', "true or false"),
        ('pop3 = "110"', "pop3"),
        ("message_limit = 10", "too small"),
    ],
)
def test_invalid_values(tmp_path, toml, fragment):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, toml + "\n"), tmp_path, {})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_toml(tmp_path):
    config = write(tmp_path, "imap = \n")
    with pytest.raises(ConfigError) as e:
        load_settings(config, tmp_path, {})
    assert "not valid TOML" in str(e.value)
    assert str(config) in str(e.value)
    assert "\n" not in str(e.value)


def test_not_utf8(tmp_path):
    config = tmp_path / "carteiro.toml"
    config.write_bytes(b'hostname = "\xff"\n')
    with pytest.raises(ConfigError):
        load_settings(config, tmp_path, {})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path / "nope.toml", tmp_path, {})
    assert "does not exist" in str(e.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_settings(tmp_path, tmp_path, {})  # a directory
    assert "cannot read config file" in str(e.value)


def test_literal_and_message_limit_settings(tmp_path):
    s = load_settings(write(tmp_path, "literal_plus = false\nmessage_limit = 5000\n"), tmp_path, {})
    assert (s.literal_plus, s.message_limit) == (False, 5000)
    d = load_settings(None, tmp_path, {})
    assert (d.literal_plus, d.message_limit) == (True, 1_000_000)


def test_security_tables(tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    config = write(
        tmp_path,
        """
audit_log = "logs/audit.jsonl"
max_connections_per_ip = 5
[defence]
ip_ban_after = 4
never_ban = ["10.0.0.0/8"]
[anomalies]
guessing_failures = 3
[alerts]
postmaster = "postmaster@example.org"
[[oauth.issuers]]
issuer = "https://id.example.org"
audience = "mail"
jwks_file = "jwks.json"
""",
    )
    s = load_settings(config, tmp_path, {})
    assert s.audit_log == tmp_path / "logs" / "audit.jsonl"
    assert s.max_connections_per_ip == 5
    assert s.defence == {"ip_ban_after": 4, "never_ban": ["10.0.0.0/8"]}
    assert s.oauth_issuers[0]["issuer"] == "https://id.example.org"
    assert load_settings(write(tmp_path, 'audit_log = "off"\n'), tmp_path, {}).audit_off


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[defence]\nip_ban_after = -1\n", "defence"),
        ("[defence]\nfrob = 1\n", "frob"),
        ('[anomalies]\nguessing_failures = "x"\n', "anomalies.guessing_failures"),
        ("[alerts]\nwebhook_url = 3\n", "alerts.webhook_url"),
        ('[[oauth.issuers]]\nissuer = "x"\n', "oauth.issuers"),
        ("defence = 3\n", "[defence] must be a table"),
        ("max_concurrent_auth = 0\n", "too small"),
    ],
)
def test_bad_security_tables(tmp_path, toml, fragment):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, toml), tmp_path, {})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_readme_configuration_example_loads(tmp_path):
    """The README's example configuration is valid: the documentation stays true."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    block = block.replace('data_dir = "/var/lib/carteiro"', f'data_dir = "{tmp_path}"')
    for path in ("/etc/letsencrypt/live/mail.example.org/fullchain.pem",
                 "/etc/letsencrypt/live/mail.example.org/privkey.pem"):  # fmt: skip
        block = block.replace(path, str(tmp_path / Path(path).name))
    s = load_settings(write(tmp_path, block), None, {})
    assert s.defence["ip_ban_after"] == 10 and s.oauth_issuers[0]["audience"] == "carteiro"
    assert s.expunge_retention == 604800 and s.max_concurrent_auth == 4
    assert s.lmtp_socket == Path("/run/carteiro/lmtp") and s.submissions == ("0.0.0.0", 465)
    assert s.queue["lifetime"] == "5d" and s.inbound["failure_policy"] == "enforce"
    assert s.auth_cache_ttl == 300 and s.auth_cache_size == 10000


def test_smtp_settings(tmp_path):
    s = load_settings(None, tmp_path, {})
    assert (s.smtp, s.submission, s.submissions, s.lmtp, s.lmtp_socket) == (
        ("0.0.0.0", 25), ("0.0.0.0", 587), ("0.0.0.0", 465), None, None,
    )  # fmt: skip
    toml = (
        'smtp = "off"\nlmtp = "127.0.0.1:2424"\nmax_message_size = 2048\n'
        'dns_servers = ["127.0.0.1", "[::1]:5353", "192.0.2.1:53"]\nsend_rate = 0\n'
        '[queue]\nretry_first = "30s"\nrelay_host = "smarthost.example.net:587"\n'
        '[inbound]\nfailure_policy = "mark"\n'
    )
    s = load_settings(write(tmp_path, toml), tmp_path, {})
    assert s.smtp is None and s.lmtp == ("127.0.0.1", 2424) and s.max_message_size == 2048
    assert s.dns_servers == (("127.0.0.1", 53), ("::1", 5353), ("192.0.2.1", 53))
    assert s.send_rate == 0


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('dns_servers = "127.0.0.1"', "dns_servers"),
        ('dns_servers = ["ns.example.org"]', "not an IP address"),
        ('submission = "587"', "submission:"),
        ("max_message_size = 10", "max_message_size"),
        ('[queue]\nlifetime = "forever"', "queue.lifetime"),
        ("[queue]\nbogus = 1", "queue.bogus"),
        ('[inbound]\nfailure_policy = "shrug"', "failure_policy"),
    ],
)
def test_bad_smtp_settings(tmp_path, toml, fragment):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, toml), tmp_path, {})
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_auth_cache_settings(tmp_path):
    default = load_settings(None, tmp_path, {})
    assert default.auth_cache_ttl == 300.0 and default.auth_cache_size == 10_000
    s = load_settings(write(tmp_path, "auth_cache_ttl = 0\nauth_cache_size = 50\n"), tmp_path, {})
    assert s.auth_cache_ttl == 0.0 and s.auth_cache_size == 50
    assert load_settings(None, tmp_path, {"auth_cache_ttl": 2.5}).auth_cache_ttl == 2.5


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("auth_cache_ttl = -1", "auth_cache_ttl: expected seconds"),
        ('auth_cache_ttl = "1m"', "auth_cache_ttl: expected seconds"),
        ("auth_cache_ttl = true", "auth_cache_ttl: expected seconds"),
        ("auth_cache_size = -1", "too small"),
        ("auth_cache_size = 1.5", "whole number"),
    ],
)
def test_bad_auth_cache_settings(tmp_path, toml, fragment):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, toml + "\n"), tmp_path, {})
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)
