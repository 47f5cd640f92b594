"""The cases under supervision (督办) by place: the street office's list of supervised cases
(``?supervised=true``) read every case of its street, closed ones included, through the
region-path index; a partial index holds only the supervised ones. Built CONCURRENTLY
outside the migration's transaction (docs/OPERATIONS.md, Upgrades), an INVALID leftover of
an interrupted build dropped first.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-24 07:45:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

NAME = 'ix_incidents_supervised_path'


def upgrade():
    with op.get_context().autocommit_block():
        invalid = sa.text("SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid")
        if op.get_bind().scalar(invalid, {'name': NAME}):
            op.drop_index(NAME, table_name='incidents', postgresql_concurrently=True)
        op.create_index(NAME, 'incidents', ['region_path'], postgresql_ops={'region_path': 'text_pattern_ops'},
                        postgresql_where=sa.text('supervised_at IS NOT NULL'), postgresql_concurrently=True,
                        if_not_exists=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index(NAME, table_name='incidents', postgresql_concurrently=True, if_exists=True)
