"""The signed-in user: profile, password, phones, tasks, inbox and quiet hours."""

from schemas.campaigns import MyCampaignTaskPageSchema
from schemas.common import PageQueryArgsSchema
from schemas.devices import DeviceCreateSchema, DeviceSchema, DeviceTokenSchema
from schemas.duty import DutySchema, DutySetSchema
from schemas.incidents import MyTaskPageSchema
from schemas.notifications import (
    NotificationPageSchema,
    NotificationQueryArgsSchema,
    NotificationSchema,
    QuietHoursSchema,
    ReadCountSchema,
    ReadUpToSchema,
)
from schemas.users import MeSchema, PasswordChangeSchema
from server.auth import client_ip, current_session_id, login_required
from server.services import campaigns, devices, duty, inbox, incident_queries, users

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


@blp.get("/duty")
@login_required
@blp.response(200, DutySchema)
@errors(blp, 401)
def my_duty(actor):
    """Show whether you are on duty (上岗) and on leave"""
    return duty.my_duty(actor)


@blp.post("/duty")
@login_required
@blp.arguments(DutySetSchema)
@blp.response(200, DutySchema)
@errors(blp, 401, 403, 422)
def set_my_duty(actor, data):
    """Go on or off duty (grid workers; off duty, you are given no new work)"""
    return duty.set_my_duty(actor, data["on_duty"])


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


@blp.get("/notifications")
@login_required
@blp.arguments(NotificationQueryArgsSchema, location="query")
@blp.response(200, NotificationPageSchema)
@errors(blp, 401, 422)
def my_notifications(actor, args):
    """List what I was told (the inbox), newest first, with my unread count"""
    return inbox.list_notifications(actor, args["page"], args["page_size"], unread=args["unread"])


@blp.post("/notifications/<id:notification_id>/read")
@login_required
@blp.response(200, NotificationSchema)
@errors(blp, 401, 404)
def read_notification(actor, notification_id):
    """Mark one notification read"""
    return inbox.mark_read(actor, notification_id)


@blp.post("/notifications/read")
@login_required
@blp.arguments(ReadUpToSchema)
@blp.response(200, ReadCountSchema)
@errors(blp, 401, 422)
def read_notifications(actor, data):
    """Mark every notification up to an id read (what the phone has shown)"""
    return {"marked": inbox.mark_all_read(actor, data["up_to_id"])}


@blp.get("/quiet-hours")
@login_required
@blp.response(200, QuietHoursSchema)
@errors(blp, 401)
def my_quiet_hours(actor):
    """Show my quiet hours"""
    return inbox.quiet_hours(actor)


@blp.put("/quiet-hours")
@login_required
@blp.arguments(QuietHoursSchema)
@blp.response(200, QuietHoursSchema)
@errors(blp, 401, 422)
def set_my_quiet_hours(actor, data):
    """Set my quiet hours (local time; null and null clears them): reminders that are not
    urgent wait till they end; tasks and escalations never do"""
    return inbox.set_quiet_hours(actor, data["quiet_from"], data["quiet_to"])


@blp.get("/campaign-tasks")
@login_required
@blp.arguments(PageQueryArgsSchema, location="query")
@blp.response(200, MyCampaignTaskPageSchema)
@errors(blp, 401, 422)
def my_campaign_tasks(actor, args):
    """Your inspection campaign tasks still to answer (open or overdue), soonest deadline first"""
    return campaigns.my_tasks(actor, args["page"], args["page_size"])
