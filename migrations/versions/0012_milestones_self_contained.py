"""Evaluation: the milestones carry what the figures read of the incident now (status, deadline,
resolving level, category), the first acknowledgement (签收) and the last call-back with its
satisfaction, so that a period's figures read no other table for a case.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 01:20:00

"""
import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# the whole row of a case from the incident and its whole timeline
_REFRESH = """
CREATE OR REPLACE FUNCTION incident_milestones_refresh(case_id bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM incident_milestones WHERE incident_id = case_id;
    INSERT INTO incident_milestones (incident_id, region_path, reported_at, last_at, accepted_at, dispatched_at,
                                     resolved_at, closed_at, reworks, extensions, escalations, overdue_escalations,
                                     handled_levels, escalated_from, status, due_at, resolved_level, category_id,
                                     callback_at, satisfaction, acknowledged_at)
    SELECT i.id, i.region_path, i.reported_at, GREATEST(i.reported_at, max(e.at)),
           min(e.at) FILTER (WHERE e.action = 'accept'),
           min(e.at) FILTER (WHERE e.action = 'dispatch'),
           max(e.at) FILTER (WHERE e.action IN ('resolve', 'resolve_on_spot')),
           max(e.at) FILTER (WHERE e.action = 'verify'),
           count(*) FILTER (WHERE e.action = 'rework'),
           count(*) FILTER (WHERE e.action = 'approve_extension'),
           count(*) FILTER (WHERE e.action = 'escalate'),
           count(*) FILTER (WHERE e.action = 'escalate' AND e.actor_id IS NULL),
           COALESCE(array_agg(DISTINCT e.to_level) FILTER (WHERE e.action IN ('accept', 'escalate', 'return_down')),
                    '{}'),
           COALESCE(array_agg(DISTINCT e.from_level) FILTER (WHERE e.action = 'escalate' AND e.from_level IS NOT NULL),
                    '{}'),
           i.status, i.due_at, i.resolved_level, i.category_id, cb.at, cb.score,
           min(e.at) FILTER (WHERE e.action = 'acknowledge')
    FROM incidents i
    LEFT JOIN incident_events e ON e.incident_id = i.id
    LEFT JOIN LATERAL (
        SELECT c.at, CAST(c.data ->> 'satisfaction' AS smallint) AS score FROM incident_events c
        WHERE c.incident_id = i.id AND c.action = 'callback' AND c.data ->> 'satisfaction' ~ '^[0-9]{1,4}$'
        ORDER BY c.at DESC, c.id DESC LIMIT 1
    ) cb ON true
    WHERE i.id = case_id
    GROUP BY i.id, cb.at, cb.score;
$$;
"""

_TRIGGERS = """
CREATE OR REPLACE FUNCTION incident_milestones_reported() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO incident_milestones (incident_id, region_path, reported_at, last_at, status, due_at, resolved_level,
                                     category_id)
    VALUES (NEW.id, NEW.region_path, NEW.reported_at, NEW.reported_at, NEW.status, NEW.due_at, NEW.resolved_level,
            NEW.category_id)
    ON CONFLICT (incident_id) DO NOTHING;
    RETURN NULL;
END $$;

-- the incident changed: moved to another cell or its report time corrected, the row made
-- again; otherwise what the row copies of it (status, deadline, resolving level, category)
CREATE FUNCTION incident_milestones_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.region_path IS DISTINCT FROM NEW.region_path OR OLD.reported_at IS DISTINCT FROM NEW.reported_at THEN
        PERFORM incident_milestones_refresh(NEW.id);
    ELSE
        UPDATE incident_milestones SET status = NEW.status, due_at = NEW.due_at, resolved_level = NEW.resolved_level,
                                       category_id = NEW.category_id
        WHERE incident_id = NEW.id;
    END IF;
    RETURN NULL;
END $$;

-- events added, however many a statement inserts (the sweep inserts hundreds at once): each
-- case's row moved forward by them in one set-based update (first, last, counts, levels,
-- acknowledgement, call-back)
CREATE FUNCTION incident_milestones_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incident_milestones m SET
        last_at = GREATEST(m.last_at, n.last_at),
        accepted_at = LEAST(m.accepted_at, n.accepted_at),
        dispatched_at = LEAST(m.dispatched_at, n.dispatched_at),
        resolved_at = GREATEST(m.resolved_at, n.resolved_at),
        closed_at = GREATEST(m.closed_at, n.closed_at),
        reworks = m.reworks + n.reworks,
        extensions = m.extensions + n.extensions,
        escalations = m.escalations + n.escalations,
        overdue_escalations = m.overdue_escalations + n.overdue_escalations,
        handled_levels = CASE WHEN n.handled_levels IS NULL THEN m.handled_levels
                              ELSE ARRAY(SELECT DISTINCT l FROM unnest(m.handled_levels || n.handled_levels) AS l) END,
        escalated_from = CASE WHEN n.escalated_from IS NULL THEN m.escalated_from
                              ELSE ARRAY(SELECT DISTINCT l FROM unnest(m.escalated_from || n.escalated_from) AS l) END,
        callback_at = CASE WHEN n.callback_at >= COALESCE(m.callback_at, n.callback_at) THEN n.callback_at
                           ELSE m.callback_at END,
        satisfaction = CASE WHEN n.callback_at >= COALESCE(m.callback_at, n.callback_at) THEN n.satisfaction
                            ELSE m.satisfaction END,
        acknowledged_at = LEAST(m.acknowledged_at, n.acknowledged_at)
    FROM (
        SELECT e.incident_id, max(e.at) AS last_at,
               min(e.at) FILTER (WHERE e.action = 'accept') AS accepted_at,
               min(e.at) FILTER (WHERE e.action = 'dispatch') AS dispatched_at,
               max(e.at) FILTER (WHERE e.action IN ('resolve', 'resolve_on_spot')) AS resolved_at,
               max(e.at) FILTER (WHERE e.action = 'verify') AS closed_at,
               count(*) FILTER (WHERE e.action = 'rework') AS reworks,
               count(*) FILTER (WHERE e.action = 'approve_extension') AS extensions,
               count(*) FILTER (WHERE e.action = 'escalate') AS escalations,
               count(*) FILTER (WHERE e.action = 'escalate' AND e.actor_id IS NULL) AS overdue_escalations,
               array_agg(DISTINCT e.to_level) FILTER (WHERE e.action IN ('accept', 'escalate', 'return_down'))
                   AS handled_levels,
               array_agg(DISTINCT e.from_level) FILTER (WHERE e.action = 'escalate' AND e.from_level IS NOT NULL)
                   AS escalated_from,
               (array_agg(e.at ORDER BY e.at DESC, e.id DESC) FILTER (WHERE e.score IS NOT NULL))[1] AS callback_at,
               (array_agg(e.score ORDER BY e.at DESC, e.id DESC) FILTER (WHERE e.score IS NOT NULL))[1] AS satisfaction,
               min(e.at) FILTER (WHERE e.action = 'acknowledge') AS acknowledged_at
        FROM (SELECT *, CASE WHEN action = 'callback' AND data ->> 'satisfaction' ~ '^[0-9]{1,4}$'
                             THEN CAST(data ->> 'satisfaction' AS smallint) END AS score
              FROM new_events) e
        GROUP BY e.incident_id
    ) n
    WHERE m.incident_id = n.incident_id;
    -- a case without its row (written before the triggers, or by hand): made from its timeline
    PERFORM incident_milestones_refresh(c.incident_id)
    FROM (SELECT DISTINCT incident_id FROM new_events) c
    WHERE NOT EXISTS (SELECT 1 FROM incident_milestones m WHERE m.incident_id = c.incident_id);
    RETURN NULL;
END $$;

DROP TRIGGER incident_milestones_event ON incident_events;
DROP FUNCTION incident_milestones_event();
CREATE TRIGGER incident_milestones_events AFTER INSERT ON incident_events REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION incident_milestones_events();

DROP TRIGGER incident_milestones_moved ON incidents;
DROP FUNCTION incident_milestones_moved();
CREATE TRIGGER incident_milestones_changed
    AFTER UPDATE OF region_path, reported_at, status, due_at, resolved_level, category_id ON incidents
    FOR EACH ROW WHEN (OLD.region_path IS DISTINCT FROM NEW.region_path OR OLD.reported_at IS DISTINCT FROM NEW.reported_at
                       OR OLD.status IS DISTINCT FROM NEW.status OR OLD.due_at IS DISTINCT FROM NEW.due_at
                       OR OLD.resolved_level IS DISTINCT FROM NEW.resolved_level
                       OR OLD.category_id IS DISTINCT FROM NEW.category_id)
    EXECUTE FUNCTION incident_milestones_changed();
"""


def upgrade():
    for name, kind in (('status', sa.String(length=16)), ('due_at', sa.DateTime(timezone=True)),
                       ('resolved_level', sa.String(length=16)), ('category_id', sa.Integer()),
                       ('callback_at', sa.DateTime(timezone=True)), ('satisfaction', sa.SmallInteger()),
                       ('acknowledged_at', sa.DateTime(timezone=True))):
        op.add_column('incident_milestones', sa.Column(name, kind, nullable=True))
    op.execute("""
        UPDATE incident_milestones m SET status = i.status, due_at = i.due_at, resolved_level = i.resolved_level,
                                         category_id = i.category_id
        FROM incidents i WHERE i.id = m.incident_id
    """)
    op.execute("""
        UPDATE incident_milestones m SET callback_at = cb.at, satisfaction = cb.score
        FROM (SELECT DISTINCT ON (incident_id) incident_id, at, CAST(data ->> 'satisfaction' AS smallint) AS score
              FROM incident_events
              WHERE action = 'callback' AND data ->> 'satisfaction' ~ '^[0-9]{1,4}$'
              ORDER BY incident_id, at DESC, id DESC) cb
        WHERE cb.incident_id = m.incident_id
    """)
    op.execute("""
        UPDATE incident_milestones m SET acknowledged_at = ack.at
        FROM (SELECT incident_id, min(at) AS at FROM incident_events WHERE action = 'acknowledge' GROUP BY incident_id) ack
        WHERE ack.incident_id = m.incident_id
    """)
    op.alter_column('incident_milestones', 'status', nullable=False)
    op.alter_column('incident_milestones', 'category_id', nullable=False)
    op.execute(_REFRESH)
    op.execute(_TRIGGERS)
    op.drop_index('ix_incident_events_callbacks', table_name='incident_events',
                  postgresql_where=sa.text("action = 'callback'"))


def downgrade():
    op.create_index('ix_incident_events_callbacks', 'incident_events', ['at'], unique=False,
                    postgresql_where=sa.text("action = 'callback'"))
    for trigger, table in (('incident_milestones_corrected', 'incident_events'),
                           ('incident_milestones_events', 'incident_events'),
                           ('incident_milestones_changed', 'incidents'), ('incident_milestones_reported', 'incidents')):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in ('incident_milestones_corrected()', 'incident_milestones_events()', 'incident_milestones_changed()',
                     'incident_milestones_reported()', 'incident_milestones_refresh(bigint)'):
        op.execute(f"DROP FUNCTION {function}")
    for name in ('status', 'due_at', 'resolved_level', 'category_id', 'callback_at', 'satisfaction', 'acknowledged_at'):
        op.drop_column('incident_milestones', name)
    op.execute(_revision_0011()._FUNCTIONS)  # 0011's functions and triggers, as they were


def _revision_0011():
    path = Path(__file__).with_name('0011_incident_milestones.py')
    spec = importlib.util.spec_from_file_location('revision_0011', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
