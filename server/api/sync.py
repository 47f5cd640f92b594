"""Sync for offline phones (离线同步): incidents, tasks and categories changed since a cursor."""

from schemas.sync import SyncQueryArgsSchema, SyncSchema
from server.auth import login_required
from server.services import sync as service

from .common import Blueprint, errors

blp = Blueprint("sync", __name__, url_prefix="/sync", description="Sync for offline phones")


@blp.get("")
@login_required
@blp.arguments(SyncQueryArgsSchema, location="query")
@blp.response(200, SyncSchema)
@errors(blp, 400, 401, 422)
def sync(actor, args):
    """Get everything that changed for me since the cursor."""
    return service.sync(actor, args["cursor"], args["limit"])
