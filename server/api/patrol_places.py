"""Places to check in at on patrol (打卡点, docs/FIELD.md)."""
from schemas.patrols import PlaceCreateSchema, PlaceQueryArgsSchema, PlaceSchema
from server.auth import login_required
from server.services import patrol_places as service
from server.services.regions import get_region

from .common import Blueprint, errors

blp = Blueprint("patrol_places", __name__, url_prefix="/patrol-places",
                description="Places to check in at on patrol (打卡点)")


@blp.get("")
@login_required
@blp.arguments(PlaceQueryArgsSchema, location="query")
@blp.response(200, PlaceSchema(many=True))
@errors(blp, 401, 404, 422)
def list_places(actor, args):
    """List the places in your area (under a region, if given)"""
    path = get_region(actor, args["region_id"]).path if args["region_id"] else None
    return service.list_places(actor, path)


@blp.post("")
@login_required
@blp.arguments(PlaceCreateSchema)
@blp.response(201, PlaceSchema)
@errors(blp, 401, 403, 422)
def create_place(actor, data):
    """Set a place to check in at (managers; it belongs to the grid cell its point lies in)"""
    return service.create_place(actor, data)


@blp.delete("/<id:place_id>")
@login_required
@blp.response(204)
@errors(blp, 401, 403, 404)
def retire_place(actor, place_id):
    """Retire a place (its check-ins stay)"""
    service.retire_place(actor, place_id)
