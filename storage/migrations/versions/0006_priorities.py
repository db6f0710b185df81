"""priorities: alarms ahead of the inbox backlog, alerts ahead of the outbox backlog

Revision ID: 0006_priorities
Revises: 0005_staff_disabled
Create Date: 2026-12-02 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0006_priorities"
down_revision = "0005_staff_disabled"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), server_default="1", nullable=False))
        batch.drop_index("ix_inbound_messages_pending")
        batch.create_index("ix_inbound_messages_queue", ["status", "priority", "id"])
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), server_default="1", nullable=False))
        batch.create_index("ix_outbound_messages_queue", ["status", "priority", "id"])
        batch.create_index("ix_outbound_messages_recipient", ["to_user", "status"])
    # what is waiting now: alerts first
    op.execute("UPDATE outbound_messages SET priority = 0 WHERE kind = 'escalation'")


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_index("ix_outbound_messages_recipient")
        batch.drop_index("ix_outbound_messages_queue")
        batch.drop_column("priority")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_index("ix_inbound_messages_queue")
        batch.create_index("ix_inbound_messages_pending", ["status", "id"])
        batch.drop_column("priority")
