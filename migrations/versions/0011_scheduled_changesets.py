"""scheduled boundary change sets: status, the submitted set, when it was applied

Revision ID: 0011_scheduled_changesets
Revises: 0010_category_updated_at
Create Date: 2026-12-03 13:20:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision = "0011_scheduled_changesets"
down_revision = "0010_category_updated_at"
branch_labels = None
depends_on = None


def upgrade():
    # Every change set stored so far was applied when it was submitted.
    op.add_column('boundary_changeset', sa.Column('status', sa.String(length=12), server_default=sa.text("'applied'"), nullable=False))
    op.add_column('boundary_changeset', sa.Column('submitted', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('boundary_changeset', sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE boundary_changeset SET applied_at = created_at")
    op.create_check_constraint(op.f('ck_boundary_changeset_status_known'), 'boundary_changeset', "status IN ('applied', 'pending', 'cancelled', 'failed')")
    op.create_check_constraint(op.f('ck_boundary_changeset_pending_submitted'), 'boundary_changeset', "status <> 'pending' OR submitted IS NOT NULL")
    op.create_index('ix_boundary_changeset_pending', 'boundary_changeset', ['effective_from'], unique=False, postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    op.drop_index('ix_boundary_changeset_pending', table_name='boundary_changeset', postgresql_where=sa.text("status = 'pending'"))
    op.drop_constraint(op.f('ck_boundary_changeset_pending_submitted'), 'boundary_changeset', type_='check')
    op.drop_constraint(op.f('ck_boundary_changeset_status_known'), 'boundary_changeset', type_='check')
    op.drop_column('boundary_changeset', 'applied_at')
    op.drop_column('boundary_changeset', 'submitted')
    op.drop_column('boundary_changeset', 'status')
