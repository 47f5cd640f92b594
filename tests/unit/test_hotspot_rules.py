"""The hotspot test's arithmetic (server/domain/hotspots.py), against values worked by hand."""
from __future__ import annotations

import math

import pytest

from server.domain.hotspots import HotspotRules, judge, poisson_at_least


def test_the_poisson_upper_tail():
    assert poisson_at_least(0, 3.0) == 1.0
    assert poisson_at_least(1, 2.0) == pytest.approx(1 - math.exp(-2))
    assert poisson_at_least(3, 2.0) == pytest.approx(1 - 5 * math.exp(-2))
    assert poisson_at_least(6, 1.0) == pytest.approx(1 - math.exp(-1) * (1 + 1 + 1 / 2 + 1 / 6 + 1 / 24 + 1 / 120))
    assert poisson_at_least(400, 100.0) < 1e-12 and poisson_at_least(5, 0.0) == 0.0


def test_a_window_is_hot_against_its_own_past():
    rules = HotspotRules()
    assert judge(6, 8, rules)[0] is True  # 6 against 1 a week: p ≈ 0.0006
    assert judge(3, 16, rules)[0] is False  # 3 against 2 a week: p ≈ 0.32
    hot, p, mean = judge(3, 0, rules)  # no past: judged against the floor, 0.5 a week
    assert (hot, mean) == (False, 0.0) and p == pytest.approx(1 - math.exp(-0.5) * 1.625)
    assert judge(3, 0, HotspotRules(alpha=0.05))[0] is True
    assert judge(2, 0, HotspotRules(alpha=0.5))[0] is False  # fewer than min_count: never hot
