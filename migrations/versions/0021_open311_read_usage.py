"""Anonymous Open311 reads counted per client address and minute, for their rate limit
(docs/OPEN311.md, docs/SECURITY.md): an UNLOGGED table, like a cache — counting writes no WAL,
and a count lost in a crash costs nothing.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-24 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('open311_read_usage',
    sa.Column('client_ip', sa.String(length=64), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('client_ip', 'minute', name=op.f('pk_open311_read_usage')),
    prefixes=['UNLOGGED'],
    )
    op.create_index('ix_open311_read_usage_minute', 'open311_read_usage', ['minute'], unique=False)


def downgrade():
    op.drop_index('ix_open311_read_usage_minute', table_name='open311_read_usage')
    op.drop_table('open311_read_usage')
