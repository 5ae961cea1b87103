"""Event validation rules that protect the store: NUL characters never reach Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.events import Event, problems


def _event(**fields: object) -> Event:
    return Event(
        id="e1",
        tenant="t1",
        source="s:1",
        type="conversation.created",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        conversation_id="c1",
        **fields,  # type: ignore[arg-type]
    )


def test_nul_characters_in_text_fields_are_refused_with_the_field_named() -> None:
    assert problems(_event(team="sup\x00port")) == ["team: contains a NUL character"]
    assert problems(_event(labels=["vip", "b\x00d"])) == ["labels: contains a NUL character"]
    assert problems(_event(team="support", labels=["vip"])) == []
