"""Fengqiao: grid management (网格化管理) backend."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, request

from .config import PROJECT_ROOT, load_config
from .errors import UnsupportedMediaType, register_error_handlers
from .services.auth import actor_cache
from .services.maps import configured_basemap

# Writes here cannot sign anyone out or change a user, role, scope or department: they keep
# the actor cache (a phone reporting all day is not checked against the database each time).
ACTOR_NEUTRAL_BLUEPRINTS = frozenset({"incidents", "categories"})
from . import extensions

JSON_TYPES = ("application/json", "application/geo+json")
request_log = logging.getLogger("fengqiao.request")

# Answers that are data (JSON, tiles, photos, files) run nothing if a browser opens them and
# are framed nowhere; pages keep the policy they set themselves (the map page's), or may not
# be framed. The request id a client sends is echoed only when it looks like one.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
PAGE_POLICY = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def create_app(config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, errors, CLI."""
    app = Flask(__name__, static_folder="web/static", static_url_path="/static")
    app.config.update(load_config())
    if config:
        app.config.update(config)
    configured_basemap(app.config)  # a bad basemap setting stops the start, not the first map

    # (the extensions stay qualified: the name ``api`` is also the subpackage server.api)
    extensions.db.init_app(app)
    extensions.migrate.init_app(app, extensions.db, directory=str(PROJECT_ROOT / "migrations"))
    extensions.api.init_app(app)
    register_error_handlers(app)

    from . import models  # noqa: F401  (registers the tables on the metadata)
    from .api import register_blueprints
    from .cli import register_cli

    register_blueprints(app, extensions.api)
    register_cli(app)
    _install_request_hooks(app)
    _configure_logging(app)
    return app


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def start_request():
        sent = request.headers.get("X-Request-Id", "")
        g.request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        g.started = time.perf_counter()
        if request.method in ("GET", "HEAD") and request.path.startswith("/api/"):
            # API reads run in autocommit: psycopg then sends no BEGIN and no ROLLBACK,
            # two of a read's database round trips. (Reads never write. Probes and
            # static files take no connection at all: /healthz must not need the database.)
            extensions.db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        # Per-endpoint body limit (uploads declare a larger one on the view function).
        view = app.view_functions.get(request.endpoint)
        limit = getattr(view, "max_body_bytes", None)
        if limit:
            request.max_content_length = app.config[limit]
        _require_json_body(view)

    @app.after_request
    def log_request(response):
        if request.method not in ("GET", "HEAD") and request.blueprint not in ACTOR_NEUTRAL_BLUEPRINTS:
            # a write may have signed someone out or changed a role or scope: forget cached actors
            actor_cache.clear()
        response.headers["X-Request-Id"] = g.get("request_id", "")
        _security_headers(response, app.config["HSTS_SECONDS"])
        actor = g.get("actor")
        request_log.info(json.dumps({
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            "actor": actor.user_id if actor else None,
            "ip": request.remote_addr,
        }, ensure_ascii=False))
        return response

    # Registered after Flask-SQLAlchemy's own teardown, so it runs before it.
    @app.teardown_appcontext
    def end_session(exc):
        """End the request's session. When the database went away after the answer was made
        (a restart), the rollback of the request's read transaction fails: the answer stands,
        where the error would have turned it into a bare 500 from the WSGI server."""
        extensions.end_session()


def _security_headers(response, hsts_seconds: int) -> None:
    """Headers every answer carries unless its view set its own (OWASP API8)."""
    headers = response.headers
    page = response.mimetype == "text/html"
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin" if page else "no-referrer")
    headers.setdefault("Content-Security-Policy", PAGE_POLICY if page else DATA_POLICY)
    if request.path.startswith("/api/"):
        # what a signed-in person reads is theirs: no shared or disk cache keeps it unless the
        # view says how long it may (photos, tiles)
        headers.setdefault("Cache-Control", "no-store")
    if hsts_seconds > 0:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts_seconds}")


def _require_json_body(view) -> None:
    """Refuse a body that is not JSON (415) before any parsing happens.

    Views that take uploads list their accepted media types in ``accepts_media``.
    """
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return
    accepted = getattr(view, "accepts_media", JSON_TYPES)
    if request.mimetype not in accepted:
        raise UnsupportedMediaType(
            "request.unsupported_media_type",
            f"Send the body as {' or '.join(accepted)}.",
        )


def _configure_logging(app: Flask) -> None:
    if request_log.handlers or app.testing:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    request_log.addHandler(handler)
    request_log.setLevel(logging.INFO)
    request_log.propagate = False
