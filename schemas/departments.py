"""Functional departments (职能部门)."""
from marshmallow import Schema, fields, validate

from schemas.common import MAX_ID, Id, PageQueryArgsSchema, QueryId, page_of
from schemas.regions import RegionRefSchema
from schemas.users import Trimmed
from server.domain.people import DEPARTMENT_KINDS

CODE_PATTERN = r"^[A-Za-z0-9_.-]+$"


class DepartmentSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    name_en = fields.String(dump_only=True, allow_none=True)
    kind = fields.String(dump_only=True, allow_none=True, metadata={"enum": list(DEPARTMENT_KINDS)})
    region = fields.Nested(RegionRefSchema, dump_only=True)
    retired_at = fields.DateTime(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


DepartmentPageSchema = page_of(DepartmentSchema, "DepartmentPage")


class DepartmentCreateSchema(Schema):
    code = fields.String(required=True, validate=[validate.Length(min=1, max=32), validate.Regexp(CODE_PATTERN)])
    name = Trimmed(required=True, validate=validate.Length(max=200))
    name_en = Trimmed(allow_none=True, load_default=None, validate=validate.Length(max=200))
    region_id = Id(required=True)
    kind = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(DEPARTMENT_KINDS),
                         metadata={"description": "What the department does; categories name the kind that takes them"})


class DepartmentPatchSchema(Schema):
    name = Trimmed(validate=validate.Length(max=200))
    name_en = Trimmed(allow_none=True, validate=validate.Length(max=200))
    kind = fields.String(allow_none=True, validate=validate.OneOf(DEPARTMENT_KINDS),
                         metadata={"description": "What the department does; categories name the kind that takes them"})
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "The version you read; a stale one gives 409"})


class DepartmentQueryArgsSchema(PageQueryArgsSchema):
    region_id = QueryId(metadata={"description": "Departments anywhere in this region's subtree"})
    include_retired = fields.Boolean(load_default=False)
