"""Roles: which scope levels each role may have, and who outranks whom."""
import pytest

from server.domain.people import MANAGER_ROLES, ROLE_LABELS, ROLES, allowed_scope_levels, outranks
from server.domain.territory import LEVELS


@pytest.mark.parametrize("role", MANAGER_ROLES)
def test_a_manager_is_scoped_to_exactly_its_own_level(role):
    assert allowed_scope_levels(role) == (role,)


def test_a_grid_worker_is_scoped_to_a_community_or_a_grid_cell():
    assert allowed_scope_levels("grid_worker") == ("community", "grid")


@pytest.mark.parametrize("role", ["admin", "department"])
def test_admins_and_department_handlers_may_sit_at_any_level(role):
    assert allowed_scope_levels(role) == LEVELS


def test_an_unknown_role_has_no_scope_levels():
    with pytest.raises(ValueError):
        allowed_scope_levels("mayor")


def test_every_role_has_a_chinese_and_an_english_label():
    assert set(ROLE_LABELS) == set(ROLES)
    assert all(zh and en for zh, en in ROLE_LABELS.values())
    assert ROLE_LABELS["grid_worker"] == ("网格员", "Grid worker")


@pytest.mark.parametrize("target", ROLES)
def test_an_admin_outranks_everyone(target):
    assert outranks("admin", target)


@pytest.mark.parametrize("manager, target", [
    ("city", "district"), ("city", "street"), ("city", "community"),
    ("district", "street"), ("district", "community"), ("street", "community"),
])
def test_a_manager_outranks_managers_of_lower_levels(manager, target):
    assert outranks(manager, target)


@pytest.mark.parametrize("manager", MANAGER_ROLES)
def test_nobody_outranks_a_peer(manager):
    assert not outranks(manager, manager)


@pytest.mark.parametrize("manager, target", [
    ("district", "city"), ("street", "district"), ("street", "city"), ("community", "street"),
])
def test_nobody_outranks_a_superior(manager, target):
    assert not outranks(manager, target)


@pytest.mark.parametrize("manager", MANAGER_ROLES)
def test_no_manager_outranks_an_admin(manager):
    assert not outranks(manager, "admin")


@pytest.mark.parametrize("manager", MANAGER_ROLES)
@pytest.mark.parametrize("target", ["grid_worker", "department"])
def test_every_manager_outranks_workers_and_department_handlers(manager, target):
    assert outranks(manager, target)


@pytest.mark.parametrize("role", ["grid_worker", "department"])
@pytest.mark.parametrize("target", ROLES)
def test_workers_and_handlers_outrank_nobody(role, target):
    assert not outranks(role, target)
