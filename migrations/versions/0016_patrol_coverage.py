"""Patrol coverage (docs/FIELD.md): each grid cell's coverage per local day, the days whose
points changed since they were computed, and the indexes that find a day's patrols.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('patrol_coverage',
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.Column('minutes', sa.Float(), nullable=False),
    sa.Column('metres', sa.Float(), nullable=False),
    sa.Column('workers', sa.Integer(), nullable=False),
    sa.Column('patrols', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('share >= 0 AND share <= 1', name=op.f('ck_patrol_coverage_share')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_patrol_coverage_region_id_regions')),
    sa.PrimaryKeyConstraint('region_id', 'day', name=op.f('pk_patrol_coverage'))
    )
    op.create_index('ix_patrol_coverage_day', 'patrol_coverage', ['day'], unique=False)
    op.create_table('patrol_coverage_marks',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('patrol_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrols.id'], name=op.f('fk_patrol_coverage_marks_patrol_id_patrols'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'patrol_id', name=op.f('pk_patrol_coverage_marks'))
    )
    op.create_index('ix_patrols_ended_at', 'patrols', ['ended_at'], unique=False)
    op.create_index('ix_patrols_on_started', 'patrols', ['started_at'], unique=False,
                    postgresql_where=sa.text('ended_at IS NULL'))


def downgrade():
    op.drop_index('ix_patrols_on_started', table_name='patrols', postgresql_where=sa.text('ended_at IS NULL'))
    op.drop_index('ix_patrols_ended_at', table_name='patrols')
    op.drop_table('patrol_coverage_marks')
    op.drop_index('ix_patrol_coverage_day', table_name='patrol_coverage')
    op.drop_table('patrol_coverage')
