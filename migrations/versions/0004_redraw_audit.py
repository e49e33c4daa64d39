"""redraw routing, channels, audit, refresh tokens, integrations

Revision ID: 0004_redraw_audit
Revises: 0003_case_handling
Create Date: 2026-11-28 11:53:11.939723
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_redraw_audit"
down_revision = "0003_case_handling"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_event',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=64), server_default='', nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=200), server_default='', nullable=False),
    sa.Column('outcome', sa.String(length=16), server_default='ok', nullable=False),
    sa.Column('remote_addr', postgresql.INET(), nullable=True),
    sa.Column('user_agent', sa.String(length=300), server_default='', nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_audit_event_actor_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    op.create_index('ix_audit_event_actor', 'audit_event', ['actor_id', 'at'], unique=False)
    op.create_index('ix_audit_event_at', 'audit_event', ['at'], unique=False)
    op.create_table('integration_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('api_key_sha256', sa.String(length=64), nullable=False),
    sa.Column('service_user_id', sa.Integer(), nullable=False),
    sa.Column('jurisdiction_id', sa.String(length=100), server_default='', nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['service_user_id'], ['app_user.id'], name=op.f('fk_integration_client_service_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integration_client')),
    sa.UniqueConstraint('api_key_sha256', name=op.f('uq_integration_client_api_key_sha256')),
    sa.UniqueConstraint('name', name=op.f('uq_integration_client_name'))
    )
    op.create_table('refresh_token',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replaced_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_refresh_token_user_id_app_user')),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_refresh_token'))
    )
    op.create_index(op.f('ix_refresh_token_user_id'), 'refresh_token', ['user_id'], unique=False)
    op.create_index('ix_area_code_prefix', 'area', ['code'], unique=False, postgresql_ops={'code': 'text_pattern_ops'})
    op.add_column('incident', sa.Column('original_microgrid_id', sa.Integer(), nullable=True))
    op.add_column('incident', sa.Column('original_grid_id', sa.Integer(), nullable=True))
    op.add_column('incident', sa.Column('original_town_id', sa.Integer(), nullable=True))
    op.add_column('incident', sa.Column('original_routing_method', sa.String(length=10), nullable=True))
    op.add_column('incident', sa.Column('rerouted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('incident', sa.Column('external', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.create_foreign_key(op.f('fk_incident_original_microgrid_id_area'), 'incident', 'area', ['original_microgrid_id'], ['id'])
    op.create_foreign_key(op.f('fk_incident_original_grid_id_area'), 'incident', 'area', ['original_grid_id'], ['id'])
    op.create_foreign_key(op.f('fk_incident_original_town_id_area'), 'incident', 'area', ['original_town_id'], ['id'])
    op.create_index('ix_patrol_worker_started', 'patrol', ['worker_id', 'started_at', 'id'], unique=False)


    # Existing reports: their current routing is their original one.
    op.execute(
        "UPDATE incident SET original_microgrid_id = microgrid_id, original_grid_id = grid_id,"
        " original_town_id = town_id, original_routing_method = routing_method"
    )
    # Alembic does not autogenerate CHECK constraints; this mirrors gridgov/models/patrol.py.
    op.create_check_constraint(
        op.f("ck_track_point_crs_known"),
        "track_point",
        "input_crs IN ('wgs84', 'gcj02', 'bd09', 'cgcs2000')",
    )


def downgrade():
    op.drop_constraint(op.f("ck_track_point_crs_known"), "track_point", type_="check")
    op.drop_index('ix_patrol_worker_started', table_name='patrol')
    op.drop_constraint(op.f('fk_incident_original_town_id_area'), 'incident', type_='foreignkey')
    op.drop_constraint(op.f('fk_incident_original_grid_id_area'), 'incident', type_='foreignkey')
    op.drop_constraint(op.f('fk_incident_original_microgrid_id_area'), 'incident', type_='foreignkey')
    op.drop_column('incident', 'external')
    op.drop_column('incident', 'rerouted_at')
    op.drop_column('incident', 'original_routing_method')
    op.drop_column('incident', 'original_town_id')
    op.drop_column('incident', 'original_grid_id')
    op.drop_column('incident', 'original_microgrid_id')
    op.drop_index('ix_area_code_prefix', table_name='area', postgresql_ops={'code': 'text_pattern_ops'})
    op.drop_index(op.f('ix_refresh_token_user_id'), table_name='refresh_token')
    op.drop_table('refresh_token')
    op.drop_table('integration_client')
    op.drop_index('ix_audit_event_at', table_name='audit_event')
    op.drop_index('ix_audit_event_actor', table_name='audit_event')
    op.drop_table('audit_event')
