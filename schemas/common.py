from marshmallow import Schema, fields, validate

MAX_ID = 2**31 - 1


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code, e.g. region.not_found"})
    status = fields.Integer(required=True)
    message = fields.String(required=True, metadata={"description": "Human-readable explanation"})
    errors = fields.Dict(metadata={"description": "Field errors, keyed by field name"})


class PageQueryArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class PageSchema(Schema):
    page = fields.Integer()
    page_size = fields.Integer()
    total = fields.Integer()


def page_of(item_schema, name: str) -> type[Schema]:
    """A paginated envelope ``{"items": [...], "page", "page_size", "total"}``."""
    return type(name, (PageSchema,), {"items": fields.List(fields.Nested(item_schema))})


def Id(*, strict: bool = True, **kwargs) -> fields.Integer:
    """An integer id within PostgreSQL's integer range (JSON: a number, not a string)."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), strict=strict, **kwargs)


def QueryId(**kwargs) -> fields.Integer:
    """An id in a query string (always text there)."""
    return Id(strict=False, **kwargs)
