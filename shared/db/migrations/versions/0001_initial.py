"""Initial schema: KPI buckets and histograms, conversation state, consumer offsets, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_KEY = ["tenant", "grain", "bucket", "metric", "channel", "team", "agent", "label"]


def _bucket_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "kpi_counts",
        *_bucket_columns(),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, name="kpi_counts_pkey"),
    )
    op.create_table(
        "kpi_hist",
        *_bucket_columns(),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "idx", name="kpi_hist_pkey"),
    )
    op.create_table(
        "conversations",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("is_call", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "conversation_id"),
    )
    op.create_index(
        "conversations_due",
        "conversations",
        ["partition", "sla_due_at"],
        postgresql_where=sa.text("sla_due_at IS NOT NULL"),
    )
    op.create_index(
        "conversations_live",
        "conversations",
        ["tenant", "channel", "team"],
        postgresql_where=sa.text("NOT closed"),
    )
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer_group", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )
    op.create_table(
        "quarantined_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("quarantined_events")
    op.drop_table("consumer_offsets")
    op.drop_index("conversations_live", table_name="conversations")
    op.drop_index("conversations_due", table_name="conversations")
    op.drop_table("conversations")
    op.drop_table("kpi_hist")
    op.drop_table("kpi_counts")
