"""when each track point was received, so late ones can be left out of indicators

Revision ID: 0009_track_point_recorded_at
Revises: 0008_token_generation
Create Date: 2026-12-03 09:30:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = "0009_track_point_recorded_at"
down_revision = "0008_token_generation"
branch_labels = None
depends_on = None


def upgrade():
    # Added without a default first, so the points already stored keep NULL ("before this was
    # recorded") instead of all getting the time of the migration; new rows get now().
    op.add_column('track_point', sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True))
    op.alter_column('track_point', 'recorded_at', server_default=sa.text('now()'))


def downgrade():
    op.drop_column('track_point', 'recorded_at')
