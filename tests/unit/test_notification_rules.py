"""Notification rules: quiet hours and the retry schedule (fixed clocks, seeded randomness)."""
from __future__ import annotations

import random
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from server.domain.notifications import KIND_LABELS, URGENT_KINDS, quiet_until, retry_delay

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hm: str, day: str = "2026-11-23") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize("now, expected", [
    (at("21:59"), None),
    (at("22:00"), at("07:00", "2026-11-24")),
    (at("23:30"), at("07:00", "2026-11-24")),
    (at("03:00"), at("07:00")),
    (at("07:00"), None),
])
def test_quiet_hours_across_midnight(now, expected):
    assert quiet_until(now, SHANGHAI, time(22), time(7)) == expected


def test_quiet_hours_within_a_day_and_none():
    assert quiet_until(at("12:30"), SHANGHAI, time(12), time(13, 30)) == at("13:30")
    assert quiet_until(at("14:00"), SHANGHAI, time(12), time(13, 30)) is None
    assert quiet_until(at("03:00"), SHANGHAI, None, None) is None
    assert quiet_until(at("03:00"), SHANGHAI, time(7), time(7)) is None


def test_quiet_hours_answer_in_the_zone_of_the_question():
    now = at("23:00").astimezone(timezone.utc)
    assert quiet_until(now, SHANGHAI, time(22), time(7)) == at("07:00", "2026-11-24")


def test_retries_back_off_exponentially_with_jitter_up_to_a_cap():
    rng = random.Random(7)
    delays = [retry_delay(n, base_s=2, cap_s=60, rng=rng) for n in range(1, 10)]
    steps = [min(60, 2 * 2 ** (n - 1)) for n in range(1, 10)]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps))
    assert max(delays) <= 60 and delays[-1] >= 30


def test_retry_after_is_honoured_even_beyond_the_cap():
    assert retry_delay(1, base_s=2, cap_s=60, retry_after_s=120, rng=random.Random(1)) == 120
    assert retry_delay(6, base_s=2, cap_s=60, retry_after_s=1, rng=random.Random(1)) >= 30


def test_every_kind_has_both_labels_and_reminders_can_wait():
    assert all(zh and en for zh, en in KIND_LABELS.values())
    assert "reminder" not in URGENT_KINDS and "escalated_out" not in URGENT_KINDS and "task" in URGENT_KINDS
