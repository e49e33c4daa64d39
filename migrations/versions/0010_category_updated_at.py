"""when an admin last changed a category, so the service list's date moves with it

Revision ID: 0010_category_updated_at
Revises: 0009_track_point_recorded_at
Create Date: 2026-12-03 13:30:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = "0010_category_updated_at"
down_revision = "0009_track_point_recorded_at"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('category', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column('category', 'updated_at')
