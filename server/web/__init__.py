"""Pages and their static assets. Front-end libraries come from npm (package.json
beside this file) and are served from node_modules, never from a CDN."""
from pathlib import Path

from flask import Blueprint, abort, redirect, send_from_directory

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The interactive API documentation, until the map page exists."""
    return redirect("/api/v1/docs")

NODE_MODULES = Path(__file__).parent / "node_modules"
# URL name → npm package directory; only these are exposed.
VENDOR = {"swagger-ui": "swagger-ui-dist"}


@bp.get("/static/vendor/<lib>/<path:filename>")
def vendor(lib: str, filename: str):
    package = VENDOR.get(lib)
    if package is None:
        abort(404)
    return send_from_directory(NODE_MODULES / package, filename, max_age=86400)
