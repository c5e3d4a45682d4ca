"""The ``[queue]`` table of the config → QueueConfig, and the retry schedule."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carteiro.smtp.queue import QueueConfig, parse_duration, queue_config_from_settings


def test_defaults():
    c = queue_config_from_settings({})
    assert c == QueueConfig()
    assert c.port == 25 and c.relay_host is None
    assert c.lifetime == 5 * 86400 and c.delay_warning == 4 * 3600
    assert c.retry_first == 300 and c.retry_max == 4 * 3600
    assert c.concurrency == 20 and c.poll_interval == 5.0 and c.lease == 900.0
    assert not c.tls_verify


def test_from_toml():
    table = tomllib.loads(
        """
        [queue]
        port = 2525
        relay_host = "smtp.example.net:587"
        lifetime = "3d"
        delay_warning = "90m"
        retry_first = 60
        retry_max = "1h30m"
        concurrency = 5
        poll_interval = 0.5
        lease = "15m"
        connect_timeout = "10s"
        command_timeout = 120.5
        tls_verify = true
        """
    )["queue"]
    c = queue_config_from_settings(table)
    assert c == QueueConfig(
        port=2525,
        relay_host=("smtp.example.net", 587),
        lifetime=3 * 86400,
        delay_warning=90 * 60,
        retry_first=60,
        retry_max=5400,
        concurrency=5,
        poll_interval=0.5,
        lease=900,
        connect_timeout=10,
        command_timeout=120.5,
        tls_verify=True,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5d", 5 * 86400),
        ("4h", 14400),
        ("30m", 1800),
        ("10s", 10),
        ("1h30m", 5400),
        ("1d 12h", 129600),
        ("0.5s", 0.5),
        ("90", 90),
        (" 2H ", 7200),
        (45, 45),
        (1.5, 1.5),
        ("0", 0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "value", ["", "5x", "d", "5 days", "-1", "h5", "1h junk", "inf", "nan", -3, True, None, [1]]
)
def test_bad_durations(value):
    with pytest.raises(ValueError, match=r"^queue\.lifetime: expected") as info:
        queue_config_from_settings({"lifetime": value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.example.net", ("relay.example.net", 25)),
        ("relay.example.net:2525", ("relay.example.net", 2525)),
        ("192.0.2.1:587", ("192.0.2.1", 587)),
        ("[2001:db8::1]:587", ("2001:db8::1", 587)),
        ("[2001:db8::1]", ("2001:db8::1", 25)),
        ("2001:db8::1", ("2001:db8::1", 25)),
        ("", None),
    ],
)
def test_relay_host(text, expected):
    assert queue_config_from_settings({"relay_host": text}).relay_host == expected


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:x", ":25", "a b:25", 25, "[::1]:"])
def test_bad_relay_host(text):
    with pytest.raises(ValueError, match=r"^queue\.relay_host: expected HOST"):
        queue_config_from_settings({"relay_host": text})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nonsense": 1}, r"^queue\.nonsense: unknown setting; known ones are "),
        ({"port": "25"}, r"^queue\.port: expected a whole number"),
        ({"port": 0}, r"^queue\.port: 0 is not a TCP port"),
        ({"port": 65536}, r"^queue\.port: 65536 is not a TCP port"),
        ({"concurrency": 0}, r"^queue\.concurrency: must be at least 1"),
        ({"concurrency": True}, r"^queue\.concurrency: expected a whole number"),
        ({"tls_verify": "yes"}, r"^queue\.tls_verify: expected true or false"),
        ({"lifetime": 0}, r"^queue\.lifetime: must be more than 0 seconds"),
        ({"lease": "0s"}, r"^queue\.lease: must be more than 0 seconds"),
        ({"retry_first": "2h", "retry_max": "1h"}, r"^queue\.retry_max: must not be less"),
    ],
)
def test_errors(table, message):
    with pytest.raises(ValueError, match=message) as info:
        queue_config_from_settings(table)
    assert "\n" not in str(info.value)


def test_delay_warning_zero_means_never():
    assert queue_config_from_settings({"delay_warning": 0}).delay_warning == 0


def test_retry_schedule():
    c = QueueConfig(retry_first=300, retry_max=4 * 3600)
    delays = [c.retry_delay(n) for n in range(1, 9)]
    assert delays == [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]
    assert c.retry_delay(10_000) == 14400  # no overflow however many attempts


@given(
    first=st.floats(0.01, 1e5),
    extra=st.floats(0, 1e6),
    attempts=st.integers(1, 10**6),
)
def test_retry_delay_bounded_and_growing(first, extra, attempts):
    c = QueueConfig(retry_first=first, retry_max=first + extra)
    d = c.retry_delay(attempts)
    assert first <= d <= first + extra
    assert c.retry_delay(attempts + 1) >= d
