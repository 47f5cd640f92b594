"""Helpers shared by the resource blueprints."""
from __future__ import annotations

import http

from flask_smorest import Blueprint


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
