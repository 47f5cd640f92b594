"""Functional departments (职能部门): police station, 城管, 司法所… belonging to a region."""
from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from server.domain.permissions import DEPARTMENT_MANAGE, DEPARTMENT_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Department, Region
from server.models._base import utcnow

from .access import authorize, visible_departments, within_scope
from .constraints import violated_constraint
from .pagination import Page, paginate
from .versioning import commit_edit


def _not_found() -> NotFound:
    return NotFound("department.not_found", "No such department.")


def _code_taken() -> Conflict:
    return Conflict("department.code_taken", "This department code is already taken.",
                    errors={"code": ["Already taken."]})


def list_departments(actor: Actor, args: dict) -> Page:
    """Departments of regions in the actor's scope, and a handler's own department."""
    stmt = select(Department).join(Region, Region.id == Department.region_id).where(visible_departments(actor))
    if "region_id" in args:
        subtree = select(Region.path).where(Region.id == args["region_id"]).scalar_subquery()
        stmt = stmt.where(Region.path.startswith(subtree))
    if not args["include_retired"]:
        stmt = stmt.where(Department.retired_at.is_(None))
    return paginate(stmt.order_by(Department.code), args["page"], args["page_size"])


def get_department(actor: Actor, department_id: int) -> Department:
    """One department the actor may see (else 404 department.not_found)."""
    department = db.session.get(Department, department_id)
    authorize(actor, DEPARTMENT_READ, department, not_found=_not_found())
    return department


def create_department(actor: Actor, data: dict) -> Department:
    """Create a department in a live region of the actor's scope (managers only).

    Errors: department.invalid_region, auth.forbidden, department.code_taken.
    """
    invalid_region = InvalidInput("department.invalid_region", "The region does not exist or is outside your scope.",
                                  errors={"region_id": ["Unknown region or outside your scope."]})
    region = db.session.scalars(
        select(Region).where(Region.id == data["region_id"], Region.retired_at.is_(None),
                             within_scope(actor, Region.path))
    ).one_or_none()
    authorize(actor, DEPARTMENT_MANAGE, region, not_found=invalid_region)
    if db.session.scalar(select(exists().where(Department.code == data["code"]))):
        raise _code_taken()
    department = Department(code=data["code"], name=data["name"], name_en=data.get("name_en"), kind=data.get("kind"),
                            region=region)
    db.session.add(department)
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        if violated_constraint(exc) == "uq_departments_code":
            raise _code_taken() from None
        raise
    return department


def update_department(actor: Actor, department_id: int, data: dict) -> Department:
    """Rename a department or change its kind. Errors: department.not_found, auth.forbidden, department.version_conflict."""
    department = db.session.get(Department, department_id)
    authorize(actor, DEPARTMENT_MANAGE, department, not_found=_not_found())
    commit_edit(department, data, ("name", "name_en", "kind"), Conflict(
        "department.version_conflict", "The department was changed by someone else; reload it and try again."))
    return department


def retire_department(actor: Actor, department_id: int) -> Department:
    """Retire a department: it takes no new handlers or cases; it is never deleted.

    Retiring twice keeps the first date. Errors: department.not_found, auth.forbidden.
    """
    department = db.session.get(Department, department_id)
    authorize(actor, DEPARTMENT_MANAGE, department, not_found=_not_found())
    if department.retired_at is None:
        department.retired_at = utcnow()
    db.session.commit()
    return department
