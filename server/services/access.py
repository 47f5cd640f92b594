"""The one authorization entry point for services.

``authorize`` asks ``domain.permissions.can`` and turns a refusal into 404 when the
actor may not even see the target (so nothing leaks), else 403. ``within_scope`` is the
same rule for list queries, maps, tiles and exports.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, true

from server.domain.permissions import Actor, can, read_action
from server.errors import Forbidden, NotFound


def authorize(actor: Actor, action: str, target, *, not_found: NotFound) -> None:
    """Raise ``not_found`` if ``actor`` cannot see ``target``; Forbidden if it cannot act."""
    if target is None or not can(actor, read_action(action), target):
        raise not_found
    if not can(actor, action, target):
        raise Forbidden("auth.forbidden", "You are not allowed to do this here.")


def within_scope(actor: Actor, path_column) -> ColumnElement[bool]:
    """SQL condition: the row's region path lies inside the actor's scope subtree."""
    if actor.is_admin:
        return true()
    # paths are server-made ("/1/5/"): no LIKE wildcards to escape
    return path_column.like(actor.scope_path + "%")
