"""case handling: levels, stage times, duplicates, rework

Revision ID: 0003_case_handling
Revises: 0002_intake
Create Date: 2026-11-28 11:45:00.134435
"""

import sqlalchemy as sa
from alembic import op


revision = "0003_case_handling"
down_revision = "0002_intake"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('incident', sa.Column('handling_unit', sa.String(length=100), nullable=True))
    op.add_column('incident', sa.Column('proposed_handler_id', sa.Integer(), nullable=True))
    op.add_column('incident', sa.Column('handling_level', sa.String(length=12), server_default='grid', nullable=False))
    op.add_column('incident', sa.Column('resolved_level', sa.String(length=12), nullable=True))
    op.add_column('incident', sa.Column('duplicate_of_id', sa.BigInteger(), nullable=True))
    op.add_column('incident', sa.Column('rework_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('incident', sa.Column('escalation_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('incident', sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('incident', sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('incident', sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('incident', sa.Column('handle_deadline', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_incident_open_deadline', 'incident', ['deadline'], unique=False, postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.create_foreign_key(op.f('fk_incident_duplicate_of_id_incident'), 'incident', 'incident', ['duplicate_of_id'], ['id'])
    op.create_foreign_key(op.f('fk_incident_proposed_handler_id_app_user'), 'incident', 'app_user', ['proposed_handler_id'], ['id'])


    # Alembic does not autogenerate CHECK constraints; these mirror gridgov/models/incident.py.
    op.create_check_constraint(
        op.f("ck_incident_handling_known"),
        "incident",
        "handling_level IN ('grid', 'community', 'town', 'district')",
    )
    op.create_check_constraint(
        op.f("ck_incident_resolved_level_known"),
        "incident",
        "resolved_level IS NULL OR resolved_level IN ('grid', 'community', 'town', 'district')",
    )
    op.create_check_constraint(
        op.f("ck_incident_not_own_dup"), "incident", "duplicate_of_id IS NULL OR duplicate_of_id <> id"
    )


def downgrade():
    op.drop_constraint(op.f("ck_incident_not_own_dup"), "incident", type_="check")
    op.drop_constraint(op.f("ck_incident_resolved_level_known"), "incident", type_="check")
    op.drop_constraint(op.f("ck_incident_handling_known"), "incident", type_="check")
    op.drop_constraint(op.f('fk_incident_proposed_handler_id_app_user'), 'incident', type_='foreignkey')
    op.drop_constraint(op.f('fk_incident_duplicate_of_id_incident'), 'incident', type_='foreignkey')
    op.drop_index('ix_incident_open_deadline', table_name='incident', postgresql_where=sa.text("status NOT IN ('rejected', 'duplicate', 'closed')"))
    op.drop_column('incident', 'handle_deadline')
    op.drop_column('incident', 'closed_at')
    op.drop_column('incident', 'resolved_at')
    op.drop_column('incident', 'accepted_at')
    op.drop_column('incident', 'escalation_count')
    op.drop_column('incident', 'rework_count')
    op.drop_column('incident', 'duplicate_of_id')
    op.drop_column('incident', 'resolved_level')
    op.drop_column('incident', 'handling_level')
    op.drop_column('incident', 'proposed_handler_id')
    op.drop_column('incident', 'handling_unit')
