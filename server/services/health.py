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

_migrations: tuple[tuple[str, ...], frozenset[str]] | None = None


def _known_migrations() -> tuple[tuple[str, ...], frozenset[str]]:
    """This version's newest revisions, and every revision it has."""
    global _migrations
    if _migrations is None:
        config = Config()
        config.set_main_option("script_location", current_app.extensions["migrate"].directory)
        script = ScriptDirectory.from_config(config)
        _migrations = (tuple(sorted(script.get_heads())), frozenset(s.revision for s in script.walk_revisions()))
    return _migrations


def readiness() -> dict:
    """Ready when the database answers and its schema is at this version's newest migration, or
    past it: a revision this version does not have is a newer version's, upgraded to while this
    process still runs (a rolling deploy; migrations only add what older code can ignore,
    docs/OPERATIONS.md "Upgrades"). An older schema is unready: migrations are pending."""
    try:
        current = tuple(sorted(db.session.scalars(text("SELECT version_num FROM alembic_version")).all()))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"status": "unavailable", "database": "unreachable or not migrated", "detail": type(exc).__name__}
    expected, known = _known_migrations()
    newer = bool(current) and not known.intersection(current)
    if current != expected and not newer:
        return {"status": "unavailable", "database": "migrations pending", "current": list(current), "expected": list(expected)}
    warnings = _warnings()
    if newer:
        warnings.insert(0, f"schema: at {', '.join(current)}, newer than this version's {', '.join(expected)}: "
                           "this process is from before an upgrade; replace it")
    return {"status": "ready", "database": "ok", "revision": list(current), "warnings": warnings}


def _warnings() -> list[str]:
    """What an operator should see to, though the service runs."""
    from .calendar import coverage

    year = datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).year
    return [f"calendar: no holiday schedule for {row.year}; deadlines in working time count weekdays only "
            "(flask calendar status)" for row in coverage([year, year + 1]) if row.source == "weekdays"]
