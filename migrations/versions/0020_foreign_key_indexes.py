"""Indexes under the foreign keys that rows are looked up or deleted by: the cases merged
into a case, an incident's notifications and idempotency keys, a task's notifications, a
device's pushes. A device's pushes go with it (signing out on a phone that was once pushed
to no longer fails on the outbox's key).

Nothing here stops reports or pushes being written on a live database (docs/OPERATIONS.md,
Upgrades): the new key is added NOT VALID (a moment's lock, no scan) and validated after the
commit, which reads the outbox under a lock that lets writes go on; the indexes are built
CONCURRENTLY outside the migration's transaction, an INVALID one left by an interrupted
build dropped first, so the migration can simply be run again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-24 06:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

INDEXES = (
    # name, table, columns, partial
    ('ix_incidents_merged_into', 'incidents', ['merged_into_id'], 'merged_into_id IS NOT NULL'),
    ('ix_notifications_incident', 'notifications', ['incident_id'], 'incident_id IS NOT NULL'),
    ('ix_notifications_task', 'notifications', ['task_id'], 'task_id IS NOT NULL'),
    ('ix_idempotency_keys_incident', 'idempotency_keys', ['incident_id'], None),
    ('ix_outbox_device', 'outbox', ['device_id'], None),
)


def upgrade():
    op.drop_constraint('fk_outbox_device_id_devices', 'outbox', type_='foreignkey')
    op.create_foreign_key('fk_outbox_device_id_devices', 'outbox', 'devices', ['device_id'], ['id'],
                          ondelete='CASCADE', postgresql_not_valid=True)
    with op.get_context().autocommit_block():
        op.execute('ALTER TABLE outbox VALIDATE CONSTRAINT fk_outbox_device_id_devices')
        invalid = sa.text("SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid")
        for name, table, columns, where in INDEXES:
            if op.get_bind().scalar(invalid, {'name': name}):
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True,
                            **({'postgresql_where': where} if where else {}))


def downgrade():
    with op.get_context().autocommit_block():
        for name, table, _columns, _where in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    op.drop_constraint('fk_outbox_device_id_devices', 'outbox', type_='foreignkey')
    op.create_foreign_key('fk_outbox_device_id_devices', 'outbox', 'devices', ['device_id'], ['id'])
