"""The closed loop as data: every action from every state, for every relation."""
import pytest

from server.domain import incidents as rules
from server.domain.incidents import IncidentTarget, TransitionRefused, transition
from server.domain.permissions import Actor

CELL = "/1/2/4/7/9/"  # city 1 > district 2 > street 4 > community 7 > grid 9

# (action, from states, to) exactly as docs/INCIDENTS.md states them
EXPECTED = {
    "accept": ({"reported"}, "accepted"),
    "reject": ({"reported"}, "rejected"),
    "merge": ({"reported", "accepted"}, "merged"),
    "dispatch": ({"accepted", "dispatched", "acknowledged", "in_progress", "rework"}, "dispatched"),
    "decline": ({"dispatched"}, "accepted"),
    "acknowledge": ({"dispatched"}, "acknowledged"),
    "start": ({"acknowledged", "rework"}, "in_progress"),
    "resolve": ({"acknowledged", "in_progress", "rework"}, "resolved"),
    "resolve_on_spot": ({"reported"}, "resolved"),
    "verify": ({"resolved"}, "closed"),
    "rework": ({"resolved"}, "rework"),
    "suspend": ({"accepted", "dispatched", "acknowledged", "in_progress", "rework"}, "suspended"),
    "reopen": ({"closed"}, "rework"),
}
# moving a case to another level: reported stays reported (to be accepted there), else accepted
RECEIVED = {"escalate", "return_down"}
RECEIVED_SOURCES = {"reported", "accepted", "dispatched", "acknowledged", "in_progress", "rework"}
SAME_STATE = {
    "request_extension": {"dispatched", "acknowledged", "in_progress", "rework"},
    "approve_extension": {"dispatched", "acknowledged", "in_progress", "rework"},
    "refuse_extension": {"dispatched", "acknowledged", "in_progress", "rework"},
    "mediate": set(rules.OPEN_STATES),
    "callback": {"closed"},
    "comment": set(rules.STATES),
}


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("status", rules.STATES)
def test_every_state_changing_action_from_every_state(action, status):
    sources, target = EXPECTED[action]
    if status in sources:
        assert transition(status, action) == target
    else:
        with pytest.raises(TransitionRefused) as refused:
            transition(status, action)
        assert refused.value.code == "incident.invalid_transition"


@pytest.mark.parametrize("action", sorted(SAME_STATE))
@pytest.mark.parametrize("status", rules.STATES)
def test_actions_that_keep_the_status(action, status):
    if status in SAME_STATE[action]:
        assert transition(status, action) == status
    else:
        with pytest.raises(TransitionRefused):
            transition(status, action)


@pytest.mark.parametrize("action", sorted(RECEIVED))
@pytest.mark.parametrize("status", rules.STATES)
def test_moving_to_another_level_from_every_state(action, status):
    if status in RECEIVED_SOURCES:
        assert transition(status, action) == ("reported" if status == "reported" else "accepted")
    else:
        with pytest.raises(TransitionRefused):
            transition(status, action)


def test_the_table_is_exactly_the_documented_one():
    assert set(rules.TRANSITIONS) == set(EXPECTED) | set(SAME_STATE) | RECEIVED | {"resume"}


def test_resume_returns_to_the_status_it_was_suspended_from():
    assert transition("suspended", "resume", previous="in_progress") == "in_progress"
    assert transition("suspended", "resume", previous="dispatched") == "dispatched"
    with pytest.raises(TransitionRefused):
        transition("accepted", "resume", previous="accepted")


def test_unknown_action_is_refused():
    with pytest.raises(TransitionRefused):
        transition("reported", "teleport")


def test_groups_partition_the_states():
    assert rules.OPEN_STATES | rules.CLOSED_STATES == set(rules.STATES)
    assert not rules.OPEN_STATES & rules.CLOSED_STATES
    assert rules.is_open("rework") and rules.is_closed("merged")
    assert not rules.timers_run("suspended") and rules.timers_run("dispatched") and not rules.timers_run("closed")


def test_every_state_and_action_has_chinese_and_english_labels():
    for status in rules.STATES:
        zh, en = rules.STATE_LABELS[status]
        assert zh and en
    for action in rules.ACTIONS:
        zh, en = rules.ACTION_LABELS[action]
        assert zh and en


# ---------------------------------------------------------------- who

def actor(role, scope, user_id=100, department_id=None):
    return Actor(user_id=user_id, role=role, scope_path=scope, department_id=department_id)


ADMIN = actor("admin", "/1/")
CITY = actor("city", "/1/")
DISTRICT = actor("district", "/1/2/")
STREET = actor("street", "/1/2/4/")
COMMUNITY = actor("community", "/1/2/4/7/")
OTHER_COMMUNITY = actor("community", "/1/2/4/8/")
WORKER = actor("grid_worker", "/1/2/4/7/", user_id=5)
DEPARTMENT = actor("department", "/1/2/4/", user_id=6, department_id=3)


def target(**kw):
    base = dict(scope_path=CELL, level="grid", status="dispatched", reporter_id=5, cell_worker_ids=frozenset({5}))
    return IncidentTarget(**{**base, **kw})


@pytest.mark.parametrize("who", [ADMIN, CITY, DISTRICT, STREET, COMMUNITY])
def test_managers_above_a_grid_case_supervise_it(who):
    assert rules.SUPERVISOR in rules.relations(who, target())


def test_a_community_supervisor_does_not_supervise_a_case_escalated_to_the_street():
    assert rules.SUPERVISOR not in rules.relations(COMMUNITY, target(level="street"))
    assert rules.READER in rules.relations(COMMUNITY, target(level="street"))
    assert rules.SUPERVISOR in rules.relations(STREET, target(level="street"))


def test_outside_the_scope_there_is_no_relation_at_all():
    assert rules.relations(OTHER_COMMUNITY, target()) == frozenset()


def test_the_assigned_worker_handles_and_the_department_handles_its_task():
    assert rules.HANDLER in rules.relations(WORKER, target(handler_user_id=5))
    assert rules.HANDLER not in rules.relations(WORKER, target(handler_department_id=3))
    dep = target(handler_department_id=3, department_ids=frozenset({3}))
    assert rules.relations(DEPARTMENT, dep) == {rules.HANDLER, rules.READER}


def test_a_department_sees_only_cases_once_dispatched_to_it():
    assert rules.relations(DEPARTMENT, target()) == frozenset()
    assert rules.relations(DEPARTMENT, target(department_ids=frozenset({3}))) == {rules.READER}


def test_only_the_reporting_worker_of_the_cell_resolves_on_the_spot():
    assert rules.CELL_WORKER in rules.relations(WORKER, target(status="reported"))
    assert rules.CELL_WORKER not in rules.relations(WORKER, target(reporter_id=99))
    assert rules.CELL_WORKER not in rules.relations(WORKER, target(cell_worker_ids=frozenset()))


@pytest.mark.parametrize("action", rules.ACTIONS)
def test_may_follows_the_table_for_a_worker_handling_the_case(action):
    who = rules.TRANSITIONS[action].who
    expected = bool(who & {rules.HANDLER, rules.READER, rules.CELL_WORKER})
    assert rules.may(WORKER, action, target(handler_user_id=5)) is expected


def test_available_actions_of_a_supervisor_on_a_new_report():
    assert rules.available_actions(COMMUNITY, target(status="reported")) == [
        "accept", "reject", "merge", "escalate", "return_down", "mediate", "comment"]


def test_available_actions_of_the_handler_of_a_dispatched_task():
    assert rules.available_actions(WORKER, target(handler_user_id=5)) == [
        "decline", "acknowledge", "request_extension", "mediate", "comment"]


def test_only_workers_and_managers_report_and_only_in_their_scope():
    assert rules.may_report(WORKER, CELL)
    assert rules.may_report(ADMIN, "/99/")
    assert not rules.may_report(OTHER_COMMUNITY, CELL)
    assert not rules.may_report(DEPARTMENT, CELL)


def test_reporter_handler_and_supervisors_add_photos_nobody_else():
    assert rules.may(WORKER, rules.ADD_PHOTO, target())  # the reporter
    assert rules.may(WORKER, rules.ADD_PHOTO, target(reporter_id=99, handler_user_id=5))  # the handler
    assert rules.may(COMMUNITY, rules.ADD_PHOTO, target(reporter_id=99))
    assert not rules.may(WORKER, rules.ADD_PHOTO, target(reporter_id=99))  # only a reader
    assert not rules.may(OTHER_COMMUNITY, rules.ADD_PHOTO, target())
