"""Optimistic concurrency for edits: the client sends the ``version`` it read."""
from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError

from server.errors import Conflict
from server.extensions import db


def commit_edit(obj, changes: dict, fields: tuple[str, ...], conflict: Conflict) -> None:
    """Apply ``changes[f]`` for each of ``fields`` present and commit, once.

    Raises ``conflict`` (409) when ``changes["version"]`` is not the object's version,
    or when another transaction changed the row between our read and our write (the
    mapper's ``version_id_col`` turns that into ``StaleDataError``). Other database
    errors propagate after a rollback, for the caller to translate.
    """
    if changes["version"] != obj.version:
        raise conflict
    for name in fields:
        if name in changes:
            setattr(obj, name, changes[name])
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise conflict from None
    except Exception:
        db.session.rollback()
        raise
