"""Evaluation: the timeline's events by time (the cases something happened to in a period).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 22:50:00

"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.create_index('ix_incident_events_at', ['at'], unique=False)


def downgrade():
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.drop_index('ix_incident_events_at')
