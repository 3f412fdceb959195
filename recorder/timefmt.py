"""RFC 3339 timestamps <-> integer nanoseconds since the Unix epoch, and durations.

``parse_time`` sits on the hot path of every Hubble import (one call per kept flow),
so it avoids ``datetime`` for all but the first timestamp of each minute: the
``YYYY-MM-DDTHH:MM`` prefix is converted once and cached. UTC times of a second seen
before take a shorter path still: ``YYYY-MM-DDTHH:MM:SS`` -> ns is cached too.
"""

from __future__ import annotations

import calendar
import re

_NS = 1_000_000_000
_MAX_PREFIX_CACHE = 4096

# prefix "YYYY-MM-DDTHH:MM" -> epoch seconds of that minute (UTC, no offset applied)
_prefix_seconds: dict[str, int] = {}
# prefix "YYYY-MM-DDTHH:MM:SS" of a UTC ("Z") time -> ns of that second, for the fast path
_second_ns: dict[str, int] = {}

_FULL = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_FRACTION_SCALE: tuple[int, ...] = tuple(10 ** (9 - n) for n in range(10))


def _minute_seconds(prefix: str, s: str) -> int:
    """Epoch seconds of the minute named by ``prefix`` (validated, then cached)."""
    m = _FULL.fullmatch(s)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {s!r}")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"not a valid date: {s!r}")
    if hour > 23 or minute > 59:
        raise ValueError(f"not a valid time of day: {s!r}")
    secs = calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))
    if len(_prefix_seconds) >= _MAX_PREFIX_CACHE:
        _prefix_seconds.clear()
    _prefix_seconds[prefix] = secs
    return secs


def parse_time(s: str) -> int:
    """``2021-06-16T16:52:13.136834446Z`` (or ``+02:00``, 0..9 fraction digits) -> ns.

    Raises ValueError for anything else (the caller adds path and line).
    """
    # Fast path: a UTC time in a second already seen (validated then).
    if type(s) is str and s[-1:] == "Z":
        base = _second_ns.get(s[:19])
        if base is not None:
            if len(s) == 20:
                return base
            frac = s[20:-1]
            if s[19] == "." and 0 < len(frac) <= 9 and frac.isdigit() and frac.isascii():
                return base + int(frac) * _FRACTION_SCALE[len(frac)]
    return _parse_time_slow(s)


def _parse_time_slow(s: str) -> int:
    if type(s) is not str or len(s) < 20:
        raise ValueError(f"not an RFC 3339 timestamp: {s!r}")
    prefix = s[:16]
    base = _prefix_seconds.get(prefix)
    if base is None:
        base = _minute_seconds(prefix, s)
    # s[16] == ":" and two second digits, then optional fraction, then zone.
    if s[16] != ":":
        raise ValueError(f"not an RFC 3339 timestamp: {s!r}")
    sec_txt = s[17:19]
    if not (sec_txt.isdigit() and sec_txt.isascii()):
        raise ValueError(f"not an RFC 3339 timestamp: {s!r}")
    sec = int(sec_txt)
    if sec > 60:  # 60 = leap second, folded into the next minute like Go does
        raise ValueError(f"not a valid time of day: {s!r}")
    last = s[-1]
    if last == "Z" or last == "z":
        body = s[19:-1]
        offset = 0
        if len(_second_ns) >= _MAX_PREFIX_CACHE:
            _second_ns.clear()
        _second_ns[s[:19]] = (base + sec) * _NS
    else:
        zone = s[-6:]
        body = s[19:-6]
        if not (
            len(s) >= 25
            and zone[0] in "+-"
            and zone[3] == ":"
            and zone[1:3].isdigit()
            and zone[4:6].isdigit()
            and zone.isascii()
        ):
            raise ValueError(f"timestamp needs a 'Z' or '+hh:mm' zone: {s!r}")
        hh, mm = int(zone[1:3]), int(zone[4:6])
        if hh > 23 or mm > 59:
            raise ValueError(f"bad UTC offset in timestamp: {s!r}")
        offset = (hh * 3600 + mm * 60) * (1 if zone[0] == "+" else -1)
    frac = 0
    if body:
        digits = body[1:]
        if body[0] != "." or not digits or len(digits) > 9:
            raise ValueError(f"bad fractional seconds in timestamp: {s!r}")
        if not (digits.isdigit() and digits.isascii()):
            raise ValueError(f"bad fractional seconds in timestamp: {s!r}")
        frac = int(digits) * _FRACTION_SCALE[len(digits)]
    return (base + sec - offset) * _NS + frac


# whole seconds since the epoch -> "YYYY-MM-DDTHH:MM:SS": the times of one flow log
# fall in comparatively few seconds, and the calendar arithmetic is most of the cost
_second_text: dict[int, str] = {}


def format_time(ns: int) -> str:
    """ns -> ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (always 9 fraction digits, UTC)."""
    if type(ns) is not int:
        ns = int(ns)
    secs, frac = divmod(ns, _NS)
    text = _second_text.get(secs)
    if text is None:
        t = _gmtime(secs)
        text = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
        if len(_second_text) >= _MAX_PREFIX_CACHE:
            _second_text.clear()
        _second_text[secs] = text
    return f"{text}.{frac:09d}Z"


def _gmtime(secs: int) -> tuple[int, int, int, int, int, int]:
    days, rem = divmod(secs, 86400)
    hour, rem = divmod(rem, 3600)
    minute, sec = divmod(rem, 60)
    year, month, day = _civil_from_days(days)
    return year, month, day, hour, minute, sec


def _civil_from_days(z: int) -> tuple[int, int, int]:
    # Howard Hinnant's days->civil algorithm: exact for any year, no datetime limits.
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)?\s*")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
    "d": 86400 * _NS,
}


def parse_duration(text: str) -> int:
    """``60s``, ``5m``, ``1h``, ``500ms``, ``1.5h`` or a bare number of seconds -> ns."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(
            f"not a duration: {text!r}; write a number with a unit (ns, us, ms, s, m, h, "
            "d), e.g. 60s, 5m, 1h, 7d"
        )
    unit = _UNIT_NS[m.group(2) or "s"]
    whole, _, frac = m.group(1).partition(".")
    ns = int(whole) * unit
    if frac:
        ns += int(frac) * unit // 10 ** len(frac)
    return ns


# The times a record may carry: a flow log writes them as RFC 3339 with a four-digit year
# (RFC 3339 section 5.6: date-fullyear = 4DIGIT) and reads back only those, so a reader
# that turns counters into times (a capture's clock and offset, conntrack's epoch
# seconds) must not produce times outside it; and no capture of a Kubernetes cluster
# was taken before 1970 or after 2199. Outside: a bad item, never a record.
MIN_TIME_NS = 0
MAX_TIME_NS = calendar.timegm((2200, 1, 1, 0, 0, 0, 0, 0, 0)) * _NS


def check_time_ns(ns: int) -> int:
    """``ns`` when it is a time a record may carry; else ValueError saying why."""
    if MIN_TIME_NS <= ns < MAX_TIME_NS:
        return ns
    raise ValueError(f"time {ns} ns since 1970 is not between 1970 and 2199 (a wrong clock "
                     "or time offset?)")
