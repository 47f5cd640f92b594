"""Duty, leave, who is given new work, and workload (docs/FIELD.md "Workload and duty").

- A grid worker goes on and off duty from the phone (``set_my_duty``); starting a patrol puts
  them on duty. No word at all counts as on duty.
- Supervisors record leave for the workers they manage (``add_leave``, ``cancel_leave``):
  periods of one person never overlap (409 leave.overlaps).
- ``assignee_for`` picks the worker new work of a cell goes to (the rules are in
  server/domain/duty.py): used by auto-dispatch and by inspection campaigns.
- ``workload``: each worker of a region with duty, leave, open and overdue tasks and today's
  patrol minutes, for supervisors.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from server.domain.duty import MAX_LEAVE_DAYS, Candidate, choose, unavailable
from server.domain.incidents import ACTIVE_TASK_STATES, TIMED_STATES
from server.domain.permissions import DUTY_MANAGE, STATS_READ, USER_MANAGE, USER_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Leave, User, WorkerDuty
from server.models._base import utcnow

from .access import authorize, require
from .regions import get_region


def _user_not_found() -> NotFound:
    return NotFound("user.not_found", "No such user.")


def _leave_not_found() -> NotFound:
    return NotFound("leave.not_found", "No such leave.")


# ---------------------------------------------------------------- duty (上岗 / 离岗)

def my_duty(actor: Actor) -> dict:
    """The actor's duty and current leave."""
    return _duty_of(actor.user_id, utcnow())


def set_my_duty(actor: Actor, on_duty: bool) -> dict:
    """Go on or off duty (saying the same again changes nothing, ``since`` included).
    Errors: auth.forbidden (not a grid worker)."""
    require(actor, DUTY_MANAGE, db.session.get(User, actor.user_id))
    put_on_duty(actor.user_id, on_duty, utcnow())
    db.session.commit()
    return my_duty(actor)


def put_on_duty(user_id: int, on_duty: bool, now: datetime) -> None:
    """Record the worker's duty in the caller's transaction, unless it is already so."""
    stmt = insert(WorkerDuty).values(user_id=user_id, on_duty=on_duty, since=now)
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["user_id"], set_={"on_duty": on_duty, "since": now},
        where=WorkerDuty.on_duty.is_distinct_from(stmt.excluded.on_duty)))


def _duty_of(user_id: int, now: datetime) -> dict:
    duty = db.session.get(WorkerDuty, user_id)
    leave = db.session.scalars(select(Leave).where(
        Leave.user_id == user_id, Leave.cancelled_at.is_(None), Leave.starts_at <= now, Leave.ends_at > now)
        .order_by(Leave.ends_at.desc()).limit(1)).first()
    return {"on_duty": duty.on_duty if duty else True, "since": duty.since if duty else None,
            "on_leave_until": leave.ends_at if leave else None}


# ---------------------------------------------------------------- leave (请假)

def _managed_worker(actor: Actor, user_id: int, action: str) -> User:
    user = db.session.get(User, user_id)
    authorize(actor, action, user, not_found=_user_not_found())
    return user


def list_leaves(actor: Actor, user_id: int, *, include_past: bool = False) -> list[Leave]:
    """A worker's leave not cancelled, current and coming (with ``include_past``, all of it,
    cancelled too), by start. Errors: user.not_found."""
    _managed_worker(actor, user_id, USER_READ)
    stmt = select(Leave).where(Leave.user_id == user_id)
    if not include_past:
        stmt = stmt.where(Leave.cancelled_at.is_(None), Leave.ends_at > utcnow())
    return list(db.session.scalars(stmt.order_by(Leave.starts_at, Leave.id)))


def add_leave(actor: Actor, user_id: int, data: dict) -> Leave:
    """Record leave for a worker the actor manages. Errors: user.not_found, auth.forbidden,
    leave.not_a_worker, leave.invalid_period (422), leave.overlaps (409)."""
    user = db.session.scalars(select(User).where(User.id == user_id).with_for_update(of=User)).one_or_none()
    authorize(actor, USER_MANAGE, user, not_found=_user_not_found())
    if user.role != "grid_worker":
        raise InvalidInput("leave.not_a_worker", "Leave is recorded for grid workers.")
    starts, ends = data["starts_at"], data["ends_at"]
    if ends <= starts or ends - starts > timedelta(days=MAX_LEAVE_DAYS):
        raise InvalidInput("leave.invalid_period", f"Leave ends after it starts, within {MAX_LEAVE_DAYS} days.",
                           errors={"ends_at": [f"After starts_at, at most {MAX_LEAVE_DAYS} days later."]})
    now = utcnow()
    if ends <= now:
        raise InvalidInput("leave.invalid_period", "That leave is already over.",
                           errors={"ends_at": ["In the past."]})
    if ends > now + timedelta(days=MAX_LEAVE_DAYS):
        raise InvalidInput("leave.invalid_period", f"Leave is recorded at most {MAX_LEAVE_DAYS} days ahead.",
                           errors={"ends_at": [f"Within {MAX_LEAVE_DAYS} days from now."]})
    clash = db.session.scalars(select(Leave.id).where(
        Leave.user_id == user_id, Leave.cancelled_at.is_(None), Leave.starts_at < ends, Leave.ends_at > starts)).first()
    if clash is not None:  # the user row is locked: two overlapping requests cannot both pass
        raise Conflict("leave.overlaps", "The worker already has leave in that period.",
                       errors={"leave_id": [clash]})
    leave = Leave(user_id=user_id, starts_at=starts, ends_at=ends, reason=data.get("reason"),
                  created_by=actor.user_id, created_at=utcnow())
    db.session.add(leave)
    db.session.commit()
    return leave


def cancel_leave(actor: Actor, user_id: int, leave_id: int) -> None:
    """Cancel leave (again: nothing more). Errors: user.not_found, leave.not_found,
    auth.forbidden."""
    _managed_worker(actor, user_id, USER_MANAGE)
    leave = db.session.scalars(select(Leave).where(Leave.id == leave_id, Leave.user_id == user_id)
                               .with_for_update()).one_or_none()
    if leave is None:
        raise _leave_not_found()
    if leave.cancelled_at is None:
        leave.cancelled_at, leave.cancelled_by = utcnow(), actor.user_id
    db.session.commit()


# ---------------------------------------------------------------- who takes new work

_CANDIDATES = text(f"""
SELECT a.region_id AS cell, a.user_id, a.duty = 'primary' AS primary, COALESCE(d.on_duty, true) AS on_duty,
       EXISTS (SELECT 1 FROM leaves l WHERE l.user_id = a.user_id AND l.cancelled_at IS NULL
               AND l.starts_at <= :now AND l.ends_at > :now) AS on_leave,
       (SELECT count(*) FROM tasks t WHERE t.assignee_id = a.user_id
        AND t.status IN ({", ".join(f"'{s}'" for s in ACTIVE_TASK_STATES)})) AS open_tasks
FROM grid_assignments a
JOIN users u ON u.id = a.user_id AND u.is_active AND u.role = 'grid_worker'
LEFT JOIN worker_duty d ON d.user_id = a.user_id
WHERE a.region_id = ANY(:cells)
ORDER BY a.region_id, a.duty = 'primary' DESC, a.user_id
""")


def candidates_of(cell_ids: list[int], now: datetime) -> dict[int, list[Candidate]]:
    """The active workers covering each cell, primary first, as the rules see them (one query)."""
    found: dict[int, list[Candidate]] = {cell: [] for cell in cell_ids}
    for r in db.session.execute(_CANDIDATES, {"cells": list(cell_ids), "now": now}):
        found[r.cell].append(Candidate(r.user_id, r.primary, r.on_duty, r.on_leave, r.open_tasks))
    return found


def candidates(cell_id: int, now: datetime) -> list[Candidate]:
    return candidates_of([cell_id], now)[cell_id]


def assignees_for(cell_ids: list[int], now: datetime, *, not_on_leave: bool = False) -> dict[int, int | None]:
    """The grid worker new work of each cell goes to now (None: nobody available), in one
    query; each cell judged on its own. With ``not_on_leave`` (work due days later, such as a
    campaign's task), a cell whose workers are all off duty or busy goes to the first of them
    not on leave, primary first: off duty at 10 pm is not away for the week."""
    limit = current_app.config["MAX_OPEN_TASKS"]
    found = {}
    for cell, workers in candidates_of(cell_ids, now).items():
        chosen = choose(workers, limit)
        if chosen is None and not_on_leave:
            chosen = next((w for w in workers if not w.on_leave), None)
        found[cell] = chosen.user_id if chosen else None
    return found


def assignee_for(cell_id: int, now: datetime) -> int | None:
    """The grid worker new work of the cell goes to now, or None when nobody is available.
    The open-task limit is soft: two dispatches at the same instant may both count the
    worker below it."""
    return assignees_for([cell_id], now)[cell_id]


# ---------------------------------------------------------------- workload

_WORKLOAD = text(f"""
WITH workers AS (
    SELECT u.id FROM users u JOIN regions r ON r.id = u.region_id
    WHERE u.role = 'grid_worker' AND u.is_active AND r.path LIKE :path || '%'
    UNION
    SELECT a.user_id FROM grid_assignments a JOIN regions r ON r.id = a.region_id
    JOIN users u ON u.id = a.user_id AND u.is_active AND u.role = 'grid_worker'
    WHERE r.path LIKE :path || '%'
)
SELECT u.id, u.username, u.display_name, home.name AS region_name,
       COALESCE(d.on_duty, true) AS on_duty, d.since AS duty_since,
       (SELECT max(l.ends_at) FROM leaves l WHERE l.user_id = u.id AND l.cancelled_at IS NULL
        AND l.starts_at <= :now AND l.ends_at > :now) AS on_leave_until,
       (SELECT count(*) FILTER (WHERE a.duty = 'primary') FROM grid_assignments a WHERE a.user_id = u.id)
           AS primary_cells,
       (SELECT count(*) FILTER (WHERE a.duty = 'backup') FROM grid_assignments a WHERE a.user_id = u.id)
           AS backup_cells,
       COALESCE(t.open_tasks, 0) AS open_tasks, COALESCE(t.unacknowledged, 0) AS unacknowledged,
       COALESCE(t.late_to_acknowledge, 0) AS late_to_acknowledge, COALESCE(t.overdue, 0) AS overdue,
       COALESCE(p.minutes, 0) AS patrol_minutes_today, COALESCE(p.on_patrol, false) AS on_patrol
FROM workers w
JOIN users u ON u.id = w.id
JOIN regions home ON home.id = u.region_id
LEFT JOIN worker_duty d ON d.user_id = u.id
LEFT JOIN LATERAL (
    SELECT count(*) AS open_tasks,
           count(*) FILTER (WHERE t.status = 'open') AS unacknowledged,
           count(*) FILTER (WHERE t.status = 'open' AND t.ack_deadline < :now) AS late_to_acknowledge,
           count(*) FILTER (WHERE i.status IN ({", ".join(f"'{s}'" for s in sorted(TIMED_STATES))})
                            AND i.due_at < :now) AS overdue
    FROM tasks t JOIN incidents i ON i.id = t.incident_id
    WHERE t.assignee_id = u.id AND t.status IN ({", ".join(f"'{s}'" for s in ACTIVE_TASK_STATES)})
) t ON true
LEFT JOIN LATERAL (
    SELECT sum(extract(epoch FROM least(COALESCE(p.ended_at, :now), :day_end) - greatest(p.started_at, :day_start))
               ) / 60 AS minutes,
           bool_or(p.state = 'on') AS on_patrol
    FROM patrols p
    WHERE p.user_id = u.id AND p.started_at < :day_end AND COALESCE(p.ended_at, :now) > :day_start
) p ON true
ORDER BY COALESCE(t.overdue, 0) DESC, COALESCE(t.open_tasks, 0) DESC, u.display_name, u.id
""")


def workload(actor: Actor, region_id: int) -> dict:
    """Each active grid worker of the region (whose own area lies in it, or who covers a cell
    in it): duty, leave, cells, open, unacknowledged and overdue tasks, today's patrol
    minutes (local day) and whether new work would reach them. The most overdue first.
    Errors: region.not_found, auth.forbidden (managers only)."""
    region = get_region(actor, region_id)
    require(actor, STATS_READ, region)
    now = utcnow()
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    day_start = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), zone)
    limit = current_app.config["MAX_OPEN_TASKS"]
    workers = []
    for row in db.session.execute(_WORKLOAD, {"path": region.path, "now": now, "day_start": day_start,
                                               "day_end": day_start + timedelta(days=1)}):
        worker = dict(row._mapping)
        worker["patrol_minutes_today"] = round(float(worker["patrol_minutes_today"]), 1)
        reason = unavailable(Candidate(row.id, True, row.on_duty, row.on_leave_until is not None, row.open_tasks),
                             limit)
        worker["available"], worker["unavailable_reason"] = reason is None, reason
        workers.append(worker)
    return {"region": region, "as_of": now, "max_open_tasks": limit, "workers": workers}
