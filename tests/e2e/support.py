"""Helpers of the end-to-end tests: dashboards, Prometheus queries, child processes, the alert sink."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

REPO: Final = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR: Final = REPO / "deploy" / "grafana" / "dashboards"
RULES_DIR: Final = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR: Final = REPO / "deploy" / "prometheus" / "tests"

DATASOURCE_UID: Final = "prometheus"
# Values of Grafana's built-in interval variables when a panel is checked against Prometheus.
BUILTINS: Final = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
# A template variable reference: $name, ${name} or ${name:format}.
VARIABLE: Final = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)")
LABEL_VALUES: Final = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S
)

Json = dict[str, Any]


# --- dashboards ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref_id}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> Json:
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


def walk_panels(panels: list[Json]) -> Iterator[Json]:
    """Every panel, rows' nested (collapsed) panels included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def variables(dashboard: Json) -> list[Json]:
    variables: list[Json] = dashboard.get("templating", {}).get("list", [])
    return variables


def panel_queries(path: Path) -> list[PanelQuery]:
    dashboard = load_dashboard(path)
    return [
        PanelQuery(path.stem, str(panel.get("title", "")), str(t.get("refId", "")), str(t["expr"]))
        for panel in walk_panels(dashboard["panels"])
        for t in panel.get("targets", [])
        if "expr" in t
    ]


def variable_values(dashboard: Json, concrete: Mapping[str, str]) -> dict[str, str]:
    """What each template variable becomes in a query: `.*` for multi-value/All ones, else `concrete`."""
    values = dict(BUILTINS)
    for var in variables(dashboard):
        name = var["name"]
        if var.get("includeAll") or var.get("multi"):
            values[name] = str(var.get("allValue") or ".*")
        elif name in concrete:
            values[name] = concrete[name]
    return values


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace every template variable; KeyError names a variable that has no value."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(name)
        return values[name]

    return VARIABLE.sub(one, expr)


def referenced_variables(text: str) -> set[str]:
    return {m.group(1) or m.group(2) for m in VARIABLE.finditer(text)}


def parse_label_values(query: str) -> tuple[str | None, str]:
    """`label_values(selector, label)` -> (selector, label); ValueError for any other variable query."""
    match = LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(...) query: {query!r}")
    return match.group("selector"), match.group("label")


# --- Prometheus --------------------------------------------------------------------------------------


class Prometheus:
    """A small synchronous client of Prometheus' HTTP API (no proxy: it is on loopback)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=10.0, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def query(self, expr: str) -> Json:
        """The answer of /api/v1/query: {"status": "success", "data": ...} or the error (4xx do not raise)."""
        response = self.client.post("/api/v1/query", data={"query": expr})
        if response.status_code >= 500:
            response.raise_for_status()
        body: Json = response.json()
        return body

    def label_values(self, label: str, selector: str | None) -> list[str]:
        params = {"match[]": selector} if selector else {}
        response = self.client.get(f"/api/v1/label/{label}/values", params=params)
        response.raise_for_status()
        values: list[str] = response.json()["data"]
        return values

    def alerts(self) -> list[Json]:
        response = self.client.get("/api/v1/alerts")
        response.raise_for_status()
        alerts: list[Json] = response.json()["data"]["alerts"]
        return alerts

    def rule_groups(self) -> list[Json]:
        response = self.client.get("/api/v1/rules")
        response.raise_for_status()
        groups: list[Json] = response.json()["data"]["groups"]
        return groups

    def reload(self) -> None:
        response = self.client.post("/-/reload")
        if response.status_code != 200:
            raise RuntimeError(
                f"POST {self.url}/-/reload answered {response.status_code} {response.text.strip()!r}: "
                "Prometheus must run with --web.enable-lifecycle (the stack starts it so)"
            )


def alert_names(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names.update(rule["alert"] for rule in group.get("rules", []) if "alert" in rule)
    return names


def alert_rules(paths: list[Path]) -> dict[str, Json]:
    rules: dict[str, Json] = {}
    for path in paths:
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


# --- child processes ---------------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Child:
    """A `python -m services <command>` child process, its output in a log file."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exited(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL: only this child (its own pid)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.proc = None

    def describe(self) -> str:
        state = "running" if self.exited() is None else f"exited with {self.exited()}"
        header = f"--- {self.name} (pid {self.pid}, {state}), last lines of {self.log_path}:"
        return f"{header}\n{tail(self.log_path)}"


def clean_environment() -> dict[str, str]:
    """The test process' environment without any SUPPORTPULSE_* setting (the children get explicit ones)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTPULSE_")}


def wait_until_ready(children: Mapping[str, Child], urls: Mapping[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while pending:
            for name, url in list(pending.items()):
                child = children[name]
                if child.exited() is not None:
                    raise RuntimeError(f"{name} exited before it was ready\n{child.describe()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                details = "\n".join(children[name].describe() for name in pending)
                raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(pending)}\n{details}")
            time.sleep(0.3)


@dataclass(frozen=True)
class Pipeline:
    tenant: str
    prometheus: Prometheus
    alertmanager_url: str
    # time.monotonic() when the simulator started sending.
    feed_started: float
    children: dict[str, Child]
    log_dir: Path

    def describe(self) -> str:
        return "\n".join(child.describe() for child in self.children.values())


# --- the webhook receiver Alertmanager posts to --------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    path: str
    body: str
    received_at: float

    def payload(self) -> Json:
        try:
            data: Json = json.loads(self.body)
        except ValueError:
            return {}
        return data


@dataclass
class AlertSink:
    """Records every POST (Alertmanager's webhook notifications) on host:port; answers 200."""

    host: str = "127.0.0.1"
    port: int = 19095
    deliveries: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                with sink._lock:
                    sink.deliveries.append(Delivery(self.path, body, time.monotonic()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-sink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def find(self, alertname: str, labels: Mapping[str, str], status: str = "firing") -> Delivery | None:
        """The first notification with an alert named `alertname`, carrying `labels`, in `status`."""
        for delivery in self.snapshot():
            if alertname not in delivery.body:
                continue
            for alert in delivery.payload().get("alerts", []):
                got = alert.get("labels", {})
                if (
                    got.get("alertname") == alertname
                    and alert.get("status") == status
                    and all(got.get(k) == v for k, v in labels.items())
                ):
                    return delivery
        return None
