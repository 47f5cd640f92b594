"""Inspection campaigns (排查): launched by supervisors, one task per grid cell (docs/FIELD.md)."""
from __future__ import annotations

from flask_smorest.fields import Upload
from marshmallow import Schema

from schemas.campaigns import (
    CampaignCellsSchema, CampaignCreateSchema, CampaignDetailSchema, CampaignPageSchema, CampaignQueryArgsSchema,
    CampaignTaskPageSchema, CampaignTaskQueryArgsSchema, CampaignTaskSchema, NothingFoundFormSchema,
)
from server.auth import login_required
from server.services import campaigns as service

from .common import GEOJSON, Blueprint, accepts, errors, geojson_response, photo_response

blp = Blueprint("campaigns", __name__, url_prefix="/campaigns",
                description="Inspection campaigns (排查): a task per grid cell, answered with findings or "
                            "nothing found")

MULTIPART = "multipart/form-data"


@blp.post("")
@login_required
@blp.arguments(CampaignCreateSchema)
@blp.response(201, CampaignDetailSchema, description="Launched (200: the same client_uuid again, the same campaign)")
@errors(blp, 401, 403, 422)
def launch_campaign(actor, data):
    """Launch an inspection campaign (发起排查) for a region of your area"""
    campaign, created = service.launch_campaign(actor, data)
    return service.get_campaign(actor, campaign.id), 201 if created else 200, {
        "Location": f"/api/v1/campaigns/{campaign.id}"}


@blp.get("")
@login_required
@blp.arguments(CampaignQueryArgsSchema, location="query")
@blp.response(200, CampaignPageSchema)
@errors(blp, 401, 422)
def list_campaigns(actor, args):
    """List the campaigns you can see, newest first"""
    return service.list_campaigns(actor, args["state"], args["page"], args["page_size"])


@blp.get("/<id:campaign_id>")
@login_required
@blp.response(200, CampaignDetailSchema)
@errors(blp, 401, 404)
def get_campaign(actor, campaign_id):
    """A campaign with its progress: tasks by state, share done, overdue, by child region"""
    return service.get_campaign(actor, campaign_id)


@blp.post("/<id:campaign_id>/close")
@login_required
@blp.response(200, CampaignDetailSchema)
@errors(blp, 401, 403, 404)
def close_campaign(actor, campaign_id):
    """Close a campaign (结束排查): the tasks still to do are cancelled (again: no change)"""
    return service.close_campaign(actor, campaign_id)


@blp.get("/<id:campaign_id>/tasks")
@login_required
@blp.arguments(CampaignTaskQueryArgsSchema, location="query")
@blp.response(200, CampaignTaskPageSchema)
@errors(blp, 401, 404, 422)
def list_tasks(actor, args, campaign_id):
    """A campaign's tasks you are shown (a grid worker: your own), by cell"""
    page, page_size = args.pop("page"), args.pop("page_size")
    return service.list_tasks(actor, campaign_id, service.TaskFilter(**args), page, page_size)


@blp.get("/<id:campaign_id>/tasks/<id:task_id>")
@login_required
@blp.response(200, CampaignTaskSchema)
@errors(blp, 401, 404)
def get_task(actor, campaign_id, task_id):
    """One task of a campaign"""
    return service.get_task(actor, campaign_id, task_id)


class _NothingFoundFileSchema(Schema):
    photo = Upload(load_default=None, metadata={"description": "A photo of the inspected cell (required)"})


@blp.post("/<id:campaign_id>/tasks/<id:task_id>/nothing-found")
@login_required
@blp.arguments(NothingFoundFormSchema, location="form")
@blp.arguments(_NothingFoundFileSchema, location="files")
@blp.response(200, CampaignTaskSchema)
@errors(blp, 401, 403, 404, 409, 413, 415, 422)
@accepts(MULTIPART, max_body="PHOTO_REQUEST_MAX_BYTES")
def report_nothing_found(actor, form, files, campaign_id, task_id):
    """Report nothing found in your task's cell (零报告): multipart with a photo and an optional note"""
    photo = files["photo"].read() if files.get("photo") is not None else None
    return service.report_nothing_found(actor, campaign_id, task_id, photo, form["note"])


@blp.get("/<id:campaign_id>/tasks/<id:task_id>/photo")
@login_required
@blp.response(200, content_type="image/jpeg", description="The nothing-found photo")
@errors(blp, 401, 404)
def get_task_photo(actor, campaign_id, task_id):
    """A task's nothing-found photo"""
    return photo_response(service.task_photo(actor, campaign_id, task_id))


@blp.get("/<id:campaign_id>/cells.geojson")
@login_required
@blp.response(200, CampaignCellsSchema, content_type=GEOJSON)
@errors(blp, 401, 404)
def campaign_cells(actor, campaign_id):
    """The campaign's cells you are shown, each with its task's state, label and colour (the map's layer)"""
    return geojson_response(service.cells_geojson(actor, campaign_id))
