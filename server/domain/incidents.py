"""The closed loop of an incident (上报 → 立案 → 派遣 → 处置 → 核查 → 结案) as data.

``TRANSITIONS`` is the whole state machine: one row per action saying who may take it
(a *relation* of the actor to the incident, see ``relations``), from which states, and
to which state. ``transition()`` is the only place a status changes. Callers ask the
groups (``is_open``, ``is_closed``, ``timers_run``), never lists of state names.

Relations:
- ``supervisor``: a manager whose scope holds the incident and whose level is at or
  above the level that supervises the case (community for a case at grid level, else
  the case's own level); administrators always;
- ``handler``: the holder of the case's active task (the assigned worker, or any
  handler of the assigned department);
- ``reporter``: who reported it (while they may still see it);
- ``cell_worker``: the reporter, when a worker of the incident's grid cell (即报即处);
- ``reader``: anyone who may see the incident.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .people import MANAGER_ROLES
from .territory import is_within, level_rank

STATES = (
    "reported", "accepted", "dispatched", "acknowledged", "in_progress", "resolved", "rework", "suspended",
    "closed", "rejected", "merged",
)

STATE_LABELS = {
    "reported": ("待受理", "Reported"),
    "accepted": ("已立案", "Accepted"),
    "dispatched": ("已派遣", "Dispatched"),
    "acknowledged": ("已签收", "Acknowledged"),
    "in_progress": ("处置中", "In progress"),
    "resolved": ("待核查", "Resolved, awaiting check"),
    "rework": ("返工", "Rework"),
    "suspended": ("挂起", "Suspended"),
    "closed": ("已结案", "Closed"),
    "rejected": ("不予立案", "Rejected"),
    "merged": ("已合并", "Merged as duplicate"),
}

CLOSED_STATES = frozenset({"closed", "rejected", "merged"})
OPEN_STATES = frozenset(STATES) - CLOSED_STATES
# States whose deadlines run: open and not suspended (挂起 pauses the clock).
TIMED_STATES = OPEN_STATES - {"suspended"}
# States in which a task is out with a handler.
WITH_HANDLER = frozenset({"dispatched", "acknowledged", "in_progress", "rework"})

STATUS_GROUPS = {"open": OPEN_STATES, "closed": CLOSED_STATES}


def is_open(status: str) -> bool:
    return status in OPEN_STATES


def is_closed(status: str) -> bool:
    return status in CLOSED_STATES


def timers_run(status: str) -> bool:
    return status in TIMED_STATES


PRIORITIES = ("urgent", "high", "normal", "low")
PRIORITY_LABELS = {
    "urgent": ("紧急", "Urgent"),
    "high": ("较急", "High"),
    "normal": ("一般", "Normal"),
    "low": ("较低", "Low"),
}

SOURCES = ("phone", "hotline", "web", "patrol", "open311")
SOURCE_LABELS = {
    "phone": ("网格员上报", "Grid worker's phone"),
    "hotline": ("热线", "Hotline (12345)"),
    "web": ("平台录入", "Entered on the platform"),
    "patrol": ("巡查发现", "Found on patrol"),
    "open311": ("市民上报", "Citizen (Open311)"),
}
# Sources a staff member may state when reporting; open311 is set by that channel only.
STAFF_SOURCES = ("phone", "hotline", "web", "patrol")

PHOTO_KINDS = ("report", "before", "after", "evidence")
PHOTO_KIND_LABELS = {
    "report": ("上报照片", "Report"),
    "before": ("处置前", "Before"),
    "after": ("处置后", "After"),
    "evidence": ("证据", "Evidence"),
}

TASK_STATES = ("open", "acknowledged", "done", "declined", "cancelled")
ACTIVE_TASK_STATES = ("open", "acknowledged")

MEDIATION_MODES = ("people", "administrative", "judicial")
MEDIATION_MODE_LABELS = {
    "people": ("人民调解", "People's mediation"),
    "administrative": ("行政调解", "Administrative mediation"),
    "judicial": ("司法调解", "Judicial mediation"),
}
SESSION_OUTCOMES = ("agreed", "partly_agreed", "not_agreed", "adjourned")

EXTENSION_STATES = ("pending", "approved", "refused")

# Satisfaction call-back (回访): 1 (very dissatisfied) … 5 (very satisfied).
DISSATISFIED_AT_MOST = 2

SUPERVISOR, HANDLER, CELL_WORKER, REPORTER, READER = "supervisor", "handler", "cell_worker", "reporter", "reader"
SAME = "=same"  # the action leaves the status as it is
PREVIOUS = "=previous"  # back to the status before suspension
RECEIVED = "=received"  # the case moves to another level: reported there if not yet accepted, else accepted


@dataclass(frozen=True)
class Transition:
    action: str
    who: frozenset[str]
    sources: frozenset[str]
    target: str
    label: tuple[str, str]


def _t(action: str, who: set[str], sources, target: str, zh: str, en: str) -> Transition:
    return Transition(action, frozenset(who), frozenset(sources), target, (zh, en))


_HANDLING = {"accepted", "dispatched", "acknowledged", "in_progress", "rework"}

TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    _t("accept", {SUPERVISOR}, {"reported"}, "accepted", "立案", "Accept"),
    _t("reject", {SUPERVISOR}, {"reported"}, "rejected", "不予立案", "Reject"),
    _t("merge", {SUPERVISOR}, {"reported", "accepted"}, "merged", "合并重复", "Merge as duplicate"),
    _t("dispatch", {SUPERVISOR}, _HANDLING, "dispatched", "派遣", "Dispatch"),
    _t("decline", {HANDLER}, {"dispatched"}, "accepted", "回退", "Send back (wrong dispatch)"),
    _t("acknowledge", {HANDLER}, {"dispatched"}, "acknowledged", "签收", "Acknowledge"),
    _t("start", {HANDLER}, {"acknowledged", "rework"}, "in_progress", "开始处置", "Start work"),
    _t("resolve", {HANDLER}, {"acknowledged", "in_progress", "rework"}, "resolved", "处置反馈", "Report resolved"),
    _t("resolve_on_spot", {CELL_WORKER}, {"reported"}, "resolved", "即报即处", "Resolved on the spot"),
    _t("verify", {SUPERVISOR}, {"resolved"}, "closed", "核查结案", "Verify and close"),
    _t("rework", {SUPERVISOR}, {"resolved"}, "rework", "返工", "Send back for rework"),
    _t("suspend", {SUPERVISOR}, _HANDLING, "suspended", "挂起", "Suspend"),
    _t("resume", {SUPERVISOR}, {"suspended"}, PREVIOUS, "解挂", "Resume"),
    _t("escalate", {SUPERVISOR}, {"reported"} | _HANDLING, RECEIVED, "升级上报", "Escalate one level up"),
    _t("return_down", {SUPERVISOR}, {"reported"} | _HANDLING, RECEIVED, "下派", "Send down one level"),
    _t("request_extension", {HANDLER}, WITH_HANDLER, SAME, "申请延期", "Request extension"),
    _t("approve_extension", {SUPERVISOR}, WITH_HANDLER, SAME, "批准延期", "Approve extension"),
    _t("refuse_extension", {SUPERVISOR}, WITH_HANDLER, SAME, "驳回延期", "Refuse extension"),
    _t("mediate", {SUPERVISOR, HANDLER}, OPEN_STATES, SAME, "调解记录", "Record mediation"),
    _t("callback", {SUPERVISOR}, {"closed"}, SAME, "回访", "Satisfaction call-back"),
    _t("reopen", {SUPERVISOR}, {"closed"}, "rework", "回访不满意重办", "Reopen after dissatisfied call-back"),
    _t("comment", {READER}, STATES, SAME, "备注", "Comment"),
)}

# The creation of an incident is an event too, though not a transition.
REPORT_LABEL = ("上报", "Report")
ACTIONS = tuple(TRANSITIONS)
# Events on an original when a duplicate is merged into it (its status does not change).
MERGED_IN_LABEL = ("合并重复上报", "Duplicate merged in")
# Events the escalation sweep appends without a change of status (docs/ESCALATION.md).
SWEEP_EVENT_LABELS = {
    "remind": ("超时预警提醒", "Due-soon reminder sent"),
    "supervise": ("督办", "Flagged for supervision"),
    "repush": ("任务未签收，再次推送", "Task not acknowledged: pushed again"),
    "handover": ("任务未签收，转交", "Task not acknowledged: handed over"),
}
# A citizen's word on their request, posted by an Open311 client (docs/OPEN311.md).
CITIZEN_UPDATE_LABEL = ("市民补充情况", "Citizen's update")
ACTION_LABELS = {"report": REPORT_LABEL, "merged_in": MERGED_IN_LABEL, "citizen_update": CITIZEN_UPDATE_LABEL,
                 **SWEEP_EVENT_LABELS,
                 **{a: t.label for a, t in TRANSITIONS.items()}}
# Actions taken through their own endpoints rather than /actions/{action}.
OWN_ENDPOINT_ACTIONS = frozenset({"mediate"})


def may_report(actor, cell_path: str) -> bool:
    """May ``actor`` report an incident in the cell with ``cell_path``? Grid workers and
    managers inside their scope, administrators anywhere; department handlers take cases,
    they do not report them."""
    if actor.role == "department":
        return False
    return actor.is_admin or is_within(cell_path, actor.scope_path)


class TransitionRefused(Exception):
    """``code`` is ``incident.invalid_transition`` (wrong state) or ``auth.forbidden``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def transition(status: str, action: str, *, previous: str | None = None) -> str:
    """The status after ``action`` from ``status`` (``previous``: the status a suspended
    case resumes to). Raises TransitionRefused(incident.invalid_transition)."""
    rule = TRANSITIONS.get(action)
    if rule is None or status not in rule.sources:
        label = STATE_LABELS.get(status, (status, status))
        raise TransitionRefused(
            "incident.invalid_transition",
            f"Cannot {action.replace('_', ' ')} an incident that is {label[1].lower()} ({label[0]}).",
        )
    if rule.target == SAME:
        return status
    if rule.target == PREVIOUS:
        return previous or "accepted"
    if rule.target == RECEIVED:
        return "reported" if status == "reported" else "accepted"
    return rule.target


def supervising_level(level: str) -> str:
    """The level whose supervisors oversee a case handled at ``level`` (grid → community)."""
    return "community" if level == "grid" else level


@dataclass(frozen=True)
class IncidentTarget:
    """What the rules need to know about an incident (built by the service)."""

    scope_path: str  # the grid cell's path
    level: str  # the level handling the case now
    status: str
    reporter_id: int | None = None
    cell_worker_ids: frozenset[int] = field(default_factory=frozenset)
    handler_user_id: int | None = None  # the active task's worker
    handler_department_id: int | None = None  # the active task's department
    department_ids: frozenset[int] = field(default_factory=frozenset)  # every department ever dispatched


def relations(actor, target: IncidentTarget) -> frozenset[str]:
    """The relations of ``actor`` (a permissions.Actor) to the incident ``target``."""
    found = set()
    inside = actor.is_admin or is_within(target.scope_path, actor.scope_path)
    by_department = actor.role == "department" and actor.department_id in target.department_ids
    if (inside and actor.role != "department") or by_department:
        found.add(READER)
    if actor.is_admin or (
        actor.role in MANAGER_ROLES and inside
        and level_rank(actor.role) <= level_rank(supervising_level(target.level))
    ):
        found.add(SUPERVISOR)
    if target.handler_user_id is not None and target.handler_user_id == actor.user_id:
        found.add(HANDLER)
    if (actor.role == "department" and target.handler_department_id is not None
            and target.handler_department_id == actor.department_id):
        found.add(HANDLER)
    if READER in found and actor.user_id == target.reporter_id:
        found.add(REPORTER)
        if actor.user_id in target.cell_worker_ids:
            found.add(CELL_WORKER)
    return frozenset(found)


# What is not a transition but still depends on the relation to the incident.
ADD_PHOTO = "add_photo"
OTHER_RULES = {ADD_PHOTO: frozenset({SUPERVISOR, HANDLER, REPORTER})}


def may(actor, action: str, target: IncidentTarget) -> bool:
    """May ``actor`` take ``action`` (a transition, or one of OTHER_RULES) on the
    incident, whatever its state?"""
    rule = TRANSITIONS.get(action)
    who = rule.who if rule is not None else OTHER_RULES.get(action, frozenset())
    return bool(who & relations(actor, target))


def available_actions(actor, target: IncidentTarget) -> list[str]:
    """Actions the actor may take now, in table order (for the phone's buttons)."""
    mine = relations(actor, target)
    return [a for a, rule in TRANSITIONS.items() if rule.who & mine and target.status in rule.sources]
