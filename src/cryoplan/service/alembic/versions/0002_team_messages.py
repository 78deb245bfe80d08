"""Messages between users of the service (an inbox per user), optionally about a case.

Revision ID: 0002_team_messages
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_team_messages"
down_revision = "0001"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "team_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), index=True),
        sa.Column("sender_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("recipient_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("read_at", TS),
    )


def downgrade() -> None:
    op.drop_table("team_messages")
