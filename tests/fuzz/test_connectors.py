"""Cross-connector fuzzing of ``handle()``: one contract, every connector, hostile input.

Whatever bytes, headers and content type arrive, a connector answers with a :class:`Mapped`
whose events the aggregator can use, or raises a :class:`ConnectorError` whose status is a
4xx, whose detail is non-empty and whose class names one of the ingest outcome labels. Any
other exception would be a 500 (and a metrics ``KeyError`` for an unknown outcome label).

The per-connector suites (tests/ingest/connectors) test each vendor's mapping and some
malformed bodies; this module states the shared properties once and drives every connector
of the registry through them: truncated, oversized and wrongly encoded bodies, wrong content
types, a wrong type in every JSON field, wrong signatures and replayed Chatwoot timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import timedelta
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.connectors import CONNECTORS
from services.ingest.connectors.base import (
    BadSignature,
    ConnectorError,
    Mapped,
    StaleRequest,
    UnsupportedMediaType,
    WebhookRequest,
)
from services.ingest.connectors.chatwoot import ChatwootConfig
from services.ingest.metrics import OUTCOMES
from shared.events import problems
from tests.fuzz.vendors import (
    CHATWOOT_SECRET,
    FORM,
    JSON,
    TENANT,
    TEXT,
    VENDORS,
    Sample,
    Vendor,
    chatwoot_signature,
    twilio_signature,
)
from tests.ingest.connectors.support import NOW, json_paths, json_values, replaced

# Pure functions, no I/O: derandomized so CI sees the same examples every run.
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BIG = settings(FUZZ, max_examples=25)

NAMES: Final = sorted(VENDORS)
SIGNING: Final = sorted(name for name, vendor in VENDORS.items() if vendor.signs)
_REASON: Final = re.compile(r"[a-z][a-z_]{0,59}")


def outcome(vendor: Vendor, request: WebhookRequest) -> Mapped | ConnectorError:
    """Run the connector and check the contract; any other exception fails the test as is."""
    error: ConnectorError | None = None
    try:
        mapped = CONNECTORS[vendor.name][0].handle(request, vendor.config)
    except ConnectorError as exc:
        error = exc
    if error is not None:
        assert 400 <= error.status_code < 500, error
        assert isinstance(error.detail, str) and error.detail.strip(), error
        # The class's label is the metrics outcome; the reason goes into the problem type URL.
        assert type(error).default_reason in OUTCOMES, type(error)
        assert _REASON.fullmatch(error.reason), error.reason
        return error
    assert isinstance(mapped, Mapped)
    for event in mapped.events:
        assert problems(event) == [], event
        assert event.tenant == request.tenant
        assert event.id.startswith(f"{vendor.name}:")
        assert event.occurred_at.utcoffset() == timedelta(0)
    for why in mapped.ignored:
        assert 0 < len(why) <= 60 and why.isprintable(), why
    return mapped


def signed(vendor: Vendor, body: bytes, content_type: str | None, **kwargs: Any) -> Mapped | ConnectorError:
    return outcome(vendor, vendor.request(body, content_type, **kwargs))


def samples(vendor: Vendor) -> st.SearchStrategy[Sample]:
    return st.sampled_from(vendor.samples)


def test_every_connector_of_the_registry_is_fuzzed() -> None:
    assert set(VENDORS) == set(CONNECTORS)
    for vendor in VENDORS.values():
        assert isinstance(vendor.config, CONNECTORS[vendor.name][1])
        for sample in vendor.samples:
            result = signed(vendor, sample.body, sample.content_type)
            assert isinstance(result, Mapped), (vendor.name, sample.name, result)
            assert result.events or result.ignored


# --- truncated -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_truncated_bodies(name: str, data: st.DataObject) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    cut = data.draw(st.integers(0, len(sample.body) - 1))
    signed(vendor, sample.body[:cut], sample.content_type)


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_of_json_bodies_is_a_clean_4xx(name: str) -> None:
    """Exhaustive for JSON bodies: a strict prefix of a JSON document is never valid JSON."""
    vendor = VENDORS[name]
    for sample in vendor.samples:
        if not sample.is_json:
            continue
        for cut in range(len(sample.body.rstrip())):
            result = signed(vendor, sample.body[:cut], sample.content_type)
            assert isinstance(result, ConnectorError), (sample.name, cut)
            assert result.status_code == 422, (sample.name, cut, result)


# --- oversized -------------------------------------------------------------------------------


def _oversize(sample: Sample, kind: str, size: int) -> bytes:
    if kind == "repeat":
        return sample.body * max(1, size // max(len(sample.body), 1))
    if sample.content_type == TEXT:
        line = sample.body.splitlines()[-1]
        return {
            "padding": sample.body + b"\n" * size,
            "long-field": line + b"|" + b"x" * size,
            "deep": b"|" * size,
        }[kind]
    if sample.content_type == FORM:
        return {
            "padding": sample.body + b"&Pad=" + b"x" * size,
            "long-field": sample.body + b"&" + b"&".join(b"K%d=v" % i for i in range(size // 8)),
            "deep": sample.body + b"&TaskAttributes=" + b"%5B" * (size // 3) + b"%5D" * (size // 3),
        }[kind]
    value = json.loads(sample.body)
    if kind == "deep":
        depth = size // 2
        return b"[" * depth + sample.body + b"]" * depth
    filler: Any = "x" * size if kind == "padding" else list(range(size // 8))
    if isinstance(value, dict):
        return json.dumps({**value, "zz_padding": filler}).encode()
    return json.dumps([*value, {"zz_padding": filler}]).encode()


@pytest.mark.parametrize("name", NAMES)
@BIG
@given(
    data=st.data(),
    kind=st.sampled_from(["padding", "long-field", "deep", "repeat"]),
    size=st.sampled_from([4_096, 70_000, 1_100_000]),
)
def test_oversized_bodies(name: str, data: st.DataObject, kind: str, size: int) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    signed(vendor, _oversize(sample, kind, size), sample.content_type)


def test_a_generic_batch_over_the_limit_is_refused_whole() -> None:
    vendor = VENDORS["generic"]
    event = json.loads(vendor.samples[0].body)
    batch = [{**event, "id": f"e-{i}"} for i in range(1001)]
    result = signed(vendor, json.dumps(batch).encode(), JSON)
    assert isinstance(result, ConnectorError) and result.status_code == 422
    assert "1001" in result.detail


# --- encodings -------------------------------------------------------------------------------

NON_ASCII: Final = ["café", "Zürich – naïve", "日本語", "emoji 😀", "\u00a0nbsp", "ø" * 50]
INVALID_UTF8: Final = [
    b"\xff",
    b"\xc3",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\x80",
]


def _with_text(sample: Sample, text: str) -> bytes:
    """The sample with a non-ASCII text in it, as UTF-8 (then re-encoded by the caller)."""
    if sample.content_type == TEXT:
        first, _, rest = sample.body.partition(b"\n")
        fields = first.split(b"|")
        fields[2] = text.encode()  # the queue name
        return b"|".join(fields) + b"\n" + rest
    if sample.content_type == FORM:
        return sample.body + b"&TaskQueueName=" + text.encode()
    value = json.loads(sample.body)
    if isinstance(value, dict):
        value["zz_note"] = text
    else:
        value[0]["zz_note"] = text
    return json.dumps(value, ensure_ascii=False).encode()


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(
    data=st.data(),
    text=st.sampled_from(NON_ASCII) | st.text(min_size=1, max_size=20),
    codec=st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"]),
)
def test_wrong_encodings(name: str, data: st.DataObject, text: str, codec: str) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    body = _with_text(sample, text).decode("utf-8").encode(codec, errors="replace")
    result = signed(vendor, body, sample.content_type)
    if codec.startswith(("utf-16", "utf-32")):
        # Never mistaken for UTF-8: NUL bytes everywhere make it undecodable as our formats.
        assert isinstance(result, ConnectorError) or not result.events, (codec, result)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data(), bad=st.sampled_from(INVALID_UTF8))
def test_invalid_utf8_anywhere(name: str, data: st.DataObject, bad: bytes) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    at = data.draw(st.integers(0, len(sample.body)))
    body = sample.body[:at] + bad + sample.body[at:]
    result = signed(vendor, body, sample.content_type)
    if sample.content_type != FORM:  # form bodies are checked too, but may percent-decode first
        assert isinstance(result, ConnectorError), (at, bad)
        assert result.status_code == 422


# --- content types ---------------------------------------------------------------------------

CONTENT_TYPES: Final = [
    None,
    "",
    "text/html",
    "text/plain",
    "application/json",
    "application/x-www-form-urlencoded",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/xml",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "APPLICATION/JSON; charset=utf-16",
    "application/json-patch+json",
    "application/jsonx",
    "json",
    ";",
    "application/json\x00",
    " text/plain ; charset=latin-1",
]


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data(), content_type=st.sampled_from(CONTENT_TYPES) | st.text(max_size=40))
def test_wrong_content_types(name: str, data: st.DataObject, content_type: str | None) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    result = signed(vendor, sample.body, content_type)
    if _media_type(content_type) not in vendor.content_types:
        assert isinstance(result, UnsupportedMediaType), (content_type, result)
        assert result.status_code == 415


# --- wrong types in every JSON field ---------------------------------------------------------

WRONG_VALUES: Final[list[Any]] = [
    None,
    True,
    0,
    -1,
    2**64,
    10**400,
    1.5,
    -1e308,
    "",
    " ",
    "x",
    "1" * 400,
    "\x00",
    [],
    [None],
    {},
    {"id": {}},
]


def _json_samples(vendor: Vendor) -> list[Sample]:
    return [s for s in vendor.samples if s.is_json]


@pytest.mark.parametrize("name", [n for n in NAMES if _json_samples(VENDORS[n])])
def test_a_wrong_type_in_every_json_field(name: str) -> None:
    """Exhaustive: each path of each JSON sample, replaced by each of a set of wrong-typed values."""
    vendor = VENDORS[name]
    calls = 0
    for sample in _json_samples(vendor):
        value = json.loads(sample.body)
        for path in json_paths(value):
            for wrong in WRONG_VALUES:
                body = json.dumps(replaced(value, path, wrong)).encode()
                signed(vendor, body, sample.content_type)
                calls += 1
    assert calls > 500


@pytest.mark.parametrize("name", [n for n in NAMES if _json_samples(VENDORS[n])])
@FUZZ
@given(data=st.data(), value=json_values)
def test_any_json_value_in_any_field(name: str, data: st.DataObject, value: object) -> None:
    vendor = VENDORS[name]
    sample = data.draw(st.sampled_from(_json_samples(vendor)))
    decoded = json.loads(sample.body)
    path = data.draw(st.sampled_from(json_paths(decoded)))
    signed(vendor, json.dumps(replaced(decoded, path, value)).encode(), sample.content_type)


@FUZZ
@given(data=st.data(), field=st.integers(0, 12), value=st.text(max_size=30) | st.sampled_from(["1" * 400]))
def test_any_value_in_any_queue_log_field(data: st.DataObject, field: int, value: str) -> None:
    vendor = VENDORS["asterisk"]
    sample = data.draw(samples(vendor))
    lines = sample.body.decode().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    fields = lines[index].split("|")
    fields.extend([""] * (field + 1 - len(fields)))
    fields[field] = value.replace("\n", " ").replace("\r", " ")
    lines[index] = "|".join(fields)
    signed(vendor, "\n".join(lines).encode(), TEXT)


# --- signatures ------------------------------------------------------------------------------


def _forged_headers(vendor: Vendor, data: st.DataObject, sample: Sample) -> dict[str, str]:
    """Headers a forger without the secret could send."""
    ts = str(int(NOW.timestamp()))
    if vendor.name == "chatwoot":
        forged = data.draw(
            st.sampled_from(
                [
                    "",
                    "sha256=",
                    "sha256=" + "0" * 64,
                    chatwoot_signature(sample.body, int(ts), secret="not-the-secret"),
                    chatwoot_signature(sample.body + b" ", int(ts)),  # another body
                    chatwoot_signature(sample.body, int(ts) + 1),  # another timestamp
                    chatwoot_signature(sample.body, int(ts))[:-1],  # truncated
                    chatwoot_signature(sample.body, int(ts)).replace("sha256=", "sha1="),
                ]
            )
            | st.text(max_size=80)
        )
        return {"x-chatwoot-timestamp": ts, "x-chatwoot-signature": forged}
    url = "https://ingest.example.com/v1/webhooks/twilio/t1"
    forged = data.draw(
        st.sampled_from(
            [
                "",
                "=",
                twilio_signature(url, [], token="not-the-token"),
                twilio_signature(url + "?x=1", []),
                twilio_signature("http://ingest.example.com/v1/webhooks/twilio/t2", []),
            ]
        )
        | st.text(max_size=60)
    )
    return {"x-twilio-signature": forged}


@pytest.mark.parametrize("name", SIGNING)
@FUZZ
@given(data=st.data())
def test_wrong_signatures_are_always_401(name: str, data: st.DataObject) -> None:
    vendor = VENDORS[name]
    sample = data.draw(samples(vendor))
    request = vendor.request(sample.body, sample.content_type, headers=_forged_headers(vendor, data, sample))
    result = outcome(vendor, request)
    assert isinstance(result, BadSignature), result
    assert result.status_code == 401


@pytest.mark.parametrize("name", SIGNING)
@pytest.mark.parametrize("missing", ["all", "signature", "timestamp"])
def test_missing_signature_headers_are_401(name: str, missing: str) -> None:
    vendor = VENDORS[name]
    for sample in vendor.samples:
        request = vendor.request(sample.body, sample.content_type)
        headers = dict(request.headers)
        for header in list(headers):
            if header.startswith("x-") and (missing == "all" or missing in header):
                del headers[header]
        result = outcome(vendor, WebhookRequest(TENANT, request.body, headers, request.url, NOW))
        if headers == dict(request.headers):  # Twilio has no timestamp header
            continue
        assert isinstance(result, BadSignature) and result.status_code == 401, (sample.name, result)


# --- replayed (stale) Chatwoot timestamps ----------------------------------------------------

CHATWOOT: Final = VENDORS["chatwoot"]
SKEW: Final = CHATWOOT.config.max_skew_seconds if isinstance(CHATWOOT.config, ChatwootConfig) else 300


@FUZZ
@given(
    data=st.data(),
    offset=st.integers(SKEW + 1, 10 * 365 * 86400) | st.integers(-10 * 365 * 86400, -SKEW - 1),
)
def test_stale_or_future_chatwoot_timestamps_are_refused(data: st.DataObject, offset: int) -> None:
    """Correctly signed, but timestamped outside the window: a replay, refused whatever the body."""
    sample = data.draw(samples(CHATWOOT))
    stamp = int(NOW.timestamp()) - offset
    result = signed(CHATWOOT, sample.body, sample.content_type, timestamp=stamp)
    assert isinstance(result, StaleRequest), (offset, result)
    assert result.status_code == 401 and result.reason == "stale_timestamp"


@FUZZ
@given(data=st.data(), later=st.integers(SKEW + 1, 30 * 86400))
def test_a_replayed_chatwoot_request_is_refused_once_stale(data: st.DataObject, later: int) -> None:
    """The exact bytes and headers that were accepted are refused when replayed after the window."""
    sample = data.draw(samples(CHATWOOT))
    original = CHATWOOT.request(sample.body, sample.content_type)
    assert isinstance(outcome(CHATWOOT, original), Mapped)
    replay = WebhookRequest(
        original.tenant, original.body, original.headers, original.url, NOW + timedelta(seconds=later)
    )
    result = outcome(CHATWOOT, replay)
    assert isinstance(result, StaleRequest), result


@FUZZ
@given(data=st.data(), offset=st.integers(-SKEW, SKEW))
def test_chatwoot_timestamps_within_the_window_are_accepted(data: st.DataObject, offset: int) -> None:
    sample = data.draw(samples(CHATWOOT))
    result = signed(CHATWOOT, sample.body, sample.content_type, timestamp=int(NOW.timestamp()) + offset)
    assert isinstance(result, Mapped), (offset, result)


@pytest.mark.parametrize(
    "stamp", ["0", "-1", "1e9", "１７３６９４２４００", "1736942400000", "9" * 400, "9" * 5000]
)
def test_absurd_chatwoot_timestamps_are_401_even_when_signed(stamp: str) -> None:
    """A timestamp the secret's holder signed but that is no plausible time: 401, never a crash."""
    sample = CHATWOOT.samples[0]
    mac = chatwoot_signature(sample.body, 0, secret=CHATWOOT_SECRET)
    headers = {"x-chatwoot-timestamp": stamp, "x-chatwoot-signature": mac}
    if stamp.strip().isascii() and stamp.strip().isdigit():
        digest = hmac.new(
            CHATWOOT_SECRET.encode(), stamp.strip().encode() + b"." + sample.body, hashlib.sha256
        )
        headers["x-chatwoot-signature"] = "sha256=" + digest.hexdigest()
    result = outcome(CHATWOOT, CHATWOOT.request(sample.body, JSON, headers=headers))
    assert isinstance(result, BadSignature | StaleRequest), result
    assert result.status_code == 401
