"""``can(actor, action, target)`` over roles × actions × places in a small tree.

    C /1/ ── D1 /1/2/ ── S1 /1/2/4/ ── K1 /1/2/4/7/ ── G1 /1/2/4/7/10/
         └── D2 /1/3/ ── S3 /1/3/6/ ── K2 /1/3/6/8/
"""
from types import SimpleNamespace

import pytest

from server.domain.permissions import (
    ACTIONS, DEPARTMENT_MANAGE, DEPARTMENT_READ, DEVICE_MANAGE, DEVICE_READ, REGION_ADD_CHILDREN, REGION_IMPORT,
    REGION_MANAGE, REGION_READ, USER_MANAGE, USER_READ, Actor, can, read_action)

PATHS = {"C": "/1/", "D1": "/1/2/", "S1": "/1/2/4/", "K1": "/1/2/4/7/", "G1": "/1/2/4/7/10/",
         "D2": "/1/3/", "S3": "/1/3/6/", "K2": "/1/3/6/8/"}
HOME = {"admin": "C", "city": "C", "district": "D1", "street": "S1", "community": "K1",
        "grid_worker": "K1", "department": "S1"}
ACTOR_IDS = {role: n for n, role in enumerate(HOME, start=1)}
POLICE = 50  # the department of the department handler, in S1


def actor(role: str) -> Actor:
    return Actor(user_id=ACTOR_IDS[role], role=role, scope_path=PATHS[HOME[role]],
                 department_id=POLICE if role == "department" else None)


def region(name: str):
    return SimpleNamespace(id=int(PATHS[name].strip("/").split("/")[-1]), scope_path=PATHS[name])


def user(role: str, where: str, user_id: int = 900):
    return SimpleNamespace(id=user_id, role=role, scope_path=PATHS[where])


def department(where: str, department_id: int = 60):
    return SimpleNamespace(id=department_id, scope_path=PATHS[where])


def allowed(action, target):
    return {role for role in HOME if can(actor(role), action, target)}


MANAGERS = {"admin", "city", "district", "street", "community"}


# --- regions ---------------------------------------------------------------------------

@pytest.mark.parametrize("where, roles", [
    ("C", {"admin", "city"}),
    ("S1", {"admin", "city", "district", "street", "department"}),
    ("G1", set(HOME)),
    ("K2", {"admin", "city"}),
])
def test_a_region_is_read_by_everyone_whose_scope_contains_it(where, roles):
    assert allowed(REGION_READ, region(where)) == roles


@pytest.mark.parametrize("where, roles", [
    ("C", {"admin"}),
    ("D1", {"admin", "city"}),
    ("K1", {"admin", "city", "district", "street"}),
    ("G1", {"admin", "city", "district", "street", "community"}),
    ("S3", {"admin", "city"}),
])
def test_a_region_is_managed_only_from_strictly_above(where, roles):
    assert allowed(REGION_MANAGE, region(where)) == roles


@pytest.mark.parametrize("where, roles", [
    ("K1", {"admin", "city", "district", "street", "community"}),
    ("S1", {"admin", "city", "district", "street"}),
    ("K2", {"admin", "city"}),
])
def test_children_are_added_by_managers_within_their_scope(where, roles):
    assert allowed(REGION_ADD_CHILDREN, region(where)) == roles


def test_only_admins_import_a_whole_level():
    assert allowed(REGION_IMPORT, region("G1")) == {"admin"}


# --- users -----------------------------------------------------------------------------

@pytest.mark.parametrize("target, roles", [
    (user("grid_worker", "K1"), MANAGERS),
    (user("community", "K2"), {"admin", "city"}),
    (user("street", "S1"), {"admin", "city", "district", "street"}),
    (user("city", "C"), {"admin", "city"}),
])
def test_users_are_read_by_managers_whose_scope_contains_them(target, roles):
    assert allowed(USER_READ, target) == roles


@pytest.mark.parametrize("role", list(HOME))
def test_everyone_reads_themselves(role):
    me = user(role, HOME[role], user_id=ACTOR_IDS[role])
    assert can(actor(role), USER_READ, me)


@pytest.mark.parametrize("target, roles", [
    (user("grid_worker", "K1"), MANAGERS),
    (user("department", "S1"), {"admin", "city", "district", "street"}),
    (user("community", "K1"), {"admin", "city", "district", "street"}),
    (user("street", "S1"), {"admin", "city", "district"}),
    (user("district", "D1"), {"admin", "city"}),
    (user("city", "C"), {"admin"}),
    (user("admin", "K1"), {"admin"}),
    (user("grid_worker", "K2"), {"admin", "city"}),
])
def test_users_are_managed_by_those_who_outrank_them_in_scope(target, roles):
    assert allowed(USER_MANAGE, target) == roles


@pytest.mark.parametrize("role", sorted(MANAGERS - {"admin"}))
def test_a_manager_does_not_manage_itself(role):
    assert not can(actor(role), USER_MANAGE, user(role, HOME[role], user_id=ACTOR_IDS[role]))


def test_a_street_cannot_manage_another_street_user_in_its_street():
    assert can(actor("street"), USER_READ, user("street", "S1"))
    assert not can(actor("street"), USER_MANAGE, user("street", "S1"))


# --- departments -----------------------------------------------------------------------

@pytest.mark.parametrize("target, roles", [
    (department("S1"), {"admin", "city", "district", "street", "department"}),
    (department("K1"), set(HOME)),
    (department("S3"), {"admin", "city"}),
    (department("S3", POLICE), {"admin", "city", "department"}),  # the handler's own, wherever it is
])
def test_departments_are_read_within_scope_and_by_their_handlers(target, roles):
    assert allowed(DEPARTMENT_READ, target) == roles


@pytest.mark.parametrize("target, roles", [
    (department("S1"), {"admin", "city", "district", "street"}),
    (department("K1"), MANAGERS),
    (department("S1", POLICE), {"admin", "city", "district", "street"}),
    (region("S1"), {"admin", "city", "district", "street"}),
    (region("S3"), {"admin", "city"}),
])
def test_departments_are_managed_by_managers_within_scope(target, roles):
    assert allowed(DEPARTMENT_MANAGE, target) == roles


# --- devices ---------------------------------------------------------------------------

@pytest.mark.parametrize("action", [DEVICE_READ, DEVICE_MANAGE])
def test_a_device_belongs_to_its_user_alone_not_even_an_admin(action):
    phone = SimpleNamespace(user_id=ACTOR_IDS["grid_worker"])
    assert allowed(action, phone) == {"grid_worker"}


# --- the rule itself ------------------------------------------------------------------

def test_an_unknown_action_is_refused_even_for_admins():
    assert not can(actor("admin"), "incident.vaporise", region("C"))


def test_every_action_has_a_read_action_in_the_list():
    assert all(read_action(action) in ACTIONS for action in ACTIONS)
    assert read_action(USER_MANAGE) == USER_READ


def test_a_path_prefix_of_digits_is_not_a_subtree():
    """/1/2/ does not contain /1/23/: paths end in a slash."""
    street = Actor(user_id=1, role="district", scope_path="/1/2/")
    assert not can(street, REGION_READ, SimpleNamespace(id=23, scope_path="/1/23/"))
