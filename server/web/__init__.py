"""Pages and their static assets. Front-end libraries come from npm (package.json
beside this file) and are served from node_modules, never from a CDN."""
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, send_from_directory

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/static/web")


@bp.get("/")
def index():
    """The map page."""
    return redirect("/map")


@bp.get("/map")
def map_page():
    """The street office's map (docs/MAP.md): it signs in and reads everything through the API."""
    response = send_from_directory(Path(__file__).parent / "static", "map.html", max_age=0)
    response.headers["Content-Security-Policy"] = map_policy(current_app.config["MAP_BASEMAP_URL"])
    return response


def map_policy(basemap_url: str) -> str:
    """The map page's Content-Security-Policy: its scripts and styles from this server only
    (no inline script: an injected one does not run), MapLibre's workers and the photos'
    object URLs from blob:, and the configured basemap's host for its tiles."""
    basemap = ""
    if basemap_url:
        parts = urlsplit(basemap_url)
        basemap = " " + (f"{parts.scheme}://{parts.netloc}" if "{" not in parts.netloc else f"{parts.scheme}:")
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob:{basemap}; connect-src 'self'{basemap}; worker-src blob:; child-src blob:; "
            "font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

NODE_MODULES = Path(__file__).parent / "node_modules"
# URL name → npm package directory; only these are exposed.
VENDOR = {"swagger-ui": "swagger-ui-dist", "maplibre-gl": "maplibre-gl/dist"}


@bp.get("/static/vendor/<lib>/<path:filename>")
def vendor(lib: str, filename: str):
    package = VENDOR.get(lib)
    if package is None:
        abort(404)
    return send_from_directory(NODE_MODULES / package, filename, max_age=86400)
