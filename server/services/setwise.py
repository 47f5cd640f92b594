"""Many rows as one set in one statement: the sweep's writes.

``rows_of(table, columns, rows)`` is ``SELECT … FROM jsonb_to_recordset(:rows) AS v(column
type, …)``: the rows travel as one JSON document, typed on arrival as the table's columns.
The statement's text is the same whatever the number of rows, so neither psycopg nor
PostgreSQL parse a statement per batch size (as a multi-row VALUES would make them), and
one JSON string is far cheaper to send than an array literal per column, whose every
element psycopg escapes. ``INSERT … SELECT`` and ``UPDATE … FROM`` take it as their source.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Table, Text, bindparam, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert


def _plain(value):
    """JSON for what ``json`` does not know: instants and days in ISO 8601, UUIDs as text."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form here")


def rows_of(table: Table, columns: Sequence[str], rows: Sequence[dict], *, name: str = "v"):
    """``rows`` (dicts with every one of ``columns``) as a subquery ``name`` with those columns."""
    assert rows, "an empty set needs no statement"
    document = json.dumps([{c: row[c] for c in columns} for row in rows], default=_plain, ensure_ascii=False)
    records = func.jsonb_to_recordset(cast(bindparam(f"{name}_rows", document, type_=Text), JSONB))
    typed = records.table_valued(*[column(c, table.c[c].type) for c in columns]).render_derived(
        name=name, with_types=True)
    return select(typed).subquery(name)


def insert_rows(table: Table, rows: Sequence[dict]):
    """``INSERT INTO table (…) SELECT … FROM jsonb_to_recordset(…)`` of ``rows`` (dicts with the same keys)."""
    columns = list(rows[0])
    source = rows_of(table, columns, rows)
    return insert(table).from_select(columns, select(*[source.c[c] for c in columns]))
