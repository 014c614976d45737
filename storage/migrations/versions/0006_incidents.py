"""incidents (storms) and cases.incident_id

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('feature', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column('lead_case_id', sa.Integer(), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('platforms', sa.JSON(), nullable=False),
        sa.Column('minutes', sa.JSON(), nullable=False),
        sa.Column('samples', sa.JSON(), nullable=False),
        sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('card_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('members_seq', sa.Integer(), nullable=False),
        sa.Column('reply_text', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('statement', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column('reply_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column('reply_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('reply_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('paced', sa.JSON(), nullable=False),
        sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column('resolved_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_feature'), ['feature'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_lead_case_id'), ['lead_case_id'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('incident_seq', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_incident_id'))
        batch_op.drop_column('incident_seq')
        batch_op.drop_column('incident_id')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_lead_case_id'))
        batch_op.drop_index(batch_op.f('ix_incidents_feature'))
    op.drop_table('incidents')
