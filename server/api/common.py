"""Helpers shared by the resource blueprints."""
from __future__ import annotations

import http
import json

from flask import Response, current_app
import flask_smorest
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, refusing unknown query parameters too (a misspelt
    filter must not silently return everything)."""

    ARGUMENTS_PARSER = FlaskParser(unknown=RAISE)


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
# Paths take ids within PostgreSQL's integer range; a larger number matches no route (404).
ID = "int(max=2147483647)"


def geojson_response(obj: dict, status: int = 200) -> Response:
    """Answer a GeoJSON object with the RFC 7946 media type."""
    return current_app.response_class(json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
                                      status=status, mimetype=GEOJSON)
