"""The publisher's own partitioning is exactly Kafka's default one (aiokafka's, the Java client's):
a conversation's events must land on the partition every other producer would choose for them."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.partitioner import KeyPartitioner, murmur2
from shared.events import partition_key


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=80),
    st.lists(st.integers(0, 200), min_size=1, max_size=64, unique=True),
)
def test_key_partition_is_the_default_partitioners(tenant: str, conversation: str, ids: list[int]) -> None:
    partitions = sorted(ids)
    key = partition_key(tenant, conversation)
    partitioner = KeyPartitioner()
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert partitioner.partition(key, partitions) == expected
    assert partitioner.partition(key, partitions) == expected  # memoised: the same answer


def test_the_memo_is_bounded_and_a_cleared_memo_answers_the_same() -> None:
    partitioner = KeyPartitioner(max_memo=10)
    partitions = list(range(6))
    keys = [f"t\x1fc-{i}".encode() for i in range(25)]
    first = [partitioner.partition(k, partitions) for k in keys]
    assert len(partitioner._hashes) <= 10
    assert [partitioner.partition(k, partitions) for k in keys] == first
    assert first == [DefaultPartitioner()(k, partitions, partitions) for k in keys]
