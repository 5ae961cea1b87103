"""conversations.sla_breached_at: a breach recorded while the conversation still waits for its reply.

Lets the live view count conversations breaching *now*, not only deadlines about to be recorded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("sla_breached_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("conversations", "sla_breached_at")
