"""Reading incidents in bulk: the filtered list, possible duplicates near a point, and
a worker's or department's open tasks (我的任务).

Read-only: nothing here commits. Every query is scoped by ``access.visible_incidents``
(the incident ``reader`` relation as SQL); states are asked of the groups in
``domain.incidents``, never spelt out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from geoalchemy2 import Geography
from sqlalchemy import Select, case, cast, false, func, or_, select

from geo import crs as geo_crs
from server.domain.escalation import GREEN, RED, RUNNING_STATES, YELLOW
from server.domain.incidents import ACTIVE_TASK_STATES, OPEN_STATES, PRIORITIES, STATUS_GROUPS
from server.domain.permissions import Actor
from server.errors import InvalidInput
from server.extensions import db
from server.models import Category, Incident, Region, Task
from server.models._base import utcnow

from .access import visible_incidents, within_scope
from .pagination import Page, paginate


class Decorated:
    """An ORM row seen through, with a few extra attributes for the schema to dump
    (``distance_m`` of a nearby incident, ``incident`` of a task). The row itself is
    left untouched, so nothing leaks into the session."""

    def __init__(self, row, **extra):
        self._row = row
        self.__dict__.update(extra)

    def __getattr__(self, name):
        return getattr(self._row, name)


def priority_rank(column):
    """SQL: a priority as a number that grows with urgency (low 1 … urgent 4), from the
    order of ``domain.incidents.PRIORITIES``."""
    return case({p: len(PRIORITIES) - i for i, p in enumerate(PRIORITIES)}, value=column, else_=0)


def category_ids(code: str):
    """SQL: ids of the category ``code`` and, for a group (大类), of all its leaves.
    An unknown code selects nothing."""
    group = select(Category.id).where(Category.code == code).scalar_subquery()
    return select(Category.id).where(or_(Category.code == code, Category.parent_id == group))


# ---------------------------------------------------------------- the list

@dataclass
class IncidentFilter:
    """The filters of ``GET /incidents`` (schemas.incidents.IncidentQueryArgsSchema)."""

    status_group: str = "all"  # open | closed | all
    status: list[str] | None = None
    level: str | None = None  # the level handling the case now
    region_id: int | None = None  # the subtree of this region
    category: str | None = None  # a leaf code, or a group code for all its leaves
    priority: str | None = None
    source: str | None = None
    reported_from: datetime | None = None  # inclusive
    reported_to: datetime | None = None  # exclusive
    bbox: tuple[float, float, float, float] | None = None  # lon/lat, EPSG:4326
    overdue: bool | None = None  # the light is red
    light: list[str] | None = None  # any of green, yellow, red
    supervised: bool | None = None  # flagged for supervision (督办)
    mine: bool | None = None  # reported by the actor
    sort: str = "-reported_at"


def light_condition(light: str):
    """Incidents whose light is ``light`` now (green, yellow or red): the clock runs (open,
    not suspended, not yet resolved) and ``now()`` is before yellow, between, or past due.
    The one SQL form of ``domain.escalation.light``: lists, maps and stats use it."""
    running = Incident.status.in_(sorted(RUNNING_STATES))
    # never NULL, so that NOT of it is right too; the times first: most rows are decided by
    # them, before the status is read
    now, due = func.now(), Incident.due_at.is_not(None)
    if light == RED:
        return due & (Incident.due_at <= now) & running
    yellow_reached = Incident.yellow_at.is_not(None) & (Incident.yellow_at <= now)
    if light == YELLOW:
        return yellow_reached & due & (Incident.due_at > now) & running
    return due & (Incident.due_at > now) & ~yellow_reached & running


NO_LIGHT = "none"  # the clock does not run: suspended, resolved (waiting for verification) or closed


def light_expression():
    """SQL: the light of an incident now (green, yellow, red), or ``NO_LIGHT``: what
    ``light_condition`` says, with the clock's test made once a row (maps count lights over
    tens of thousands of rows)."""
    running = Incident.status.in_(sorted(RUNNING_STATES)) & Incident.due_at.is_not(None)
    now = func.now()
    return case((~running, NO_LIGHT), (Incident.due_at <= now, RED),
                (Incident.yellow_at.is_not(None) & (Incident.yellow_at <= now), YELLOW), else_=GREEN)


_SORTS = {
    "reported_at": Incident.reported_at,
    "due_at": Incident.due_at,
    "updated_at": Incident.updated_at,
    "priority": priority_rank(Incident.priority),
}


def _order(stmt: Select, sort: str) -> Select:
    """``sort`` is a key of _SORTS, descending with a leading ``-``. ``-priority`` puts
    urgent first. Incidents without a deadline come last both ways. The id breaks ties
    (in the same direction), so pages never overlap or skip."""
    descending = sort.startswith("-")
    key = _SORTS[sort.removeprefix("-")]
    ordered = key.desc() if descending else key.asc()
    if sort.removeprefix("-") == "due_at":
        ordered = ordered.nulls_last()
    return stmt.order_by(ordered, Incident.id.desc() if descending else Incident.id.asc())


def incident_query(actor: Actor, f: IncidentFilter) -> Select:
    """The scoped, filtered, ordered SELECT of incidents (category, cell and reporter
    are joined-loaded by the model, so a page is one statement)."""
    stmt = select(Incident).where(visible_incidents(actor))
    if f.status_group in STATUS_GROUPS:
        stmt = stmt.where(Incident.status.in_(sorted(STATUS_GROUPS[f.status_group])))
    if f.status:
        stmt = stmt.where(Incident.status.in_(f.status))
    if f.level:
        stmt = stmt.where(Incident.level == f.level)
    if f.region_id is not None:
        # resolved first so the LIKE has a constant prefix and uses the path index; a
        # region the actor cannot see selects nothing (even an ancestor of their scope)
        path = db.session.scalar(select(Region.path).where(Region.id == f.region_id, within_scope(actor, Region.path)))
        stmt = stmt.where(Incident.region_path.startswith(path) if path else false())
    if f.category:
        stmt = stmt.where(Incident.category_id.in_(category_ids(f.category)))
    if f.priority:
        stmt = stmt.where(Incident.priority == f.priority)
    if f.source:
        stmt = stmt.where(Incident.source == f.source)
    if f.reported_from:
        stmt = stmt.where(Incident.reported_at >= f.reported_from)
    if f.reported_to:
        stmt = stmt.where(Incident.reported_at < f.reported_to)
    if f.bbox:
        x0, y0, x1, y1 = f.bbox
        stmt = stmt.where(func.ST_Intersects(Incident.geom, func.ST_MakeEnvelope(x0, y0, x1, y1, 4326)))
    if f.overdue is True:
        stmt = stmt.where(light_condition(RED))
    elif f.overdue is False:
        stmt = stmt.where(~light_condition(RED))
    if f.light:
        stmt = stmt.where(or_(*(light_condition(light) for light in f.light)))
    if f.supervised is not None:
        stmt = stmt.where(Incident.supervised_at.is_not(None) if f.supervised else Incident.supervised_at.is_(None))
    if f.mine is True:
        stmt = stmt.where(Incident.reporter_id == actor.user_id)
    elif f.mine is False:
        stmt = stmt.where(Incident.reporter_id.is_distinct_from(actor.user_id))
    return _order(stmt, f.sort)


def list_incidents(actor: Actor, f: IncidentFilter, page: int, page_size: int) -> Page:
    """A page of the incidents the actor may see, filtered and sorted by ``f``."""
    return paginate(incident_query(actor, f), page, page_size)


# ---------------------------------------------------------------- nearby (possible duplicates)

# Metres per degree of latitude, rounded down: a box this size always holds the circle.
_METRES_PER_DEGREE = 110_000.0


def nearby(actor: Actor, lon: float, lat: float, crs: str, category: str, radius: float, days: int,
           limit: int) -> list[Decorated]:
    """Open incidents of ``category`` (a leaf, or a group for all its leaves) within
    ``radius`` metres (geodesic, WGS84) of the point ``lon``/``lat`` in ``crs``, reported
    in the last ``days`` days and visible to the actor, nearest first (ties by id). Each
    carries ``distance_m``. Errors: 422 incident.invalid_category (unknown code)."""
    if db.session.scalar(select(Category.id).where(Category.code == category)) is None:
        raise InvalidInput("incident.invalid_category", f"There is no category {category!r}.",
                           errors={"category": ["Unknown category."]})
    if crs != "wgs84":
        lon, lat = geo_crs.to_wgs84(lon, lat, crs)
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    here = cast(point, Geography)
    geography = cast(Incident.geom, Geography)
    # a lon/lat box around the circle lets the GiST index on geom do the first cut
    dlat = radius / _METRES_PER_DEGREE
    dlon = min(dlat / math.cos(math.radians(min(abs(lat), 89.9))), 360.0)
    distance = func.ST_Distance(geography, here).label("distance_m")
    stmt = (
        select(Incident, distance)
        .where(visible_incidents(actor),
               Incident.status.in_(sorted(OPEN_STATES)),
               Incident.category_id.in_(category_ids(category)),
               Incident.reported_at >= utcnow() - timedelta(days=days),
               Incident.geom.op("&&")(func.ST_Expand(point, dlon, dlat)),
               func.ST_DWithin(geography, here, radius))
        .order_by(distance, Incident.id)
        .limit(limit)
    )
    return [Decorated(incident, distance_m=round(metres, 2)) for incident, metres in db.session.execute(stmt).unique()]


# ---------------------------------------------------------------- my tasks

def mine(actor: Actor):
    """SQL: the tasks that are the actor's, whatever their status: assigned to them, or
    (a department handler) to their department."""
    condition = Task.assignee_id == actor.user_id
    if actor.role == "department" and actor.department_id is not None:
        condition = or_(condition, Task.department_id == actor.department_id)
    return condition


def my_tasks(actor: Actor, page: int, page_size: int) -> Page:
    """A page of the actor's active tasks (待签收/处置中), most urgent first: tasks not yet
    acknowledged by their acknowledge deadline, then by the incident's priority (urgent
    first), the incident's resolve deadline (none last) and id. Each item carries its
    ``incident``."""
    not_acknowledged = Task.acknowledged_at.is_(None)
    stmt = (
        select(Task)
        .join(Incident, Incident.id == Task.incident_id)
        .where(mine(actor), Task.status.in_(ACTIVE_TASK_STATES), visible_incidents(actor))
        .order_by(case((not_acknowledged, 0), else_=1),
                  case((not_acknowledged, Task.ack_deadline)).asc().nulls_last(),
                  priority_rank(Incident.priority).desc(),
                  Incident.due_at.asc().nulls_last(),
                  Task.id)
    )
    result = paginate(stmt, page, page_size)
    # Task has no relationship to its incident: load the page's incidents in one statement
    ids = {task.incident_id for task in result.items}
    incidents = {}
    if ids:
        incidents = {i.id: i for i in db.session.scalars(select(Incident).where(Incident.id.in_(ids))).unique()}
    result.items = [Decorated(task, incident=incidents[task.incident_id]) for task in result.items]
    return result
