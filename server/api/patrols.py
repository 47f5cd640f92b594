"""Patrols (巡查): a grid worker's shifts and their GPS tracks (docs/FIELD.md)."""
from schemas.patrols import (CheckinCreateSchema, CheckinSchema, GpsBatchResultSchema, GpsBatchSchema, PatrolEndSchema,
                             PatrolPageSchema, PatrolQueryArgsSchema, PatrolSchema, PatrolStartSchema)
from server.auth import login_required
from server.services import patrol_places as places
from server.services import patrols as service

from .common import Blueprint, errors

blp = Blueprint("patrols", __name__, url_prefix="/patrols", description="Patrols (巡查) and their GPS tracks")


@blp.get("")
@login_required
@blp.arguments(PatrolQueryArgsSchema, location="query")
@blp.response(200, PatrolPageSchema)
@errors(blp, 401, 422)
def list_patrols(actor, args):
    """List patrols: your own, or (managers) those of the workers of your area; newest first"""
    page, page_size = args.pop("page"), args.pop("page_size")
    return service.list_patrols(actor, args, page, page_size)


@blp.post("")
@login_required
@blp.arguments(PatrolStartSchema)
@blp.response(201, PatrolSchema, description="Started (200: the same client_uuid again, the same patrol)")
@errors(blp, 401, 403, 409, 422)
def start_patrol(actor, data):
    """Start your patrol (grid workers)"""
    patrol, created = service.start_patrol(actor, data)
    return service.get_patrol(actor, patrol.id), 201 if created else 200


@blp.post("/<id:patrol_id>/end")
@login_required
@blp.arguments(PatrolEndSchema)
@blp.response(200, PatrolSchema)
@errors(blp, 401, 403, 404, 422)
def end_patrol(actor, data, patrol_id):
    """End your patrol (again: the same answer)"""
    service.end_patrol(actor, patrol_id, data["ended_at"])
    return service.get_patrol(actor, patrol_id)


@blp.post("/<id:patrol_id>/points")
@login_required
@blp.arguments(GpsBatchSchema)
@blp.response(200, GpsBatchResultSchema)
@errors(blp, 401, 403, 404, 409, 422)
def add_points(actor, data, patrol_id):
    """Upload a batch of your patrol's GPS points (any order; repeats and late batches are safe)"""
    return service.add_points(actor, patrol_id, data["points"])


@blp.get("/<id:patrol_id>")
@login_required
@blp.response(200, PatrolSchema)
@errors(blp, 401, 404)
def get_patrol(actor, patrol_id):
    """A patrol with its track (the worker, and managers of the worker's area)"""
    return service.get_patrol(actor, patrol_id)


@blp.post("/<id:patrol_id>/checkins")
@login_required
@blp.arguments(CheckinCreateSchema)
@blp.response(201, CheckinSchema, description="Checked in (200: the same client_uuid again)")
@errors(blp, 401, 403, 404, 409, 422)
def check_in(actor, data, patrol_id):
    """Check in (打卡) at a place on your patrol: within its radius, given the fix's accuracy"""
    checkin, created = places.check_in(actor, patrol_id, data)
    (answer,) = [c for c in service.checkins_of(patrol_id) if c["id"] == checkin.id]
    return answer, 201 if created else 200
