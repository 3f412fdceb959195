"""format_time_fast: the text of recorder.timefmt.format_time, for every input."""

from __future__ import annotations

import random

from generator.output.timetext import format_time_fast
from recorder.timefmt import format_time

NS = 1_000_000_000
DAY = 86400 * NS


def test_same_text_as_format_time() -> None:
    rng = random.Random(7)
    values = [0, -1, 1, NS - 1, NS, DAY - 1, DAY, -DAY, -DAY - 1,
              1_795_165_200_032_710_965,  # 2026
              253_402_300_799 * NS + NS - 1,  # 9999-12-31T23:59:59.999999999
              253_402_300_800 * NS,  # year 10000: five digits
              -62_135_596_800 * NS,  # 0001-01-01
              -62_135_596_801 * NS]  # year 0
    values += [rng.randrange(-(1 << 62), 1 << 62) for _ in range(2000)]
    values += [1_795_165_200 * NS + rng.randrange(30 * DAY) for _ in range(2000)]
    for ns in values:
        assert format_time_fast(ns) == format_time(ns), ns
        assert format_time_fast(ns) == format_time(ns), ns  # from the day table
