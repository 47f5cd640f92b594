"""Users (人员): create, change, list; the signed-in user's profile and password;
grid assignments of workers (AB岗: primary 主岗 / backup 备岗)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import SimpleNamespace

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from server.domain.people import allowed_scope_levels
from server.domain.permissions import USER_MANAGE, USER_READ, Actor
from server.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.extensions import db
from server.models import AuthSession, Department, GridAssignment, Region, User
from server.models._base import utcnow

from .access import authorize, visible_users, within_scope
from .auth import attempt_succeeded, begin_attempt, throttle_key
from .constraints import violated_constraint
from .pagination import Page, paginate
from .passwords import check_strength, hash_password, verify_password
from .versioning import commit_edit

USER_NOT_FOUND = "user.not_found"


def _not_found() -> NotFound:
    return NotFound(USER_NOT_FOUND, "No such user.")


def _version_conflict() -> Conflict:
    return Conflict("user.version_conflict", "The user was changed by someone else; reload it and try again.")


# --- reading -------------------------------------------------------------------------

def list_users(actor: Actor, args: dict) -> Page:
    """Users the actor may see, filtered by role, region subtree, text and activity."""
    stmt = select(User).join(Region, Region.id == User.region_id).where(visible_users(actor))
    if "role" in args:
        stmt = stmt.where(User.role == args["role"])
    if "region_id" in args:
        subtree = select(Region.path).where(Region.id == args["region_id"]).scalar_subquery()
        stmt = stmt.where(Region.path.startswith(subtree))
    if "q" in args:
        stmt = stmt.where(or_(User.username.icontains(args["q"], autoescape=True),
                              User.display_name.icontains(args["q"], autoescape=True)))
    if "active" in args:
        stmt = stmt.where(User.is_active.is_(args["active"]))
    return paginate(stmt.order_by(User.id), args["page"], args["page_size"])


def get_user(actor: Actor, user_id: int) -> User:
    """One user, if the actor may see them (else 404 user.not_found)."""
    user = db.session.get(User, user_id)
    authorize(actor, USER_READ, user, not_found=_not_found())
    return user


# --- placement rules -------------------------------------------------------------------

def _scope_region(actor: Actor, region_id: int) -> Region:
    """A live region inside the actor's scope; anything else is the same 422, so the
    answer never reveals whether a region outside the scope exists."""
    region = db.session.scalars(
        select(Region).where(Region.id == region_id, Region.retired_at.is_(None), within_scope(actor, Region.path))
    ).one_or_none()
    if region is None:
        raise InvalidInput("user.invalid_region", "The region does not exist or is outside your scope.",
                           errors={"region_id": ["Unknown region or outside your scope."]})
    return region


def _check_placement(role: str, region: Region, department_id: int | None, *, check_department: bool) -> None:
    """The role fits the scope region's level; department handlers belong to a live
    department of that very region, and nobody else belongs to one."""
    if region.level not in allowed_scope_levels(role):
        raise InvalidInput("user.invalid_scope", f"A {role} user cannot be scoped to a {region.level}.",
                           errors={"region_id": [f"Allowed levels for {role}: {', '.join(allowed_scope_levels(role))}."]})
    if role != "department":
        if department_id is not None:
            raise InvalidInput("user.invalid_department", "Only department handlers belong to a department.",
                               errors={"department_id": ["Only for the department role."]})
        return
    if department_id is None:
        raise InvalidInput("user.department_required", "A department handler needs a department.",
                           errors={"department_id": ["Required for the department role."]})
    if not check_department:
        return
    department = db.session.get(Department, department_id)
    if department is None or department.retired_at is not None or department.region_id != region.id:
        raise InvalidInput("user.invalid_department", "The department must be a live department of the scope region.",
                           errors={"department_id": ["Not a department of the scope region."]})


def _refuse_taken_username(username: str) -> None:
    # PostgreSQL's lower(), as in the unique index (Python's differs for a final Σ)
    taken = db.session.scalar(select(exists().where(func.lower(User.username) == func.lower(username))))
    if taken:
        raise _username_taken()


def _username_taken() -> Conflict:
    return Conflict("user.username_taken", "This user name is already taken.",
                    errors={"username": ["Already taken (ignoring case)."]})


def _end_sessions(user_id: int, reason: str, *, keep: uuid.UUID | None = None) -> None:
    stmt = (update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason))
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep)
    db.session.execute(stmt)


# --- managing users ------------------------------------------------------------------

def _add_user(actor: Actor, data: dict, region: Region) -> User:
    _check_placement(data["role"], region, data.get("department_id"), check_department=True)
    user = User(username=data["username"], display_name=data["display_name"], role=data["role"],
                region=region, department_id=data.get("department_id"))
    authorize(actor, USER_MANAGE, user,
              not_found=Forbidden("auth.forbidden", "You may not create users of this role here."))
    _refuse_taken_username(data["username"])
    user.password_hash = hash_password(data["password"])
    db.session.add(user)
    return user


def _commit_new_user() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:  # a concurrent create took the name between check and insert
        db.session.rollback()
        if violated_constraint(exc) == "uq_users_username_lower":
            raise _username_taken() from None
        raise


def create_user(actor: Actor, data: dict) -> User:
    """Create a user inside the actor's scope with a role the actor outranks.

    Errors: user.invalid_region, user.invalid_scope, user.department_required,
    user.invalid_department, auth.forbidden, user.username_taken, user.weak_password.
    """
    user = _add_user(actor, data, _scope_region(actor, data["region_id"]))
    _commit_new_user()
    return user


def create_user_in_region(actor: Actor, data: dict, region_code: str, *, department_code: str | None = None) -> User:
    """Create a user scoped to the region ``region_code`` (for the command line)."""
    region_id = db.session.scalar(select(Region.id).where(Region.code == region_code))
    if department_code is not None:
        department_id = db.session.scalar(select(Department.id).where(Department.code == department_code))
        data = {**data, "department_id": department_id or 0}
    user = _add_user(actor, data, _scope_region(actor, region_id or 0))
    _commit_new_user()
    return user


def update_user(actor: Actor, user_id: int, data: dict) -> User:
    """Change a user's name, role, scope, department, activity or password.

    The actor must be allowed ``user.manage`` on the user both as it is and as it
    will be. Deactivating or resetting the password ends all the user's sessions.
    Errors: user.not_found, auth.forbidden, user.version_conflict, user.invalid_region,
    user.invalid_scope, user.department_required, user.invalid_department,
    user.has_assignments, user.weak_password.
    """
    user = db.session.get(User, user_id)
    authorize(actor, USER_MANAGE, user, not_found=_not_found())
    if data["version"] != user.version:
        raise _version_conflict()

    role = data.get("role", user.role)
    region = _scope_region(actor, data["region_id"]) if "region_id" in data else user.region
    if "department_id" in data:
        department_id = data["department_id"]
    else:
        department_id = user.department_id if role == "department" else None
    placement_changed = (role, region.id, department_id) != (user.role, user.region_id, user.department_id)
    if placement_changed:
        _check_placement(role, region, department_id, check_department=department_id != user.department_id)
        after = SimpleNamespace(id=user.id, role=role, scope_path=region.path)
        authorize(actor, USER_MANAGE, after, not_found=_not_found())
        _refuse_stranded_cells(user, role, region)

    edits = {**data, "role": role, "region": region, "department_id": department_id}
    if "password" in data:
        edits["password_hash"] = hash_password(data["password"])
        _end_sessions(user.id, "password_reset")
    if data.get("is_active") is False and user.is_active:
        _end_sessions(user.id, "deactivated")
    commit_edit(user, edits, ("display_name", "is_active", "role", "region", "department_id", "password_hash"),
                _version_conflict())
    return user


def _refuse_stranded_cells(user: User, role: str, region: Region) -> None:
    """A worker's cells must stay inside their scope: moving or re-roling a worker who
    still covers cells elsewhere is refused rather than silently dropping coverage."""
    if user.role != "grid_worker":
        return
    stmt = select(Region.code).join(GridAssignment, GridAssignment.region_id == Region.id).where(
        GridAssignment.user_id == user.id)
    if role == "grid_worker":
        stmt = stmt.where(~Region.path.startswith(region.path))
    stranded = db.session.scalars(stmt.order_by(Region.code)).all()
    if stranded:
        raise Conflict("user.has_assignments", "Release the worker's grid cells outside the new scope first.",
                       errors={"cells": stranded})


# --- the signed-in user ----------------------------------------------------------------

@dataclass
class Profile:
    """The current user with the grid cells they cover."""

    user: User
    cells: list[GridAssignment]

    def __getattr__(self, name):
        return getattr(self.user, name)


def _cells_of(user_id: int) -> list[GridAssignment]:
    return list(db.session.scalars(
        select(GridAssignment).join(Region, Region.id == GridAssignment.region_id)
        .where(GridAssignment.user_id == user_id).order_by(Region.code)
    ).unique())


def my_profile(actor: Actor) -> Profile:
    """The signed-in user, their scope, department and cells."""
    user = db.session.get(User, actor.user_id)
    return Profile(user=user, cells=_cells_of(user.id))


def change_my_password(actor: Actor, data: dict, *, session_id: uuid.UUID, client_ip: str) -> None:
    """Change one's own password and end every other session.

    Wrong current passwords count as failed sign-ins, so a stolen access token cannot
    be used to guess the password. Errors: auth.rate_limited, auth.wrong_password,
    user.weak_password.
    """
    check_strength(data["new_password"])  # before the attempt counts: a weak choice is no wrong guess
    username = db.session.get(User, actor.user_id).username
    attempt = begin_attempt(throttle_key(username), client_ip)
    user = db.session.get(User, actor.user_id)
    if not verify_password(user.password_hash, data["current_password"]):  # counted already
        raise Forbidden("auth.wrong_password", "The current password is wrong.",
                        errors={"current_password": ["Wrong password."]})
    attempt_succeeded(attempt)
    user.password_hash = hash_password(data["new_password"])
    _end_sessions(user.id, "password_changed", keep=session_id)
    db.session.commit()


# --- grid assignments (AB岗) -----------------------------------------------------------

def list_cells(actor: Actor, user_id: int) -> list[GridAssignment]:
    """The grid cells a user covers."""
    user = db.session.get(User, user_id)
    authorize(actor, USER_READ, user, not_found=_not_found())
    return _cells_of(user.id)


def _worker_and_cell(actor: Actor, user_id: int, region_id: int) -> tuple[User, Region]:
    worker = db.session.get(User, user_id)
    authorize(actor, USER_MANAGE, worker, not_found=_not_found())
    if worker.role != "grid_worker":
        raise InvalidInput("assignment.not_a_worker", "Only grid workers cover grid cells.")
    cell = db.session.scalars(
        select(Region).where(Region.id == region_id, Region.level == "grid", Region.retired_at.is_(None),
                             Region.path.startswith(worker.region.path), within_scope(actor, Region.path))
    ).one_or_none()
    if cell is None:
        raise InvalidInput("assignment.not_a_cell", "The region is not a live grid cell inside the worker's scope.")
    return worker, cell


def assign_cell(actor: Actor, user_id: int, region_id: int, duty: str) -> GridAssignment:
    """Make a worker cover a cell as primary or backup (idempotent).

    Errors: user.not_found, auth.forbidden, assignment.not_a_worker,
    assignment.not_a_cell, assignment.primary_taken.
    """
    worker, cell = _worker_and_cell(actor, user_id, region_id)
    # One statement, so that retries and concurrent requests neither fail nor duplicate.
    upsert = (insert(GridAssignment).values(user_id=worker.id, region_id=cell.id, duty=duty, created_at=utcnow())
              .on_conflict_do_update(index_elements=["user_id", "region_id"], set_={"duty": duty}))
    try:
        db.session.execute(upsert)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        if violated_constraint(exc) == "uq_grid_assignments_primary":
            raise Conflict("assignment.primary_taken", "This cell already has a primary worker.") from None
        raise
    return db.session.get(GridAssignment, (worker.id, cell.id), populate_existing=True)


def unassign_cell(actor: Actor, user_id: int, region_id: int) -> None:
    """Release a worker from a cell. Errors: user.not_found, auth.forbidden, assignment.not_found."""
    worker = db.session.get(User, user_id)
    authorize(actor, USER_MANAGE, worker, not_found=_not_found())
    assignment = db.session.get(GridAssignment, (worker.id, region_id))
    if assignment is None:
        raise NotFound("assignment.not_found", "The worker does not cover this cell.")
    db.session.delete(assignment)
    db.session.commit()
