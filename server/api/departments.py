"""Functional departments (职能部门)."""

from schemas.departments import (DepartmentCreateSchema, DepartmentPageSchema, DepartmentPatchSchema,
                                 DepartmentQueryArgsSchema, DepartmentSchema)
from server.auth import login_required
from server.services import departments

from .common import Blueprint, errors

blp = Blueprint("departments", __name__, url_prefix="/departments", description="Functional departments")

DEPARTMENT = "/<id:department_id>"


@blp.get("")
@login_required
@blp.arguments(DepartmentQueryArgsSchema, location="query")
@blp.response(200, DepartmentPageSchema)
@errors(blp, 401, 422)
def list_departments(actor, args):
    """List the departments in your scope"""
    return departments.list_departments(actor, args)


@blp.post("")
@login_required
@blp.arguments(DepartmentCreateSchema)
@blp.response(201, DepartmentSchema)
@errors(blp, 401, 403, 409, 422)
def create_department(actor, data):
    """Create a department in a region of your scope"""
    return departments.create_department(actor, data)


@blp.get(DEPARTMENT)
@login_required
@blp.response(200, DepartmentSchema)
@errors(blp, 401, 404)
def get_department(actor, department_id):
    """Show a department"""
    return departments.get_department(actor, department_id)


@blp.patch(DEPARTMENT)
@login_required
@blp.arguments(DepartmentPatchSchema)
@blp.response(200, DepartmentSchema)
@errors(blp, 401, 403, 404, 409, 422)
def update_department(actor, data, department_id):
    """Rename a department"""
    return departments.update_department(actor, department_id, data)


@blp.post(DEPARTMENT + "/retire")
@login_required
@blp.response(200, DepartmentSchema)
@errors(blp, 401, 403, 404)
def retire_department(actor, department_id):
    """Retire a department (it is never deleted)"""
    return departments.retire_department(actor, department_id)
