"""SLA policies and calendars in Postgres, per-conversation SLA clocks, and the breach outbox.

* ``sla_calendars``: a tenant's business-hours calendars, one row per name (an edit replaces
  the body; deadlines already recorded keep the calendar they were computed with until a replay).
* ``sla_policies``: one row per *version* of a named policy, never updated: editing adds a
  version, withdrawing adds an inactive one, so history keeps the version that applied.
  ``position`` orders the tenant's list (first match wins).
* ``conversations.sla_at_risk_at``: when the conversation's earliest running clock turns at risk
  (the live view's "at risk now").
* ``sla_outbox``: SLA transitions (breached, at risk) written in the aggregator's flush
  transaction and relayed to the breach topic afterwards, so none is lost or invented by a crash.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_calendars",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant", "name", name="sla_calendars_pkey"),
    )
    op.create_table(
        "sla_policies",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Double(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant", "name", "version", name="sla_policies_pkey"),
        sa.CheckConstraint("version >= 1", name="sla_policies_version_positive"),
    )
    op.add_column("conversations", sa.Column("sla_at_risk_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "sla_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("sla_outbox")
    op.drop_column("conversations", "sla_at_risk_at")
    op.drop_table("sla_policies")
    op.drop_table("sla_calendars")
