"""Evaluation: each case's milestones kept from its timeline by triggers (incident_milestones),
so that a period's figures read one row a case, not every case's whole timeline; an index of a
period's call-backs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 01:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

# the milestones of the cases ``which`` picks, from their whole timelines (a str.format template)
_FROM_TIMELINE = """
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
                '{{}}'),
       COALESCE(array_agg(DISTINCT e.from_level) FILTER (WHERE e.action = 'escalate' AND e.from_level IS NOT NULL),
                '{{}}')
FROM incidents i LEFT JOIN incident_events e ON e.incident_id = i.id
WHERE {which}
GROUP BY i.id
"""
_COLUMNS = """(incident_id, region_path, reported_at, last_at, accepted_at, dispatched_at, resolved_at, closed_at,
               reworks, extensions, escalations, overdue_escalations, handled_levels, escalated_from)"""

_FUNCTIONS = f"""
CREATE FUNCTION incident_milestones_refresh(case_id bigint) RETURNS void LANGUAGE sql AS $$
    DELETE FROM incident_milestones WHERE incident_id = case_id;
    INSERT INTO incident_milestones {_COLUMNS}
    {_FROM_TIMELINE.format(which="i.id = case_id")};
$$;

-- a new incident: its row, with no milestone yet
CREATE FUNCTION incident_milestones_reported() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO incident_milestones (incident_id, region_path, reported_at, last_at)
    VALUES (NEW.id, NEW.region_path, NEW.reported_at, NEW.reported_at)
    ON CONFLICT (incident_id) DO NOTHING;
    RETURN NULL;
END $$;

-- an incident moved to another cell, or its report time corrected: its row made again
CREATE FUNCTION incident_milestones_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM incident_milestones_refresh(NEW.id);
    RETURN NULL;
END $$;

-- an event added: the row moved forward by it (the first accept and dispatch, the last
-- resolve and verify, the counts, the levels handled and escalated from)
CREATE FUNCTION incident_milestones_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE incident_milestones m SET
        last_at = GREATEST(m.last_at, NEW.at),
        accepted_at = CASE WHEN NEW.action = 'accept' THEN LEAST(m.accepted_at, NEW.at) ELSE m.accepted_at END,
        dispatched_at = CASE WHEN NEW.action = 'dispatch' THEN LEAST(m.dispatched_at, NEW.at) ELSE m.dispatched_at END,
        resolved_at = CASE WHEN NEW.action IN ('resolve', 'resolve_on_spot') THEN GREATEST(m.resolved_at, NEW.at)
                           ELSE m.resolved_at END,
        closed_at = CASE WHEN NEW.action = 'verify' THEN GREATEST(m.closed_at, NEW.at) ELSE m.closed_at END,
        reworks = m.reworks + (NEW.action = 'rework')::int,
        extensions = m.extensions + (NEW.action = 'approve_extension')::int,
        escalations = m.escalations + (NEW.action = 'escalate')::int,
        overdue_escalations = m.overdue_escalations + (NEW.action = 'escalate' AND NEW.actor_id IS NULL)::int,
        handled_levels = CASE WHEN NEW.action IN ('accept', 'escalate', 'return_down')
                                   AND NOT NEW.to_level = ANY(m.handled_levels)
                              THEN m.handled_levels || NEW.to_level ELSE m.handled_levels END,
        escalated_from = CASE WHEN NEW.action = 'escalate' AND NEW.from_level IS NOT NULL
                                   AND NOT NEW.from_level = ANY(m.escalated_from)
                              THEN m.escalated_from || NEW.from_level ELSE m.escalated_from END
    WHERE m.incident_id = NEW.incident_id;
    IF NOT FOUND THEN
        PERFORM incident_milestones_refresh(NEW.incident_id);
    END IF;
    RETURN NULL;
END $$;

-- an event corrected or removed: the row made again from the whole timeline
CREATE FUNCTION incident_milestones_corrected() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM incident_milestones_refresh(OLD.incident_id);
    IF TG_OP = 'UPDATE' AND NEW.incident_id <> OLD.incident_id THEN
        PERFORM incident_milestones_refresh(NEW.incident_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER incident_milestones_reported AFTER INSERT ON incidents
    FOR EACH ROW EXECUTE FUNCTION incident_milestones_reported();
CREATE TRIGGER incident_milestones_moved AFTER UPDATE OF region_path, reported_at ON incidents
    FOR EACH ROW WHEN (OLD.region_path IS DISTINCT FROM NEW.region_path OR OLD.reported_at IS DISTINCT FROM NEW.reported_at)
    EXECUTE FUNCTION incident_milestones_moved();
CREATE TRIGGER incident_milestones_event AFTER INSERT ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_milestones_event();
CREATE TRIGGER incident_milestones_corrected AFTER UPDATE OR DELETE ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_milestones_corrected();
"""


def upgrade():
    op.create_table(
        'incident_milestones',
        sa.Column('incident_id', sa.BigInteger(), nullable=False),
        sa.Column('region_path', sa.String(length=512), nullable=False),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reworks', sa.Integer(), server_default='0', nullable=False),
        sa.Column('extensions', sa.Integer(), server_default='0', nullable=False),
        sa.Column('escalations', sa.Integer(), server_default='0', nullable=False),
        sa.Column('overdue_escalations', sa.Integer(), server_default='0', nullable=False),
        sa.Column('handled_levels', postgresql.ARRAY(sa.String(length=16)), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.Column('escalated_from', postgresql.ARRAY(sa.String(length=16)), server_default=sa.text("'{}'"),
                  nullable=False),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_milestones_incident_id_incidents'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('incident_id', name=op.f('pk_incident_milestones')),
    )
    # every case's row from its timeline so far, then the index and the triggers that keep them
    op.execute(f"INSERT INTO incident_milestones {_COLUMNS} {_FROM_TIMELINE.format(which='true')}")
    op.create_index('ix_incident_milestones_region', 'incident_milestones', ['region_path', 'last_at'], unique=False,
                    postgresql_ops={'region_path': 'text_pattern_ops'})
    op.execute(_FUNCTIONS)
    op.create_index('ix_incident_events_callbacks', 'incident_events', ['at'], unique=False,
                    postgresql_where=sa.text("action = 'callback'"))


def downgrade():
    op.drop_index('ix_incident_events_callbacks', table_name='incident_events',
                  postgresql_where=sa.text("action = 'callback'"))
    for trigger, table in (('incident_milestones_corrected', 'incident_events'),
                           ('incident_milestones_event', 'incident_events'),
                           ('incident_milestones_moved', 'incidents'), ('incident_milestones_reported', 'incidents')):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in ('incident_milestones_corrected()', 'incident_milestones_event()', 'incident_milestones_moved()',
                     'incident_milestones_reported()', 'incident_milestones_refresh(bigint)'):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_index('ix_incident_milestones_region', table_name='incident_milestones')
    op.drop_table('incident_milestones')
