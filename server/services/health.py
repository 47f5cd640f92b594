"""Readiness: database reachable and migrated to the head revision; warnings that do not
make the process unready (a year without a holiday schedule)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.extensions import db

_heads: tuple[str, ...] | None = None


def _expected_heads() -> tuple[str, ...]:
    global _heads
    if _heads is None:
        config = Config()
        config.set_main_option("script_location", current_app.extensions["migrate"].directory)
        _heads = tuple(sorted(ScriptDirectory.from_config(config).get_heads()))
    return _heads


def readiness() -> dict:
    try:
        current = tuple(sorted(db.session.scalars(text("SELECT version_num FROM alembic_version")).all()))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable or not migrated", "detail": type(exc).__name__}
    expected = _expected_heads()
    if current != expected:
        return {"status": "unavailable", "database": "migrations pending", "current": list(current), "expected": list(expected)}
    return {"status": "ready", "database": "ok", "revision": list(current), "warnings": _warnings()}


def _warnings() -> list[str]:
    """What an operator should see to, though the service runs."""
    from .calendar import coverage

    year = datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).year
    return [f"calendar: no holiday schedule for {row.year}; deadlines in working time count weekdays only "
            "(flask calendar status)" for row in coverage([year, year + 1]) if row.source == "weekdays"]
