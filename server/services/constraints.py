"""Which database constraint refused a write: for turning races into clear answers."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint an INSERT/UPDATE violated (psycopg diagnostics)."""
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
