"""Export jobs: large exports run by the worker, with progress (docs/STATS.md "Exports").

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 01:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'export_jobs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('lang', sa.String(length=2), nullable=False),
        sa.Column('filters', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('state', sa.String(length=16), server_default='queued', nullable=False),
        sa.Column('attempt', sa.SmallInteger(), server_default='0', nullable=False),
        sa.Column('rows_done', sa.Integer(), server_default='0', nullable=False),
        sa.Column('rows_total', sa.Integer(), nullable=True),
        sa.Column('error_code', sa.String(length=64), nullable=True),
        sa.Column('storage_key', sa.String(length=200), nullable=True),
        sa.Column('size_bytes', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('incidents', 'metrics')", name=op.f('ck_export_jobs_kind')),
        sa.CheckConstraint("format IN ('csv', 'xlsx')", name=op.f('ck_export_jobs_format')),
        sa.CheckConstraint("lang IN ('zh', 'en')", name=op.f('ck_export_jobs_lang')),
        sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed', 'expired')",
                           name=op.f('ck_export_jobs_state')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_export_jobs_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_export_jobs')),
    )
    op.create_index('ix_export_jobs_user', 'export_jobs', ['user_id', 'id'])
    op.create_index('ix_export_jobs_queued', 'export_jobs', ['id'], postgresql_where=sa.text("state = 'queued'"))
    op.create_index('ix_export_jobs_running', 'export_jobs', ['progress_at'],
                    postgresql_where=sa.text("state = 'running'"))
    op.create_index('ix_export_jobs_expiring', 'export_jobs', ['expires_at'],
                    postgresql_where=sa.text("state IN ('done', 'failed')"))


def downgrade():
    op.drop_index('ix_export_jobs_expiring', table_name='export_jobs')
    op.drop_index('ix_export_jobs_running', table_name='export_jobs')
    op.drop_index('ix_export_jobs_queued', table_name='export_jobs')
    op.drop_index('ix_export_jobs_user', table_name='export_jobs')
    op.drop_table('export_jobs')
