"""Hotspots (风险研判, docs/STATS.md): when a place's count of reports in a window is more
than its own past explains. Pure rules.

The test: a unit's reports of a category group in the window are taken as Poisson with the
mean of its own past windows (``baseline_windows`` of the same length just before), that
mean floored at ``floor`` so that a place with no past is not hot on its second report; the
window is hot when at least ``min_count`` reports came and seeing that many or more has a
probability below ``alpha``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class HotspotRules:
    days: float = 7  # the window's length (days; a report's quarter so far is a fraction)
    baseline_windows: int = 8  # past windows of the same length making the baseline
    alpha: float = 0.01  # hot when P(X ≥ count) is below this
    min_count: int = 3  # never hot with fewer reports than this
    floor: float = 0.5  # the least baseline mean a window is judged against (reports a window)


def poisson_at_least(count: int, mean: float) -> float:
    """P(X ≥ count) for X ~ Poisson(mean), summed in logs (no overflow for large counts)."""
    if count <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    below = sum(math.exp(k * math.log(mean) - mean - math.lgamma(k + 1)) for k in range(count))
    return max(0.0, 1.0 - below)


def judge(count: int, past: int, rules: HotspotRules) -> tuple[bool, float, float]:
    """(hot?, p-value, the baseline mean a window) for ``count`` reports in the window and
    ``past`` in the baseline windows together."""
    mean = max(past / rules.baseline_windows, rules.floor)
    p = poisson_at_least(count, mean)
    return count >= rules.min_count and p < rules.alpha, p, past / rules.baseline_windows
