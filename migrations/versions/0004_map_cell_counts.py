"""The map's counts per cell: a partial covering index of the open incidents by cell.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:55:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OPEN = ("status IN ('accepted', 'acknowledged', 'dispatched', 'in_progress', 'reported', 'resolved', 'rework', "
        "'suspended')")


def upgrade():
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_open_cell', ['region_id'], unique=False,
                              postgresql_where=sa.text(OPEN),
                              postgresql_include=['status', 'yellow_at', 'due_at', 'category_id', 'reported_at',
                                                  'region_path'])


def downgrade():
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_open_cell', postgresql_where=sa.text(OPEN))
