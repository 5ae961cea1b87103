"""services/stack takes other ports for a private broker and Postgres; the defaults stay the same."""

from __future__ import annotations

from pathlib import Path

from services.stack.kafka import BOOTSTRAP, Kafka
from services.stack.lifecycle import components
from services.stack.paths import StackPaths
from services.stack.postgres import DATABASE_URL, Postgres
from tests.chaos.private_stack import free_ports


def test_defaults_are_the_shared_stacks_ports(tmp_path: Path) -> None:
    paths = StackPaths(root=tmp_path)
    kafka, postgres = Kafka(paths), Postgres(paths)
    assert kafka.ports == (19092, 19093) and kafka.bootstrap == BOOTSTRAP == "127.0.0.1:19092"
    assert (
        "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
        in kafka.render_server_properties()
    )
    assert postgres.ports == (15432,) and postgres.database_url == DATABASE_URL
    assert "port = 15432" in postgres.render_config()
    # What `supportpulse stack` builds is unchanged.
    assert [c.ports for c in components()] == [(19092, 19093), (15432,), (19090,), (19094,)]


def test_other_ports_reach_every_setting_that_names_one(tmp_path: Path) -> None:
    broker, controller, pg = free_ports(3)
    paths = StackPaths(root=tmp_path)
    kafka = Kafka(paths, port=broker, controller_port=controller)
    postgres = Postgres(paths, port=pg)
    props = kafka.render_server_properties()
    assert f"listeners=PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}" in props
    assert f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker}" in props
    assert f"controller.quorum.voters=1@127.0.0.1:{controller}" in props
    assert "19092" not in props and "19093" not in props
    assert kafka.address == f"127.0.0.1:{broker}" and kafka.ports == (broker, controller)
    assert f"port = {pg}" in postgres.render_config() and "15432" not in postgres.render_config()
    assert postgres.database_url.endswith(f"@127.0.0.1:{pg}/supportpulse")
    assert postgres.address == f"127.0.0.1:{pg}"
    # Instances are independent: the class defaults did not move.
    assert Kafka.ports == (19092, 19093) and Postgres.ports == (15432,)
