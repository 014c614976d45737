"""cases: priority (and why, and who set it by hand) and the response target running now (due_from, warn_at,
due_at, sla_state); an index to find a customer's recent cases (repeat contacts)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                      server_default='normal'))
        batch_op.add_column(sa.Column('priority_reasons', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('priority_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('due_from', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('warn_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('sla_state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False,
                                      server_default=''))
        batch_op.create_index(batch_op.f('ix_cases_warn_at'), ['warn_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_due_at'), ['due_at'], unique=False)
        batch_op.create_index('ix_cases_customer', ['platform', 'customer_id', 'opened_at'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.alter_column('priority', server_default=None)
        batch_op.alter_column('sla_state', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_customer')
        batch_op.drop_index(batch_op.f('ix_cases_due_at'))
        batch_op.drop_index(batch_op.f('ix_cases_warn_at'))
        for column in ('sla_state', 'due_at', 'warn_at', 'due_from', 'priority_by', 'priority_reasons', 'priority'):
            batch_op.drop_column(column)
