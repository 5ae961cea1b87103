"""shared.sla.policy: first match wins, versions by effective time, validation, JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest

from shared.sla.calendar import ALWAYS
from shared.sla.policy import (
    ClockType,
    Policy,
    PolicyError,
    SlaConfig,
    check_policies,
    effective_policies,
    match,
)
from tests.shared.sla.support import calendar, utc

JAN = utc(2026, 1, 1)
JUN = utc(2026, 6, 1)


def policy(name: str, version: int = 1, effective: str = "2026-01-01T00:00:00Z", **fields: Any) -> Policy:
    return Policy.model_validate(
        {"tenant": "acme", "name": name, "version": version, "effective_from": effective, **fields}
    )


VIP = policy("vip", labels=["vip"], first_response={"seconds": 300})
URGENT_EMAIL = policy(
    "urgent-email", channels=["email"], priorities=["urgent"], first_response={"seconds": 3600}
)
EMAIL = policy(
    "email",
    channels=["email"],
    first_response={"seconds": 4 * 3600, "clock": "business", "calendar": "office"},
    resolution={"seconds": 3 * 86_400},
)
DEFAULT = policy("default", first_response={"seconds": 86_400}, next_reply={"seconds": 86_400})
POLICIES = [VIP, URGENT_EMAIL, EMAIL, DEFAULT]


def test_first_match_wins_and_the_default_catches_the_rest() -> None:
    def found(channel: str, priority: str | None = None, team: str | None = None, *labels: str) -> str | None:
        hit = match(POLICIES, "acme", channel, priority, team, set(labels), JUN)
        return None if hit is None else hit.name

    assert found("email", "urgent", None, "vip") == "vip"
    assert found("email", "urgent") == "urgent-email"
    assert found("email", "low") == "email"
    assert found("email") == "email"
    assert found("chat", "urgent", "billing") == "default"
    assert found("chat", None, None, "spam", "vip") == "vip"  # any one of the labels
    assert match(POLICIES, "other-tenant", "chat", None, None, (), JUN) is None
    assert match(POLICIES[:-1], "acme", "chat", None, None, (), JUN) is None  # no default: no SLA


def test_teams_match_any_listed() -> None:
    billing = policy("billing", teams=["billing", "refunds"], first_response={"seconds": 60})
    assert match([billing], "acme", "chat", None, "refunds", (), JUN) == billing
    assert match([billing], "acme", "chat", None, None, (), JUN) is None


def test_versions_apply_from_their_effective_time() -> None:
    email_v2 = policy(
        "email", 2, "2026-06-01T00:00:00Z", channels=["email"], first_response={"seconds": 7200}
    )
    policies = [*POLICIES[:3], email_v2, DEFAULT]
    assert match(policies, "acme", "email", None, None, (), utc(2026, 5, 31, 23, 59)) == EMAIL
    assert match(policies, "acme", "email", None, None, (), JUN) == email_v2
    assert match(policies, "acme", "email", None, None, (), utc(2025, 12, 31)) is None  # before any policy
    check_policies(policies, ["office"])


def test_a_withdrawn_policy_falls_through() -> None:
    withdrawn = policy("vip", 2, "2026-06-01T00:00:00Z", active=False)
    policies = [VIP, withdrawn, *POLICIES[1:]]
    assert match(policies, "acme", "chat", None, None, {"vip"}, utc(2026, 3, 1)) == VIP
    assert match(policies, "acme", "chat", None, None, {"vip"}, JUN) == DEFAULT
    assert [p.name for p in effective_policies(policies, "acme", JUN)] == ["urgent-email", "email", "default"]


def test_a_versions_place_in_the_list_is_its_place_in_the_match_order() -> None:
    # v2 of "vip" listed after the default: from June, the default would shadow it.
    vip_v2 = policy("vip", 2, "2026-06-01T00:00:00Z", labels=["vip"], first_response={"seconds": 60})
    with pytest.raises(PolicyError, match=r"acme/default v1: default policy .* is not last from 2026-06-01"):
        check_policies([VIP, DEFAULT, vip_v2])
    check_policies([vip_v2, VIP, DEFAULT])
    assert match([vip_v2, VIP, DEFAULT], "acme", "chat", None, None, {"vip"}, JUN) == vip_v2


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ([VIP, VIP], "acme/vip v1: duplicate name and version"),
        ([DEFAULT, VIP], "acme/default v1: default policy (no condition) is not last"),
        ([policy("a"), policy("b")], "default policy"),
        ([EMAIL], "acme/email v1: first_response names unknown calendar 'office'"),
        (
            [policy("vip", 1, "2026-06-01T00:00:00Z", labels=["v"]), policy("vip", 2, labels=["v"])],
            "acme/vip: v2 takes effect",
        ),
    ],
)
def test_contradictions_are_named(policies: list[Policy], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        check_policies(policies)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as caught:
        check_policies([DEFAULT, VIP, VIP, EMAIL])
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"first_response": {"seconds": -5}}, "positive number of seconds"),
        ({"first_response": {"seconds": 0}}, "positive number of seconds"),
        ({"next_reply": {"seconds": 400 * 86_400}}, "more than a year"),
        ({"resolution": {"seconds": 60, "clock": "business"}}, "names its calendar"),
        ({"resolution": {"seconds": 60, "calendar": "office"}}, "takes no calendar"),
        ({"resolution": {"seconds": 60, "clock": "wall"}}, "calendar"),
        ({"pausing_statuses": ["pending", "open"]}, r"statuses \['open'\] cannot pause"),
        ({"at_risk_share": 0}, "greater than 0"),
        ({"at_risk_share": 1.5}, "less than or equal to 1"),
        ({"version": 0}, "greater than or equal to 1"),
        ({"effective_from": "2026-01-01T00:00:00"}, "timezone"),
        ({"channel": ["email"]}, "channel"),
        ({"channels": ["email", "fax"]}, r"unknown channels \['fax'\]"),
        ({"tenant": ""}, "tenant"),
    ],
)
def test_bad_policies_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        policy("p", **fields)


def test_config_validates_calendars_and_policies_together() -> None:
    office = calendar(name="office")
    config = SlaConfig(calendars=(office,), policies=tuple(POLICIES))
    assert config.calendar_set() == {"always": ALWAYS, "office": office}
    assert config.match("acme", "email", None, None, (), JUN) == EMAIL
    assert EMAIL.first_response is not None and EMAIL.first_response.clock is ClockType.BUSINESS
    again = SlaConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.policies[2].first_response == EMAIL.first_response

    with pytest.raises(pydantic.ValidationError, match="unknown calendar 'office'"):
        SlaConfig(policies=tuple(POLICIES))
    with pytest.raises(pydantic.ValidationError, match=r"duplicate calendar names \['office'\]"):
        SlaConfig(calendars=(office, office))
    with pytest.raises(pydantic.ValidationError, match="reserved"):
        SlaConfig(calendars=(calendar(name="always"),))
    bad_calendar = {"name": "office", "timezone": "Mars/Olympus", "week": {"mon": ["09:00-17:00"]}}
    with pytest.raises(pydantic.ValidationError, match=r"calendars\.0\.timezone"):
        SlaConfig.model_validate({"calendars": [bad_calendar]})


def test_defaults() -> None:
    assert DEFAULT.pausing_statuses == ("pending", "snoozed")
    assert DEFAULT.at_risk_share == 0.8
    assert DEFAULT.is_default and not VIP.is_default
    assert set(EMAIL.targets()) == {"first_response", "resolution"}


def test_the_json_examples_in_the_docs_are_valid() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "sla.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    # The third is a breach-topic message (tests/aggregator/test_sla.py checks it).
    assert len(blocks) == 3
    calendar_json, policy_json = (json.loads(block) for block in blocks[:2])
    config = SlaConfig.model_validate({"calendars": [calendar_json], "policies": [policy_json]})
    assert config.policies[0].version == 2
    assert config.calendars[0].name == "paris-office"
