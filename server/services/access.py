"""The one authorization entry point for services.

``authorize`` asks ``domain.permissions.can`` and turns a refusal into 404 when the
actor may not even see the target (so nothing leaks), else 403. ``within_scope`` is the
same rule for list queries, maps, tiles and exports.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, literal, or_, select, true
from sqlalchemy.orm import aliased

from server.domain.incidents import READER, IncidentTarget, may, relations
from server.domain.permissions import Actor, can, read_action
from server.errors import Forbidden, NotFound
from server.models import Campaign, CampaignTask, Department, GridAssignment, Incident, Region, Task, User


class _Territory:
    """The whole territory as a permission target (creating a city, importing a level)."""

    scope_path = "/"


TERRITORY = _Territory()


def authorize(actor: Actor, action: str, target, *, not_found: NotFound) -> None:
    """Raise ``not_found`` if ``actor`` cannot see ``target``; Forbidden if it cannot act."""
    if target is None or not can(actor, read_action(action), target):
        raise not_found
    if not can(actor, action, target):
        raise Forbidden("auth.forbidden", "You are not allowed to do this here.")


def authorize_incident(actor: Actor, action: str, target: IncidentTarget, *, not_found: NotFound) -> None:
    """The incident form of ``authorize``: 404 unless the actor is a reader of the
    incident, 403 unless the transitions table lets its relation take ``action``."""
    if READER not in relations(actor, target):
        raise not_found
    if not may(actor, action, target):
        raise Forbidden("auth.forbidden", "You are not allowed to do this to this incident.")


def require(actor: Actor, action: str, target) -> None:
    """Raise Forbidden unless ``actor`` may ``action`` on a target everyone can name."""
    if not can(actor, action, target):
        raise Forbidden("auth.forbidden", "You are not allowed to do this here.")


def scope_path(actor: Actor) -> str:
    """The path prefix of everything the actor may see (for statements written in SQL)."""
    return "/" if actor.is_admin else actor.scope_path


def within_scope(actor: Actor, path_column) -> ColumnElement[bool]:
    """SQL condition: the row's region path lies inside the actor's scope subtree."""
    if actor.is_admin:
        return true()
    # paths are server-made ("/1/5/"): no LIKE wildcards to escape
    return path_column.like(actor.scope_path + "%")


def visible_users(actor: Actor) -> ColumnElement[bool]:
    """SQL form of ``can(actor, USER_READ, user)`` over users joined to their Region:
    managers see the users of their subtree, everyone else only themselves."""
    if actor.is_admin or actor.is_manager:
        return within_scope(actor, Region.path)
    return User.id == actor.user_id


def visible_departments(actor: Actor) -> ColumnElement[bool]:
    """SQL form of ``can(actor, DEPARTMENT_READ, department)`` over departments joined
    to their Region: those of the subtree, and a handler's own department."""
    visible = within_scope(actor, Region.path)
    if actor.department_id is not None:
        visible = or_(visible, Department.id == actor.department_id)
    return visible


def visible_incidents(actor: Actor) -> ColumnElement[bool]:
    """SQL form of the incident ``reader`` relation (domain.incidents.relations): the
    incidents of the actor's subtree; for a department handler, those ever dispatched
    to their department."""
    if actor.role == "department":
        if actor.department_id is None:
            return false()
        dispatched = aliased(Task)  # (the outer query may select tasks too: do not correlate with them)
        return exists().where(dispatched.incident_id == Incident.id, dispatched.department_id == actor.department_id)
    return within_scope(actor, Incident.region_path)


def visible_campaigns(actor: Actor) -> ColumnElement[bool]:
    """SQL form of ``can(actor, CAMPAIGN_READ, campaign)``: campaigns of regions inside the
    actor's scope or above it (a street's campaign reaches its communities and workers)."""
    if actor.role == "department":
        return false()
    if actor.is_admin:
        return true()
    return or_(within_scope(actor, Campaign.region_path), literal(actor.scope_path).startswith(Campaign.region_path))


def visible_campaign_tasks(actor: Actor) -> ColumnElement[bool]:
    """The campaign tasks an actor is shown in lists, progress figures and maps: a grid
    worker's own (assigned to them, or of a cell they cover); a manager's, those of the
    cells of their scope."""
    if actor.role == "department":
        return false()
    if actor.role == "grid_worker":
        covered = select(GridAssignment.region_id).where(GridAssignment.user_id == actor.user_id)
        return or_(CampaignTask.assignee_id == actor.user_id, CampaignTask.cell_id.in_(covered))
    return within_scope(actor, CampaignTask.cell_path)
