"""flavor profiles, flavors, availability zone profiles and zones as tables; HSTS on
listeners; members' addresses as given; VIP addresses unique among balancers that
serve traffic (not noop ones)

The two flavors that were built in (l4, l7) become rows with their old ids, so the flavor_id
of every existing load balancer still names a flavor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:40:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The ids the built-in flavors always had (views.FLAVORS).
BUILT_IN = (
    (
        "5b0a1e4d-0000-4000-8000-0000000000f4",
        "5b0a1e4d-0000-4000-8000-000000000004",
        "l4",
        "L4: XDP, Maglev, direct server return (TCP, UDP)",
    ),
    (
        "5b0a1e4d-0000-4000-8000-0000000000f7",
        "5b0a1e4d-0000-4000-8000-000000000007",
        "l7",
        "L7: HAProxy proxies behind the L4 tier (HTTP, HTTPS, TLS, TCP)",
    ),
)


def upgrade() -> None:
    profiles = op.create_table(
        "flavor_profiles",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("provider_name", sa.String(length=64), nullable=False),
        sa.Column("flavor_data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    flavors = op.create_table(
        "flavors",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False, unique=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "flavor_profile_id",
            sa.String(length=36),
            sa.ForeignKey("flavor_profiles.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "availability_zone_profiles",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("provider_name", sa.String(length=64), nullable=False),
        sa.Column("availability_zone_data", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "availability_zones",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False, unique=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "availability_zone_profile_id",
            sa.String(length=36),
            sa.ForeignKey("availability_zone_profiles.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("listeners") as batch:
        batch.add_column(sa.Column("hsts_max_age", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "hsts_include_subdomains", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(
            sa.Column("hsts_preload", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("address_given", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("monitor_address_given", sa.String(length=64), nullable=True))
    # A VIP is unique among balancers that serve traffic; noop ones (API tests) may share.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("load_balancers_vip_address_key", "load_balancers", type_="unique")
    else:
        with op.batch_alter_table(
            "load_balancers",
            naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"},
        ) as batch:
            batch.drop_constraint("uq_load_balancers_vip_address", type_="unique")
    op.create_index(
        "uq_load_balancers_served_vip",
        "load_balancers",
        ["vip_address"],
        unique=True,
        sqlite_where=sa.text("provider != 'noop'"),
        postgresql_where=sa.text("provider != 'noop'"),
    )
    now = dt.datetime(2026, 12, 1)
    op.bulk_insert(
        profiles,
        [
            {
                "id": pid,
                "name": f"shoal-{kind}",
                "provider_name": "shoal",
                "flavor_data": f'{{"kind": "{kind}"}}',
                "created_at": now,
            }
            for pid, _, kind, _ in BUILT_IN
        ],
    )
    op.bulk_insert(
        flavors,
        [
            {
                "id": fid,
                "name": kind,
                "description": text,
                "enabled": True,
                "flavor_profile_id": pid,
                "created_at": now,
            }
            for pid, fid, kind, text in BUILT_IN
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("monitor_address_given")
        batch.drop_column("address_given")
    op.drop_index("uq_load_balancers_served_vip", "load_balancers")
    with op.batch_alter_table("load_balancers") as batch:
        batch.create_unique_constraint("uq_load_balancers_vip_address", ["vip_address"])
    with op.batch_alter_table("listeners") as batch:
        batch.drop_column("hsts_preload")
        batch.drop_column("hsts_include_subdomains")
        batch.drop_column("hsts_max_age")
    op.drop_table("availability_zones")
    op.drop_table("availability_zone_profiles")
    op.drop_table("flavors")
    op.drop_table("flavor_profiles")
