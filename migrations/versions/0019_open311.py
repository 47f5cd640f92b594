"""The citizens' channel, Open311 (docs/OPEN311.md): client apps and their hashed keys, their
per-minute usage, the requests they sent (unlocated ones kept until placed), the updates they
posted; two kinds of message to supervisors (a citizen's report, a citizen's update).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24 05:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

KINDS = ['task', 'task_repush', 'task_handover', 'reminder', 'escalated_in', 'escalated_out', 'supervised',
         'returned', 'hotspot', 'export_done', 'dispatch_waiting', 'campaign_task', 'campaign_unassigned',
         'campaign_overdue']
CITIZEN_KINDS = ['citizen_report', 'citizen_update']


def _kinds(kinds):
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    op.drop_constraint(op.f('ck_notifications_kind'), 'notifications', type_='check')
    op.create_check_constraint(op.f('ck_notifications_kind'), 'notifications', f"kind IN ({listed})")


def upgrade():
    op.create_table('open311_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('contact', sa.String(length=200), nullable=True),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('rate_per_minute', sa.Integer(), server_default='60', nullable=False),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.Integer(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('rate_per_minute BETWEEN 1 AND 100000', name=op.f('ck_open311_clients_rate')),
    sa.ForeignKeyConstraint(['issued_by'], ['users.id'], name=op.f('fk_open311_clients_issued_by_users')),
    sa.ForeignKeyConstraint(['revoked_by'], ['users.id'], name=op.f('fk_open311_clients_revoked_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open311_clients')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_open311_clients_key_hash'))
    )
    op.create_table('open311_usage',
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['open311_clients.id'],
                            name=op.f('fk_open311_usage_client_id_open311_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('client_id', 'minute', name=op.f('pk_open311_usage'))
    )
    op.create_index('ix_open311_usage_minute', 'open311_usage', ['minute'], unique=False)
    op.create_table('open311_requests',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.UUID(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('answer', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=True),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('media_url', sa.String(length=2000), nullable=True),
    sa.Column('address_string', sa.String(length=300), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
              nullable=False),
    sa.Column('contact_name', sa.String(length=100), nullable=True),
    sa.Column('contact_phone', sa.String(length=32), nullable=True),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('placed_by', sa.Integer(), nullable=True),
    sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dismissed_by', sa.Integer(), nullable=True),
    sa.Column('dismiss_reason', sa.String(length=500), nullable=True),
    sa.CheckConstraint('incident_id IS NOT NULL OR address_string IS NOT NULL',
                       name=op.f('ck_open311_requests_located_or_addressed')),
    sa.CheckConstraint('char_length(description) <= 4000', name=op.f('ck_open311_requests_description_length')),
    sa.ForeignKeyConstraint(['client_id'], ['open311_clients.id'],
                            name=op.f('fk_open311_requests_client_id_open311_clients')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_open311_requests_incident_id_incidents')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'],
                            name=op.f('fk_open311_requests_category_id_categories')),
    sa.ForeignKeyConstraint(['placed_by'], ['users.id'], name=op.f('fk_open311_requests_placed_by_users')),
    sa.ForeignKeyConstraint(['dismissed_by'], ['users.id'], name=op.f('fk_open311_requests_dismissed_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open311_requests')),
    sa.UniqueConstraint('incident_id', name=op.f('uq_open311_requests_incident_id')),
    sa.UniqueConstraint('token', name=op.f('uq_open311_requests_token'))
    )
    op.create_index('uq_open311_requests_retry', 'open311_requests', ['client_id', 'request_hash'], unique=True,
                    postgresql_where=sa.text('request_hash IS NOT NULL'))
    op.create_index('ix_open311_requests_unlocated', 'open311_requests', ['received_at'], unique=False,
                    postgresql_where=sa.text('incident_id IS NULL AND dismissed_at IS NULL'))
    op.create_table('open311_updates',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('update_id', sa.String(length=100), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('answer', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['open311_clients.id'],
                            name=op.f('fk_open311_updates_client_id_open311_clients')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_open311_updates_incident_id_incidents')),
    sa.ForeignKeyConstraint(['event_id'], ['incident_events.id'],
                            name=op.f('fk_open311_updates_event_id_incident_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open311_updates'))
    )
    op.create_index('uq_open311_updates_client_update', 'open311_updates', ['client_id', 'update_id'], unique=True)
    op.create_index('ix_open311_updates_incident', 'open311_updates', ['incident_id'], unique=False)
    _kinds(KINDS + CITIZEN_KINDS)


def downgrade():
    listed = ", ".join(f"'{kind}'" for kind in CITIZEN_KINDS)
    op.execute(f"DELETE FROM outbox WHERE notification_id IN (SELECT id FROM notifications WHERE kind IN ({listed}))")
    op.execute(f"DELETE FROM notifications WHERE kind IN ({listed})")
    _kinds(KINDS)
    op.drop_index('ix_open311_updates_incident', table_name='open311_updates')
    op.drop_index('uq_open311_updates_client_update', table_name='open311_updates')
    op.drop_table('open311_updates')
    op.drop_index('ix_open311_requests_unlocated', table_name='open311_requests',
                  postgresql_where=sa.text('incident_id IS NULL AND dismissed_at IS NULL'))
    op.drop_index('uq_open311_requests_retry', table_name='open311_requests',
                  postgresql_where=sa.text('request_hash IS NOT NULL'))
    op.drop_table('open311_requests')
    op.drop_index('ix_open311_usage_minute', table_name='open311_usage')
    op.drop_table('open311_usage')
    op.drop_table('open311_clients')
