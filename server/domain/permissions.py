"""Who may do what where: the one authorization rule, ``can(actor, action, target)``.

A target is anything with a ``scope_path`` (the materialised path of the region it
belongs to): a region, a user (their scope region), a department (its region). Devices
carry ``user_id``. The rule is pure; ``services.access`` turns refusals into 404 (the
actor may not even see the target) or 403 (it may see but not do).
"""
from __future__ import annotations

from dataclasses import dataclass

from .campaigns import TaskTarget
from .people import MANAGER_ROLES, outranks
from .territory import is_within

REGION_READ = "region.read"
REGION_MANAGE = "region.manage"  # rename, recode, retire: strictly below the actor's scope
REGION_ADD_CHILDREN = "region.add_children"  # create children, generate grids: within scope
REGION_IMPORT = "region.import"  # bulk import of a whole level: administrators only
USER_READ = "user.read"
USER_MANAGE = "user.manage"
DEPARTMENT_READ = "department.read"
DEPARTMENT_MANAGE = "department.manage"
DEVICE_READ = "device.read"
DEVICE_MANAGE = "device.manage"
CATEGORY_READ = "category.read"  # the taxonomy has no scope: every signed-in actor reads it
CATEGORY_MANAGE = "category.manage"  # city-wide taxonomy: administrators only
ESCALATION_READ = "escalation.read"  # the deadlines that apply in a region: inside the scope
ESCALATION_MANAGE = "escalation.manage"  # a region's policy overrides: managers, inside their scope
CALENDAR_READ = "calendar.read"  # work days: every signed-in actor reads them
CALENDAR_MANAGE = "calendar.manage"  # work days and holidays, city-wide: administrators only
STATS_READ = "stats.read"  # a region's evaluation figures (考核): managers, inside their scope
PATROL_READ = "patrol.read"  # a patrol and its track (personal data): the worker, and managers of their area
PATROL_MANAGE = "patrol.manage"  # start, end, upload points: the grid worker whose patrol it is
PLACE_READ = "place.read"  # a place to check in at: anyone whose scope holds it (its workers too)
PLACE_MANAGE = "place.manage"  # set and retire places: managers, inside their scope
DUTY_READ = "duty.read"  # whether a worker is on duty: the worker, and managers of their area
DUTY_MANAGE = "duty.manage"  # go on and off duty (上岗/离岗): a grid worker, for themselves
CAMPAIGN_READ = "campaign.read"  # an inspection campaign (排查): its region meets the actor's scope
CAMPAIGN_MANAGE = "campaign.manage"  # launch, close: managers, for a region inside their scope
CAMPAIGN_FINISH = "campaign.finish"  # answer a campaign task: the task's grid worker, or a worker of its cell
OPEN311_CLIENT_READ = "open311_client.read"  # Open311 client apps and their keys: administrators only
OPEN311_CLIENT_MANAGE = "open311_client.manage"
# citizens' requests that could not be located (an address only): the city's command centre,
# whose operators place them on the map (docs/OPEN311.md); they belong to no region yet
UNLOCATED_READ = "unlocated.read"
UNLOCATED_MANAGE = "unlocated.manage"

ACTIONS = (
    REGION_READ, REGION_MANAGE, REGION_ADD_CHILDREN, REGION_IMPORT, USER_READ, USER_MANAGE,
    DEPARTMENT_READ, DEPARTMENT_MANAGE, DEVICE_READ, DEVICE_MANAGE, CATEGORY_READ, CATEGORY_MANAGE,
    CALENDAR_READ, CALENDAR_MANAGE, ESCALATION_READ, ESCALATION_MANAGE, STATS_READ, PATROL_READ, PATROL_MANAGE,
    DUTY_READ, DUTY_MANAGE, PLACE_READ, PLACE_MANAGE,
    CAMPAIGN_READ, CAMPAIGN_MANAGE, CAMPAIGN_FINISH, OPEN311_CLIENT_READ, OPEN311_CLIENT_MANAGE,
    UNLOCATED_READ, UNLOCATED_MANAGE,
)


@dataclass(frozen=True)
class Actor:
    """The authenticated user as the rules see it."""

    user_id: int
    role: str
    scope_path: str
    department_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_manager(self) -> bool:
        return self.role in MANAGER_ROLES


# The actor of command-line tools run by the operator: an administrator of everything.
SYSTEM = Actor(user_id=0, role="admin", scope_path="/")


def read_action(action: str) -> str:
    """The read action of the same kind of target (``user.manage`` → ``user.read``)."""
    return action.split(".", 1)[0] + ".read"


def can(actor: Actor, action: str, target) -> bool:
    """May ``actor`` perform ``action`` on ``target``? Unknown actions are refused."""
    if action not in ACTIONS:
        return False
    if action in (DEVICE_READ, DEVICE_MANAGE):
        return target.user_id == actor.user_id
    if action == PATROL_MANAGE:
        return actor.role == "grid_worker" and target.user_id == actor.user_id
    if action == DUTY_MANAGE:
        return actor.role == "grid_worker" and target.id == actor.user_id
    if action == CAMPAIGN_FINISH:
        return actor.role == "grid_worker" and (
            target.assignee_id == actor.user_id or actor.user_id in target.cell_worker_ids)
    if actor.is_admin:
        return True
    if action == CAMPAIGN_READ:
        if isinstance(target, TaskTarget) and actor.role == "grid_worker":  # a task: as the worker's list
            return target.assignee_id == actor.user_id or actor.user_id in target.cell_worker_ids
        # a campaign of a region below the actor's, or of one above it (a street's campaign
        # reaches into the community); what of it the actor sees is then cut to the scope
        return actor.role != "department" and (
            is_within(target.scope_path, actor.scope_path) or is_within(actor.scope_path, target.scope_path))
    if action in (CATEGORY_READ, CALENDAR_READ):
        return True
    if action in (UNLOCATED_READ, UNLOCATED_MANAGE):
        return actor.role == "city"
    inside = is_within(target.scope_path, actor.scope_path)
    if action in (REGION_READ, ESCALATION_READ, PLACE_READ):
        return inside
    if action in (ESCALATION_MANAGE, STATS_READ, PLACE_MANAGE, CAMPAIGN_MANAGE):
        return actor.is_manager and inside
    if action == REGION_MANAGE:
        return actor.is_manager and inside and target.scope_path != actor.scope_path
    if action == REGION_ADD_CHILDREN:
        return actor.is_manager and inside
    if action == PATROL_READ:
        return target.user_id == actor.user_id or (actor.is_manager and inside)
    if action == DUTY_READ:
        return target.id == actor.user_id or (actor.is_manager and inside)
    if action == USER_READ:
        return target.id == actor.user_id or (actor.is_manager and inside)
    if action == USER_MANAGE:
        return actor.is_manager and inside and target.id != actor.user_id and outranks(actor.role, target.role)
    if action == DEPARTMENT_READ:
        return inside or (actor.role == "department" and target.id == actor.department_id)
    if action == DEPARTMENT_MANAGE:
        return actor.is_manager and inside
    # REGION_IMPORT, CATEGORY_MANAGE, CALENDAR_MANAGE, OPEN311_CLIENT_* and anything new: administrators only
    return False
