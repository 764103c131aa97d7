"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa
import upkeep.store.models
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_state',
    sa.Column('task_name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('last_sent_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('task_name', 'channel')
    )
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_prefix'), ['prefix'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('object_type', sa.String(length=50), nullable=False),
    sa.Column('object_id', sa.String(length=200), nullable=True),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_ts'), ['ts'], unique=False)

    op.create_table('instances',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('queues', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('started_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('info', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('records',
    sa.Column('domain', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('domain', 'key')
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_updated_at'), ['updated_at'], unique=False)

    op.create_table('scheduled_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('task_type', sa.String(length=200), nullable=False),
    sa.Column('schedule', sa.String(length=200), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('schedule_anchor', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('tiers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('concurrency', sa.String(length=16), nullable=False),
    sa.Column('misfire', sa.String(length=16), nullable=False),
    sa.Column('misfire_grace_seconds', sa.Integer(), nullable=False),
    sa.Column('locks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('windows', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('retry_backoff_seconds', sa.Float(), nullable=False),
    sa.Column('retry_backoff_max_seconds', sa.Float(), nullable=False),
    sa.Column('timeout_seconds', sa.Float(), nullable=True),
    sa.Column('jitter_seconds', sa.Float(), nullable=False),
    sa.Column('queue', sa.String(length=100), nullable=False),
    sa.Column('notify', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('expect_success_within_seconds', sa.Float(), nullable=True),
    sa.Column('ping_url', sa.String(length=500), nullable=True),
    sa.Column('managed_by', sa.String(length=8), nullable=False),
    sa.Column('file_spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('next_run_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('last_status', sa.String(length=16), nullable=True),
    sa.Column('last_outcome', sa.String(length=16), nullable=True),
    sa.Column('last_run_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_duration_seconds', sa.Float(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('created_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_scheduled_tasks_due', ['enabled', 'next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_scheduled_tasks_last_status'), ['last_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_scheduled_tasks_task_type'), ['task_type'], unique=False)

    op.create_table('silences',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('task_name', sa.String(length=200), nullable=True),
    sa.Column('channel', sa.String(length=200), nullable=True),
    sa.Column('until', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('task_name', sa.String(length=200), nullable=True),
    sa.Column('task_type', sa.String(length=200), nullable=False),
    sa.Column('requested_type', sa.String(length=200), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('retry_of', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('parent_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('confirm', sa.Boolean(), nullable=False),
    sa.Column('queue', sa.String(length=100), nullable=False),
    sa.Column('timeout_seconds', sa.Float(), nullable=True),
    sa.Column('max_retries', sa.Integer(), nullable=False),
    sa.Column('locks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('triggered_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('worker_host', sa.String(length=200), nullable=True),
    sa.Column('worker_pid', sa.Integer(), nullable=True),
    sa.Column('worker_pgid', sa.Integer(), nullable=True),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('progress_message', sa.Text(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['scheduled_tasks.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_finished', ['finished_at'], unique=False)
        batch_op.create_index('ix_runs_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_runs_task_created', ['task_id', 'created_at'], unique=False)
        batch_op.create_index('uq_runs_scheduled_slot', ['task_id', 'scheduled_for'], unique=True, sqlite_where=sa.text("origin = 'scheduled'"), postgresql_where=sa.text("origin = 'scheduled'"))

    op.create_table('run_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('ts', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'seq', name='uq_run_events_seq')
    )
    op.create_table('run_locks',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('acquired_at', upkeep.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('run_locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_locks_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('run_locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_locks_run_id'))

    op.drop_table('run_locks')
    op.drop_table('run_events')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('uq_runs_scheduled_slot', sqlite_where=sa.text("origin = 'scheduled'"), postgresql_where=sa.text("origin = 'scheduled'"))
        batch_op.drop_index('ix_runs_task_created')
        batch_op.drop_index('ix_runs_status_due')
        batch_op.drop_index('ix_runs_finished')

    op.drop_table('runs')
    op.drop_table('silences')
    with op.batch_alter_table('scheduled_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scheduled_tasks_task_type'))
        batch_op.drop_index(batch_op.f('ix_scheduled_tasks_last_status'))
        batch_op.drop_index('ix_scheduled_tasks_due')

    op.drop_table('scheduled_tasks')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_updated_at'))

    op.drop_table('records')
    op.drop_table('instances')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_ts'))

    op.drop_table('audit_log')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_prefix'))

    op.drop_table('api_keys')
    op.drop_table('alert_state')
