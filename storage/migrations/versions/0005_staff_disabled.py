"""staff can be disabled without re-importing the roster

Revision ID: 0005_staff_disabled
Revises: 0004_pending_bindings
Create Date: 2026-12-01 22:30:00
"""

from alembic import op
import sqlalchemy as sa
import storage.models


revision = "0005_staff_disabled"
down_revision = "0004_pending_bindings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("disabled_at", storage.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("disabled_at")
