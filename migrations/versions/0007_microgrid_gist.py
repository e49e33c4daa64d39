"""GiST index of the current micro-grids' boundaries

Revision ID: 0007_microgrid_gist
Revises: 0006_open311_reads
Create Date: 2026-11-28 14:40:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = "0007_microgrid_gist"
down_revision = "0006_open311_reads"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_area_current_microgrid_boundary', 'area', ['boundary'], unique=False, postgresql_using='gist', postgresql_where=sa.text("level = 'microgrid' AND retired_at IS NULL"), if_not_exists=True)


def downgrade():
    op.drop_index('ix_area_current_microgrid_boundary', table_name='area', postgresql_using='gist', postgresql_where=sa.text("level = 'microgrid' AND retired_at IS NULL"))
