"""Escalation policy overrides of a region (升级策略) and the policy in effect there."""
from schemas.escalation import (
    CategoryArgSchema,
    EffectivePolicySchema,
    OverrideSchema,
    OverrideSetSchema,
    RequiredCategoryArgSchema,
)
from server.auth import login_required
from server.services import escalation_overrides as service

from .common import Blueprint, errors

blp = Blueprint("escalation", __name__, url_prefix="/regions",
                description="Deadlines by region: escalation policy overrides")

OVERRIDES = "/<id:region_id>/escalation-overrides"


@blp.get(OVERRIDES)
@login_required
@blp.response(200, OverrideSchema(many=True))
@errors(blp, 401, 404)
def list_overrides(actor, region_id):
    """The overrides that apply in a region: its own and those above it, from the city down"""
    return service.overrides_applying(actor, region_id)


@blp.put(OVERRIDES)
@login_required
@blp.arguments(OverrideSetSchema)
@blp.response(200, OverrideSchema)
@errors(blp, 401, 403, 404, 422)
def set_override(actor, data, region_id):
    """Set the region's override for one category or all (managers, inside their scope)"""
    return service.set_override(actor, region_id, data["category"], data["policy"])


@blp.delete(OVERRIDES)
@login_required
@blp.arguments(CategoryArgSchema, location="query")
@blp.response(204)
@errors(blp, 401, 403, 404, 422)
def clear_override(actor, args, region_id):
    """Drop the region's override for a category (or, without ?category, the all-categories one)"""
    service.clear_override(actor, region_id, args["category"])


@blp.get("/<id:region_id>/escalation-policy")
@login_required
@blp.arguments(RequiredCategoryArgSchema, location="query")
@blp.response(200, EffectivePolicySchema)
@errors(blp, 401, 404, 422)
def effective_policy(actor, args, region_id):
    """The policy a case of a category gets in a region's cells, overrides applied"""
    return {"policy": service.effective_policy_at(actor, region_id, args["category"])}
