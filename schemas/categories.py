"""Incident categories (事件/部件分类).

The schemas check shapes and closed vocabularies; value rules (attribute definitions
that fit together, policy limits and coverage) are the domain's, so they answer with
their own codes: 422 ``category.invalid_attributes`` / ``category.invalid_policy``.
"""
import math

from marshmallow import Schema, fields, validate

from schemas.common import MAX_ID, Id, PageQueryArgsSchema, QueryId, page_of
from schemas.users import Trimmed
from server.domain.categories import (
    ATTRIBUTE_DATATYPES, CATEGORY_CODE, DEFAULT_MAX_LENGTH, KIND_LABELS, KINDS, TIME_BASES, effective_policy,
)
from server.domain.incidents import PRIORITIES, PRIORITY_LABELS
from server.domain.people import DEPARTMENT_KIND_LABELS, DEPARTMENT_KINDS
from server.domain.territory import LEVEL_LABELS, LEVELS

CODE = validate.Regexp(CATEGORY_CODE.pattern + r"\Z", error="1-32 letters, digits, '_', '.' or '-'.")


def _label(labels: dict, value: str | None) -> dict | None:
    if value is None:
        return None
    zh, en = labels[value]
    return {"zh": zh, "en": en}


def _label_field(labels: dict, attribute: str) -> fields.Function:
    return fields.Function(lambda c: _label(labels, getattr(c, attribute)), dump_only=True,
                           metadata={"type": "object", "nullable": True, "description": '{"zh": …, "en": …}'})


class JsonNumber(fields.Float):
    """A JSON number kept as sent (an integer stays an integer); no strings, no booleans."""

    def _format_num(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("not a number")
        if not math.isfinite(value):
            raise ValueError("not finite")
        return value


class CategoryRefSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    name_en = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)


class AttributeValueSchema(Schema):
    key = fields.String(required=True, metadata={"description": "Stable key: 1-40 lower-case letters, digits, '_'"})
    name = Trimmed(required=True, validate=validate.Length(max=100))
    name_en = Trimmed(required=True, validate=validate.Length(max=100))


class AttributeDefinitionSchema(Schema):
    """One typed extra field of a report (an Open311 GeoReport v2 attribute)."""

    code = fields.String(required=True, metadata={
        "description": "A lower-case letter, then up to 39 lower-case letters, digits or '_'"})
    datatype = fields.String(required=True, validate=validate.OneOf(ATTRIBUTE_DATATYPES))
    required = fields.Boolean(metadata={"description": "Default false"})
    label = Trimmed(required=True, validate=validate.Length(max=100), metadata={"description": "Chinese label"})
    label_en = Trimmed(required=True, validate=validate.Length(max=100))
    description = Trimmed(allow_none=True, validate=validate.Length(max=500))
    order = fields.Integer(strict=True, metadata={"description": "Display order; default: the position, from 1"})
    values = fields.List(fields.Nested(AttributeValueSchema), metadata={
        "description": "Required (non-empty) for singlevaluelist and multivaluelist, forbidden otherwise"})
    min = JsonNumber(metadata={"description": "number only"})
    max = JsonNumber(metadata={"description": "number only"})
    max_length = fields.Integer(strict=True, metadata={
        "description": f"string and text only; default {DEFAULT_MAX_LENGTH['string']} / {DEFAULT_MAX_LENGTH['text']}"})

    def get_attribute(self, obj, attr, default):
        # definitions are dicts: an absent "values" must not fall back to dict.values
        return obj.get(attr, default)


class StageSchema(Schema):
    ack_minutes = fields.Integer(required=True, strict=True, metadata={"description": "Acknowledge within (> 0)"})
    resolve_minutes = fields.Integer(required=True, strict=True, metadata={
        "description": "Resolve within (> ack_minutes)"})


class PolicySchema(Schema):
    """Escalation policy (升级策略). Omitted keys take the defaults; ``levels``, when given,
    must cover every level from the start level up to ``top_level``."""

    time_basis = fields.String(validate=validate.OneOf(TIME_BASES), metadata={
        "description": "natural: wall-clock minutes; working: minutes of working time (a working day is 480)"})
    yellow_ratio = JsonNumber(metadata={
        "description": "Share of the time used that turns the light yellow (0 < r < 1)"})
    top_level = fields.String(validate=validate.OneOf(LEVELS), metadata={
        "description": "Overdue cases escalate up to this level, then are flagged for supervision (督办)"})
    department_from = fields.String(allow_none=True, validate=validate.OneOf(LEVELS), metadata={
        "description": "From this level up, an escalated case is also dispatched at once to the department of the "
                       "category's kind serving that level (null: its supervisors dispatch it)"})
    auto_dispatch = fields.Boolean(truthy={True}, falsy={False}, metadata={
        "description": "A case accepted (立案) at grid level goes at once to the cell's available grid worker: "
                       "the primary, else the least loaded backup (none available: its supervisors are told)"})
    levels = fields.Dict(keys=fields.String(validate=validate.OneOf(LEVELS)), values=fields.Nested(StageSchema),
                         metadata={"description": "Per level: ack_minutes and resolve_minutes"})


class EffectivePolicy(fields.Nested):
    """The stored (partial) policy dumped with the defaults filled in."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(effective_policy(value), attr, obj, **kwargs)


class CategorySchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    parent = fields.Nested(CategoryRefSchema, dump_only=True, allow_none=True,
                           metadata={"description": "The group of a leaf; null for a group"})
    name = fields.String(dump_only=True)
    name_en = fields.String(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"enum": list(KINDS)})
    kind_label = _label_field(KIND_LABELS, "kind")
    default_priority = fields.String(dump_only=True, metadata={"enum": list(PRIORITIES)})
    priority_label = _label_field(PRIORITY_LABELS, "default_priority")
    start_level = fields.String(dump_only=True, metadata={"enum": list(LEVELS)})
    start_level_label = _label_field(LEVEL_LABELS, "start_level")
    department_kind = fields.String(dump_only=True, allow_none=True, metadata={"enum": list(DEPARTMENT_KINDS)})
    department_kind_label = _label_field(DEPARTMENT_KIND_LABELS, "department_kind")
    requires_after_photo = fields.Boolean(dump_only=True)
    public = fields.Boolean(dump_only=True, metadata={"description": "Offered to citizens through Open311"})
    keywords = fields.List(fields.String(), dump_only=True)
    description = fields.String(dump_only=True, allow_none=True)
    attributes = fields.List(fields.Nested(AttributeDefinitionSchema), dump_only=True)
    policy = EffectivePolicy(PolicySchema, dump_only=True, metadata={"description": "The effective policy"})
    sort_order = fields.Integer(dump_only=True)
    is_leaf = fields.Boolean(dump_only=True, metadata={"description": "Incidents take leaves only"})
    retired_at = fields.DateTime(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True, metadata={"description": "Send it back in PATCH (optimistic concurrency)"})
    updated_at = fields.DateTime(dump_only=True)


CategoryPageSchema = page_of(CategorySchema, "CategoryPage")


class CategoryCreateSchema(Schema):
    code = fields.String(required=True, validate=CODE, metadata={"description": "Unique; never changes"})
    parent_id = Id(allow_none=True, load_default=None, metadata={
        "description": "The group of a new leaf; none for a new group. Never changes"})
    name = Trimmed(required=True, validate=validate.Length(max=100), metadata={"description": "Chinese name"})
    name_en = Trimmed(required=True, validate=validate.Length(max=100))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    default_priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    start_level = fields.String(load_default="grid", validate=validate.OneOf(LEVELS), metadata={
        "description": "The level a new incident of this category starts at"})
    department_kind = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(DEPARTMENT_KINDS),
                                    metadata={"description": "The kind of department that usually takes it"})
    requires_after_photo = fields.Boolean(load_default=False, metadata={
        "description": "Resolving needs an after photo (处置后照片)"})
    public = fields.Boolean(load_default=True, metadata={"description": "Offered to citizens through Open311"})
    keywords = fields.List(Trimmed(validate=validate.Length(max=50)), load_default=list,
                           validate=validate.Length(max=30))
    description = Trimmed(allow_none=True, load_default=None, validate=validate.Length(max=2000))
    attributes = fields.List(fields.Nested(AttributeDefinitionSchema), load_default=list)
    policy = fields.Nested(PolicySchema, load_default=dict, metadata={
        "description": "Only what differs from the default policy; {} for the default"})
    sort_order = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=1_000_000))


class CategoryPatchSchema(Schema):
    """Code and parent never change. ``attributes`` and ``policy`` are replaced whole."""

    name = Trimmed(validate=validate.Length(max=100))
    name_en = Trimmed(validate=validate.Length(max=100))
    kind = fields.String(validate=validate.OneOf(KINDS))
    default_priority = fields.String(validate=validate.OneOf(PRIORITIES))
    start_level = fields.String(validate=validate.OneOf(LEVELS))
    department_kind = fields.String(allow_none=True, validate=validate.OneOf(DEPARTMENT_KINDS))
    requires_after_photo = fields.Boolean()
    public = fields.Boolean()
    keywords = fields.List(Trimmed(validate=validate.Length(max=50)), validate=validate.Length(max=30))
    description = Trimmed(allow_none=True, validate=validate.Length(max=2000))
    attributes = fields.List(fields.Nested(AttributeDefinitionSchema))
    policy = fields.Nested(PolicySchema, metadata={"description": "{} for the default policy"})
    sort_order = fields.Integer(strict=True, validate=validate.Range(min=0, max=1_000_000))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "The version you read; a stale one gives 409"})


class CategoryQueryArgsSchema(PageQueryArgsSchema):
    parent_id = QueryId(metadata={"description": "The leaves of this group"})
    kind = fields.String(validate=validate.OneOf(KINDS))
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "Code, name, English name or a keyword contains"})
    leaves_only = fields.Boolean(load_default=False, metadata={"description": "Only leaves (what incidents take)"})
    public = fields.Boolean(metadata={"description": "Only public (true) or only internal (false) categories"})
    include_retired = fields.Boolean(load_default=False)
