"""Kafka topics and client settings the services agree on."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import CommonSettings

log = logging.getLogger(__name__)

# The largest record ingest writes: a raw webhook body, base64-encoded in its envelope (4/3 of
# the body and change). Kafka's default (1 MiB) would refuse a raw copy of a 1 MiB batch for
# ever, so the raw and dead-letter topics and ingest's producer allow this much.
MAX_RAW_MESSAGE_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: CommonSettings) -> list[TopicSpec]:
    # Events are keyed by conversation, so partitions bound the aggregator's parallelism.
    durable = {"min.insync.replicas": "1", "retention.ms": str(30 * 24 * 3600 * 1000)}
    raw = {**durable, "max.message.bytes": str(MAX_RAW_MESSAGE_BYTES)}
    return [
        TopicSpec(settings.events_topic, settings.events_partitions, durable),
        TopicSpec(settings.raw_topic, settings.events_partitions, raw),
        TopicSpec(settings.deadletter_topic, 1, raw),
        TopicSpec(settings.sla_topic, settings.events_partitions, durable),
    ]


async def ensure_topics(settings: CommonSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    specs = specs if specs is not None else topic_specs(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        raised = [s for s in specs if s.name in existing and "max.message.bytes" in s.config]
        if raised:
            # Topics created before the limit was raised get it now. AlterConfigs sets the
            # whole list, which is the spec's (the values these topics are created with).
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.config) for s in raised]
            )
        if missing:
            # Another process may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
                )
            log.info("created topics %s", ", ".join(s.name for s in missing))
        return [s.name for s in missing]
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic``; raises ``LookupError`` when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise LookupError(f"topic {topic!r} does not exist on {bootstrap}")
    return sorted(int(p["partition"]) for p in described["partitions"])


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete those of ``names`` that exist (test and benchmark clean-up)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [name for name in names if name in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
