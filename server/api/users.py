"""Users (人员) and their grid cells (AB岗)."""

from schemas.duty import LeaveCreateSchema, LeaveQueryArgsSchema, LeaveSchema
from schemas.users import (AssignmentPutSchema, AssignmentSchema, UserCreateSchema, UserPageSchema,
                           UserPatchSchema, UserQueryArgsSchema, UserSchema)
from server.auth import login_required
from server.services import duty, users

from .common import Blueprint, errors

blp = Blueprint("users", __name__, url_prefix="/users", description="Users, roles and grid assignments")

USER = "/<id:user_id>"
CELL = "/<id:region_id>"


@blp.get("")
@login_required
@blp.arguments(UserQueryArgsSchema, location="query")
@blp.response(200, UserPageSchema)
@errors(blp, 401, 422)
def list_users(actor, args):
    """List the users in your scope"""
    return users.list_users(actor, args)


@blp.post("")
@login_required
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
@errors(blp, 401, 403, 409, 422)
def create_user(actor, data):
    """Create a user in your scope"""
    return users.create_user(actor, data)


@blp.get(USER)
@login_required
@blp.response(200, UserSchema)
@errors(blp, 401, 404)
def get_user(actor, user_id):
    """Show a user"""
    return users.get_user(actor, user_id)


@blp.patch(USER)
@login_required
@blp.arguments(UserPatchSchema)
@blp.response(200, UserSchema)
@errors(blp, 401, 403, 404, 409, 422)
def update_user(actor, data, user_id):
    """Change a user's name, role, scope, activity or password"""
    return users.update_user(actor, user_id, data)


@blp.get(USER + "/cells")
@login_required
@blp.response(200, AssignmentSchema(many=True))
@errors(blp, 401, 404)
def list_cells(actor, user_id):
    """List the grid cells a worker covers"""
    return users.list_cells(actor, user_id)


@blp.put(USER + "/cells" + CELL)
@login_required
@blp.arguments(AssignmentPutSchema)
@blp.response(200, AssignmentSchema)
@errors(blp, 401, 403, 404, 409, 422)
def assign_cell(actor, data, user_id, region_id):
    """Make a worker cover a grid cell as primary or backup"""
    return users.assign_cell(actor, user_id, region_id, data["duty"])


@blp.delete(USER + "/cells" + CELL)
@login_required
@blp.response(204)
@errors(blp, 401, 403, 404)
def unassign_cell(actor, user_id, region_id):
    """Release a worker from a grid cell"""
    users.unassign_cell(actor, user_id, region_id)


@blp.get(USER + "/leaves")
@login_required
@blp.arguments(LeaveQueryArgsSchema, location="query")
@blp.response(200, LeaveSchema(many=True))
@errors(blp, 401, 404, 422)
def list_leaves(actor, args, user_id):
    """List a worker's leave (请假), current and coming"""
    return duty.list_leaves(actor, user_id, include_past=args["include_past"])


@blp.post(USER + "/leaves")
@login_required
@blp.arguments(LeaveCreateSchema)
@blp.response(201, LeaveSchema)
@errors(blp, 401, 403, 404, 409, 422)
def add_leave(actor, data, user_id):
    """Record leave for a grid worker you manage (no new work reaches them in it)"""
    return duty.add_leave(actor, user_id, data)


@blp.delete(USER + "/leaves/<id:leave_id>")
@login_required
@blp.response(204)
@errors(blp, 401, 403, 404)
def cancel_leave(actor, user_id, leave_id):
    """Cancel leave (again: nothing more)"""
    duty.cancel_leave(actor, user_id, leave_id)
