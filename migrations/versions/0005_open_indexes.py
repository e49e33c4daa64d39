"""partial indexes on open incidents, period indexes

Revision ID: 0005_open_indexes
Revises: 0004_redraw_audit
Create Date: 2026-11-28 12:36:55.098062
"""

import sqlalchemy as sa
from alembic import op


revision = "0005_open_indexes"
down_revision = "0004_redraw_audit"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_incident_created_at', 'incident', ['created_at'], unique=False, if_not_exists=True)
    op.create_index('ix_incident_open_location', 'incident', ['location'], unique=False, postgresql_using='gist', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"), if_not_exists=True)
    op.create_index('ix_incident_open_grid', 'incident', ['grid_id'], unique=False, postgresql_include=['status', 'deadline', 'category_id', 'community_id', 'town_id', 'district_id'], postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"), if_not_exists=True)
    op.create_index('ix_incident_open_town', 'incident', ['town_id'], unique=False, postgresql_include=['status', 'deadline', 'category_id', 'district_id'], postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"), if_not_exists=True)
    op.create_index('ix_incident_open_microgrid', 'incident', ['microgrid_id'], unique=False, postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"), if_not_exists=True)
    op.create_index('ix_incident_open_not_covered', 'incident', ['id'], unique=False, postgresql_where=sa.text("routing_method <> 'covered' AND status NOT IN ('rejected', 'duplicate', 'closed')"), if_not_exists=True)
    op.create_index('ix_patrol_started_at', 'patrol', ['started_at'], unique=False, if_not_exists=True)


def downgrade():
    op.drop_index('ix_patrol_started_at', table_name='patrol')
    op.drop_index('ix_incident_open_not_covered', table_name='incident', postgresql_where=sa.text("routing_method <> 'covered' AND status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_index('ix_incident_open_town', table_name='incident', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_index('ix_incident_open_grid', table_name='incident', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_index('ix_incident_open_microgrid', table_name='incident', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_index('ix_incident_open_location', table_name='incident', postgresql_using='gist', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_index('ix_incident_created_at', table_name='incident')
