"""Incident categories (事件/部件分类): a two-level taxonomy with attributes and escalation policies."""

from schemas.categories import (CategoryCreateSchema, CategoryPageSchema, CategoryPatchSchema, CategoryQueryArgsSchema,
                                CategorySchema)
from server.auth import login_required
from server.services import categories as service

from .common import Blueprint, errors

blp = Blueprint("categories", __name__, url_prefix="/categories",
                description="Incident categories: groups and leaves, attributes, escalation policies")

CATEGORY = "/<id:category_id>"


@blp.get("")
@login_required
@blp.arguments(CategoryQueryArgsSchema, location="query")
@blp.response(200, CategoryPageSchema)
@errors(blp, 401, 422)
def list_categories(actor, args):
    """List the categories, each group followed by its leaves"""
    page, page_size = args.pop("page"), args.pop("page_size")
    return service.list_categories(actor, service.CategoryFilter(**args), page, page_size)


@blp.post("")
@login_required
@blp.arguments(CategoryCreateSchema)
@blp.response(201, CategorySchema)
@errors(blp, 401, 403, 409, 422)
def create_category(actor, data):
    """Create a group, or a leaf under a group"""
    return service.create_category(actor, data)


@blp.get(CATEGORY)
@login_required
@blp.response(200, CategorySchema)
@errors(blp, 401, 404)
def get_category(actor, category_id):
    """Show a category"""
    return service.get_category(actor, category_id)


@blp.patch(CATEGORY)
@login_required
@blp.arguments(CategoryPatchSchema)
@blp.response(200, CategorySchema)
@errors(blp, 401, 403, 404, 409, 422)
def update_category(actor, data, category_id):
    """Change a category (code and parent never change)"""
    return service.update_category(actor, category_id, data)


@blp.post(CATEGORY + "/retire")
@login_required
@blp.response(200, CategorySchema)
@errors(blp, 401, 403, 404)
def retire_category(actor, category_id):
    """Retire a category, and a group's leaves with it (never deleted)"""
    return service.retire_category(actor, category_id)
