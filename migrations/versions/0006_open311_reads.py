"""index for Open311's public list of requests

Revision ID: 0006_open311_reads
Revises: 0005_open_indexes
Create Date: 2026-11-28 14:10:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = "0006_open311_reads"
down_revision = "0005_open_indexes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_incident_open311_created', 'incident', ['created_at', 'id'], unique=False, postgresql_where=sa.text("source = 'open311'"), if_not_exists=True)


def downgrade():
    op.drop_index('ix_incident_open311_created', table_name='incident', postgresql_where=sa.text("source = 'open311'"))
