"""The signed-in user: profile, password and phones."""

from schemas.common import PageQueryArgsSchema
from schemas.devices import DeviceCreateSchema, DeviceSchema, DeviceTokenSchema
from schemas.incidents import MyTaskPageSchema
from schemas.users import MeSchema, PasswordChangeSchema
from server.auth import client_ip, current_session_id, login_required
from server.services import devices, incident_queries, users

from .common import Blueprint, errors

blp = Blueprint("me", __name__, url_prefix="/me", description="The signed-in user")


@blp.get("")
@login_required
@blp.response(200, MeSchema)
@errors(blp, 401)
def me(actor):
    """Show the signed-in user with scope, department and grid cells"""
    return users.my_profile(actor)


@blp.post("/password")
@login_required
@blp.arguments(PasswordChangeSchema)
@blp.response(204)
@errors(blp, 401, 403, 422, 429)
def change_password(actor, data):
    """Change your password and sign out your other sessions"""
    users.change_my_password(actor, data, session_id=current_session_id(), client_ip=client_ip())


@blp.get("/devices")
@login_required
@blp.response(200, DeviceSchema(many=True))
@errors(blp, 401)
def list_devices(actor):
    """List your phones registered for push notifications"""
    return devices.list_devices(actor)


@blp.post("/devices")
@login_required
@blp.arguments(DeviceCreateSchema)
@blp.response(201, DeviceSchema, description="Registered for the first time (or taken over from another user)")
@blp.alt_response(200, schema=DeviceSchema, description="Already registered: last seen and app version updated")
@errors(blp, 401, 422)
def register_device(actor, data):
    """Register this phone's push token (idempotent)"""
    device, created = devices.register_device(actor, data)
    return device, 201 if created else 200


@blp.delete("/devices")
@login_required
@blp.arguments(DeviceTokenSchema)
@blp.response(204)
@errors(blp, 401, 404, 422)
def remove_device_by_token(actor, data):
    """Forget this phone, named by its push token"""
    devices.remove_device(actor, token=data["token"])


@blp.delete("/devices/<id:device_id>")
@login_required
@blp.response(204)
@errors(blp, 401, 404)
def remove_device(actor, device_id):
    """Forget one of your phones"""
    devices.remove_device(actor, device_id)


@blp.get("/tasks")
@login_required
@blp.arguments(PageQueryArgsSchema, location="query")
@blp.response(200, MyTaskPageSchema)
@errors(blp, 401, 422)
def my_tasks(actor, args):
    """List my open tasks, most urgent first."""
    return incident_queries.my_tasks(actor, args["page"], args["page_size"])
