"""Corrections to the OpenAPI document flask-smorest writes."""
from __future__ import annotations

from apispec import BasePlugin


class MultipartFormPlugin(BasePlugin):
    """A view taking form fields beside files (``@blp.arguments(..., location="form")`` and
    ``location="files"``) is written by flask-smorest as a multipart body of the files and
    ``in: formData`` parameters for the fields, which OpenAPI 3 does not have (clients made
    from the document would never send them). Fold those fields into the body's schema."""

    def init_spec(self, spec) -> None:
        super().init_spec(spec)
        self.spec = spec

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for operation in (operations or {}).values():
            fields = [p for p in operation.get("parameters", []) if isinstance(p, dict) and p.get("in") == "formData"]
            body = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if not fields or body is None:
                continue
            schema = body["schema"]
            if "$ref" in schema:
                schema = self.spec.components.schemas[schema["$ref"].rsplit("/", 1)[1]]
            required = list(schema.get("required", [])) + [p["name"] for p in fields if p.get("required")]
            body["schema"] = {**schema, "properties": {**schema.get("properties", {}),
                                                       **{p["name"]: p["schema"] for p in fields}},
                              "required": required}
            operation["parameters"] = [p for p in operation["parameters"] if p not in fields]
            if not operation["parameters"]:
                del operation["parameters"]
