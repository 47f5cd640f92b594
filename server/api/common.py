"""Helpers shared by the resource blueprints."""
from __future__ import annotations

import http
import json
import re
from datetime import date
from urllib.parse import quote

import flask_smorest
from flask import Response, current_app
from marshmallow import RAISE, missing
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.routing import BaseConverter, IntegerConverter, ValidationError

from schemas.common import MAX_ID
from server.errors import BadRequest, InvalidInput

# NUL cannot be stored in PostgreSQL text or jsonb; lone surrogates cannot be encoded.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _check_strings(value, where: str) -> None:
    """Refuse strings PostgreSQL cannot store, anywhere in parsed JSON or a query string."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise InvalidInput("request.invalid_characters",
                                   f"The {where} contains a NUL character or an unpaired surrogate.")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


MAX_JSON_DEPTH = 32


def _check_depth(value, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (it would exhaust the stack further on)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise BadRequest("request.malformed_json", f"The JSON is nested deeper than {limit} levels.")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))


def parse_json(text: bytes | str, where: str = "request body"):
    """JSON as the API accepts it: no NaN/Infinity, not too deep, only storable strings.
    Raises BadRequest(request.malformed_json) or InvalidInput(request.invalid_characters)."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest("request.malformed_json", f"The {where} is not valid JSON.") from None
    _check_depth(data)
    _check_strings(data, where)
    return data


class StrictParser(FlaskParser):
    """webargs' parser, stricter: unknown query parameters are refused like unknown body
    fields (a misspelt filter must not silently return everything); JSON that Python
    parses but PostgreSQL cannot store (NaN, Infinity, NUL, lone surrogates) and JSON
    too deep or with numbers too long to parse are 4xx, never 500."""

    def __init__(self):
        super().__init__(unknown=RAISE)

    def _raw_load_json(self, req):
        body = req.get_data(cache=True)
        if not is_json_request(req) or not body:
            return missing  # (an empty body: every required field is reported missing, 422)
        return parse_json(body)

    def load_querystring(self, req, schema):
        _check_strings([*req.args.keys(), *req.args.values()], "query string")
        return super().load_querystring(req, schema)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint with the StrictParser."""

    ARGUMENTS_PARSER = StrictParser()


def errors(blp: Blueprint, *statuses: int):
    """Document the error answers a view can give (the body is always ErrorSchema)."""

    def decorator(view):
        for status in statuses:
            view = blp.alt_response(status, response=http.HTTPStatus(status).name)(view)
        return view

    return decorator


def accepts(*media_types: str, max_body: str | None = None):
    """Declare the request media types a view takes (default JSON) and, by config key,
    a body size limit other than MAX_CONTENT_LENGTH."""

    def decorator(view):
        view.accepts_media = media_types
        if max_body:
            view.max_body_bytes = max_body
        return view

    return decorator


GEOJSON = "application/geo+json"
class IdConverter(IntegerConverter):
    """``<id:name>`` in routes: ASCII digits within PostgreSQL's integer range. Anything
    else — a larger number, "٩" or other non-ASCII digits — matches no route (404)."""

    regex = r"[0-9]+"

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)


def id_parameter_schema(converter: IdConverter) -> dict:
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class DateConverter(BaseConverter):
    """``<date:name>`` in routes: a calendar date as YYYY-MM-DD; anything else, or a date
    that does not exist (2026-02-30), matches no route (404)."""

    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"

    def to_python(self, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError() from None

    def to_url(self, value) -> str:
        return value.isoformat() if isinstance(value, date) else str(value)


def date_parameter_schema(converter: DateConverter) -> dict:
    return {"type": "string", "format": "date"}


def also_as(status: int, content_type: str, geojson_type: str) -> dict:
    """For ``@blp.doc(responses=…)``: the same status may also answer a GeoJSON object of
    ``geojson_type`` (``?format=geojson``). flask-smorest keeps one content type a status."""
    shape = {"type": "object", "required": ["type"],
             "properties": {"type": {"type": "string", "enum": [geojson_type]}}}
    return {status: {"content": {content_type: {"schema": shape}}}}


def geojson_response(obj: dict, status: int = 200) -> Response:
    """Answer a GeoJSON object with the RFC 7946 media type."""
    return current_app.response_class(json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
                                      status=status, mimetype=GEOJSON)


def photo_response(content) -> Response:
    """A stored photo (``photos.PhotoContent``) as sent: its bytes, type and ETag, cached
    privately for a day (a photo's bytes never change), never sniffed."""
    response = current_app.response_class(content.data, mimetype=content.content_type)
    response.headers["ETag"] = f'"{content.etag}"'
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def download(body, mimetype: str, filename: str, *, inline: bool = False) -> Response:
    """``body`` (bytes, text, or an iterable of chunks) as a file under ``filename``, never
    cached: saved (attachment) or shown (inline). The name goes in both forms of RFC 6266:
    ``filename*`` in UTF-8 as it is, ``filename`` with anything but ASCII letters, digits,
    dots and dashes made an underscore for older clients."""
    response = current_app.response_class(body, mimetype=mimetype)
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    disposition = f'{"inline" if inline else "attachment"}; filename="{plain}"'
    if plain != filename:
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    response.headers["Content-Disposition"] = disposition
    response.headers["Cache-Control"] = "no-store"
    # a document shown (a report's HTML) draws with its own styles and inline images, runs nothing
    response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    return response


DOCUMENT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"
