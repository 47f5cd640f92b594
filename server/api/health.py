"""Liveness and readiness probes (outside the versioned API)."""
from flask import Blueprint, jsonify

from server.services.health import readiness

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """The database answers and its schema is at the newest migration."""
    report = readiness()
    return jsonify(report), (200 if report["status"] == "ready" else 503)
