"""Which GPS points a patrol keeps (server/domain/patrols.py), worked by hand."""
from datetime import datetime, timedelta, timezone

import pytest

from server.domain.patrols import INACCURATE, JUMP, SLOT_SECONDS, Fix, judge, metres, slot

T0 = datetime(2026, 11, 24, 8, tzinfo=timezone.utc)
DEG_LAT_M = 111_195.0  # metres in a degree of latitude on the mean sphere


def walk(*steps, accuracy=5.0):
    """Fixes 10 s apart going north by the given metres each step."""
    fixes, lat = [], 30.0
    for n, step in enumerate(steps):
        lat += step / DEG_LAT_M
        fixes.append(Fix(T0 + timedelta(seconds=10 * n), 120.0, lat, accuracy))
    return fixes


def test_distance_of_a_degree_of_latitude():
    a, b = Fix(T0, 120.0, 30.0, None), Fix(T0, 120.0, 31.0, None)
    assert metres(a, b) == pytest.approx(DEG_LAT_M, rel=1e-4)


def test_slots_are_five_seconds_of_the_phones_time():
    assert slot(T0) == slot(T0 + timedelta(seconds=SLOT_SECONDS - 1)) != slot(T0 + timedelta(seconds=SLOT_SECONDS))


def test_a_walk_is_kept_whole():
    assert judge(walk(0, 12, 12, 12, 12), 50) == [None] * 5


def test_a_lone_spike_is_a_jump_and_its_neighbours_are_kept():
    # 12 m, then 3 km north (300 m/s), then back: the spike alone goes
    fixes = walk(0, 12, 3000, -2988, 12)
    assert judge(fixes, 50) == [None, None, JUMP, None, None]


def test_a_fast_but_possible_ride_is_kept():
    assert judge(walk(0, 300, 300, 300), 50) == [None] * 4  # 30 m/s: a car on a ring road


def test_inaccurate_points_are_left_out_and_not_neighbours():
    fixes = walk(0, 12, 12, 12)
    fixes[1] = Fix(fixes[1].t, 121.0, fixes[1].lat, 400.0)  # a cell-tower fix 100 km away
    assert judge(fixes, 50) == [None, INACCURATE, None, None]


def test_a_first_or_last_spike_is_judged_by_its_one_neighbour():
    # the phone's first fix is 3 km off, and so is its last: each is a jump, the walk between is kept
    fixes = walk(0, 3000, 12, 12, 12, 3000)
    assert judge(fixes, 50) == [JUMP, None, None, None, None, JUMP]
