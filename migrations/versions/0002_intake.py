"""incidents, timeline events, photos, patrols

Revision ID: 0002_intake
Revises: 0001_foundation
Create Date: 2026-11-28 11:38:03.073511
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0002_intake"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('patrol',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('length_m', sa.Float(), nullable=True),
    sa.Column('microgrids_assigned', sa.Integer(), nullable=True),
    sa.Column('microgrids_visited', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['worker_id'], ['app_user.id'], name=op.f('fk_patrol_worker_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patrol')),
    sa.UniqueConstraint('worker_id', 'client_id', name='uq_patrol_worker_client')
    )
    op.create_table('incident',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), server_default='phone', nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resolved_on_site', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('patrol_id', sa.BigInteger(), nullable=True),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('input_lon', sa.Float(), nullable=False),
    sa.Column('input_lat', sa.Float(), nullable=False),
    sa.Column('input_crs', sa.String(length=10), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('routing_method', sa.String(length=10), nullable=False),
    sa.Column('routing_distance_m', sa.Float(), server_default=sa.text('0'), nullable=False),
    sa.Column('routing_candidates', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('microgrid_id', sa.Integer(), nullable=True),
    sa.Column('grid_id', sa.Integer(), nullable=True),
    sa.Column('community_id', sa.Integer(), nullable=True),
    sa.Column('town_id', sa.Integer(), nullable=True),
    sa.Column('district_id', sa.Integer(), nullable=True),
    sa.Column('handler_id', sa.Integer(), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(routing_method = 'unrouted') = (grid_id IS NULL)", name=op.f('ck_incident_routed_iff_grid')),
    sa.CheckConstraint("input_crs IN ('wgs84', 'gcj02', 'bd09', 'cgcs2000')", name=op.f('ck_incident_crs_known')),
    sa.CheckConstraint("routing_method IN ('covered', 'nearest', 'unrouted')", name=op.f('ck_incident_routing_known')),
    sa.CheckConstraint("status IN ('reported', 'accepted', 'rejected', 'duplicate', 'dispatched', 'in_progress', 'resolved', 'verified', 'returned', 'closed')", name=op.f('ck_incident_status_known')),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], name=op.f('fk_incident_category_id_category')),
    sa.ForeignKeyConstraint(['community_id'], ['area.id'], name=op.f('fk_incident_community_id_area')),
    sa.ForeignKeyConstraint(['district_id'], ['area.id'], name=op.f('fk_incident_district_id_area')),
    sa.ForeignKeyConstraint(['grid_id'], ['area.id'], name=op.f('fk_incident_grid_id_area')),
    sa.ForeignKeyConstraint(['handler_id'], ['app_user.id'], name=op.f('fk_incident_handler_id_app_user')),
    sa.ForeignKeyConstraint(['microgrid_id'], ['area.id'], name=op.f('fk_incident_microgrid_id_area')),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrol.id'], name=op.f('fk_incident_patrol_id_patrol')),
    sa.ForeignKeyConstraint(['reporter_id'], ['app_user.id'], name=op.f('fk_incident_reporter_id_app_user')),
    sa.ForeignKeyConstraint(['town_id'], ['area.id'], name=op.f('fk_incident_town_id_area')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident')),
    sa.UniqueConstraint('reporter_id', 'client_id', name='uq_incident_reporter_client')
    )
    op.create_index('ix_incident_grid_status', 'incident', ['grid_id', 'status'], unique=False)
    op.create_index('ix_incident_handler', 'incident', ['handler_id', 'status'], unique=False)
    op.create_index('ix_incident_location', 'incident', ['location'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_incident_patrol_id'), 'incident', ['patrol_id'], unique=False)
    op.create_index('ix_incident_reporter', 'incident', ['reporter_id', 'id'], unique=False)
    op.create_index('ix_incident_town_status', 'incident', ['town_id', 'status'], unique=False)
    op.create_table('track_point',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('patrol_id', sa.BigInteger(), nullable=False),
    sa.Column('t', sa.DateTime(timezone=True), nullable=False),
    sa.Column('location', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('input_lon', sa.Float(), nullable=False),
    sa.Column('input_lat', sa.Float(), nullable=False),
    sa.Column('input_crs', sa.String(length=10), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrol.id'], name=op.f('fk_track_point_patrol_id_patrol'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_track_point')),
    sa.UniqueConstraint('patrol_id', 't', name='uq_track_point_patrol_t')
    )
    op.create_index('ix_track_point_location', 'track_point', ['location'], unique=False, postgresql_using='gist')
    op.create_table('incident_event',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_incident_event_actor_id_app_user')),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_incident_event_incident_id_incident')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_event'))
    )
    op.create_index('ix_incident_event_incident', 'incident_event', ['incident_id', 'id'], unique=False)
    op.create_table('photo',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('uploader_id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('storage_path', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], name=op.f('fk_photo_incident_id_incident')),
    sa.ForeignKeyConstraint(['uploader_id'], ['app_user.id'], name=op.f('fk_photo_uploader_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_photo'))
    )
    op.create_index(op.f('ix_photo_incident_id'), 'photo', ['incident_id'], unique=False)
    op.create_index(op.f('ix_photo_uploader_id'), 'photo', ['uploader_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_photo_uploader_id'), table_name='photo')
    op.drop_index(op.f('ix_photo_incident_id'), table_name='photo')
    op.drop_table('photo')
    op.drop_index('ix_incident_event_incident', table_name='incident_event')
    op.drop_table('incident_event')
    op.drop_index('ix_track_point_location', table_name='track_point', postgresql_using='gist')
    op.drop_table('track_point')
    op.drop_index('ix_incident_town_status', table_name='incident')
    op.drop_index('ix_incident_reporter', table_name='incident')
    op.drop_index(op.f('ix_incident_patrol_id'), table_name='incident')
    op.drop_index('ix_incident_location', table_name='incident', postgresql_using='gist')
    op.drop_index('ix_incident_handler', table_name='incident')
    op.drop_index('ix_incident_grid_status', table_name='incident')
    op.drop_table('incident')
    op.drop_table('patrol')
