"""The staff side of the citizens' channel (docs/OPEN311.md): Open311 client keys
(administrators) and the queue of requests that came with an address only (the city's
command centre places them on the map or dismisses them)."""
from schemas.common import PageQueryArgsSchema
from schemas.open311 import (
    ClientCreateSchema, ClientListItemSchema, ClientSchema, DismissSchema, IssuedClientSchema, UnlocatedPlaceSchema,
    UnlocatedPageSchema, UnlocatedSchema,
)
from server.auth import login_required
from server.services import open311_clients, open311_intake

from .common import Blueprint, errors

blp = Blueprint("open311_staff", __name__, url_prefix="/open311",
                description="Open311 client keys and citizens' requests waiting to be placed (市民上报)")


@blp.post("/clients")
@login_required
@blp.arguments(ClientCreateSchema)
@blp.response(201, IssuedClientSchema)
@errors(blp, 401, 403, 422)
def issue_client(actor, data):
    """Issue a key to a client app (administrators; the key is shown in this answer only)"""
    return open311_clients.issue(actor, data)


@blp.get("/clients")
@login_required
@blp.response(200, ClientListItemSchema(many=True))
@errors(blp, 401, 403)
def list_clients(actor):
    """List the client apps and their use in the last hour (administrators)"""
    return open311_clients.list_clients(actor)


@blp.delete("/clients/<id:client_id>")
@login_required
@blp.response(200, ClientSchema)
@errors(blp, 401, 403, 404)
def revoke_client(actor, client_id):
    """Revoke a client's key: its posts are refused (403) from now on (administrators)"""
    return open311_clients.revoke(actor, client_id)


@blp.get("/unlocated")
@login_required
@blp.arguments(PageQueryArgsSchema, location="query")
@blp.response(200, UnlocatedPageSchema)
@errors(blp, 401, 403, 422)
def list_unlocated(actor, args):
    """Citizens' requests sent with an address only, oldest first (the city's command centre)"""
    return open311_intake.list_unlocated(actor, args["page"], args["page_size"])


@blp.post("/unlocated/<id:request_id>/place")
@login_required
@blp.arguments(UnlocatedPlaceSchema)
@blp.response(201, UnlocatedSchema)
@errors(blp, 401, 403, 404, 409, 422)
def place(actor, data, request_id):
    """Place a request on the map: its case is opened in the grid cell there"""
    return open311_intake.place(actor, request_id, data)


@blp.post("/unlocated/<id:request_id>/dismiss")
@login_required
@blp.arguments(DismissSchema)
@blp.response(200, UnlocatedSchema)
@errors(blp, 401, 403, 404, 409, 422)
def dismiss(actor, data, request_id):
    """Set aside a request that cannot be placed (its contact is deleted)"""
    return open311_intake.dismiss(actor, request_id, data["reason"])
