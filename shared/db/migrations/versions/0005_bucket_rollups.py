"""Bucket rollups: kpi_counts summed without the agent; kpi_counts/kpi_hist without team and agent.

``kpi_counts_by_team`` is keyed like ``kpi_counts`` minus ``agent``; ``kpi_counts_by_channel``/
``kpi_hist_by_channel`` like the detail tables minus ``team`` and ``agent``, with ``label``
right after ``tenant`` (see shared/db/schema.py for why, and why there is no histogram rollup
by team). The aggregator writes them in the same flush transaction as the detail rows; the
API reads the coarsest level that can answer.

The upgrade fills them from the detail rows already stored. It holds a SHARE lock on the
detail tables meanwhile, so no flush commits between the copy and the end of the migration;
an aggregator of the previous version that keeps running *after* the migration writes
detail rows only, so roll the aggregators out right after it (or run ``supportpulse replay``
to rebuild everything).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TEAM_KEY = ["tenant", "grain", "bucket", "metric", "channel", "team", "label"]
_CHANNEL_KEY = ["tenant", "label", "grain", "bucket", "metric", "channel"]


def _columns(*, team: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
    ]
    if team:
        columns.append(sa.Column("team", sa.Text(), nullable=False))
    columns.append(sa.Column("label", sa.Text(), nullable=False))
    return columns


def upgrade() -> None:
    op.create_table(
        "kpi_counts_by_team",
        *_columns(team=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(*_TEAM_KEY, name="kpi_counts_by_team_pkey"),
    )
    op.create_table(
        "kpi_counts_by_channel",
        *_columns(team=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint(*_CHANNEL_KEY, name="kpi_counts_by_channel_pkey"),
    )
    op.create_table(
        "kpi_hist_by_channel",
        *_columns(team=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_CHANNEL_KEY, "idx", name="kpi_hist_by_channel_pkey"),
    )
    op.execute("LOCK TABLE kpi_counts, kpi_hist IN SHARE MODE")
    op.execute(
        "INSERT INTO kpi_counts_by_team (tenant, grain, bucket, metric, channel, team, label, count, sum) "
        "SELECT tenant, grain, bucket, metric, channel, team, label, sum(count), sum(sum) FROM kpi_counts "
        "GROUP BY tenant, grain, bucket, metric, channel, team, label"
    )
    op.execute(
        "INSERT INTO kpi_counts_by_channel (tenant, label, grain, bucket, metric, channel, count, sum) "
        "SELECT tenant, label, grain, bucket, metric, channel, sum(count), sum(sum) FROM kpi_counts_by_team "
        "GROUP BY tenant, label, grain, bucket, metric, channel"
    )
    op.execute(
        "INSERT INTO kpi_hist_by_channel (tenant, label, grain, bucket, metric, channel, idx, count) "
        "SELECT tenant, label, grain, bucket, metric, channel, idx, sum(count) FROM kpi_hist "
        "GROUP BY tenant, label, grain, bucket, metric, channel, idx"
    )


def downgrade() -> None:
    op.drop_table("kpi_hist_by_channel")
    op.drop_table("kpi_counts_by_channel")
    op.drop_table("kpi_counts_by_team")
