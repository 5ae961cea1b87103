"""The Grafana dashboards: well-formed, and every panel query returns data from the real pipeline.

The static checks need nothing running. The end-to-end ones substitute the template variables with
concrete values (the run's tenant, window 1h, `.*` for multi-value variables, 1m for
$__rate_interval) and ask the stack's Prometheus, which scrapes the pipeline started by the
`pipeline` fixture, for every expression: each must parse and return at least one series.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.support import (
    BUILTINS,
    DATASOURCE_UID,
    PanelQuery,
    Pipeline,
    Prometheus,
    dashboard_files,
    load_dashboard,
    panel_queries,
    parse_label_values,
    referenced_variables,
    substitute,
    variable_values,
    variables,
    walk_panels,
)

EXPECTED = {"overview", "channels", "agents", "phone", "sla", "labels", "pipeline"}
# Dashboards of tenant KPIs (the pipeline dashboard has no tenant dimension).
KPI_DASHBOARDS = EXPECTED - {"pipeline"}
# From the start of the simulated traffic: the slowest series (CSAT answers, handle times of ended
# calls) need a resolved conversation or a finished call first.
DATA_DEADLINE_SECONDS = 210.0
# Whatever the start: at least this long to poll (scrapes and rule evaluations every 5 s).
MIN_POLL_SECONDS = 60.0


def concrete_values(tenant: str) -> dict[str, str]:
    return {"tenant": tenant, "window": "1h"}


# --- static ---------------------------------------------------------------------------------------


def test_the_expected_dashboards_exist() -> None:
    assert {p.stem for p in dashboard_files()} == EXPECTED


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.stem)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["uid"] == f"supportpulse-{path.stem}"
    assert dashboard["title"].startswith("SupportPulse / ")
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert "supportpulse" in dashboard["tags"]

    names = [v["name"] for v in variables(dashboard)]
    assert len(names) == len(set(names)), f"duplicate template variables {names}"
    if path.stem in KPI_DASHBOARDS:
        assert {"tenant", "window"} <= set(names)
    for var in variables(dashboard):
        assert var["datasource"]["uid"] == DATASOURCE_UID, var["name"]
        parse_label_values(var["query"])  # a label_values(...) query
        if var.get("includeAll"):
            assert var.get("allValue") == ".*", (
                f"{var['name']}: All must match the empty (unassigned) value too"
            )

    ids: list[int] = []
    known = set(names) | set(BUILTINS)
    for panel in walk_panels(dashboard["panels"]):
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] in ("row", "text"):
            continue
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: duplicate refIds"
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_UID
            unknown = referenced_variables(t["expr"]) - known
            assert not unknown, f"{panel['title']} {t['refId']}: undefined variables {unknown}"
    assert len(ids) == len(set(ids)), "duplicate panel ids"


# --- against the running pipeline --------------------------------------------------------------------


def _poll_until_every_query_has_data(
    prometheus: Prometheus, queries: dict[PanelQuery, str], deadline: float
) -> tuple[dict[PanelQuery, str], dict[PanelQuery, str]]:
    """Query every pending expression in rounds until each returns a series or the deadline passes.

    Returns (errors: the expression did not parse/evaluate, empty: still no series at the deadline).
    """
    pending = dict(queries)
    errors: dict[PanelQuery, str] = {}
    while True:
        for query, expr in list(pending.items()):
            answer = prometheus.query(expr)
            if answer.get("status") != "success":
                errors[query] = f"{answer.get('errorType')}: {answer.get('error')}"
                del pending[query]
            elif answer["data"]["result"]:
                del pending[query]
        if not pending or time.monotonic() > deadline:
            return errors, {q: queries[q] for q in pending}
        time.sleep(5)


@pytest.mark.integration
@pytest.mark.slow
def test_every_panel_query_returns_data(pipeline: Pipeline) -> None:
    queries: dict[PanelQuery, str] = {}
    for path in dashboard_files():
        values = variable_values(load_dashboard(path), concrete_values(pipeline.tenant))
        for query in panel_queries(path):
            queries[query] = substitute(query.expr, values)
    assert len(queries) > 50

    deadline = max(pipeline.feed_started + DATA_DEADLINE_SECONDS, time.monotonic() + MIN_POLL_SECONDS)
    errors, empty = _poll_until_every_query_has_data(pipeline.prometheus, queries, deadline)

    report = [f"PARSE/EVAL ERROR {q.where()}: {msg}\n    {queries[q]}" for q, msg in errors.items()]
    report += [f"NO SERIES {q.where()}\n    {expr}" for q, expr in empty.items()]
    assert not report, "\n".join(report) + "\n" + pipeline.describe()


@pytest.mark.integration
@pytest.mark.slow
def test_template_variables_have_values(pipeline: Pipeline) -> None:
    """Each variable's label_values(...) query offers at least one value (for the run's tenant)."""
    deadline = max(pipeline.feed_started + DATA_DEADLINE_SECONDS, time.monotonic() + MIN_POLL_SECONDS)
    pending: dict[str, tuple[str, str | None]] = {}
    for path in dashboard_files():
        dashboard = load_dashboard(path)
        values = variable_values(dashboard, concrete_values(pipeline.tenant))
        for var in variables(dashboard):
            selector, label = parse_label_values(var["query"])
            pending[f"{path.stem} ${var['name']}"] = (
                label,
                substitute(selector, values) if selector else None,
            )
    while True:
        for key, (label, selector) in list(pending.items()):
            if pipeline.prometheus.label_values(label, selector):
                del pending[key]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert not pending, f"variables without values: {pending}\n{pipeline.describe()}"
    # The tenant variable offers the run's tenant.
    assert pipeline.tenant in pipeline.prometheus.label_values("tenant", "supportpulse_received_window")
