"""shared.sla.store on a real Postgres built by the real migrations (a database of this module's own).

Writes validate the whole tenant config and write nothing when refused, NOTIFY reaches listeners
on commit only, two concurrent edits of one policy never share a version (the later one is a
conflict), and load_sla_configs gives the aggregator one validated SlaConfig per tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import make_engine
from shared.db.scratch import driver_dsn, scratch_database
from shared.settings import CommonSettings
from shared.sla import store
from shared.sla.calendar import Calendar
from shared.sla.policy import SlaConfig
from shared.sla.store import (
    LOCK_CLASS,
    NOTIFY_CHANNEL,
    CalendarInUse,
    Conflict,
    InvalidSla,
    NotFound,
    StoredConfigError,
    StoredPolicy,
    VersionConflict,
    load_sla_configs,
    load_tenant,
)

pytestmark = pytest.mark.integration

NOW: Final = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LATER: Final = NOW + timedelta(days=10)
OFFICE: Final = Calendar.model_validate(
    {"name": "office", "timezone": "Europe/Paris", "week": {"mon": ["09:00-12:30", "13:30-18:00"]}}
)
EMAIL: Final[dict[str, Any]] = {
    "channels": ["email"],
    "first_response": {"seconds": 14400, "clock": "business", "calendar": "office"},
}
CHAT: Final[dict[str, Any]] = {"channels": ["chat"], "first_response": {"seconds": 300}}
DEFAULT: Final[dict[str, Any]] = {"first_response": {"seconds": 3600}}


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with scratch_database(CommonSettings().database_dsn, "supportpulse_test_slastore_") as url:
        engine = make_engine(url, pool_size=4)
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
async def sla(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE sla_calendars, sla_policies")
    return engine


@pytest.fixture
async def raw(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the same database: listener, lock holder, bypassing writer."""
    conn = await asyncpg.connect(driver_dsn(engine.url.render_as_string(hide_password=False)))
    try:
        yield conn
    finally:
        await conn.close()


async def put_calendar(engine: AsyncEngine, tenant: str, calendar: Calendar = OFFICE) -> bool:
    async with engine.begin() as conn:
        _, created = await store.put_calendar(conn, tenant, calendar)
    return created


async def create(engine: AsyncEngine, name: str, fields: dict[str, Any], **kw: Any) -> StoredPolicy:
    async with engine.begin() as conn:
        return await store.create_policy(conn, kw.pop("tenant", "acme"), name, fields, **{"now": NOW, **kw})


async def update(engine: AsyncEngine, name: str, fields: dict[str, Any], **kw: Any) -> StoredPolicy:
    async with engine.begin() as conn:
        return await store.update_policy(conn, kw.pop("tenant", "acme"), name, fields, **{"now": NOW, **kw})


async def withdraw(engine: AsyncEngine, name: str, **kw: Any) -> StoredPolicy:
    async with engine.begin() as conn:
        return await store.withdraw_policy(conn, "acme", name, **{"now": NOW, **kw})


async def tenant(engine: AsyncEngine, name: str = "acme") -> store.TenantSla:
    async with engine.connect() as conn:
        return await load_tenant(conn, name)


async def rows(raw: asyncpg.Connection) -> list[tuple[Any, ...]]:
    """Everything stored, to compare before and after a refused write."""
    calendars = await raw.fetch(
        "SELECT tenant, name, body::text, updated_at FROM sla_calendars ORDER BY 1, 2"
    )
    policies = await raw.fetch("SELECT * FROM sla_policies ORDER BY tenant, name, version")
    return [tuple(r) for r in [*calendars, *policies]]


def order(stored: store.TenantSla) -> list[tuple[str, int]]:
    return [(p.policy.name, p.policy.version) for p in stored.policies]


def fields_of(exc: pytest.ExceptionInfo[InvalidSla]) -> list[str]:
    return [p.field for p in exc.value.problems]


async def test_calendars_put_replace_delete(sla: AsyncEngine) -> None:
    assert await put_calendar(sla, "acme") is True
    stored = await tenant(sla)
    assert [c.calendar for c in stored.calendars] == [OFFICE]
    first_update = stored.calendars[0].updated_at
    longer = Calendar.model_validate(
        {**OFFICE.model_dump(mode="json"), "week": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]}}
    )
    assert await put_calendar(sla, "acme", longer) is False
    replaced = (await tenant(sla)).calendars
    assert [c.calendar for c in replaced] == [longer] and replaced[0].updated_at >= first_update
    async with sla.begin() as conn:
        with pytest.raises(Conflict, match="exists"):
            await store.put_calendar(conn, "acme", OFFICE, replace=False)
    # Another tenant's calendar of the same name is another calendar.
    assert await put_calendar(sla, "globex") is True
    async with sla.begin() as conn:
        await store.delete_calendar(conn, "acme", "office")
    assert (await tenant(sla)).calendars == ()
    assert [c.calendar for c in (await tenant(sla, "globex")).calendars] == [OFFICE]
    async with sla.begin() as conn:
        with pytest.raises(NotFound):
            await store.delete_calendar(conn, "acme", "office")


async def test_reserved_calendar_name(sla: AsyncEngine) -> None:
    always = OFFICE.model_copy(update={"name": "always"})
    with pytest.raises(InvalidSla) as refused:
        await put_calendar(sla, "acme", always)
    assert fields_of(refused) == ["name"]
    assert "reserved" in refused.value.problems[0].reason


async def test_positions_keep_the_default_last(sla: AsyncEngine) -> None:
    await put_calendar(sla, "acme")
    default = await create(sla, "default", DEFAULT)
    assert default.position == 0.0 and default.policy.effective_from == NOW and default.policy.version == 1
    await create(sla, "email", EMAIL)
    await create(sla, "chat", CHAT)
    # Each new policy goes right before the default: after the others, in creation order.
    assert order(await tenant(sla)) == [("email", 1), ("chat", 1), ("default", 1)]
    await create(sla, "vip", {"labels": ["vip"], "first_response": {"seconds": 60}}, before="email")
    await create(sla, "sms", {"channels": ["sms"]}, before="chat")
    stored = await tenant(sla)
    assert order(stored) == [("vip", 1), ("email", 1), ("sms", 1), ("chat", 1), ("default", 1)]
    positions = [p.position for p in stored.policies]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # The aggregator's view: the same order, validated.
    async with sla.connect() as conn:
        configs = await load_sla_configs(conn)
    assert list(configs) == ["acme"]
    assert [p.name for p in configs["acme"].policies] == ["vip", "email", "sms", "chat", "default"]
    assert configs["acme"].calendars == (OFFICE,)
    sms = configs["acme"].match("acme", "sms", None, None, [], NOW)
    phone = configs["acme"].match("acme", "phone", None, None, [], NOW)
    assert (sms and sms.name, phone and phone.name) == ("sms", "default")
    # A name is created once, even if withdrawn since.
    with pytest.raises(Conflict, match="exists"):
        await create(sla, "email", EMAIL)


async def test_without_a_default_new_policies_go_last(sla: AsyncEngine) -> None:
    await create(sla, "chat", CHAT)
    await create(sla, "sms", {"channels": ["sms"]})
    await create(sla, "default", DEFAULT)
    assert order(await tenant(sla)) == [("chat", 1), ("sms", 1), ("default", 1)]


async def test_many_insertions_before_one_policy(sla: AsyncEngine) -> None:
    await create(sla, "default", DEFAULT)
    await create(sla, "first", CHAT)
    for i in range(30):
        await create(sla, f"p{i}", {"labels": [f"l{i}"]}, before="first")
    stored = await tenant(sla)
    assert [name for name, _ in order(stored)] == [*(f"p{i}" for i in range(30)), "first", "default"]


async def test_versions_and_the_list_at_an_instant(sla: AsyncEngine) -> None:
    await put_calendar(sla, "acme")
    await create(sla, "email", EMAIL)
    await create(sla, "chat", CHAT)
    await create(sla, "default", DEFAULT)
    v2 = await update(sla, "email", {**EMAIL, "first_response": {"seconds": 7200}}, effective_from=LATER)
    assert (v2.policy.version, v2.policy.effective_from, v2.position) == (2, LATER, 0.0)
    gone = await withdraw(sla, "chat", now=NOW + timedelta(days=1))
    assert (gone.policy.version, gone.policy.active) == (2, False)
    assert gone.policy.first_response == (await tenant(sla)).versions("chat")[0].policy.first_response
    stored = await tenant(sla)

    def at(t: datetime) -> list[tuple[str, int]]:
        return [(p.policy.name, p.policy.version) for p in stored.effective(t)]

    assert at(NOW) == [("email", 1), ("chat", 1), ("default", 1)]
    assert at(NOW + timedelta(days=2)) == [("email", 1), ("default", 1)]
    assert at(LATER) == [("email", 2), ("default", 1)]
    assert at(NOW - timedelta(seconds=1)) == []
    assert [p.policy.version for p in stored.versions("email")] == [1, 2]
    # Withdrawing twice is refused; a PUT brings a withdrawn policy back, in its place.
    with pytest.raises(Conflict, match="already withdrawn"):
        await withdraw(sla, "chat", now=LATER)
    back = await update(sla, "chat", CHAT, now=LATER)
    assert (back.policy.version, back.policy.active, back.position) == (3, True, gone.position)
    # Moving a policy with a new version: chat before email from LATER + 1 day on.
    moved = await update(sla, "chat", CHAT, before="email", now=LATER + timedelta(days=1))
    stored = await tenant(sla)
    assert moved.position < stored.versions("email")[-1].position
    assert at(LATER) == [("email", 2), ("chat", 3), ("default", 1)]  # the earlier list is untouched
    assert [(p.policy.name, p.policy.version) for p in stored.effective(LATER + timedelta(days=1))] == [
        ("chat", 4),
        ("email", 2),
        ("default", 1),
    ]
    for missing in (update(sla, "nope", CHAT), withdraw(sla, "nope")):
        with pytest.raises(NotFound):
            await missing


async def test_refused_writes_name_the_field_and_write_nothing(
    sla: AsyncEngine, raw: asyncpg.Connection
) -> None:
    await put_calendar(sla, "acme")
    await create(sla, "email", EMAIL)
    await create(sla, "default", DEFAULT)
    before = await rows(raw)
    cases: list[tuple[Callable[[], Awaitable[Any]], list[str]]] = [
        # A business target naming an unknown calendar; both targets are reported at once.
        (
            lambda: create(
                sla,
                "chat",
                {
                    "channels": ["chat"],
                    "first_response": {"seconds": 60, "clock": "business", "calendar": "nope"},
                    "next_reply": {"seconds": 60, "clock": "business", "calendar": "nope"},
                },
            ),
            ["first_response.calendar", "next_reply.calendar"],
        ),
        (lambda: create(sla, "chat", {"first_response": {"seconds": 0}}), ["first_response.seconds"]),
        (
            lambda: create(sla, "chat", {"first_response": {"seconds": -5}, "at_risk_share": 2}),
            ["first_response.seconds", "at_risk_share"],
        ),
        (
            lambda: create(sla, "chat", {"first_response": {"seconds": 60, "clock": "business"}}),
            ["first_response"],
        ),
        (
            lambda: create(sla, "chat", {"channels": ["fax"], "pausing_statuses": ["open"]}),
            ["channels", "pausing_statuses"],
        ),
        (lambda: create(sla, "chat", {"colour": "red"}), ["colour"]),
        (lambda: create(sla, "chat", {"version": 7}), ["version"]),
        # A second default goes last: the first one is then not last any more.
        (lambda: create(sla, "fallback", {}), ["before"]),
        # Removing email's conditions makes it a default before the default.
        (lambda: update(sla, "email", {"first_response": {"seconds": 60}}), ["before"]),
        # Explicitly after the default is impossible (before= an unknown policy, or itself).
        (lambda: create(sla, "chat", CHAT, before="nope"), ["before"]),
        (lambda: update(sla, "email", EMAIL, before="email"), ["before"]),
        # A version taking effect before the previous one.
        (lambda: update(sla, "email", EMAIL, effective_from=NOW - timedelta(days=1)), ["effective_from"]),
        (lambda: create(sla, "chat", CHAT, effective_from=datetime(2026, 1, 1)), ["effective_from"]),
    ]
    for attempt, expected in cases:
        with pytest.raises(InvalidSla) as refused:
            await attempt()
        assert fields_of(refused) == expected, refused.value
        assert all(p.reason for p in refused.value.problems)
    assert await rows(raw) == before


async def test_a_calendar_in_use_is_not_deleted(sla: AsyncEngine, raw: asyncpg.Connection) -> None:
    await put_calendar(sla, "acme")
    await create(sla, "email", EMAIL)

    async def delete() -> None:
        async with sla.begin() as conn:
            await store.delete_calendar(conn, "acme", "office")

    with pytest.raises(CalendarInUse, match=r"used by policies 'email' \(v1\)"):
        await delete()
    # No current version needs it any more, but v1 does, and history keeps v1.
    await update(sla, "email", {"channels": ["email"], "first_response": {"seconds": 600}})
    before = await rows(raw)
    with pytest.raises(CalendarInUse, match="email v1"):
        await delete()
    assert await rows(raw) == before
    # Replacing its hours stays possible.
    assert await put_calendar(sla, "acme", OFFICE.model_copy(update={"timezone": "UTC"})) is False


async def test_notify_on_commit_only(sla: AsyncEngine, raw: asyncpg.Connection) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    await raw.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    async with sla.begin() as conn:
        await store.put_calendar(conn, "acme", OFFICE)
        await asyncio.sleep(0.3)
        assert heard.empty()  # not before the commit
    assert await asyncio.wait_for(heard.get(), 5) == "acme"
    # One per write, payload the tenant.
    await create(sla, "chat", CHAT, tenant="globex")
    await create(sla, "email", EMAIL)
    await update(sla, "email", EMAIL, now=LATER)
    await withdraw(sla, "email", now=LATER)
    got = [await asyncio.wait_for(heard.get(), 5) for _ in range(4)]
    assert got == ["globex", "acme", "acme", "acme"]
    # Refused writes and rolled-back transactions say nothing.
    with pytest.raises(InvalidSla):
        await create(sla, "bad", {"first_response": {"seconds": 60, "clock": "business", "calendar": "nope"}})
    with pytest.raises(CalendarInUse):
        async with sla.begin() as conn:
            await store.delete_calendar(conn, "acme", "office")

    async def rolled_back() -> None:
        async with sla.begin() as conn:
            await store.create_policy(conn, "acme", "sms", {"channels": ["sms"]}, now=NOW)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        await rolled_back()
    await asyncio.sleep(0.5)
    assert heard.empty()
    assert "sms" not in {p.policy.name for p in (await tenant(sla)).policies}


async def wait_for_lock_waiters(raw: asyncpg.Connection, event: str, count: int) -> None:
    """Until ``count`` backends of this database wait on a lock of that kind (advisory, transactionid)."""
    for _ in range(500):
        waiting = await raw.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = $1",
            event,
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never saw {count} backends waiting on a {event} lock")


async def test_concurrent_edits_of_one_policy_conflict(sla: AsyncEngine, raw: asyncpg.Connection) -> None:
    await create(sla, "email", {"channels": ["email"]})
    # Hold the tenant's lock so that both edits have read v1 before either writes.
    await raw.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, "acme")
    edits = [
        asyncio.create_task(update(sla, "email", {"channels": ["email"], "labels": [label]}, now=LATER))
        for label in ("a", "b")
    ]
    await wait_for_lock_waiters(raw, "advisory", 2)
    await raw.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, "acme")
    results = await asyncio.gather(*edits, return_exceptions=True)
    won = [r for r in results if isinstance(r, StoredPolicy)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and won[0].policy.version == 2, results
    assert len(lost) == 1 and isinstance(lost[0], VersionConflict), results
    assert "based on v1" in str(lost[0])
    assert [v.policy.labels for v in (await tenant(sla)).versions("email")] == [(), won[0].policy.labels]


async def test_the_primary_key_catches_a_writer_that_bypasses_the_lock(
    sla: AsyncEngine, raw: asyncpg.Connection
) -> None:
    await create(sla, "email", {"channels": ["email"]})
    intruder = raw.transaction()
    await intruder.start()
    await raw.execute(
        "INSERT INTO sla_policies (tenant, name, version, effective_from, position, body) "
        "VALUES ('acme', 'email', 2, $1, 0, '{\"active\": true}')",
        LATER,
    )
    edit = asyncio.create_task(update(sla, "email", {"channels": ["email"]}, now=LATER))
    # The edit saw v1 (the intruder's v2 is uncommitted) and now waits on the key v2.
    await wait_for_lock_waiters(raw, "transactionid", 1)
    await intruder.commit()
    with pytest.raises(VersionConflict, match="v2 was added concurrently"):
        await edit


async def test_tenants_do_not_wait_for_each_other(sla: AsyncEngine, raw: asyncpg.Connection) -> None:
    await raw.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, "acme")
    try:
        stored = await asyncio.wait_for(create(sla, "chat", CHAT, tenant="globex"), 5)
        assert stored.policy.tenant == "globex"
    finally:
        await raw.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, "acme")


async def test_writes_need_read_committed(sla: AsyncEngine) -> None:
    async with sla.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            with pytest.raises(RuntimeError, match="READ COMMITTED"):
                await store.create_policy(conn, "acme", "chat", CHAT, now=NOW)


async def test_load_sla_configs(sla: AsyncEngine, raw: asyncpg.Connection) -> None:
    async with sla.connect() as conn:
        assert await load_sla_configs(conn) == {}
    await put_calendar(sla, "acme")
    await create(sla, "email", EMAIL)
    await create(sla, "chat", CHAT, tenant="globex")
    await put_calendar(sla, "initech")
    async with sla.connect() as conn:
        configs = await load_sla_configs(conn)
    assert sorted(configs) == ["acme", "globex", "initech"]
    assert all(isinstance(c, SlaConfig) for c in configs.values())
    assert [(p.tenant, p.name) for p in configs["acme"].policies] == [("acme", "email")]
    assert configs["acme"].policies[0].first_response == (await tenant(sla)).policies[0].policy.first_response
    assert configs["globex"].calendars == () and configs["initech"].policies == ()
    # A row written around the store that does not validate names its tenant.
    await raw.execute(
        "INSERT INTO sla_policies (tenant, name, version, effective_from, position, body) "
        "VALUES ('globex', 'broken', 1, $1, 5, '{\"first_response\": {\"seconds\": -1}}')",
        NOW,
    )
    async with sla.connect() as conn:
        with pytest.raises(StoredConfigError, match="'globex'"):
            await load_sla_configs(conn)
