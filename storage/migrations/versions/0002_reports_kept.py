"""every report kept; escalations without a known household; 接龙 lines seen

Revision ID: 0002_reports_kept
Revises: 0001_initial
Create Date: 2026-12-01 21:20:00
"""

from alembic import op
import sqlalchemy as sa
import storage.models


revision = "0002_reports_kept"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_constraint("uq_checkins_household_id_person_date_slot", type_="unique")
        batch_op.add_column(sa.Column("source", sa.String(length=8), server_default="self", nullable=False))
        batch_op.add_column(sa.Column("reporter_label", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("staff_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_checkins_staff_id_staff"), "staff", ["staff_id"], ["id"])
        batch_op.create_index("ix_checkins_key", ["household_id", "person", "date", "slot"], unique=False)

    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.alter_column("household_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("grid_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("building_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sender_channel", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("sender_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("sender_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("reporter_label", sa.String(length=100), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_escalations_building_id_buildings"), "buildings",
                                    ["building_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_escalations_sender_id"), ["sender_id"], unique=False)

    op.create_table(
        "list_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["households.id"],
                                name=op.f("fk_list_lines_household_id_households")),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_messages.id"],
                                name=op.f("fk_list_lines_inbound_id_inbound_messages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_lines")),
        sa.UniqueConstraint("chat_id", "date", "digest", name=op.f("uq_list_lines_chat_id_date_digest")),
    )


def downgrade() -> None:
    op.drop_table("list_lines")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalations_sender_id"))
        batch_op.drop_constraint(batch_op.f("fk_escalations_building_id_buildings"), type_="foreignkey")
        for col in ("reporter_label", "subject", "sender_name", "sender_id", "sender_channel", "building_id"):
            batch_op.drop_column(col)
        batch_op.alter_column("grid_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("household_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_index("ix_checkins_key")
        batch_op.drop_constraint(batch_op.f("fk_checkins_staff_id_staff"), type_="foreignkey")
        for col in ("staff_id", "reporter_label", "source"):
            batch_op.drop_column(col)
        batch_op.create_unique_constraint("uq_checkins_household_id_person_date_slot",
                                          ["household_id", "person", "date", "slot"])
