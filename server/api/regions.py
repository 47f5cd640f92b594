"""Regions: the territory tree (市 > 区 > 街道 > 社区 > 网格)."""

from schemas.duty import WorkloadSchema
from schemas.regions import (
    CoverageArgsSchema, FeatureCollectionSchema, GridGenerateSchema, GridReportSchema, ImportArgsSchema,
    ImportReportSchema, LocateQueryArgsSchema, LocationSchema, RegionCreateSchema, RegionGetArgsSchema,
    RegionPageSchema, RegionPatchSchema, RegionQueryArgsSchema, RegionSchema, RetireSchema,
    region_feature, region_feature_collection,
)
from server.auth import login_required
from server.services import duty
from server.services import regions as service
from server.services import territory_bulk as bulk

from .common import GEOJSON, Blueprint, accepts, also_as, errors, geojson_response

blp = Blueprint("regions", __name__, url_prefix="/regions", description="The territory tree and its grid cells")


@blp.get("")
@login_required
@blp.arguments(RegionQueryArgsSchema, location="query")
@blp.response(200, RegionPageSchema, description="The page; a GeoJSON FeatureCollection when format=geojson")
@blp.doc(responses=also_as(200, GEOJSON, "FeatureCollection"))
@errors(blp, 401)
def list_regions(actor, args):
    """List the regions you can see."""
    page, page_size, fmt = args.pop("page"), args.pop("page_size"), args.pop("format")
    result = service.list_regions(actor, service.RegionFilter(**args), page, page_size, with_geometry=fmt == "geojson")
    return geojson_response(region_feature_collection(result)) if fmt == "geojson" else result


@blp.post("")
@login_required
@blp.arguments(RegionCreateSchema)
@blp.response(201, RegionSchema)
@errors(blp, 401, 403, 409)
def create_region(actor, data):
    """Create a region under a parent of the level above."""
    return service.create_region(actor, data)


@blp.get("/locate")
@login_required
@blp.arguments(LocateQueryArgsSchema, location="query")
@blp.response(200, LocationSchema)
@errors(blp, 401, 404)
def locate(actor, args):
    """Find the grid cell at a point, and its chain up to the city."""
    return service.locate(actor, args["lon"], args["lat"], args["crs"])


@blp.post("/import")
@login_required
@blp.arguments(ImportArgsSchema, location="query")
@blp.arguments(FeatureCollectionSchema)
@blp.response(200, ImportReportSchema)
@errors(blp, 401, 403, 413, 415)
@accepts("application/json", GEOJSON, max_body="IMPORT_MAX_BYTES")
def import_regions(actor, args, collection):
    """Import a GeoJSON FeatureCollection as one level of the tree."""
    return bulk.import_regions(actor, collection, bulk.ImportOptions(**args))


@blp.get("/<id:region_id>")
@login_required
@blp.arguments(RegionGetArgsSchema, location="query")
@blp.response(200, RegionSchema, description="The region; a GeoJSON Feature when format=geojson")
@blp.doc(responses=also_as(200, GEOJSON, "Feature"))
@errors(blp, 401, 404)
def get_region(actor, args, region_id):
    """Get one region."""
    region = service.get_region(actor, region_id)
    return geojson_response(region_feature(region)) if args["format"] == "geojson" else region


@blp.patch("/<id:region_id>")
@login_required
@blp.arguments(RegionPatchSchema)
@blp.response(200, RegionSchema)
@errors(blp, 401, 403, 404, 409)
def update_region(actor, changes, region_id):
    """Rename or recode a region."""
    return service.update_region(actor, region_id, changes)


@blp.post("/<id:region_id>/retire")
@login_required
@blp.arguments(RetireSchema)
@blp.response(200, RegionSchema)
@errors(blp, 401, 403, 404, 409)
def retire_region(actor, args, region_id):
    """Retire a region (it stays for history)."""
    return service.retire_region(actor, region_id, cascade=args["cascade"])


@blp.post("/<id:region_id>/grids")
@login_required
@blp.arguments(GridGenerateSchema)
@blp.response(200, GridReportSchema)
@errors(blp, 401, 403, 404, 409)
def generate_grids(actor, args, region_id):
    """Generate unit grid cells for a community or every community under a region."""
    return bulk.generate_grids(actor, region_id, bulk.GridOptions(**args))


@blp.get("/<id:region_id>/coverage")
@login_required
@blp.arguments(CoverageArgsSchema, location="query")
@blp.response(200, content_type=GEOJSON, description="GeoJSON report of children outside, overlaps and gaps")
@errors(blp, 401, 404)
def coverage(actor, args, region_id):
    """Check that a region's children cover it exactly."""
    return geojson_response(service.coverage(actor, region_id, args["min_area_m2"]))


@blp.get("/<id:region_id>/workload")
@login_required
@blp.response(200, WorkloadSchema)
@errors(blp, 401, 403, 404)
def workload(actor, region_id):
    """Each grid worker of a region: duty, leave, open and overdue tasks, patrol minutes today"""
    return duty.workload(actor, region_id)
