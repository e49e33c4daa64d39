"""token generation of a user, rotation time of a refresh token

Revision ID: 0008_token_generation
Revises: 0007_microgrid_gist
Create Date: 2026-11-29 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = "0008_token_generation"
down_revision = "0007_microgrid_gist"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('app_user', sa.Column('token_generation', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('refresh_token', sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column('refresh_token', 'rotated_at')
    op.drop_column('app_user', 'token_generation')
