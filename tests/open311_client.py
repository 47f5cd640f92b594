"""What an Open311 client checks of our answers: the GeoReport v2 JSON-schema constraints
(written out here from the published schemas of open311/schema-validation, whose files carry
no licence; the answer to a POST and mySociety's updates written from their specifications),
and that each XML answer is well formed and says what its JSON says."""
from __future__ import annotations

from urllib.parse import urlsplit
from xml.etree import ElementTree

import jsonschema
import requests

NULLABLE_STRING = {"type": ["string", "null"]}
SERVICE = {
    "type": "object",
    "required": ["service_code", "service_name", "type", "metadata"],
    "properties": {
        "service_code": {"type": "string"}, "service_name": {"type": "string"}, "description": NULLABLE_STRING,
        "metadata": {"type": "boolean"}, "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
        "keywords": NULLABLE_STRING, "group": NULLABLE_STRING,
    },
}
SERVICES = {"type": "array", "items": SERVICE}
DEFINITION = {
    "type": "object",
    "required": ["service_code", "attributes"],
    "properties": {
        "service_code": {"type": "string"},
        "attributes": {"type": "array", "items": {
            "type": "object",
            "required": ["variable", "code", "datatype", "required"],
            "properties": {
                "variable": {"type": "boolean"}, "code": {"type": "string"},
                "datatype": {"type": "string", "enum": ["string", "number", "datetime", "text", "singlevaluelist",
                                                        "multivaluelist"]},
                "required": {"type": "boolean"}, "datatype_description": NULLABLE_STRING,
                "order": {"type": ["integer", "null"]}, "description": NULLABLE_STRING,
                "values": {"type": "array", "items": {"type": "object", "required": ["key", "name"],
                                                      "properties": {"key": {"type": "string"},
                                                                     "name": {"type": "string"}}}},
            },
        }},
    },
}
DISCOVERY = {
    "type": "object",
    "required": ["changeset", "contact", "endpoints"],
    "properties": {
        "changeset": {"type": ["string", "null"], "format": "date-time"}, "contact": {"type": "string"},
        "key_service": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["specification", "url", "type", "formats"],
            "properties": {"specification": {"type": "string"}, "url": {"type": "string", "format": "uri"},
                           "changeset": {"type": ["string", "null"], "format": "date-time"},
                           "type": {"type": "string", "enum": ["production", "test"]},
                           "formats": {"type": "array", "items": {"type": "string"}}},
        }},
    },
}
ERRORS = {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["code", "description"],
                                                     "properties": {"code": {"type": "integer"},
                                                                    "description": {"type": "string"}}}}
NULLABLE_DATETIME = {"type": ["string", "null"], "format": "date-time"}
REQUEST = {
    "type": "object",
    "required": ["service_request_id", "status", "service_code", "requested_datetime"],
    "properties": {
        "service_request_id": {"type": "string"}, "status": {"type": "string", "enum": ["open", "closed"]},
        "status_notes": NULLABLE_STRING, "service_name": NULLABLE_STRING, "service_code": {"type": "string"},
        "description": {"type": ["string", "null"], "maxLength": 4000}, "agency_responsible": NULLABLE_STRING,
        "service_notice": NULLABLE_STRING, "requested_datetime": {"type": "string", "format": "date-time"},
        "updated_datetime": NULLABLE_DATETIME, "expected_datetime": NULLABLE_DATETIME, "address": NULLABLE_STRING,
        "address_id": NULLABLE_STRING, "zipcode": NULLABLE_STRING, "lat": {"type": ["number", "null"]},
        "long": {"type": ["number", "null"]}, "media_url": {"type": ["string", "null"], "format": "uri"},
    },
}
REQUESTS = {"type": "array", "items": REQUEST}
# POST requests: an id, or a token when the request cannot be made at once
POSTED = {"type": "array", "minItems": 1, "items": {
    "type": "object", "anyOf": [{"required": ["service_request_id"]}, {"required": ["token"]}],
    "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"},
                   "service_notice": NULLABLE_STRING, "account_id": NULLABLE_STRING}}}
TOKENS = {"type": "array", "minItems": 1, "items": {
    "type": "object", "required": ["token"],
    "properties": {"service_request_id": NULLABLE_STRING, "token": {"type": "string"}}}}
# mySociety's servicerequestupdates
UPDATE = {"type": "object", "required": ["update_id", "service_request_id", "status", "updated_datetime"],
          "properties": {"update_id": {"type": "string"}, "service_request_id": {"type": "string"},
                         "status": {"type": "string", "pattern": "^[A-Z_]+$"},
                         "updated_datetime": {"type": "string", "format": "date-time"},
                         "description": NULLABLE_STRING, "media_url": NULLABLE_STRING}}
UPDATES = {"type": "array", "items": UPDATE}
POSTED_UPDATE = {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["update_id"],
                                                          "properties": {"update_id": {"type": "string"}}}}
CHECKER = jsonschema.FormatChecker()


@CHECKER.checks("uri", raises=ValueError)
def _absolute_uri(value) -> bool:
    """jsonschema checks "uri" only with a package this project does not need: an absolute
    http(s) URL with a host, by hand."""
    if not isinstance(value, str):
        return True  # formats speak of strings only
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def get(base: str, path: str, fmt: str, **params) -> requests.Response:
    return requests.get(f"{base}/open311/v2/{path}.{fmt}", params=params, timeout=30)


def valid_json(response: requests.Response, schema: dict):
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    jsonschema.validate(body, schema, format_checker=CHECKER)
    return body


# Each list of the XML answers and the name of its items (the spec's, and mySociety's).
ITEMS = {"services": "service", "service_requests": "request", "service_request_updates": "request_update",
         "errors": "error", "endpoints": "endpoint", "formats": "format", "attributes": "attribute",
         "values": "value"}


def xml_as_json(element: ElementTree.Element):
    """An XML answer read back into the JSON's shape, checking the name of every list's items
    and that no field appears twice."""
    children = list(element)
    if element.tag in ITEMS:
        assert {child.tag for child in children} <= {ITEMS[element.tag]}, (element.tag, children)
        return [xml_as_json(child) for child in children]
    if not children:
        return element.text
    tags = [child.tag for child in children]
    assert len(tags) == len(set(tags)), tags
    return {child.tag: xml_as_json(child) for child in children}


def as_text(value):
    """A JSON value as the XML writes it (true/false, numbers as text, None as no text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return value


def same_as_xml(base: str, path: str, body, **params) -> None:
    """GET ``path`` as XML: it says what ``body`` (its JSON) says."""
    xml_says(requests.get(f"{base}/open311/v2/{path}.xml", params=params, timeout=30), body)


def xml_says(response: requests.Response, body) -> None:
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(response.content)
    assert xml_as_json(root) == as_text(body)
