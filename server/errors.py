"""Errors with stable codes, and the one JSON error handler.

Every error leaves the API as::

    {"code": "region.not_found", "status": 404, "message": "…", "errors": {…}}

``code`` is stable and meant for programs; ``message`` is for people and may change.
Services raise ``DomainError`` subclasses; views never catch them. A part of the site that
speaks a standard of its own (Open311, under /open311/) registers the writer of its errors
with ``answer_errors_under``; the handlers here serve it too.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal the client can act on. Subclasses fix the HTTP status."""

    status = 400

    def __init__(self, code: str, message: str, *, errors: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = headers or {}


class BadRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410


class PreconditionRequired(DomainError):
    status = 428


class PayloadTooLarge(DomainError):
    status = 413


class UnsupportedMediaType(DomainError):
    status = 415


class InvalidInput(DomainError):
    status = 422


class RateLimited(DomainError):
    status = 429


class Unavailable(DomainError):
    """The server cannot take this now (a capacity bound); the client may try again later."""

    status = 503


# Codes for errors raised by Flask/werkzeug/webargs rather than by our services.
HTTP_CODES = {
    400: "request.malformed",
    401: "auth.required",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    406: "http.not_acceptable",
    409: "http.conflict",
    412: "http.precondition_failed",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    422: "request.invalid",
    428: "http.precondition_required",
    429: "http.rate_limited",
}


def error_body(status: int, code: str, message: str, errors: dict | None = None) -> dict:
    body = {"code": code, "status": status, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _field_errors(exc: HTTPException) -> dict | None:
    # webargs/flask-smorest put validation messages in exc.data["messages"], keyed by
    # location ("json", "query", "files"…); clients only need the field errors.
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if not isinstance(messages, dict):
        return None
    if len(messages) == 1:
        (only,) = messages.values()
        if isinstance(only, dict):
            return only
    return messages


# Parts of the site that answer errors in their own format (Open311's error list): path
# prefix → writer(status, message, headers) of the response.
_OTHER_FORMATS: dict[str, Callable[[int, str, dict], Response]] = {}


def answer_errors_under(prefix: str, writer: Callable[[int, str, dict], Response]) -> None:
    """Every error of a request whose path starts with ``prefix`` is written by ``writer``
    (from the routing's 404 and 405 to a database refusal and a 500)."""
    _OTHER_FORMATS[prefix] = writer


def _error_response(status: int, code: str, message: str, errors: dict | None = None,
                    headers: dict | None = None) -> Response:
    for prefix, writer in _OTHER_FORMATS.items():
        if request.path.startswith(prefix):
            return writer(status, message, headers or {})
    response = jsonify(error_body(status, code, message, errors))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def database_summary(exc: DBAPIError) -> str:
    """What a log says of a database error: its kind, SQLSTATE, table, column, constraint
    and primary message — never its DETAIL, where PostgreSQL writes the failing row or key
    (password and token hashes, phone numbers), nor the statement's parameters."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    fields = {name: getattr(diag, name, None) for name in ("table_name", "column_name", "constraint_name")}
    where = " ".join(f"{name.removesuffix('_name')}={value}" for name, value in fields.items() if value)
    primary = getattr(diag, "message_primary", None) or type(orig).__name__
    return f"{type(orig).__name__} {getattr(orig, 'sqlstate', None) or ''} {where} {primary}".replace("  ", " ")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        return _error_response(exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        errors = _field_errors(exc)
        code = HTTP_CODES.get(status, "http.error")
        message = exc.description or exc.name
        if status == 422:
            message = "The request has invalid fields; see errors."
        elif status == 400 and errors:
            # webargs reports an unparseable JSON body as a 400 with this shape
            code = "request.malformed_json"
            message = "The request body is not valid JSON."
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return _error_response(status, code, message, errors, headers)

    @app.errorhandler(DBAPIError)
    def database_error(exc: DBAPIError):
        if isinstance(exc, DataError):
            # A value the schemas let through but the column refuses (too long after
            # normalisation, out of range): the client's input, so 422, never 500.
            log.warning("database refused a value: %s", database_summary(exc))
            return _error_response(422, "request.invalid_value", "A value is too long or out of range.")
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            # The database restarted or is unreachable: SQLAlchemy has invalidated the
            # pool; the client may simply retry.
            log.warning("database unavailable: %s", database_summary(exc))
            return _error_response(503, "service.database_unavailable",
                                   "The database is unavailable; retry in a moment.", headers={"Retry-After": "1"})
        log.error("unhandled database error: %s\n%s", database_summary(exc),
                  "".join(traceback.format_tb(exc.__traceback__)))
        return _error_response(500, "internal", "Internal error; it has been logged.")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return _error_response(500, "internal", "Internal error; it has been logged.")
