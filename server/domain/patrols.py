"""Patrol rules (docs/FIELD.md): which GPS points a track keeps. Pure functions.

Points arrive in batches, late and out of order; they are judged over the whole patrol in
time order each time a batch lands, so the result does not depend on the order of arrival.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

SLOT_SECONDS = 5  # one point is stored per patrol and slot of this many seconds of the phone's time
MAX_SPEED_MPS = 40.0  # 144 km/h: a point needing more to reach from its neighbours and to them is a jump
MAX_POINTS_PER_BATCH = 1000
GAP_MINUTES = 10  # a track is split where no point was kept for longer than this
EARTH_RADIUS_M = 6_371_008.8

KEPT, INACCURATE, JUMP = None, "inaccurate", "jump"  # why a point is not kept (None: kept)
STATES = ("on", "ended", "abandoned")
STATE_LABELS = {"on": ("巡查中", "On patrol"), "ended": ("已结束", "Ended"), "abandoned": ("超时结束", "Left on, ended")}


def slot(t: datetime) -> int:
    """The slot of a point's time: seconds since the epoch divided by SLOT_SECONDS."""
    return int(t.timestamp() // SLOT_SECONDS)


@dataclass(frozen=True)
class Fix:
    t: datetime
    lon: float
    lat: float
    accuracy_m: float | None


def metres(a: Fix, b: Fix) -> float:
    """Great-circle distance between two fixes (haversine)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _speed(a: Fix, b: Fix) -> float:
    seconds = abs((b.t - a.t).total_seconds())
    return math.inf if seconds == 0 else metres(a, b) / seconds


def judge(fixes: list[Fix], max_accuracy_m: float) -> list[str | None]:
    """Why each fix (in time order) is not kept, None for those kept: ``inaccurate`` when its
    accuracy is worse than ``max_accuracy_m``; ``jump`` when, among the accurate fixes, it
    would take more than MAX_SPEED_MPS both to reach it from the one before and to go from it
    to the one after (a lone spike; the first and last are judged by their one neighbour)."""
    reasons: list[str | None] = [INACCURATE if f.accuracy_m is not None and f.accuracy_m > max_accuracy_m
                                 else KEPT for f in fixes]
    accurate = [i for i, reason in enumerate(reasons) if reason is KEPT]
    for k, i in enumerate(accurate):
        before = fixes[accurate[k - 1]] if k > 0 else None
        after = fixes[accurate[k + 1]] if k + 1 < len(accurate) else None
        speeds = [_speed(other, fixes[i]) for other in (before, after) if other is not None]
        if speeds and all(s > MAX_SPEED_MPS for s in speeds) and len(accurate) > 2:
            reasons[i] = JUMP
    return reasons


# Coverage (docs/FIELD.md "Coverage"): a cell's area within this many metres of a day's kept
# tracks is covered.
COVERAGE_REACH_M = 30.0

# Missed reports (漏报, docs/FIELD.md): a case from outside the grid workers (the hotline,
# entered on the platform, a citizen through Open311) is missed by a worker whose kept track
# passed within MISSED_REACH_M of it in the MISSED_WINDOW_HOURS before its report, and who
# reported nothing of its category group within MISSED_OWN_REPORT_M in that time.
MISSED_SOURCES = ("hotline", "web", "open311")
MISSED_REACH_M = 30.0
MISSED_OWN_REPORT_M = 50.0
MISSED_WINDOW_HOURS = 24
MISSED_MAX_DAYS = 92  # the longest period asked at once
