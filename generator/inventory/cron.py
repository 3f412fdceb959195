"""CronJob schedules: when does a schedule fire inside a time window, and when next?

The syntax is the one the CronJob controller accepts (robfig/cron's standard parser):
five fields - minute, hour, day of month, month, day of week - each ``*``, ``?`` (as
``*``), a number, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n`` (from a to the
end), or a comma list of those; month and weekday names (``jan``, ``mon``); day of week
0-7 with both 0 and 7 Sunday; and the descriptors ``@yearly``/``@annually``,
``@monthly``, ``@weekly``, ``@daily``/``@midnight``, ``@hourly``. As in cron, when both
day of month and day of week are restricted a day matches either; when one of them
starts with ``*`` both must match. Times are UTC unless a zone is given (the CronJob's
``spec.timeZone``). Written here rather than taken from a package: it is small, and
flowpol needs only "which minutes match", not a scheduler.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

NS_PER_MIN = 60 * 1_000_000_000
MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@hourly": "0 * * * *"}
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, MONTHS), ("day of week", 0, 7, WEEKDAYS))


class CronError(ValueError):
    """A schedule the CronJob controller would reject; the message says why."""


@dataclass(frozen=True, slots=True)
class Schedule:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_star: bool  # day-of-month field starts with * or ?
    weekday_star: bool

    def day_matches(self, d: dt.date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    v = names.get(text.lower())
    if v is None:
        if not text.isdigit():
            raise CronError(f"{name} field: {text!r} is not a number"
                            + (f" or a name ({', '.join(names)})" if names else ""))
        v = int(text)
    if not low <= v <= high:
        raise CronError(f"{name} field: {v} is out of range {low}-{high}")
    return v


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name} field: empty list element in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if start > end:
                raise CronError(f"{name} field: range {base!r} runs backwards")
        else:
            start = _value(base, name, low, high, names)
            end = high if slash else start
        out.update(range(start, end + 1, step))
    return out


def parse(text: str) -> Schedule:
    spec = text.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("a time zone inside the schedule is not supported by CronJobs; use "
                        "spec.timeZone")
    spec = DESCRIPTORS.get(spec.lower(), spec)
    if spec.startswith("@"):
        raise CronError(f"unknown descriptor {spec!r}; use @yearly, @monthly, @weekly, "
                        "@daily or @hourly")
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), got "
                        f"{len(fields)} in {text!r}")
    sets = [_field(f, *meta) for f, meta in zip(fields, _FIELDS)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Schedule(text, frozenset(sets[0]), frozenset(sets[1]), frozenset(sets[2]),
                    frozenset(sets[3]), weekdays, fields[2][0] in "*?", fields[4][0] in "*?")


def fires(schedule: Schedule, start_ns: int, end_ns: int, limit: int = 10_000,
          time_zone: str | None = None) -> list[int]:
    """Times (ns, whole minutes) in [start_ns, end_ns] at which the schedule fires."""
    zone = ZoneInfo(time_zone) if time_zone else dt.timezone.utc
    start = dt.datetime.fromtimestamp(start_ns / 1e9, zone)
    end = dt.datetime.fromtimestamp(end_ns / 1e9, zone)
    out: list[int] = []
    day = start.date()
    while day <= end.date() and len(out) < limit:
        if schedule.day_matches(day):
            for hour in sorted(schedule.hours):
                for minute in sorted(schedule.minutes):
                    t = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    ns = int(t.timestamp()) * 1_000_000_000
                    if start_ns <= ns <= end_ns:
                        out.append(ns)
                        if len(out) >= limit:
                            return out
        day += dt.timedelta(days=1)
    return out


def longest_gap(schedule: Schedule, from_ns: int, time_zone: str | None = None) -> int | None:
    """The longest time between two firings in the next five weeks, or in the next
    thirteen months for rarer schedules (how long to watch to see it run at least once,
    whenever the watch starts); None when it fires less than twice in that time."""
    for days in (35, 400):
        times = fires(schedule, from_ns, from_ns + days * 86400 * 1_000_000_000,
                      limit=50_000, time_zone=time_zone)
        if len(times) >= 2:
            return max(b - a for a, b in zip(times, times[1:]))
    return None


def next_fire(schedule: Schedule, after_ns: int, time_zone: str | None = None) -> int | None:
    """The first time after ``after_ns`` the schedule fires (within thirteen months)."""
    times = fires(schedule, after_ns + 1, after_ns + 400 * 86400 * 1_000_000_000, limit=1,
                  time_zone=time_zone)
    return times[0] if times else None


@dataclass(frozen=True, slots=True)
class Window:
    """A CronJob schedule over a recording: how often it fired in it, when it fires next,
    or why that cannot be told (``error``, a sentence about the schedule or zone)."""

    fired: int | None
    next_run: int | None
    error: str | None = None


def in_window(schedule: str, start_ns: int, end_ns: int, time_zone: str | None = None
              ) -> Window:
    try:
        parsed = parse(schedule)
        return Window(len(fires(parsed, start_ns, end_ns, time_zone=time_zone)),
                      next_fire(parsed, end_ns, time_zone))
    except CronError as e:
        return Window(None, None, f"its schedule {schedule!r} cannot be read ({e})")
    except (ValueError, KeyError):  # zoneinfo: an unknown or malformed zone name
        return Window(None, None, f"its time zone {time_zone!r} is not one this machine knows "
                                  "(IANA names, e.g. Europe/Berlin), so when it fires is unknown")
