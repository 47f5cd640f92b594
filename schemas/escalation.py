"""A region's escalation policy overrides (升级策略) and the policy in effect there."""
from marshmallow import Schema, fields, validate

from .categories import CODE, PolicySchema
from .regions import RegionRefSchema


class OverrideSchema(Schema):
    id = fields.Integer()
    region = fields.Nested(RegionRefSchema)
    category = fields.Function(lambda o: o.category.code if o.category else None,
                               metadata={"type": "string", "nullable": True,
                                         "description": "The category it applies to; null: every category"})
    policy = fields.Nested(PolicySchema, metadata={"description": "Only what it changes"})
    updated_at = fields.DateTime()


class OverrideSetSchema(Schema):
    category = fields.String(load_default=None, allow_none=True, validate=CODE,
                             metadata={"description": "A leaf category's code; null or absent: every category"})
    policy = fields.Nested(PolicySchema, required=True, metadata={"description": "What to change (partial)"})


class CategoryArgSchema(Schema):
    category = fields.String(load_default=None, validate=[CODE, validate.Length(max=32)],
                             metadata={"description": "A leaf category's code; absent: the all-categories one"})


class RequiredCategoryArgSchema(Schema):
    category = fields.String(required=True, validate=CODE)


class EffectivePolicySchema(Schema):
    policy = fields.Nested(PolicySchema)
