"""Users (人员), their roles and their grid assignments (AB岗)."""
from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, pre_dump, validate

from schemas.common import MAX_ID, Id, PageQueryArgsSchema, QueryId, page_of
from schemas.regions import RegionRefSchema
from server.domain.people import DUTIES, ROLE_LABELS, ROLES

USERNAME_PATTERN = r"^[\w.@-]+\Z"  # \Z: "$" would also accept a trailing newline


class Trimmed(fields.String):
    """A string stripped of surrounding white space; blank strings are refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text:
            raise ValidationError("Must not be blank.")
        return text


class RoleLabelSchema(Schema):
    """A role's name in Chinese and English, dumped from the role."""

    zh = fields.String()
    en = fields.String()

    @pre_dump
    def expand(self, role, **kwargs):
        zh, en = ROLE_LABELS[role]
        return {"zh": zh, "en": en}


class DepartmentRefSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    name_en = fields.String(dump_only=True)


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True, metadata={"enum": list(ROLES)})
    role_label = fields.Nested(RoleLabelSchema, attribute="role", dump_only=True)
    region = fields.Nested(RegionRefSchema, dump_only=True, metadata={"description": "The scope region"})
    department = fields.Nested(DepartmentRefSchema, dump_only=True, allow_none=True)
    is_active = fields.Boolean(dump_only=True)
    version = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


UserPageSchema = page_of(UserSchema, "UserPage")


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=[validate.Length(min=3, max=64),
                                                      validate.Regexp(USERNAME_PATTERN)],
                             metadata={"description": "Letters, digits and . _ @ -; unique ignoring case"})
    display_name = Trimmed(required=True, validate=validate.Length(max=100))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    region_id = Id(required=True, metadata={"description": "The scope region"})
    department_id = Id(allow_none=True, load_default=None,
                       metadata={"description": "Required for the department role: a department of the scope region"})
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024),
                             metadata={"description": "At least 10 characters"})


class UserPatchSchema(Schema):
    display_name = Trimmed(validate=validate.Length(max=100))
    role = fields.String(validate=validate.OneOf(ROLES))
    region_id = Id()
    department_id = Id(allow_none=True)
    is_active = fields.Boolean(metadata={"description": "false signs the user out everywhere"})
    password = fields.String(load_only=True, validate=validate.Length(max=1024),
                             metadata={"description": "A new password set by a manager; signs the user out"})
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID),
                             metadata={"description": "The version you read; a stale one gives 409"})


class UserQueryArgsSchema(PageQueryArgsSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    region_id = QueryId(metadata={"description": "Users scoped anywhere in this region's subtree"})
    q = fields.String(validate=validate.Length(min=1, max=64),
                      metadata={"description": "Part of the user name or display name"})
    active = fields.Boolean()


class AssignmentSchema(Schema):
    """A grid cell a worker covers, as primary (A岗) or backup (B岗)."""

    region = fields.Nested(RegionRefSchema, dump_only=True)
    duty = fields.String(dump_only=True, metadata={"enum": list(DUTIES)})
    created_at = fields.DateTime(dump_only=True)


class AssignmentPutSchema(Schema):
    duty = fields.String(required=True, validate=validate.OneOf(DUTIES))


class MeSchema(UserSchema):
    cells = fields.List(fields.Nested(AssignmentSchema), dump_only=True)


class PasswordChangeSchema(Schema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    new_password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))
