from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate, validates

from geo.crs import SUPPORTED_CRS
from geo.geometry import from_db, to_geojson
from server.domain.territory import LEVEL_LABELS, LEVELS

from .common import Id, PageQueryArgsSchema, QueryId, page_of

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$", error="1-32 letters, digits, '_', '.' or '-'.")


def level_label(level: str) -> dict:
    zh, en = LEVEL_LABELS[level]
    return {"zh": zh, "en": en}


class LabelSchema(Schema):
    zh = fields.String()
    en = fields.String()


class RegionRefSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_en = fields.String(allow_none=True)
    level = fields.String()
    level_label = fields.Function(lambda r: level_label(r["level"] if isinstance(r, dict) else r.level),
                                  metadata={"type": "object"})


class RegionSchema(RegionRefSchema):
    parent_id = fields.Integer(allow_none=True)
    path = fields.String(metadata={"description": "Ids from the root down to this region: /1/5/77/"})
    area_m2 = fields.Float(metadata={"description": "Geodesic area in m² (WGS84 ellipsoid)"})
    properties = fields.Dict(metadata={"description": "Attributes of the imported source feature"})
    retired_at = fields.DateTime(allow_none=True)
    version = fields.Integer(metadata={"description": "Send it back in PATCH (optimistic concurrency)"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


RegionPageSchema = page_of(RegionSchema, "RegionPage")


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(part) for part in value.split(","))
    except ValueError:
        raise ValidationError("Four comma-separated numbers: minLon,minLat,maxLon,maxLat.") from None
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise ValidationError("Longitudes within [-180, 180], latitudes within [-90, 90], min < max.")
    return x0, y0, x1, y1


class BBoxField(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        return _bbox(super()._deserialize(value, attr, data, **kwargs))


class RegionQueryArgsSchema(PageQueryArgsSchema):
    level = fields.String(validate=validate.OneOf(LEVELS))
    parent_id = QueryId()
    within_id = QueryId(metadata={"description": "Only the subtree of this region"})
    code = fields.String(validate=validate.Length(max=32))
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "Name or code contains"})
    bbox = BBoxField(metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    include_retired = fields.Boolean(load_default=False)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "geojson"]),
                           metadata={"description": "geojson: a FeatureCollection with geometries"})


class RegionGetArgsSchema(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "geojson"]))


class RegionCreateSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    name_en = fields.String(validate=validate.Length(max=200), allow_none=True)
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_id = Id(allow_none=True)
    geometry = fields.Dict(required=True, metadata={"description": "GeoJSON Polygon or MultiPolygon, WGS84"})
    properties = fields.Dict(load_default=dict)


class RegionPatchSchema(Schema):
    code = fields.String(validate=CODE)
    name = fields.String(validate=validate.Length(min=1, max=200))
    name_en = fields.String(validate=validate.Length(max=200), allow_none=True)
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**31 - 1))


class RetireSchema(Schema):
    cascade = fields.Boolean(load_default=False, metadata={"description": "Also retire every live region inside"})


class LocateQueryArgsSchema(Schema):
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-90, max=90))
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(SUPPORTED_CRS),
                        metadata={"description": "wgs84 (GPS), gcj02 (AMap, Tencent) or bd09 (Baidu)"})


class LocationSchema(Schema):
    cell = fields.Nested(RegionRefSchema)
    chain = fields.List(fields.Nested(RegionRefSchema), metadata={"description": "City first, the cell last"})
    lon = fields.Float(metadata={"description": "WGS84 longitude looked up"})
    lat = fields.Float(metadata={"description": "WGS84 latitude looked up"})


class GridGenerateSchema(Schema):
    target_area_m2 = fields.Float(load_default=10_000, allow_nan=False, validate=validate.Range(min=100, max=10_000_000))
    sliver_ratio = fields.Float(load_default=0.3, allow_nan=False, validate=validate.Range(min=0, max=0.9))
    replace = fields.Boolean(load_default=False, metadata={"description": "Regenerate communities that have cells"})


class GridReportSchema(Schema):
    region = fields.String()
    communities = fields.Integer()
    skipped = fields.List(fields.Dict())
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    retired = fields.Integer()
    assignments_released = fields.Integer(metadata={"description": "Grid workers' duties on retired cells, ended"})
    target_area_m2 = fields.Float()


class ImportArgsSchema(Schema):
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    code_field = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name_field = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name_en_field = fields.String(validate=validate.Length(min=1, max=100))
    parent_code_field = fields.String(validate=validate.Length(min=1, max=100))


class FeatureCollectionSchema(Schema):
    """A GeoJSON FeatureCollection; members other than these are ignored."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.Equal("FeatureCollection"))
    features = fields.List(fields.Raw(), required=True)

    @validates("features")
    def _not_empty(self, value, **kwargs):
        if not value:
            raise ValidationError("At least one feature.")

    @post_load
    def _as_dict(self, data, **kwargs):
        return dict(data)


class ImportReportSchema(Schema):
    level = fields.String()
    features = fields.Integer()
    parent_rule = fields.String()
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    refused = fields.List(fields.Dict(), metadata={"description": "Features not imported, with the reason"})
    repaired = fields.List(fields.Dict(), metadata={"description": "Invalid geometries repaired with make_valid"})
    unassigned = fields.List(fields.Dict(), metadata={"description": "Imported without a parent"})
    assigned_to_nearest = fields.List(fields.Dict(), metadata={
        "description": "Overlapping no parent, given the nearest one (distance_m)"})
    kept_parent = fields.List(fields.String(), metadata={
        "description": "Codes already in the tree for which no parent was found: they keep their parent"})
    partly_outside_parent = fields.List(fields.Dict())
    overlapping_siblings = fields.List(fields.Dict())


class CoverageArgsSchema(Schema):
    min_area_m2 = fields.Float(load_default=1.0, allow_nan=False, validate=validate.Range(min=0, max=1e9))


def region_feature(region) -> dict:
    """A region as a GeoJSON Feature (RFC 7946; properties as RegionSchema)."""
    return {"type": "Feature", "id": region.id, "geometry": to_geojson(from_db(region.geom)),
            "properties": RegionSchema().dump(region)}


def region_feature_collection(page) -> dict:
    return {"type": "FeatureCollection", "features": [region_feature(r) for r in page.items],
            "numberMatched": page.total, "numberReturned": len(page.items),
            "page": page.page, "page_size": page.page_size}
