"""Signatures, tokens and keys are compared in constant time.

Two independent checks:

* by reading the source (ast): the connectors that verify a signature and the ingest app's
  bearer token check call ``hmac.compare_digest``, and no ``==`` / ``!=`` / ``in`` anywhere in
  the ingest service or the API's key handling has a signature, token, secret, MAC or digest
  on either side;
* at run time: ``hmac.compare_digest`` is wrapped with a counter and each verification path
  is driven with a right and a wrong credential; the decision must have gone through it.

The API does not compare keys at all: it looks up ``sha256(presented key)`` in a dict built
from the configured keys' digests, which reveals nothing usable about a key through timing.
That design is asserted too (no raw key comparison, lookup by digest).
"""

from __future__ import annotations

import ast
import hmac
import inspect
import textwrap
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

import services.api.deps as api_deps
import services.ingest.app as ingest_app
from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import BadSignature
from services.ingest.settings import IngestSettings
from shared.tenants import ApiKey, TenantsConfig
from tests.fuzz.vendors import VENDORS

SECRET_WORDS: Final = (
    "signature", "token", "secret", "mac", "digest", "hexdigest", "password", "key", "credentials",
)  # fmt: skip
# Connectors whose own code authenticates the request (the others rely on the bearer token).
SIGNING: Final = {"chatwoot", "twilio"}


def _identifiers(node: ast.AST) -> Iterator[tuple[str, bool]]:
    """Identifiers naming what an operand is: (name, is_a_call), down the attribute/call chain."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            yield node.func.attr, True
            yield from _identifiers(node.func.value)
        elif isinstance(node.func, ast.Name):
            yield node.func.id, True
    elif isinstance(node, ast.Attribute):
        yield node.attr, False  # `key.tenants` is tenants, not a key
    elif isinstance(node, ast.Name):
        yield node.id, False
    elif isinstance(node, ast.Subscript):
        yield from _identifiers(node.value)


def _secretish(node: ast.AST) -> bool:
    for name, is_call in _identifiers(node):
        parts = name.lower().split("_")
        # TOKEN_CONNECTORS is connectors; signature_for(...) / hexdigest() compute secrets' images.
        if parts[-1] in SECRET_WORDS or (is_call and any(p in SECRET_WORDS for p in parts)):
            return True
    return False


def plain_comparisons(source: str) -> list[str]:
    """``==``/``!=``/``in`` comparisons with a secret-looking name on either side."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        equality = any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops)
        # `x is None`, `len(...) > n` and comparisons with literals (config flags) are not secret compares.
        if (
            equality
            and all(not isinstance(o, ast.Constant) for o in operands)
            and any(map(_secretish, operands))
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def compare_digest_calls(source: str) -> list[str]:
    return [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]


def test_the_detector_finds_plain_comparisons_of_secrets() -> None:
    source = """
if mac == given: pass
if config.secret != presented: pass
if hashlib.sha256(body).hexdigest() == claimed: pass
if signature_for(token, url, params) == sig: pass
if token in tokens: pass
if request.headers.get("x-token") == route.token: pass
if key.tenants == names: pass
if connector in TOKEN_CONNECTORS: pass
if route.token is not None: pass
"""
    assert [line.split(":")[0] for line in plain_comparisons(source)] == [
        "line 2", "line 3", "line 4", "line 5", "line 6", "line 7",
    ]  # fmt: skip
    assert compare_digest_calls("hmac.compare_digest(a, b)") == ["hmac.compare_digest(a, b)"]


def _module_source(name: str) -> str:
    return inspect.getsource(inspect.getmodule(CONNECTORS[name][0]))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_connector_source_compares_secrets_in_constant_time(name: str) -> None:
    source = _module_source(name)
    assert plain_comparisons(source) == []
    config = CONNECTORS[name][1]
    secret_fields = [f for f, info in config.model_fields.items() if "SecretStr" in str(info.annotation)]
    if name in SIGNING:
        assert secret_fields, f"{name} verifies a signature but its config holds no secret"
        assert compare_digest_calls(source), f"{name} verifies a signature without hmac.compare_digest"
    else:
        # Token connectors leave the check to the HTTP layer (TOKEN_CONNECTORS), asserted below.
        assert name in ingest_app.TOKEN_CONNECTORS, f"{name} neither signs nor is token-checked"


def test_ingest_bearer_token_check_source() -> None:
    for function in (ingest_app.Ingest._token_ok, ingest_app.Ingest._tenant_of_token):
        source = textwrap.dedent(inspect.getsource(function))
        assert compare_digest_calls(source), function.__qualname__
        assert plain_comparisons(source) == [], function.__qualname__
    assert plain_comparisons(inspect.getsource(ingest_app)) == []
    # Every connector is authenticated one way or the other.
    assert set(CONNECTORS) == SIGNING | ingest_app.TOKEN_CONNECTORS


def test_api_keys_are_looked_up_by_digest_never_compared() -> None:
    source = inspect.getsource(api_deps)
    assert plain_comparisons(source) == []
    tree = ast.parse(textwrap.dedent(inspect.getsource(api_deps.ApiState.authenticate)))
    assert "_digest" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    state = api_deps.ApiState.__new__(api_deps.ApiState)
    state.tenants = TenantsConfig(api_keys=[ApiKey(key=SecretStr("k-1"), name="one", tenants=["*"])])
    state.__post_init__()
    assert all(len(digest) == 32 for digest in state.keys)  # sha256 digests, not the keys
    assert state.authenticate("k-1") is not None and state.authenticate("k-2") is None


# --- run time: the decision goes through hmac.compare_digest ---------------------------------


class Counter:
    def __init__(self) -> None:
        self.calls = 0
        self.real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls += 1
        return self.real(a, b)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter()
    monkeypatch.setattr(hmac, "compare_digest", counter)
    return counter


@pytest.mark.parametrize("name", sorted(SIGNING))
def test_connector_signature_decisions_go_through_compare_digest(name: str, counted: Counter) -> None:
    vendor = VENDORS[name]
    connector = CONNECTORS[name][0]
    for sample in vendor.samples:
        good = vendor.request(sample.body, sample.content_type)
        before = counted.calls
        connector.handle(good, vendor.config)
        assert counted.calls > before, sample.name
        forged = {
            k: v[:-2] + ("AA" if not v.endswith("AA") else "BB")
            for k, v in good.headers.items()
            if "signature" in k
        }
        bad = vendor.request(sample.body, sample.content_type, headers=forged)
        before = counted.calls
        with pytest.raises(BadSignature):
            connector.handle(bad, vendor.config)
        assert counted.calls > before, sample.name


TOKENS = TenantsConfig.model_validate(
    {
        "tenants": {
            "t1": {"ingest_token": "ct-token-1", "connectors": {"generic": {}, "asterisk": {}}},
            "t2": {"ingest_token": "ct-token-2", "connectors": {"generic": {}}},
        }
    }
)


@pytest.mark.parametrize(
    ("path", "content_type", "authorized"),
    [
        # No lifespan, so no Kafka: an authorized empty batch gets 503, a queue_log line "[]" 422.
        ("/v1/events", "application/json", 503),
        ("/v1/webhooks/asterisk/t1", "text/plain", 422),
        ("/v1/webhooks/generic/t1", "application/json", 503),
    ],
)
async def test_ingest_token_decisions_go_through_compare_digest(
    path: str, content_type: str, authorized: int, counted: Counter
) -> None:
    app = ingest_app.create_app(IngestSettings(kafka_bootstrap="127.0.0.1:1"), TOKENS, CollectorRegistry())
    headers = {"content-type": content_type}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest.test"
    ) as client:
        # t2's token is valid on /v1/events (as tenant t2), not on t1's webhook routes.
        t2 = authorized if path == "/v1/events" else 401
        for token, expected in (
            ("ct-token-1", authorized),
            ("ct-token-1x", 401),
            ("ct-token-2", t2),
            ("", 401),
        ):
            before = counted.calls
            response = await client.post(
                path, content=b"[]", headers={**headers, "authorization": f"Bearer {token}"}
            )
            assert response.status_code == expected, (token, response.text)
            if token:
                assert counted.calls > before, token
