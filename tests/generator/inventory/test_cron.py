"""CronJob schedules: parsed as the CronJob controller parses them, fired as cron fires."""

from __future__ import annotations

import pytest

from generator.inventory.cron import CronError, fires, longest_gap, parse
from recorder.timefmt import format_time, parse_time

FRIDAY_9 = parse_time("2026-11-20T09:00:00Z")  # a Friday
HOUR = 3600 * 1_000_000_000
DAY = 24 * HOUR


def _times(expr: str, start: int, span: int, tz: str | None = None) -> list[str]:
    return [format_time(t)[:16] for t in fires(parse(expr), start, start + span, time_zone=tz)]


def test_steps_ranges_lists_and_names() -> None:
    assert _times("*/30 * * * *", FRIDAY_9, 2 * HOUR) == [
        "2026-11-20T09:00", "2026-11-20T09:30", "2026-11-20T10:00", "2026-11-20T10:30",
        "2026-11-20T11:00"]
    assert _times("5-20/5 9 * * *", FRIDAY_9, HOUR) == [
        "2026-11-20T09:05", "2026-11-20T09:10", "2026-11-20T09:15", "2026-11-20T09:20"]
    assert _times("50/5 9 * * *", FRIDAY_9, HOUR) == ["2026-11-20T09:50", "2026-11-20T09:55"]
    assert _times("0 12,18 * * fri", FRIDAY_9, 8 * DAY) == [
        "2026-11-20T12:00", "2026-11-20T18:00", "2026-11-27T12:00", "2026-11-27T18:00"]
    assert _times("0 0 1 jan-mar *", FRIDAY_9, 100 * DAY) == [
        "2027-01-01T00:00", "2027-02-01T00:00"]


def test_sunday_is_0_and_7_and_descriptors_expand() -> None:
    assert _times("0 3 * * 0", FRIDAY_9, 8 * DAY) == ["2026-11-22T03:00"]
    assert _times("0 3 * * 7", FRIDAY_9, 8 * DAY) == ["2026-11-22T03:00"]
    assert _times("0 3 * * sun", FRIDAY_9, 8 * DAY) == ["2026-11-22T03:00"]
    assert _times("@weekly", FRIDAY_9, 8 * DAY) == ["2026-11-22T00:00"]
    assert _times("@hourly", FRIDAY_9, HOUR) == ["2026-11-20T09:00", "2026-11-20T10:00"]
    assert _times("@daily", FRIDAY_9, DAY) == ["2026-11-21T00:00"]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # cron: the 1st of the month OR any Monday; with a * in either field: AND.
    assert _times("0 9 1 * mon", FRIDAY_9, 12 * DAY) == [
        "2026-11-23T09:00", "2026-11-30T09:00", "2026-12-01T09:00"]
    assert _times("0 9 * * mon", FRIDAY_9, 12 * DAY) == ["2026-11-23T09:00", "2026-11-30T09:00"]
    assert _times("0 9 ? * mon", FRIDAY_9, 12 * DAY) == ["2026-11-23T09:00", "2026-11-30T09:00"]


def test_time_zone_shifts_the_firings() -> None:
    assert _times("0 9 * * *", FRIDAY_9, DAY, "Europe/Berlin") == ["2026-11-21T08:00"]


def test_longest_gap() -> None:
    assert longest_gap(parse("*/30 * * * *"), FRIDAY_9) == HOUR // 2
    assert longest_gap(parse("0 3 * * 0"), FRIDAY_9) == 7 * DAY
    assert longest_gap(parse("0 0 29 2 *"), FRIDAY_9) is None  # next 29 Feb is 2028


@pytest.mark.parametrize("expr, message", [
    ("* * * *", "expected 5 fields"),
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("5-1 * * * *", "runs backwards"),
    ("* * * foo *", "month field: 'foo' is not a number or a name"),
    ("@reboot", "unknown descriptor"),
    ("TZ=UTC 0 * * * *", "use spec.timeZone"),
    ("1,,2 * * * *", "empty list element"),
])
def test_invalid_schedules_say_why(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message.replace("*", r"\*")):
        parse(expr)


def test_in_window_counts_firings_and_says_when_next() -> None:
    from generator.inventory.cron import in_window
    from recorder.timefmt import parse_time

    start, end = parse_time("2026-11-20T09:00:00Z"), parse_time("2026-11-20T11:00:00Z")
    nightly = in_window("0 3 * * *", start, end)
    assert (nightly.fired, nightly.next_run, nightly.error) == (
        0, parse_time("2026-11-21T03:00:00Z"), None)
    # 03:00 in Berlin is 02:00 UTC in November
    assert in_window("0 3 * * *", start, end, "Europe/Berlin").next_run == \
        parse_time("2026-11-21T02:00:00Z")
    assert in_window("*/15 * * * *", start, end).fired == 9
    assert in_window("0 3 * *", start, end).error.startswith("its schedule '0 3 * *' cannot be read")
    assert "not one this machine knows" in in_window("@daily", start, end, "Mars/Olympus").error
