"""Pages and their static assets. Front-end libraries come from npm (package.json
beside this file) and are served from node_modules, never from a CDN."""
from pathlib import Path

from flask import Blueprint, abort, redirect, send_from_directory

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/static/web")


@bp.get("/")
def index():
    """The map page."""
    return redirect("/map")


@bp.get("/map")
def map_page():
    """The street office's map (docs/MAP.md): it signs in and reads everything through the API."""
    return send_from_directory(Path(__file__).parent / "static", "map.html", max_age=0)

NODE_MODULES = Path(__file__).parent / "node_modules"
# URL name → npm package directory; only these are exposed.
VENDOR = {"swagger-ui": "swagger-ui-dist", "maplibre-gl": "maplibre-gl/dist"}


@bp.get("/static/vendor/<lib>/<path:filename>")
def vendor(lib: str, filename: str):
    package = VENDOR.get(lib)
    if package is None:
        abort(404)
    return send_from_directory(NODE_MODULES / package, filename, max_age=86400)
