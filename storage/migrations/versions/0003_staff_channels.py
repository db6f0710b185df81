"""staff reachable on several channels; escalation alerts tied to their escalation

Revision ID: 0003_staff_channels
Revises: 0002_reports_kept
Create Date: 2026-12-01 22:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003_staff_channels"
down_revision = "0002_reports_kept"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alt_channels", sa.JSON(), server_default="[]", nullable=False))

    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("escalation_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbound_messages_escalation_id"), ["escalation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_messages_escalation_id"))
        batch_op.drop_column("escalation_id")

    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_column("alt_channels")
