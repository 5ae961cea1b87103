"""The tables, as SQLAlchemy Core metadata (the migrations create them; queries use these).

Buckets are additive: a row holds the summed count and sum of one measure for one
(tenant, grain, bucket start, channel, team/queue, agent, label); ``label`` is '' for the
row that counts every conversation once, and each label of a conversation gets a row of
its own besides. Grains are minute (0), hour (1) and UTC day (2).

Rollups, written in the same flush transaction as the detail rows, hold the same sums with
dimensions dropped: ``kpi_counts_by_team`` without the agent, ``kpi_counts_by_channel`` and
``kpi_hist_by_channel`` without the team and the agent. A query reads the coarsest level that
still has every column it filters or groups on (services/api/kpis/repository.py): a day of
count buckets for one tenant is hundreds of thousands of detail rows at 10 teams × 50 agents,
and a few thousand by channel.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

GRAIN_MINUTE: Final = 0
GRAIN_HOUR: Final = 1
GRAIN_DAY: Final = 2
GRAIN_SECONDS: Final = {GRAIN_MINUTE: 60, GRAIN_HOUR: 3600, GRAIN_DAY: 86400}

metadata = MetaData()

_BUCKET_KEY = ("tenant", "grain", "bucket", "metric", "channel", "team", "agent", "label")


def _bucket_columns() -> list[Column[object]]:
    return [
        Column("tenant", Text, nullable=False),
        Column("grain", SmallInteger, nullable=False),
        Column("bucket", DateTime(timezone=True), nullable=False),
        Column("metric", Text, nullable=False),
        Column("channel", Text, nullable=False),
        Column("team", Text, nullable=False),
        Column("agent", Text, nullable=False),
        Column("label", Text, nullable=False),
    ]


kpi_counts = Table(
    "kpi_counts",
    metadata,
    *_bucket_columns(),
    Column("count", BigInteger, nullable=False),
    Column("sum", Double, nullable=False),
)
kpi_counts.append_constraint(PrimaryKeyConstraint(*_BUCKET_KEY, name="kpi_counts_pkey"))

kpi_hist = Table(
    "kpi_hist",
    metadata,
    *_bucket_columns(),
    Column("idx", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
)
kpi_hist.append_constraint(PrimaryKeyConstraint(*_BUCKET_KEY, "idx", name="kpi_hist_pkey"))

# The rollups. by_team keeps the detail key's order (bucket before label): it also serves
# grouping by label, which reads every label of a bucket range. by_channel puts the label
# right after the tenant, so the dashboards' label '' reads are one index range per bucket range
# rather than ranges that also hold every label's rows (five to eight times as many in the API
# benchmark); it is not used for grouping by label.
#
# There is no histogram rollup by team. A histogram row is per bucket index, and one agent's
# durations in a bucket rarely share an index, so summing the agent out only halves the rows
# (two days at a million conversations a day: 9.7 M detail hour rows, 5.1 M by team), while
# every flush would write nearly as many rows again as for the detail table (a duration fact
# is a row of its own at every level). Team-level quantiles read the detail histograms.
_TEAM_KEY = ("tenant", "grain", "bucket", "metric", "channel", "team", "label")
_CHANNEL_KEY = ("tenant", "label", "grain", "bucket", "metric", "channel")


def _rollup_columns(*, team: bool) -> list[Column[object]]:
    return [
        column for column in _bucket_columns() if column.name != "agent" and (team or column.name != "team")
    ]


kpi_counts_by_team = Table(
    "kpi_counts_by_team",
    metadata,
    *_rollup_columns(team=True),
    Column("count", BigInteger, nullable=False),
    Column("sum", Double, nullable=False),
    PrimaryKeyConstraint(*_TEAM_KEY, name="kpi_counts_by_team_pkey"),
)

kpi_counts_by_channel = Table(
    "kpi_counts_by_channel",
    metadata,
    *_rollup_columns(team=False),
    Column("count", BigInteger, nullable=False),
    Column("sum", Double, nullable=False),
    PrimaryKeyConstraint(*_CHANNEL_KEY, name="kpi_counts_by_channel_pkey"),
)

kpi_hist_by_channel = Table(
    "kpi_hist_by_channel",
    metadata,
    *_rollup_columns(team=False),
    Column("idx", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint(*_CHANNEL_KEY, "idx", name="kpi_hist_by_channel_pkey"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("conversation_id", Text, primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("is_call", Boolean, nullable=False),
    Column("channel", Text, nullable=False),
    Column("team", Text, nullable=False),
    Column("agent", Text, nullable=False),
    Column("status", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("queued_at", DateTime(timezone=True)),
    Column("sla_due_at", DateTime(timezone=True)),
    # The deadline of a recorded breach while the first reply is still awaited (live view).
    Column("sla_breached_at", DateTime(timezone=True)),
    # When the earliest running SLA clock turns at risk (the live view's "at risk now").
    Column("sla_at_risk_at", DateTime(timezone=True)),
    Column("closed", Boolean, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("conversations_due", "partition", "sla_due_at", postgresql_where=text("sla_due_at IS NOT NULL")),
    Index("conversations_live", "tenant", "channel", "team", postgresql_where=text("NOT closed")),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    # The next offset to process; -1 until the group first commits (start at the log's beginning).
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Bumped when a replay swaps in rebuilt tables: owners holding an older epoch are fenced.
    Column("epoch", BigInteger, nullable=False, server_default=text("0")),
)

quarantined_events = Table(
    "quarantined_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("reason", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

sla_calendars = Table(
    "sla_calendars",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("body", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per version of a named policy; rows are never updated (see shared/sla/policy.py).
sla_policies = Table(
    "sla_policies",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    # The place in the tenant's list: first match wins.
    Column("position", Double, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("version >= 1", name="sla_policies_version_positive"),
)

# SLA transitions written in the aggregator's flush transaction, relayed to Kafka afterwards.
sla_outbox = Table(
    "sla_outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("key", LargeBinary, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
