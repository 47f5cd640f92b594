"""Sync for offline phones (离线同步): what changed for me since my cursor.

Every synced row (incidents, tasks, categories) carries ``sync_xid``, the id of the
transaction that last wrote it (a column default on insert, a trigger on update; see
migration 0002). A call takes ``xmin``, the oldest transaction still running
(``pg_snapshot_xmin(pg_current_snapshot())``): every row with ``sync_xid < xmin`` was
written by a transaction that has finished, and any later write gets a larger xid. So
paging by ``(sync_xid, id)`` below ``xmin`` never skips a row that commits late; it
only waits for it. Rows may come twice (a row changed while paging); clients upsert by
id and keep the higher ``version``.

The cursor holds, per kind (incidents ``i``, tasks ``t``, categories ``c``), the last
``(xid, id)`` returned, and which kinds are still in their first sync (``s``). It is
opaque to clients: URL-safe base64 of compact JSON, signed with the server key and
bound to the actor's identity and scope, so a cursor that was altered, or that belongs
to another user or to the actor's former scope, is refused (400 sync.invalid_cursor;
the phone then starts over with a first sync).

Read-only: nothing here commits. Protocol for phone developers: docs/SYNC.md.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Text, cast, or_, select, text, tuple_

from server.domain.incidents import ACTIVE_TASK_STATES, OPEN_STATES
from server.domain.permissions import Actor
from server.errors import BadRequest
from server.extensions import db
from server.models import Category, Incident, Task
from server.models._base import XID8, utcnow

from .access import visible_incidents
from .incident_queries import mine

DEFAULT_LIMIT = 200
# A first sync brings the open incidents and those changed within this window.
FIRST_SYNC_WINDOW = timedelta(days=30)
CURSOR_VERSION = 1
KINDS = {"i": Incident, "t": Task, "c": Category}
# Kinds whose first sync is narrower than their incremental one.
FIRST_SYNC_FILTERED = "it"
_MAX_BIGINT = 2**63 - 1
_MAC_BYTES = 16


@dataclass
class SyncPage:
    cursor: str
    has_more: bool
    server_time: datetime
    incidents: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    categories: list = field(default_factory=list)


@dataclass
class _Cursor:
    positions: dict  # kind → (xid, id): the last row returned, or (xmin, 0) once caught up
    first: str  # kinds still in their first sync

    @classmethod
    def start(cls) -> _Cursor:
        return cls(positions={kind: (0, 0) for kind in KINDS}, first=FIRST_SYNC_FILTERED)


# ---------------------------------------------------------------- the cursor token

def _invalid_cursor(reason: str) -> BadRequest:
    return BadRequest("sync.invalid_cursor", "The sync cursor is not valid; start over without one.",
                      errors={"cursor": [reason]})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _mac(actor: Actor, payload: bytes) -> bytes:
    """The payload's signature, bound to who the actor is and what they may see: a
    cursor is only good for the actor and scope it was made for."""
    key = hashlib.sha256(b"sync-cursor:" + current_app.config["SECRET_KEY"].encode()).digest()
    identity = f"{actor.user_id}|{actor.role}|{actor.scope_path}|{actor.department_id}".encode()
    return hmac.digest(key, identity + b"\n" + payload, "sha256")[:_MAC_BYTES]


def encode_cursor(actor: Actor, cursor: _Cursor) -> str:
    body = {"v": CURSOR_VERSION, **{kind: list(cursor.positions[kind]) for kind in KINDS}, "s": cursor.first}
    payload = json.dumps(body, separators=(",", ":")).encode()
    return _b64(payload) + "." + _b64(_mac(actor, payload))


def decode_cursor(actor: Actor, token: str) -> _Cursor:
    """The cursor in ``token``. Errors: 400 sync.invalid_cursor (malformed, altered,
    another actor's or another scope's, or from an unknown version)."""
    try:
        payload_part, mac_part = token.split(".")
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, binascii.Error):
        raise _invalid_cursor("Malformed.") from None
    if not hmac.compare_digest(mac, _mac(actor, payload)):
        raise _invalid_cursor("Altered, or made for another user or scope.")
    try:
        body = json.loads(payload)
    except ValueError:
        raise _invalid_cursor("Malformed.") from None
    if not isinstance(body, dict) or body.get("v") != CURSOR_VERSION:
        raise _invalid_cursor("Unknown version.")
    positions = {}
    for kind in KINDS:
        position = body.get(kind)
        if not (isinstance(position, list) and len(position) == 2
                and all(type(n) is int and 0 <= n <= _MAX_BIGINT for n in position)):
            raise _invalid_cursor("Malformed.")
        positions[kind] = tuple(position)
    first = body.get("s")
    if not isinstance(first, str) or not set(first) <= set(FIRST_SYNC_FILTERED) or len(set(first)) != len(first):
        raise _invalid_cursor("Malformed.")
    return _Cursor(positions=positions, first=first)


# ---------------------------------------------------------------- the rows

def _scope(actor: Actor, kind: str, first: bool) -> list:
    """Conditions on the rows of ``kind`` the actor syncs (in a first sync: the narrower set)."""
    if kind == "i":
        conditions = [visible_incidents(actor)]
        if first:
            conditions.append(or_(Incident.status.in_(sorted(OPEN_STATES)),
                                  Incident.updated_at >= utcnow() - FIRST_SYNC_WINDOW))
        return conditions
    if kind == "t":
        # any status once synced: a task cancelled or taken back must reach the phone
        conditions = [mine(actor)]
        if first:  # active ones, and those ended lately (one cancelled between two pages included)
            conditions.append(or_(Task.status.in_(ACTIVE_TASK_STATES),
                                  Task.finished_at >= utcnow() - FIRST_SYNC_WINDOW))
        return conditions
    return []  # categories: the whole taxonomy, retired ones included (phones drop them)


def as_xid(value: int):
    return cast(str(value), XID8)


def changed_rows(model, conditions: list, after: tuple[int, int], xmin: int, limit: int) -> list[tuple[object, int]]:
    """Up to ``limit`` rows of ``model`` after ``after`` in (sync_xid, id) order, written
    by transactions that finished before ``xmin``, each with its sync_xid."""
    stmt = (
        select(model, cast(model.sync_xid, Text))
        .where(*conditions,
               tuple_(model.sync_xid, model.id) > tuple_(as_xid(after[0]), after[1]),
               model.sync_xid < as_xid(xmin))
        .order_by(model.sync_xid, model.id)
        .limit(limit)
    )
    return [(row, int(xid)) for row, xid in db.session.execute(stmt).unique()]


def sync(actor: Actor, token: str | None = None, limit: int = DEFAULT_LIMIT) -> SyncPage:
    """What changed for ``actor`` since the cursor ``token`` (none: a first sync).

    Per kind up to ``limit`` rows: the incidents the actor may see (first sync: open ones
    and those changed in the last 30 days), the actor's tasks — assigned to them or, for a
    department handler, to their department — in any status (first sync: active ones), and
    all categories. ``has_more``: some kind filled its ``limit``; call again with the new
    cursor. Errors: 400 sync.invalid_cursor.
    """
    cursor = decode_cursor(actor, token) if token else _Cursor.start()
    # oldest transaction still running: everything written below it has finished
    xmin = int(db.session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")))
    server_time = utcnow()
    found, positions, first, has_more = {}, {}, "", False
    for kind, model in KINDS.items():
        in_first = kind in cursor.first
        rows = changed_rows(model, _scope(actor, kind, in_first), cursor.positions[kind], xmin, limit)
        found[kind] = [row for row, _ in rows]
        if len(rows) == limit:
            last_row, last_xid = rows[-1]
            positions[kind] = (last_xid, last_row.id)
            first += kind if in_first else ""
            has_more = True
        else:
            # caught up: start at xmin next time, but never behind where we already were
            # (this call's xmin may be lower than a position saved earlier)
            positions[kind] = max(cursor.positions[kind], (xmin, 0))
    return SyncPage(cursor=encode_cursor(actor, _Cursor(positions=positions, first=first)), has_more=has_more,
                    server_time=server_time, incidents=found["i"], tasks=found["t"], categories=found["c"])

