"""Exports: files to save (CSV, XLSX), and export jobs run by the worker (docs/STATS.md)."""
from __future__ import annotations

from flask import current_app

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"


def download(body, mimetype: str, filename: str):
    """``body`` (bytes, or an iterable of chunks) as a file to save under ``filename``
    (ASCII), never cached."""
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response
