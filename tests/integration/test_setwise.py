"""Rows sent as one JSON document (``services.setwise``) arrive as they left: awkward
text, nulls, instants with their zone, UUIDs and nested JSON, typed as the table's columns."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from server.extensions import db as _db
from server.models import Incident, IncidentEvent, OutboxMessage
from server.services.setwise import insert_rows, rows_of
from tests.builders import build_tree
from tests.incident_builders import make_category, make_incident

def an_incident(tree) -> Incident:
    leaf = make_category("9901", make_category("99"))
    return make_incident(leaf, tree["G1"], tree["grid_worker"], address="原地址")


AWKWARD = ['quote " backslash \\ brace { } comma , semicolon ;', "换行\n制表\t「引号」", "", "NULL", "'single'"]


def test_rows_round_trip_through_one_json_document(db):
    tree = build_tree()
    incident = an_incident(tree)
    at = datetime(2026, 11, 23, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    rows = [{"incident_id": incident.id, "at": at, "actor_id": None, "action": "remind", "from_status": "accepted",
             "to_status": "accepted", "from_level": "grid", "to_level": "grid", "note": note,
             "data": {"note": note, "list": [1, None, {"深": True}]}} for note in AWKWARD + [None]]
    ids = _db.session.scalars(insert_rows(IncidentEvent.__table__, rows).returning(IncidentEvent.id)).all()
    back = _db.session.scalars(select(IncidentEvent).where(IncidentEvent.id.in_(ids)).order_by(IncidentEvent.id))
    assert [(e.note, e.data, e.at) for e in back] == [(r["note"], r["data"], at) for r in rows]


def test_an_update_from_the_set_changes_exactly_its_rows(db):
    tree = build_tree()
    leaf = make_category("9901", make_category("99"))
    first, second, untouched = (make_incident(leaf, tree["G1"], tree["grid_worker"], address="原地址")
                                for _ in range(3))
    message_id = uuid.uuid4()
    table = Incident.__table__
    new = rows_of(table, ["id", "address"], [{"id": first.id, "address": AWKWARD[0]},
                                             {"id": second.id, "address": None}])
    assert _db.session.execute(update(table).where(table.c.id == new.c.id).values(address=new.c.address)
                               ).rowcount == 2
    _db.session.expire_all()
    assert (first.address, second.address, untouched.address) == (AWKWARD[0], None, "原地址")
    uuids = rows_of(OutboxMessage.__table__, ["message_id"], [{"message_id": message_id}])
    assert _db.session.scalar(select(uuids.c.message_id)) == message_id
