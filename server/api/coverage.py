"""Patrol coverage (巡查覆盖) of a region's grid cells by day (docs/FIELD.md "Coverage")."""
from schemas.coverage import CoverageArgsSchema, RegionCoverageSchema, coverage_feature_collection
from server.auth import login_required
from server.services import coverage as service

from .common import GEOJSON, Blueprint, errors, geojson_response

blp = Blueprint("coverage", __name__, url_prefix="/regions",
                description="Patrol coverage (巡查覆盖) of the grid cells by day")


@blp.get("/<id:region_id>/patrol-coverage")
@login_required
@blp.arguments(CoverageArgsSchema, location="query")
@blp.response(200, RegionCoverageSchema)
@errors(blp, 401, 403, 404, 422)
def region_coverage(actor, args, region_id):
    """Each grid cell's patrol coverage on a day: share within 30 m of the kept tracks, minutes,
    metres, workers (managers, inside their scope)"""
    return service.region_coverage(actor, region_id, args["day"])


@blp.get("/<id:region_id>/patrol-coverage.geojson")
@login_required
@blp.arguments(CoverageArgsSchema, location="query")
@blp.response(200, content_type=GEOJSON, description="A FeatureCollection: each cell with its figures")
@errors(blp, 401, 403, 404, 422)
def region_coverage_geojson(actor, args, region_id):
    """The map of a day's patrol coverage: each grid cell's polygon with its share (managers,
    inside their scope)"""
    return geojson_response(coverage_feature_collection(
        service.region_coverage(actor, region_id, args["day"], with_geometry=True)))
