"""No secret is ever written to a log, to stdout/stderr, or to the raw and dead-letter topics.

Secrets here are distinctive (``sekret-…-XYZ123``) so a plain search finds any copy: webhook
secrets, ingest tokens, API keys, the wrong credentials callers present (a mistyped token is
often a near-miss of the real one) and database passwords. The apps run in-process with every
logger at DEBUG (caplog), and the real services run as subprocesses at DEBUG with their whole
output captured; both get requests with good and bad signatures, tokens and keys, and the
error paths (Kafka unreachable, database refusing the password). ``supportpulse config`` must
mask them as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import subprocess
import time
from base64 import b64encode
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from shared.tenants import TenantsConfig
from tests.ingest.connectors.support import corpus_bytes, corpus_json
from tests.security.conftest import ApiFactory, ingest_app, serving
from tests.security.services import BIN, RunningService

pytestmark = pytest.mark.integration

INGEST_TOKEN: Final = "sekret-INGEST-XYZ123"
OTHER_TOKEN: Final = "sekret-OTHERTENANT-XYZ123"
CHATWOOT_SECRET: Final = "sekret-CHATWOOT-XYZ123"
TWILIO_TOKEN: Final = "sekret-TWILIO-XYZ123"
ASTERISK_TOKEN: Final = "sekret-ASTERISK-XYZ123"
API_KEY: Final = "sekret-APIKEY-XYZ123"
METRICS_KEY: Final = "sekret-METRICSKEY-XYZ123"
WRONG: Final = "sekret-WRONG-XYZ123"  # presented by callers, refused: must not be logged either
DB_PASSWORD: Final = "sekret-DBPASS-XYZ123"
SECRETS: Final = [
    INGEST_TOKEN,
    OTHER_TOKEN,
    CHATWOOT_SECRET,
    TWILIO_TOKEN,
    ASTERISK_TOKEN,
    API_KEY,
    METRICS_KEY,
    WRONG,
    DB_PASSWORD,
]

TENANTS_FILE: Final[dict[str, Any]] = {
    "tenants": {
        "acme": {
            "ingest_token": INGEST_TOKEN,
            "connectors": {
                "generic": {},
                "chatwoot": {"secret": CHATWOOT_SECRET},
                "twilio": {"auth_token": TWILIO_TOKEN},
                "asterisk": {"token": ASTERISK_TOKEN},
            },
        },
        "globex": {"ingest_token": OTHER_TOKEN, "connectors": {"generic": {}}},
        "initech": {},
    },
    "api_keys": [
        {"name": "acme", "key": API_KEY, "tenants": ["acme"]},
        {"name": "ops", "key": METRICS_KEY, "tenants": ["*"], "metrics": True},
    ],
}
TENANTS: Final = TenantsConfig.model_validate(TENANTS_FILE)


def leaks(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [secret for secret in (*SECRETS, *extra) if secret in text]


def db_password_markers(url: str) -> tuple[str, ...]:
    """The password of a database URL, as it would appear in a URL or a DSN."""
    password = make_url(url).password or ""
    return (f":{password}@", f"password={password}", url)


# --- requests with good and bad credentials --------------------------------------------------


def chatwoot(body: bytes, secret: str = CHATWOOT_SECRET, stamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if stamp is None else stamp)
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-chatwoot-timestamp": ts,
        "x-chatwoot-signature": f"sha256={mac}",
    }


def twilio(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> dict[str, str]:
    data = url + "".join(k + params[k] for k in sorted(params))
    signature = b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()
    return {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature}


def event(**changes: Any) -> dict[str, Any]:
    return {
        "id": "sec-1",
        "source": "sec",
        "type": "call.queued",
        "occurred_at": "2025-01-15T10:00:00Z",
        "conversation_id": "sec-c",
        **changes,
    }


def ingest_requests(base: str) -> list[tuple[str, dict[str, Any], set[int]]]:
    """(path, httpx kwargs, acceptable statuses) covering success and every refusal."""
    message = corpus_bytes("chatwoot", "message_created.json")
    params = {k: str(v) for k, v in corpus_json("twilio", "taskrouter_task.json").items()}
    form = urlencode(params)
    twilio_url = f"{base}/v1/webhooks/twilio/acme"
    queue_log = corpus_bytes("asterisk", "queue_log.txt")
    bearer = {"authorization": f"Bearer {INGEST_TOKEN}"}
    wrong = {"authorization": f"Bearer {WRONG}"}
    text = {"content-type": "text/plain"}
    return [
        ("/v1/events", {"json": [event()], "headers": bearer}, {202}),
        ("/v1/events", {"json": [event()], "headers": {"authorization": f"Bearer {OTHER_TOKEN}"}}, {202}),
        ("/v1/events", {"json": [event()], "headers": wrong}, {401}),
        ("/v1/events", {"json": [event()], "headers": {"authorization": WRONG}}, {401}),
        ("/v1/events", {"json": [event(tenant="globex")], "headers": bearer}, {422}),
        ("/v1/events", {"json": [event(occurred_at="1970-01-01T00:00:00Z")], "headers": bearer}, {422}),
        ("/v1/webhooks/chatwoot/acme", {"content": message, "headers": chatwoot(message)}, {202}),
        ("/v1/webhooks/chatwoot/acme", {"content": message, "headers": chatwoot(message, WRONG)}, {401}),
        ("/v1/webhooks/chatwoot/acme", {"content": message, "headers": chatwoot(message, stamp=1)}, {401}),
        ("/v1/webhooks/chatwoot/acme", {"content": b"{", "headers": chatwoot(b"{")}, {422}),
        ("/v1/webhooks/twilio/acme", {"content": form, "headers": twilio(twilio_url, params)}, {202}),
        ("/v1/webhooks/twilio/acme", {"content": form, "headers": twilio(twilio_url, params, WRONG)}, {401}),
        ("/v1/webhooks/asterisk/acme", {"content": queue_log, "headers": {**bearer, **text}}, {202}),
        ("/v1/webhooks/asterisk/acme", {"content": queue_log, "headers": {**wrong, **text}}, {401}),
        ("/v1/webhooks/asterisk/acme", {"content": b"x|y", "headers": {**bearer, **text}}, {422}),
        ("/v1/webhooks/nope/acme", {"content": b"{}", "headers": bearer}, {404}),
    ]


def api_requests() -> list[tuple[str, dict[str, str], set[int]]]:
    good, ops, wrong = API_KEY, METRICS_KEY, WRONG
    paths = [
        "/v1/kpis",
        "/v1/kpis/timeseries?kpi=handled",
        "/v1/agents",
        "/v1/live",
        "/v1/conversations/c-story",
    ]
    found: list[tuple[str, dict[str, str], set[int]]] = []
    for path in paths:
        join = "&" if "?" in path else "?"
        found += [
            (path, {"Authorization": f"Bearer {good}"}, {200, 404, 503}),
            (f"{path}{join}tenant=globex", {"Authorization": f"Bearer {good}"}, {403}),
            (path, {"Authorization": f"Bearer {wrong}"}, {401}),
            (path, {"Authorization": wrong}, {401}),
            (f"{path}{join}tenant=acme", {"Authorization": f"Bearer {ops}"}, {200, 404, 503}),
        ]
    found += [
        ("/metrics", {"Authorization": f"Bearer {ops}"}, {200}),
        ("/metrics", {"Authorization": f"Bearer {good}"}, {403}),
        ("/metrics", {"Authorization": f"Bearer {wrong}"}, {401}),
        ("/readyz", {}, {200, 503}),
    ]
    return found


# --- in process, caplog at DEBUG -------------------------------------------------------------


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything logged, formatted, with arguments and tracebacks."""
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts)


async def topic_bytes(bootstrap: str, topic: str) -> bytes:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found = b""
    try:
        quiet = 0
        while quiet < 3:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            quiet = 0 if records else quiet + 1
            found += b"\n".join((r.value or b"") + b" " + repr(r.headers).encode() for r in records)
    finally:
        await consumer.stop()
    return found


async def test_ingest_in_process_logs_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    base = "http://ingest.test"
    async with ingest_app(TENANTS) as (app, settings), serving(app, base) as client:
        for _ in range(200):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        for path, kwargs, statuses in ingest_requests(base):
            response = await client.post(path, **kwargs)
            assert response.status_code in statuses, (path, response.status_code, response.text)
            assert leaks(response.text) == [], path
        raw = await topic_bytes(settings.kafka_bootstrap, settings.raw_topic)
        dead = await topic_bytes(settings.kafka_bootstrap, settings.deadletter_topic)
    assert raw and dead, "nothing reached the raw and dead-letter topics"
    assert leaks(raw.decode(errors="replace")) == []
    assert leaks(dead.decode(errors="replace")) == []
    # Kafka unreachable: the warnings name the broker and the failure, nothing else.
    async with (
        ingest_app(TENANTS, kafka_bootstrap="127.0.0.1:1", ingest_produce_timeout_seconds=1) as (
            down,
            _,
        ),
        serving(down, base) as client,
    ):
        response = await client.post(
            "/v1/events", json=[event()], headers={"authorization": f"Bearer {INGEST_TOKEN}"}
        )
        assert response.status_code == 503
        await client.post("/v1/events", json=[{"id": 1}], headers={"authorization": f"Bearer {INGEST_TOKEN}"})
    text = logged(caplog)
    assert "kafka unavailable" in text and "could not dead-letter" in text  # the error paths did run
    assert leaks(text) == []


async def test_api_in_process_logs_no_secret(
    caplog: pytest.LogCaptureFixture, api_factory: ApiFactory, seeded: str
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_password = make_url(seeded).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    for database, protected in ((seeded, True), (wrong_password, False)):
        app = api_factory(
            database=database,
            tenants=TENANTS,
            api_metrics_protected=protected,
            api_metrics_cache_seconds=0.05,
        )
        async with serving(app) as client:
            for path, headers, statuses in api_requests():
                response = await client.get(path, headers=headers)
                expected = statuses if database == seeded else statuses | {503, 200}
                assert response.status_code in expected, (path, response.status_code, response.text)
                assert leaks(response.text) == [], path
            await asyncio.sleep(0.3)  # a few background refreshes (failing ones on the wrong password)
    text = logged(caplog)
    assert "password authentication failed" in text  # the failing paths did log
    assert leaks(text, db_password_markers(seeded)) == []


# --- the real services as subprocesses -------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets")


def test_real_ingest_logs_no_secret(workdir: Path) -> None:
    with (
        RunningService.ingest(workdir, tenants=TENANTS_FILE) as service,
        httpx.Client(base_url=service.url) as client,
    ):
        for path, kwargs, statuses in ingest_requests(service.url):
            response = client.post(path, **kwargs)
            assert response.status_code in statuses, (path, response.status_code, response.text)
            assert leaks(response.text) == []
    output = service.output()
    assert "ingest ready" in output and "connected to kafka" in output  # it did log
    assert leaks(output) == []


@pytest.mark.parametrize("password", ["right", "wrong"])
def test_real_api_logs_no_secret(workdir: Path, seeded: str, password: str) -> None:
    url = (
        seeded
        if password == "right"
        else make_url(seeded).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    )
    env = {
        "SUPPORTPULSE_DATABASE_URL": url,
        "SUPPORTPULSE_API_METRICS_PROTECTED": "true",
        "SUPPORTPULSE_API_METRICS_CACHE_SECONDS": "0.2",
    }
    # With the wrong password it never gets ready: wait for liveness only.
    ready = "/readyz" if password == "right" else "/healthz"
    with _api(workdir, password, env, ready) as service, httpx.Client(base_url=service.url) as client:
        for path, headers, statuses in api_requests():
            response = client.get(path, headers=headers)
            allowed = statuses if password == "right" else statuses | {503, 200}
            assert response.status_code in allowed, (path, response.status_code, response.text)
        time.sleep(0.5)  # background refreshes, failing with the wrong password
    output = service.output()
    assert "api ready" in output
    if password == "wrong":
        assert "password authentication failed" in output
    assert leaks(output, db_password_markers(seeded)) == []


def _api(workdir: Path, name: str, env: dict[str, str], ready: str) -> Any:
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    return RunningService.api(directory, tenants=TENANTS_FILE, env=env, ready=ready)


# --- supportpulse config ---------------------------------------------------------------------


def _config(workdir: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    tenants = workdir / "config-tenants.yaml"
    tenants.write_text(yaml.safe_dump(TENANTS_FILE))
    env = {
        **os.environ,
        "SUPPORTPULSE_DATABASE_URL": database_url,
        "SUPPORTPULSE_TENANTS_FILE": str(tenants),
        "COLUMNS": "400",  # rich must not truncate (and so hide) a value
    }
    return subprocess.run([str(BIN), "config", *args], env=env, capture_output=True, text=True, timeout=60)


def test_config_masks_secrets(workdir: Path) -> None:
    url = f"postgresql://supportpulse:{DB_PASSWORD}@db.internal:5432/supportpulse"
    for args in ((), ("--markdown",)):
        result = _config(workdir, url, *args)
        assert result.returncode == 0, result.stderr
        assert "SUPPORTPULSE_DATABASE_URL" in result.stdout
        assert leaks(result.stdout + result.stderr) == [], args
    assert "(secret)" in _config(workdir, url).stdout


def test_a_malformed_database_url_is_not_echoed(workdir: Path) -> None:
    # Short enough for pydantic to echo whole; longer URLs are cut in the middle, still showing a part.
    result = _config(workdir, f"mysql://u:{DB_PASSWORD}@h/d")
    assert result.returncode != 0
    assert leaks(result.stdout + result.stderr) == []


# A typo in a secret's key is the commonest tenants-file mistake; the service must refuse to
# start, naming the file and the field, without printing the secret it could not place.
BAD_TENANTS: Final = {
    "tenant field": f"tenants:\n  acme:\n    ingest_tokn: {INGEST_TOKEN}\n",
    "tenant field type": f"tenants:\n  acme:\n    ingest_token: [{INGEST_TOKEN}]\n",
    "connector field": f"tenants:\n  acme:\n    connectors:\n      chatwoot: {{secrt: {CHATWOOT_SECRET}}}\n",
}


@pytest.mark.parametrize("mistake", sorted(BAD_TENANTS))
def test_a_tenants_file_mistake_does_not_echo_the_secret(workdir: Path, mistake: str) -> None:
    path = workdir / f"bad-{mistake.replace(' ', '-')}.yaml"
    path.write_text(BAD_TENANTS[mistake])
    env = {
        **os.environ,
        "SUPPORTPULSE_TENANTS_FILE": str(path),
        "SUPPORTPULSE_INGEST_PORT": "1",
        "COLUMNS": "400",
    }
    result = subprocess.run([str(BIN), "ingest"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "acme" in result.stderr  # it names what is wrong...
    assert leaks(result.stdout + result.stderr) == []  # ...without the secret
