"""registrations wait for proof: pending bindings

Revision ID: 0004_pending_bindings
Revises: 0003_staff_channels
Create Date: 2026-12-01 21:45:00
"""

from alembic import op
import sqlalchemy as sa
import storage.models


revision = "0004_pending_bindings"
down_revision = "0003_staff_channels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sender_id", sa.String(length=128), nullable=False),
        sa.Column("sender_name", sa.String(length=100), nullable=True),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"],
                                name=op.f("fk_pending_bindings_household_id_households")),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"],
                                name=op.f("fk_pending_bindings_resident_id_residents")),
        sa.ForeignKeyConstraint(["decided_by"], ["staff.id"], name=op.f("fk_pending_bindings_decided_by_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_bindings")),
    )
    with op.batch_alter_table("pending_bindings", schema=None) as batch_op:
        batch_op.create_index("ix_pending_bindings_sender", ["channel", "sender_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_bindings", schema=None) as batch_op:
        batch_op.drop_index("ix_pending_bindings_sender")
    op.drop_table("pending_bindings")
