from __future__ import annotations

import datetime as dt
import random

import pytest

from recorder.timefmt import format_time, parse_duration, parse_time

NS = 1_000_000_000


def _reference(s: str) -> int:
    """The same instant computed with datetime (microseconds) plus the extra digits."""
    head, _, rest = s.partition(".")
    frac = ""
    zone = rest
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, zone = rest[:digits], rest[digits:]
    else:
        head, zone = s[:19], s[19:]
    when = dt.datetime.fromisoformat(head + (zone.replace("Z", "+00:00")))
    return int(when.timestamp()) * NS + (int(frac.ljust(9, "0")) if frac else 0)


@pytest.mark.parametrize("text", [
    "2021-06-16T16:52:13.136834446Z",
    "2021-06-16T16:52:13.1368Z",  # Go's RFC3339Nano trims trailing zeros
    "2021-06-16T16:52:13.1Z",
    "2021-06-16T16:52:13Z",
    "2021-06-16T18:52:13.5+02:00",
    "2021-06-16T12:22:13.000000001-04:30",
    "2024-02-29T23:59:59.999999999Z",  # leap day
    "1969-12-31T23:59:59.5Z",  # before the epoch
    "2100-03-01T00:00:00Z",
])
def test_parse_matches_datetime(text: str) -> None:
    assert parse_time(text) == _reference(text)
    assert parse_time(text) == parse_time(text)  # second call: the cached path


def test_cached_and_uncached_paths_agree() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ns = rng.randrange(0, 4_000_000_000) * NS + rng.randrange(NS)
        text = format_time(ns)
        assert parse_time(text) == ns
        trimmed = text[:-1].rstrip("0").rstrip(".") + "Z"
        assert parse_time(trimmed) == ns


def test_format_is_utc_with_nine_digits() -> None:
    assert format_time(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_time(1_623_862_333_136_834_446) == "2021-06-16T16:52:13.136834446Z"
    assert format_time(-1) == "1969-12-31T23:59:59.999999999Z"
    assert format_time(parse_time("2021-06-16T18:52:13.5+02:00")) == (
        "2021-06-16T16:52:13.500000000Z"
    )


@pytest.mark.parametrize("text", [
    "",
    "yesterday",
    "2021-06-16",
    "2021-06-16T16:52:13",  # no zone
    "2021-06-16T16:52:13.Z",
    "2021-06-16T16:52:13.1234567890Z",  # 10 digits
    "2021-13-16T16:52:13Z",
    "2021-02-30T16:52:13Z",
    "2021-06-16T24:00:00Z",
    "2021-06-16T16:60:00Z",
    "2021-06-16T16:52:61Z",
    "2021-06-16T16:52:13+2:00",
    "2021-06-16T16:52:13+24:00",
    "2021-06-16T16:52:1xZ",
    "2021-06-16T16:52:13.12x4Z",
    "2021-06-16T16:52:13.١٢Z",  # non-ASCII digits
])
def test_garbage_is_a_value_error(text: str) -> None:
    parse_time("2021-06-16T16:52:00Z")  # warm the cache for this minute
    with pytest.raises(ValueError):
        parse_time(text)


def test_non_strings_are_value_errors() -> None:
    for value in (None, 12, b"2021-06-16T16:52:13Z"):
        with pytest.raises(ValueError):
            parse_time(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, ns", [
    ("60s", 60 * NS),
    ("60", 60 * NS),
    ("5m", 300 * NS),
    ("1h", 3600 * NS),
    ("1.5h", 5400 * NS),
    ("500ms", NS // 2),
    ("1d", 86400 * NS),
    ("0s", 0),
])
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "s", "-5s", "5 minutes", "1e3s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="e.g. 60s"):
        parse_duration(text)
