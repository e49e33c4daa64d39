"""area tree, users, assignments, categories

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-28 11:34:04.484038
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    # The extension comes first: every boundary column is a PostGIS geometry.
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('worker', 'supervisor', 'admin')", name=op.f('ck_app_user_role_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_user'))
    )
    op.create_index('uq_app_user_username_lower', 'app_user', [sa.literal_column('lower(username)')], unique=True)
    op.create_table('area',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('level', sa.String(length=12), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('boundary', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(parent_id IS NULL) = (level = 'district')", name=op.f('ck_area_parent_iff_not_root')),
    sa.CheckConstraint("code ~ '^[0-9]+$'", name=op.f('ck_area_code_digits')),
    sa.CheckConstraint("length(code) = CASE level WHEN 'district' THEN 6 WHEN 'town' THEN 9 WHEN 'community' THEN 12 WHEN 'grid' THEN 15 WHEN 'microgrid' THEN 18 END", name=op.f('ck_area_code_length')),
    sa.CheckConstraint("level IN ('district', 'town', 'community', 'grid', 'microgrid')", name=op.f('ck_area_level_known')),
    sa.CheckConstraint('ST_IsValid(boundary)', name=op.f('ck_area_boundary_valid')),
    sa.ForeignKeyConstraint(['parent_id'], ['area.id'], name=op.f('fk_area_parent_id_area')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_area')),
    sa.UniqueConstraint('code', name=op.f('uq_area_code'))
    )
    op.create_index('ix_area_boundary', 'area', ['boundary'], unique=False, postgresql_using='gist')
    op.create_index('ix_area_level_code', 'area', ['level', 'code'], unique=False)
    op.create_index(op.f('ix_area_parent_id'), 'area', ['parent_id'], unique=False)
    op.create_table('category',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.Column('default_priority', sa.String(length=10), server_default='normal', nullable=False),
    sa.Column('time_limits', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("default_priority IN ('low', 'normal', 'high', 'urgent')", name=op.f('ck_category_priority_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_category')),
    sa.UniqueConstraint('code', name=op.f('uq_category_code'))
    )
    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.Column('duty', sa.String(length=16), nullable=False),
    sa.Column('active_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('active_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("duty IN ('grid_head', 'full_time', 'part_time', 'supervisor')", name=op.f('ck_assignment_duty_known')),
    sa.CheckConstraint('active_to IS NULL OR active_to > active_from', name=op.f('ck_assignment_active_period')),
    sa.ForeignKeyConstraint(['area_id'], ['area.id'], name=op.f('fk_assignment_area_id_area')),
    sa.ForeignKeyConstraint(['created_by_id'], ['app_user.id'], name=op.f('fk_assignment_created_by_id_app_user')),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], name=op.f('fk_assignment_user_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment'))
    )
    op.create_index(op.f('ix_assignment_area_id'), 'assignment', ['area_id'], unique=False)
    op.create_index(op.f('ix_assignment_user_id'), 'assignment', ['user_id'], unique=False)
    op.create_table('boundary_changeset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_boundary_changeset_actor_id_app_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_boundary_changeset'))
    )
    op.create_table('area_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('boundary', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('changeset_id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('ST_IsValid(boundary)', name=op.f('ck_area_revision_boundary_valid')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_area_revision_valid_period')),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], name=op.f('fk_area_revision_actor_id_app_user')),
    sa.ForeignKeyConstraint(['area_id'], ['area.id'], name=op.f('fk_area_revision_area_id_area')),
    sa.ForeignKeyConstraint(['changeset_id'], ['boundary_changeset.id'], name=op.f('fk_area_revision_changeset_id_boundary_changeset')),
    sa.ForeignKeyConstraint(['parent_id'], ['area.id'], name=op.f('fk_area_revision_parent_id_area')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_area_revision'))
    )
    op.create_index('ix_area_revision_area_valid_from', 'area_revision', ['area_id', 'valid_from'], unique=False)
    op.create_index('ix_area_revision_boundary', 'area_revision', ['boundary'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_area_revision_changeset_id'), 'area_revision', ['changeset_id'], unique=False)


def downgrade():
    # The postgis extension stays: other schemas on the server may use it.
    op.drop_index(op.f('ix_area_revision_changeset_id'), table_name='area_revision')
    op.drop_index('ix_area_revision_boundary', table_name='area_revision', postgresql_using='gist')
    op.drop_index('ix_area_revision_area_valid_from', table_name='area_revision')
    op.drop_table('area_revision')
    op.drop_table('boundary_changeset')
    op.drop_index(op.f('ix_assignment_user_id'), table_name='assignment')
    op.drop_index(op.f('ix_assignment_area_id'), table_name='assignment')
    op.drop_table('assignment')
    op.drop_table('category')
    op.drop_index(op.f('ix_area_parent_id'), table_name='area')
    op.drop_index('ix_area_level_code', table_name='area')
    op.drop_index('ix_area_boundary', table_name='area', postgresql_using='gist')
    op.drop_table('area')
    op.drop_index('uq_app_user_username_lower', table_name='app_user')
    op.drop_table('app_user')
