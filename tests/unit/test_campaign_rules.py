"""The life of a campaign task and its overdue stages, as pure rules (no database)."""
from datetime import datetime, timedelta, timezone

import pytest

from server.domain import campaigns as rules

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("state, action, after", [
    ("open", "find", "found"), ("overdue", "find", "found"), ("nothing_found", "find", "found"),
    ("found", "find", "found"), ("open", "nothing_found", "nothing_found"),
    ("overdue", "nothing_found", "nothing_found"), ("open", "mark_overdue", "overdue"),
    ("open", "cancel", "cancelled"), ("overdue", "cancel", "cancelled"),
])
def test_the_transitions_table_says_where_a_task_goes(state, action, after):
    assert rules.task_transition(state, action) == after


@pytest.mark.parametrize("state, action, code", [
    ("found", "nothing_found", "campaign.task_finished"), ("nothing_found", "nothing_found", "campaign.task_finished"),
    ("cancelled", "find", "campaign.closed"), ("cancelled", "nothing_found", "campaign.closed"),
    ("found", "cancel", "campaign.task_finished"),
])
def test_an_answered_or_cancelled_task_refuses_with_a_stable_code(state, action, code):
    with pytest.raises(rules.TaskTransitionRefused) as refused:
        rules.task_transition(state, action)
    assert refused.value.code == code


def test_every_state_has_labels_and_a_colour_and_belongs_to_at_most_one_group():
    assert set(rules.TASK_STATE_LABELS) == set(rules.TASK_STATES) == set(rules.TASK_STATE_COLOURS)
    assert [rules.TASK_STATE_LABELS[s][0] for s in ("open", "found", "nothing_found", "overdue")] == [
        "待排查", "有发现", "零报告", "已超期"]
    assert not rules.TO_DO_STATES & rules.FINISHED_STATES
    assert rules.is_to_do("overdue") and rules.is_finished("nothing_found") and not rules.is_finished("cancelled")


def test_an_answer_is_late_once_overdue_or_past_the_deadline():
    assert not rules.is_late("open", T0, T0)
    assert rules.is_late("open", T0 + timedelta(seconds=1), T0)
    assert rules.is_late("overdue", T0 - timedelta(hours=1), T0)  # the sweep's clock said so


def test_the_overdue_stages_climb_community_street_district_then_stop():
    every = timedelta(hours=24)
    assert [rules.stage_level(n) for n in (1, 2, 3)] == ["community", "street", "district"]
    assert rules.next_escalation_at(1, T0, every) == T0 + every
    assert rules.next_escalation_at(2, T0, every) == T0 + every
    assert rules.next_escalation_at(3, T0, every) is None


def test_percent_done_has_one_decimal_and_nothing_of_nothing_is_zero():
    assert rules.percent(1, 3) == 33.3 and rules.percent(0, 0) == 0.0 and rules.percent(4, 4) == 100.0
