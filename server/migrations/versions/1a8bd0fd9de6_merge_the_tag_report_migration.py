"""Merge the tag report migration.

Revision ID: 1a8bd0fd9de6
Revises: 3367d448f96b, 7c2d9e4a1b38
Create Date: 2026-12-04
"""

revision = "1a8bd0fd9de6"
down_revision = ("3367d448f96b", "7c2d9e4a1b38")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
