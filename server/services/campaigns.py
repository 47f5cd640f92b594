"""Inspection campaigns (排查, docs/FIELD.md): launch, progress, answers, the map, closing,
and the overdue escalation the sweep runs.

One function per use case, one commit each. The life of a task is asked of
``domain.campaigns`` (the transitions table); state changes are conditional UPDATEs on
the transition's source states, so a finding, a nothing-found, the sweep and a closing
racing each other never both win.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, bindparam, case, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert

from geo.geometry import from_db, to_geojson
from server.domain import campaigns as rules
from server.domain.permissions import CAMPAIGN_FINISH, CAMPAIGN_MANAGE, CAMPAIGN_READ, Actor
from server.domain.territory import LEVELS, ancestor_ids, level_rank
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Campaign, CampaignTask, Category, GridAssignment, Incident, Region
from server.models._base import utcnow
from server.storage import BlobNotFound, photo_key

from . import duty, notify, photos
from .access import authorize, visible_campaign_tasks, visible_campaigns
from .pagination import Page, paginate

log = logging.getLogger(__name__)
# A deadline further ahead than this is a typing mistake.
MAX_DEADLINE = timedelta(days=366)
_tasks = CampaignTask.__table__


def campaign_not_found() -> NotFound:
    return NotFound("campaign.not_found", "No such campaign.")


def task_not_found() -> NotFound:
    return NotFound("campaign.task_not_found", "No such campaign task.")


def _closed() -> Conflict:
    return Conflict("campaign.closed", "The campaign is closed; its tasks take no more answers.")


def _refused(exc: rules.TaskTransitionRefused) -> Conflict:
    return Conflict(exc.code, exc.message)


# ---------------------------------------------------------------- launching

def _same_launch(campaign: Campaign, actor: Actor, region_id: int, title: str, group_ids: list[int] | None,
                 deadline: datetime) -> bool:
    return (campaign.created_by == actor.user_id and campaign.region_id == region_id and campaign.title == title
            and (group_ids is None or sorted(campaign.category_group_ids) == group_ids)
            and campaign.deadline == deadline)


def _key_reused() -> InvalidInput:
    return InvalidInput("idempotency.key_reused", "This client_uuid was already used for a different campaign.",
                        errors={"client_uuid": ["Used for another campaign."]})


def _groups(codes: list[str]) -> list[int]:
    """The ids of the live category groups (大类) named by ``codes``, sorted.
    Errors: campaign.invalid_category_group."""
    rows = dict(db.session.execute(select(Category.code, Category.id).where(
        Category.code.in_(codes), Category.parent_id.is_(None), Category.retired_at.is_(None))).all())
    unknown = sorted(set(codes) - set(rows))
    if unknown:
        raise InvalidInput("campaign.invalid_category_group", "Name live category groups (大类), not leaves.",
                           errors={"category_groups": [f"Not a live group: {code}" for code in unknown]})
    return sorted(rows.values())


def launch_campaign(actor: Actor, data: dict) -> tuple[Campaign, bool]:
    """Launch an inspection campaign (发起排查) for a region: every live grid cell under it
    gets a task for its grid worker (``duty.assignees_for``), each worker is told once, and
    the community supervisors of cells nobody covers are told too. Returns the campaign
    and whether it is new (the same ``client_uuid`` again: the same campaign).

    Errors: campaign.invalid_region, campaign.invalid_category_group, campaign.invalid_deadline,
    campaign.no_cells, idempotency.key_reused (422); auth.forbidden (403).
    """
    client_uuid = data.get("client_uuid") or uuid.uuid4()
    existing = db.session.scalars(select(Campaign).where(Campaign.client_uuid == client_uuid)).one_or_none()
    if existing is not None:
        if not _same_launch(existing, actor, data["region_id"], data["title"], None, data["deadline"]):
            raise _key_reused()
        if sorted(existing.category_group_ids) != _groups(data["category_groups"]):
            raise _key_reused()
        return existing, False
    invalid_region = InvalidInput("campaign.invalid_region", "Choose a live region of your area.",
                                  errors={"region_id": ["Unknown, retired or outside your area."]})
    region = db.session.get(Region, data["region_id"])
    authorize(actor, CAMPAIGN_MANAGE, region, not_found=invalid_region)
    if region.is_retired:
        raise invalid_region
    group_ids = _groups(data["category_groups"])
    now, deadline = utcnow(), data["deadline"]
    if not now < deadline <= now + MAX_DEADLINE:
        raise InvalidInput("campaign.invalid_deadline", "The deadline must be ahead, and within a year.",
                           errors={"deadline": ["In the past, or more than a year ahead."]})
    cells = db.session.scalars(select(Region.id).where(
        Region.level == "grid", Region.retired_at.is_(None), Region.path.startswith(region.path))
        .order_by(Region.id)).all()
    if not cells:
        raise InvalidInput("campaign.no_cells", "There is no live grid cell in this region.",
                           errors={"region_id": ["No live grid cell."]})
    by_cell = duty.assignees_for(list(cells), now, not_on_leave=True)  # auto-dispatch's rule, one query
    assignees = [by_cell[cell] for cell in cells]
    campaign_id = db.session.scalar(insert(Campaign).values(
        client_uuid=client_uuid, region_id=region.id, region_path=region.path, title=data["title"],
        category_group_ids=group_ids, deadline=deadline, state="open", created_by=actor.user_id, created_at=now,
    ).on_conflict_do_nothing(index_elements=["client_uuid"]).returning(Campaign.id))
    if campaign_id is None:  # the same launch raced in: answer as it was answered
        db.session.rollback()
        return launch_campaign(actor, data)
    # one INSERT … SELECT for the whole region, however many cells
    created = db.session.execute(text("""
        INSERT INTO campaign_tasks (campaign_id, cell_id, cell_path, assignee_id, state, next_escalation_at, created_at)
        SELECT :campaign, r.id, r.path, a.assignee_id, 'open', :deadline, :now
        FROM unnest(CAST(:cells AS integer[]), CAST(:assignees AS integer[])) AS a(cell_id, assignee_id)
        JOIN regions r ON r.id = a.cell_id
        RETURNING cell_path, assignee_id
    """), {"campaign": campaign_id, "deadline": deadline, "now": now, "cells": cells,
           "assignees": assignees}).all()
    campaign = db.session.get(Campaign, campaign_id)
    _tell_launch(actor, campaign, created, now)
    db.session.commit()
    return campaign, True


def _subject(title: str) -> notify.Subject:
    """What a campaign's messages say: its title (no incident number)."""
    return notify.Subject(None, title, title)


def _tell_launch(actor: Actor, campaign: Campaign, created: Sequence, now: datetime) -> None:
    """One message to each worker with tasks (not one per cell), and one to each community
    supervisor with cells nobody covers; never to the launcher."""
    subject = _subject(campaign.title)
    payload = (("campaign_id", str(campaign.id)),)
    workers = sorted({row.assignee_id for row in created if row.assignee_id is not None} - {actor.user_id})
    tells = [notify.Tell(tuple(workers), "campaign_task", subject, f"campaign:{campaign.id}:task",
                         deadline=campaign.deadline, payload=payload)]
    places = {notify.supervising_region(row.cell_path, "community") for row in created if row.assignee_id is None}
    managers = notify.supervisors(places)
    people = sorted({u for place in places for u in managers[place]} - {actor.user_id})
    tells.append(notify.Tell(tuple(people), "campaign_unassigned", subject, f"campaign:{campaign.id}:unassigned",
                             level="community", payload=payload))
    notify.tell(tells, now)


# ---------------------------------------------------------------- reading

@dataclass
class CampaignView:
    """A campaign with its progress as one actor sees it (the tasks of their scope)."""

    campaign: Campaign
    progress: dict = field(default_factory=dict)
    category_groups: list = field(default_factory=list)

    def __getattr__(self, name):
        return getattr(self.campaign, name)


def _campaign(actor: Actor, campaign_id: int, action: str = CAMPAIGN_READ, *, for_update: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        stmt = stmt.with_for_update(of=Campaign)
    campaign = db.session.scalars(stmt).one_or_none()
    authorize(actor, action, campaign, not_found=campaign_not_found())
    return campaign


def _group_refs(ids: list[int]) -> list[Category]:
    return list(db.session.scalars(select(Category).where(Category.id.in_(ids)).order_by(Category.code)))


def _counts(rows) -> dict:
    """Progress figures of (state, late, count) rows."""
    by_state = {state: 0 for state in rules.TASK_STATES}
    late = 0
    for state, is_late, n in rows:
        by_state[state] += n
        late += n if is_late else 0
    total = sum(by_state.values())
    done = sum(by_state[s] for s in rules.FINISHED_STATES)
    return {"total": total, "by_state": by_state, "done": done, "percent_done": rules.percent(done, total),
            "overdue": by_state["overdue"], "late": late}


def _progress(actor: Actor, campaign: Campaign) -> dict:
    """Tasks by state, share done, overdue, late and unassigned, findings, and the same by
    child region of the campaign's region; only the tasks the actor is shown."""
    mine = and_(CampaignTask.campaign_id == campaign.id, visible_campaign_tasks(actor))
    base = select(CampaignTask.state, CampaignTask.late, func.count()).where(mine)
    progress = _counts(db.session.execute(base.group_by(CampaignTask.state, CampaignTask.late)).all())
    progress["unassigned"] = db.session.scalar(select(func.count()).where(
        mine, CampaignTask.assignee_id.is_(None), CampaignTask.state.in_(rules.TO_DO_STATES)))
    progress["findings"] = db.session.scalar(select(func.count()).select_from(Incident).join(
        CampaignTask, CampaignTask.id == Incident.campaign_task_id).where(mine))
    progress["by_region"] = []
    if campaign.region.level != "grid":
        # the child of the campaign's region on each cell's path ("/1/5/77/…": the part after the region's)
        child = func.split_part(CampaignTask.cell_path, "/", len(ancestor_ids(campaign.region_path)) + 2) \
            .cast(db.Integer).label("child_id")
        rows = db.session.execute(base.add_columns(child).group_by(child, CampaignTask.state, CampaignTask.late)).all()
        per_child = defaultdict(list)
        for state, is_late, n, child_id in rows:
            per_child[child_id].append((state, is_late, n))
        regions = {r.id: r for r in db.session.scalars(select(Region).where(Region.id.in_(per_child)))}
        progress["by_region"] = [{"region": regions[child_id], **_counts(per_child[child_id])}
                                 for child_id in sorted(per_child, key=lambda i: regions[i].code)]
    return progress


def get_campaign(actor: Actor, campaign_id: int) -> CampaignView:
    """A campaign and its progress (排查进度) over the tasks the actor is shown.
    Errors: campaign.not_found."""
    campaign = _campaign(actor, campaign_id)
    return CampaignView(campaign, _progress(actor, campaign), _group_refs(campaign.category_group_ids))


def list_campaigns(actor: Actor, state: str | None, page: int, page_size: int) -> Page:
    """The campaigns the actor may see, newest first."""
    stmt = select(Campaign).where(visible_campaigns(actor))
    if state is not None:
        stmt = stmt.where(Campaign.state == state)
    result = paginate(stmt.order_by(Campaign.id.desc()), page, page_size)
    groups = {g.id: g for g in _group_refs(sorted({i for c in result.items for i in c.category_group_ids}))}
    result.items = [CampaignView(c, category_groups=[groups[i] for i in c.category_group_ids]) for c in result.items]
    return result


@dataclass
class TaskFilter:
    state: list[str] | None = None
    cell_id: int | None = None
    assignee_id: int | None = None


def _with_findings(page: Page) -> Page:
    """Each task of the page with the ids of the incidents reported with it (``incident_ids``)."""
    found = defaultdict(list)
    if page.items:
        for task_id, incident_id in db.session.execute(select(Incident.campaign_task_id, Incident.id).where(
                Incident.campaign_task_id.in_([t.id for t in page.items])).order_by(Incident.id)):
            found[task_id].append(incident_id)
    for task in page.items:
        task.incident_ids = found[task.id]
    return page


def list_tasks(actor: Actor, campaign_id: int, f: TaskFilter, page: int, page_size: int) -> Page:
    """A campaign's tasks the actor is shown (a grid worker: their own; a manager: those of
    their scope), by cell code. Errors: campaign.not_found."""
    campaign = _campaign(actor, campaign_id)
    stmt = select(CampaignTask).join(Region, Region.id == CampaignTask.cell_id).where(
        CampaignTask.campaign_id == campaign.id, visible_campaign_tasks(actor))
    if f.state:
        stmt = stmt.where(CampaignTask.state.in_(f.state))
    if f.cell_id is not None:
        stmt = stmt.where(CampaignTask.cell_id == f.cell_id)
    if f.assignee_id is not None:
        stmt = stmt.where(CampaignTask.assignee_id == f.assignee_id)
    return _with_findings(paginate(stmt.order_by(Region.code, CampaignTask.id), page, page_size))


def my_tasks(actor: Actor, page: int, page_size: int) -> Page:
    """The campaign tasks a grid worker still owes an answer (open or overdue) in open
    campaigns: those assigned to them, and those of their cells nobody was assigned.
    Soonest deadline first."""
    covered = select(GridAssignment.region_id).where(GridAssignment.user_id == actor.user_id)
    stmt = select(CampaignTask).join(Campaign, Campaign.id == CampaignTask.campaign_id).where(
        Campaign.state == "open", CampaignTask.state.in_(rules.TO_DO_STATES),
        (CampaignTask.assignee_id == actor.user_id)
        | (CampaignTask.assignee_id.is_(None) & CampaignTask.cell_id.in_(covered)))
    result = _with_findings(paginate(stmt.order_by(Campaign.deadline, CampaignTask.id), page, page_size))
    groups = {g.id: g for g in _group_refs(sorted({i for t in result.items for i in t.campaign.category_group_ids}))}
    for task in result.items:
        task.campaign_view = CampaignView(task.campaign,
                                          category_groups=[groups[i] for i in task.campaign.category_group_ids])
    return result


def _task_target(task: CampaignTask) -> rules.TaskTarget:
    workers = db.session.scalars(select(GridAssignment.user_id).where(GridAssignment.region_id == task.cell_id))
    return rules.TaskTarget(scope_path=task.cell_path, assignee_id=task.assignee_id,
                            cell_worker_ids=frozenset(workers))


def _task(actor: Actor, campaign_id: int, task_id: int, action: str = CAMPAIGN_READ) -> CampaignTask:
    """A campaign's task the actor may see (404) and take ``action`` on (403)."""
    task = db.session.get(CampaignTask, task_id)
    if task is not None and task.campaign_id != campaign_id:
        task = None
    authorize(actor, action, _task_target(task) if task is not None else None, not_found=task_not_found())
    return task


def get_task(actor: Actor, campaign_id: int, task_id: int) -> CampaignTask:
    """One task of a campaign, with its findings. Errors: campaign.task_not_found."""
    task = _task(actor, campaign_id, task_id)
    return _with_findings(Page([task], 1, 1, 1)).items[0]


def cells_geojson(actor: Actor, campaign_id: int) -> dict:
    """The cells of a campaign the actor is shown, each with its task's state, label and
    colour (the map's campaign layer): a GeoJSON FeatureCollection in WGS84.
    Errors: campaign.not_found."""
    campaign = _campaign(actor, campaign_id)
    rows = db.session.execute(
        select(CampaignTask.id, CampaignTask.state, CampaignTask.late, CampaignTask.assignee_id,
               Region.id.label("cell_id"), Region.code, Region.name, Region.name_en, Region.geom.label("geom"))
        .join(Region, Region.id == CampaignTask.cell_id)
        .where(CampaignTask.campaign_id == campaign.id, visible_campaign_tasks(actor))
        .order_by(Region.code)).all()
    features = []
    for row in rows:
        zh, en = rules.TASK_STATE_LABELS[row.state]
        features.append({"type": "Feature", "id": row.cell_id, "geometry": to_geojson(from_db(row.geom)),
                         "properties": {"task_id": row.id, "cell_id": row.cell_id, "code": row.code,
                                        "name": row.name, "name_en": row.name_en, "state": row.state,
                                        "label": zh, "label_en": en, "colour": rules.TASK_STATE_COLOURS[row.state],
                                        "late": row.late, "assigned": row.assignee_id is not None}})
    return {"type": "FeatureCollection", "features": features,
            "campaign": {"id": campaign.id, "title": campaign.title, "state": campaign.state,
                         "deadline": campaign.deadline.isoformat()},
            "legend": [{"state": state, "label": zh, "label_en": en, "colour": rules.TASK_STATE_COLOURS[state]}
                       for state, (zh, en) in rules.TASK_STATE_LABELS.items()]}


# ---------------------------------------------------------------- answers

def task_for_finding(actor: Actor, task_id: int, category: Category, cell_id: int) -> CampaignTask:
    """The campaign task an incident being reported is a finding of (有发现), checked before
    anything is written: the reporter's task (or of a cell they cover), an open campaign, a
    category of the campaign's groups, a location in the task's cell.

    Errors: campaign.task_not_found, campaign.category_not_in_campaign, campaign.outside_cell
    (422); auth.forbidden (403); campaign.closed (409).
    """
    task = db.session.get(CampaignTask, task_id)
    unknown = InvalidInput("campaign.task_not_found", "No such campaign task.",
                           errors={"campaign_task_id": ["No such campaign task."]})
    authorize(actor, CAMPAIGN_FINISH, _task_target(task) if task is not None else None, not_found=unknown)
    if task.campaign.state != "open":
        raise _closed()
    try:
        rules.task_transition(task.state, rules.FIND)
    except rules.TaskTransitionRefused as exc:
        raise _refused(exc) from None
    if category.parent_id not in task.campaign.category_group_ids:
        raise InvalidInput("campaign.category_not_in_campaign", "The campaign does not look for this category.",
                           errors={"category": ["Not in the campaign's category groups."]})
    if cell_id != task.cell_id:
        raise InvalidInput("campaign.outside_cell", "The location is not in the task's grid cell.",
                           errors={"location": ["Outside the task's grid cell."]})
    return task


def record_finding(actor: Actor, task: CampaignTask, now: datetime) -> None:
    """The task is found (有发现) in the transaction of the incident reporting it; the first
    answer's time stays its finish. No commit. Errors: campaign.closed (closed meanwhile)."""
    deadline = select(Campaign.deadline).where(Campaign.id == _tasks.c.campaign_id).scalar_subquery()
    first = _tasks.c.finished_at.is_(None)
    done = db.session.execute(update(_tasks).where(
        _tasks.c.id == task.id, _tasks.c.state.in_(rules.sources(rules.FIND)),
        select(Campaign.id).where(Campaign.id == _tasks.c.campaign_id, Campaign.state == "open").exists(),
    ).values(state=rules.task_transition(task.state, rules.FIND),
             finished_at=func.coalesce(_tasks.c.finished_at, now),
             finished_by=func.coalesce(_tasks.c.finished_by, actor.user_id),
             late=case((first, (_tasks.c.state == "overdue") | (deadline < now)), else_=_tasks.c.late),
             next_escalation_at=None)).rowcount
    if not done:
        raise _closed()


def report_nothing_found(actor: Actor, campaign_id: int, task_id: int, photo: bytes | None,
                         note: str | None) -> CampaignTask:
    """Report that the cell was inspected and nothing was found (零报告), with a photo
    (required) and an optional note. The same photo again: the task as it is.

    Errors: campaign.task_not_found (404), auth.forbidden (403), campaign.closed,
    campaign.task_finished (409), campaign.photo_required, photo.* (413/415/422).
    """
    task = _task(actor, campaign_id, task_id, CAMPAIGN_FINISH)
    if not photo:
        raise InvalidInput("campaign.photo_required", "A nothing-found report needs a photo of the cell.",
                           errors={"photo": ["Required."]})
    if task.state in ("nothing_found", "found") and task.photo_sha256 == hashlib.sha256(photo).hexdigest():
        return get_task(actor, campaign_id, task_id)  # a retry of the same report (a finding may have come since)
    if task.campaign.state != "open":
        raise _closed()
    try:
        target = rules.task_transition(task.state, rules.NOTHING_FOUND)
    except rules.TaskTransitionRefused as exc:
        raise _refused(exc) from None
    prepared = photos.prepare([("report", photo)])[0]  # checked and stored before the transaction
    now = utcnow()
    info = prepared.info
    done = db.session.execute(update(_tasks).where(
        _tasks.c.id == task.id, _tasks.c.state.in_(rules.sources(rules.NOTHING_FOUND)),
    ).values(state=target, finished_at=now, finished_by=actor.user_id,
             late=(_tasks.c.state == "overdue") | literal(rules.is_late(task.state, now, task.campaign.deadline)),
             note=note or None, photo_sha256=prepared.sha256, photo_content_type=info.content_type,
             photo_size_bytes=prepared.size_bytes, photo_taken_at=photos.sane_taken_at(info.taken_at),
             next_escalation_at=None)).rowcount
    if not done:  # answered or closed meanwhile
        db.session.rollback()
        return report_nothing_found(actor, campaign_id, task_id, photo, note)
    db.session.commit()
    return get_task(actor, campaign_id, task_id)


def task_photo(actor: Actor, campaign_id: int, task_id: int) -> photos.PhotoContent:
    """The nothing-found photo of a task (the original: campaign tasks are read by territory
    staff only). Errors: campaign.task_not_found, photo.not_found."""
    task = _task(actor, campaign_id, task_id)
    if task.photo_sha256 is None:
        raise NotFound("photo.not_found", "No such photo.")
    try:
        data = photos.blob_store().get(photo_key(task.photo_sha256, "orig"))
    except BlobNotFound:
        log.error("the photo of campaign task %s is missing from the blob store", task.id)
        raise NotFound("photo.not_found", "No such photo.") from None
    return photos.PhotoContent(data, task.photo_content_type, task.photo_sha256[:32])


# ---------------------------------------------------------------- closing

def close_campaign(actor: Actor, campaign_id: int) -> CampaignView:
    """Close a campaign (结束排查): tasks still to do are cancelled, the answers stay; closing
    again changes nothing. Errors: campaign.not_found (404), auth.forbidden (403)."""
    campaign = _campaign(actor, campaign_id, CAMPAIGN_MANAGE, for_update=True)
    if campaign.state == "open":
        now = utcnow()
        db.session.execute(update(_tasks).where(
            _tasks.c.campaign_id == campaign.id, _tasks.c.state.in_(rules.sources(rules.CANCEL)),
        ).values(state=rules.task_transition("open", rules.CANCEL), next_escalation_at=None))
        campaign.state, campaign.closed_at, campaign.closed_by = "closed", now, actor.user_id
    db.session.commit()
    return get_campaign(actor, campaign_id)


# ---------------------------------------------------------------- overdue escalation (the sweep)

def overdue_tasks_due(now: datetime):
    """The statement selecting the tasks owing an overdue stage at ``now`` (the sweep claims
    them with SKIP LOCKED)."""
    return select(_tasks.c.id, _tasks.c.campaign_id, _tasks.c.cell_path, _tasks.c.assignee_id, _tasks.c.state,
                  _tasks.c.escalation_stage).where(
        _tasks.c.next_escalation_at <= now, _tasks.c.state.in_(rules.TO_DO_STATES),
    ).order_by(_tasks.c.next_escalation_at)


def escalate_overdue_tasks(rows: Sequence, now: datetime) -> Counter:
    """The next overdue stage of each claimed task: marked overdue at the first (已超期), and
    the supervisors of the stage's level on the cell's chain told (community, street,
    district), once per campaign and stage each; the worker told at the first stage too.
    Returns counts for the sweep's report."""
    interval = timedelta(hours=current_app.config["CAMPAIGN_ESCALATE_HOURS"])
    last = len(rules.ESCALATION_LEVELS)
    marks = set(rules.sources(rules.MARK_OVERDUE))
    done = db.session.execute(update(_tasks).where(
        _tasks.c.id.in_([row.id for row in rows]), _tasks.c.next_escalation_at <= now,
        _tasks.c.state.in_(rules.TO_DO_STATES),
    ).values(
        state=case((_tasks.c.state.in_(marks), rules.task_transition("open", rules.MARK_OVERDUE)),
                   else_=_tasks.c.state),
        overdue_at=func.coalesce(_tasks.c.overdue_at, now),
        escalation_stage=_tasks.c.escalation_stage + 1,
        # rules.next_escalation_at, set-wise: one interval after this stage, none after the last
        next_escalation_at=case((_tasks.c.escalation_stage + 1 < last, bindparam("next", now + interval)),
                                else_=None),
    ).returning(_tasks.c.id, _tasks.c.campaign_id, _tasks.c.cell_path, _tasks.c.assignee_id,
                _tasks.c.escalation_stage)).all()
    titles = dict(db.session.execute(select(Campaign.id, Campaign.title).where(
        Campaign.id.in_({row.campaign_id for row in done}))).all())
    places = {}
    for row in done:
        level = rules.stage_level(row.escalation_stage)
        places[row.id] = (ancestor_ids(row.cell_path)[level_rank(level)], level)
    managers = notify.supervisors(places.values())
    people: dict[tuple[int, int, str], set[int]] = defaultdict(set)
    workers: dict[int, set[int]] = defaultdict(set)
    for row in done:
        level = places[row.id][1]
        people[(row.campaign_id, row.escalation_stage, level)].update(managers[places[row.id]])
        if row.escalation_stage == 1 and row.assignee_id is not None:
            workers[row.campaign_id].add(row.assignee_id)
    tells = []
    for (campaign_id, stage, level), users in sorted(people.items()):
        tells.append(notify.Tell(tuple(sorted(users)), "campaign_overdue", _subject(titles[campaign_id]),
                                 f"campaign:{campaign_id}:overdue:stage:{stage}", level=level,
                                 payload=(("campaign_id", str(campaign_id)), ("stage", str(stage)))))
    for campaign_id, users in sorted(workers.items()):
        tells.append(notify.Tell(tuple(sorted(users)), "campaign_overdue", _subject(titles[campaign_id]),
                                 f"campaign:{campaign_id}:overdue:worker", level="grid",
                                 payload=(("campaign_id", str(campaign_id)),)))
    notify.tell(tells, now)
    first = sum(1 for row in done if row.escalation_stage == 1)
    return Counter(campaign_overdue=first, campaign_escalated=len(done) - first)


assert set(rules.ESCALATION_LEVELS) <= set(LEVELS)
