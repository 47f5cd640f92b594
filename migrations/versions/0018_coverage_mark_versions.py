"""Coverage marks carry a version: a batch bumps it, a computation deletes only the marks it
read unchanged, at its end, so GPS batches never wait for a day's computation (docs/FIELD.md
"Coverage").

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-24 04:15:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('patrol_coverage_marks', sa.Column('version', sa.BigInteger(), server_default='1', nullable=False))


def downgrade():
    op.drop_column('patrol_coverage_marks', 'version')
