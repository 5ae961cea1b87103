"""The deployment files against the code they deploy, without Docker or a cluster.

Every YAML under deploy/ that runs SupportPulse (Compose, Kubernetes, the Compose Prometheus config,
the Grafana provisioning) and the Dockerfile are parsed, and each name they use is looked up in the
code: the ``supportpulse`` subcommands (the Typer app), the ports (the settings' defaults, or the
SUPPORTPULSE_* variable that changes them), every SUPPORTPULSE_* variable (the settings classes'
fields), the probe paths (the FastAPI apps' routes) and the files they mount (this repository).

Each checker returns a list of problems, so a failure names all of them; the negative tests at the
end feed the checkers deliberately wrong names to show they can fail.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from starlette.routing import Match

from services.aggregator import health as aggregator_health
from services.aggregator.settings import AggregatorSettings
from services.api.settings import ApiSettings
from services.cli import app as cli_app
from services.ingest.settings import IngestSettings
from shared.settings import CommonSettings
from shared.tenants import TenantsConfig, load_tenants

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
COMPOSE_PROMETHEUS = DEPLOY / "docker-compose" / "prometheus.yml"
LOCAL_PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
GRAFANA_DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"
# Written by someone else and possibly still absent: only its provisioning is checked then.
GRAFANA_DASHBOARDS = DEPLOY / "grafana" / "dashboards"
K8S = DEPLOY / "k8s"
DEPLOY_DOC = REPO / "docs" / "deploy.md"

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the services must bind to inside a container
SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    CommonSettings,
    IngestSettings,
    AggregatorSettings,
    ApiSettings,
)
# Created by the operator from files kept out of git (docs/deploy.md): referenced, never defined here.
K8S_EXTERNAL_SECRETS = frozenset({"supportpulse-tenants", "supportpulse-database"})
# A value that comes from a Secret or the downward API, unknown until the pod runs.
FROM_CLUSTER = object()


# --------------------------------------------------------------------------------------------------
# What the code says


def _ingest_app() -> FastAPI:
    from services.ingest.app import create_app

    return create_app(IngestSettings(), TenantsConfig(), CollectorRegistry())


def _api_app() -> FastAPI:
    from services.api.app import create_app

    return create_app(ApiSettings(), TenantsConfig(), CollectorRegistry())


@dataclass(frozen=True)
class Service:
    """A ``supportpulse`` subcommand as deployed: its settings, and where it listens if it does."""

    command: str
    settings: type[BaseSettings]
    host_field: str | None = None
    port_field: str | None = None
    # Builds the HTTP app without starting its lifespan; None: not a FastAPI app.
    app: Callable[[], FastAPI] | None = None
    # Paths served when there is no app to ask (the aggregator's prometheus_client server).
    fixed_paths: frozenset[str] = field(default_factory=frozenset)

    @property
    def listens(self) -> bool:
        return self.port_field is not None

    def default_port(self) -> int:
        assert self.port_field is not None
        default = self.settings.model_fields[self.port_field].default
        assert isinstance(default, int)
        return default

    def port(self, env: dict[str, Any]) -> int:
        """The port the process listens on with this environment."""
        assert self.port_field is not None
        value = env.get(env_name(self.port_field))
        return self.default_port() if value is None or value is FROM_CLUSTER else int(value)


SERVICES: dict[str, Service] = {
    "migrate": Service("migrate", CommonSettings),
    "ingest": Service("ingest", IngestSettings, "ingest_host", "ingest_port", app=_ingest_app),
    "aggregator": Service(
        "aggregator",
        AggregatorSettings,
        "aggregator_metrics_host",
        "aggregator_metrics_port",
        # services/aggregator/health.py: a WSGI app on a thread, not a FastAPI app to ask.
        fixed_paths=frozenset(aggregator_health.PATHS),
    ),
    "api": Service("api", ApiSettings, "api_host", "api_port", app=_api_app),
}


def env_name(field_name: str) -> str:
    return "SUPPORTPULSE_" + field_name.upper()


@functools.cache
def known_env() -> frozenset[str]:
    return frozenset(env_name(name) for cls in SETTINGS_CLASSES for name in cls.model_fields)


@functools.cache
def cli_commands() -> frozenset[str]:
    return frozenset(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]


@functools.cache
def console_scripts() -> dict[str, str]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return dict(tomllib.load(handle)["project"]["scripts"])


@functools.cache
def _app(command: str) -> FastAPI:
    factory = SERVICES[command].app
    assert factory is not None
    return factory()


def serves(command: str, path: str) -> bool:
    """Whether ``GET path`` reaches a route of the service's app."""
    service = SERVICES[command]
    if service.app is None:
        return path in service.fixed_paths
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(scope)[0] is Match.FULL for route in _app(command).router.routes)


# --------------------------------------------------------------------------------------------------
# Generic checkers: each returns its problems, prefixed with where they were found


def check_env_names(where: str, names: Iterator[str] | list[str] | set[str]) -> list[str]:
    return [
        f"{where}: {name} is not a setting (no field {name.removeprefix('SUPPORTPULSE_').lower()!r} "
        "in CommonSettings, IngestSettings, AggregatorSettings or ApiSettings)"
        for name in sorted(set(names))
        if name.startswith("SUPPORTPULSE_") and name not in known_env()
    ]


_ENV_TOKEN = re.compile(r"\b(SUPPORTPULSE_[A-Z0-9_]*)(\*?)")


def check_env_mentions(where: str, text: str) -> list[str]:
    """Every SUPPORTPULSE_* word in a file is a setting; ``SUPPORTPULSE_AGGREGATOR_*`` must prefix one."""
    problems = []
    for token, star in sorted(set(_ENV_TOKEN.findall(text))):
        if star or token.endswith("_"):
            if not any(name.startswith(token) for name in known_env()):
                problems.append(f"{where}: no setting starts with {token}")
        elif token not in known_env():
            problems.append(f"{where}: {token} is not a setting")
    return problems


def check_command(where: str, argv: list[str]) -> list[str]:
    if not argv:
        return [f"{where}: no supportpulse subcommand given"]
    if argv[0] not in cli_commands():
        return [f"{where}: `supportpulse {argv[0]}` is not a command (known: {sorted(cli_commands())})"]
    if argv[0] not in SERVICES:
        return [f"{where}: `supportpulse {argv[0]}` is not one of the deployed services {sorted(SERVICES)}"]
    return []


def check_ports(where: str, command: str, env: dict[str, Any], ports: list[int]) -> list[str]:
    """Ports a container exposes or is probed on are the one its service listens on."""
    service = SERVICES[command]
    if not service.listens:
        return [f"{where}: `{command}` listens on nothing but exposes/probes {ports}"] if ports else []
    expected = service.port(env)
    return [
        f"{where}: port {port} is not the port `{command}` listens on ({expected}, "
        f"{env_name(service.port_field or '')} or its default {service.default_port()})"
        for port in ports
        if port != expected
    ]


def check_probe_path(where: str, command: str, path: str) -> list[str]:
    if SERVICES[command].listens and serves(command, path):
        return []
    return [f"{where}: GET {path} is not a route of `{command}`"]


def check_binds_all_interfaces(where: str, command: str, env: dict[str, Any]) -> list[str]:
    service = SERVICES[command]
    if service.host_field is None:
        return []
    value = env.get(env_name(service.host_field), service.settings.model_fields[service.host_field].default)
    if value == ALL_INTERFACES:
        return []
    return [
        f"{where}: `{command}` binds {value!r}, unreachable from outside the container: "
        f"set {env_name(service.host_field)}={ALL_INTERFACES}"
    ]


def check_settings_load(where: str, command: str, env: dict[str, Any]) -> list[str]:
    """The service's settings class accepts the environment (types, literals, URLs)."""
    concrete = {k: str(v) for k, v in env.items() if k.startswith("SUPPORTPULSE_") and v is not FROM_CLUSTER}
    outside = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTPULSE_")}
    with mock.patch.dict(os.environ, {**outside, **concrete}, clear=True):
        try:
            SERVICES[command].settings()
        except ValidationError as exc:
            return [f"{where}: {SERVICES[command].settings.__name__} rejects the environment: {exc}"]
    return []


_URL = re.compile(r"https?://(?P<host>[\w.-]+):(?P<port>\d+)(?P<path>/[\w/.-]*)?")


def urls_in(text: str) -> list[tuple[str, int, str]]:
    return [(m["host"], int(m["port"]), m["path"] or "/") for m in _URL.finditer(text)]


def load_yaml_documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def load_yaml(path: Path) -> Any:
    documents = load_yaml_documents(path)
    assert len(documents) == 1, f"{path}: expected one YAML document, found {len(documents)}"
    return documents[0]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# --------------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int
    heredoc: str | None = None


_HEREDOC = re.compile(r"<<-?([\"']?)(\w+)\1")


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions of each stage (index 0: the global ARGs before the first FROM)."""
    stages: list[list[Instruction]] = [[]]
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        start = index
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        while line.endswith("\\") and index < len(lines):
            following = lines[index].strip()
            index += 1
            if following.startswith("#"):
                continue
            line = line[:-1].rstrip() + " " + following
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start + 1)
        heredoc = _HEREDOC.search(args)
        if heredoc:
            body = []
            while index < len(lines) and lines[index].strip() != heredoc[2]:
                body.append(lines[index])
                index += 1
            index += 1
            instruction.heredoc = "\n".join(body)
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


@functools.cache
def dockerfile_stages() -> tuple[tuple[Instruction, ...], ...]:
    return tuple(tuple(stage) for stage in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


def _exec_form(instruction: Instruction) -> list[str]:
    value = yaml.safe_load(instruction.args)  # a JSON array is YAML
    assert isinstance(value, list), f"Dockerfile:{instruction.line}: {instruction.keyword} must be exec form"
    return [str(part) for part in value]


def _only(stage: tuple[Instruction, ...], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"Dockerfile final stage: expected one {keyword}, found {len(found)}"
    return found[0]


@functools.cache
def image_env() -> dict[str, str]:
    """The ENV of the final stage: what every container of the image starts with."""
    env: dict[str, str] = {}
    for instruction in dockerfile_stages()[-1]:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                key, sep, value = word.partition("=")
                assert sep, f"Dockerfile:{instruction.line}: use ENV KEY=value"
                env[key] = value
    return env


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regular expression."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins; ``!`` re-includes."""
    parts = PurePosixPath(relative).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    final = dockerfile_stages()[-1]
    entrypoint = _exec_form(_only(final, "ENTRYPOINT"))
    assert entrypoint == ["supportpulse"]
    assert entrypoint == list(console_scripts()), f"pyproject [project.scripts] is {console_scripts()}"
    module, _, function = console_scripts()[entrypoint[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_dockerfile_default_command_is_the_api() -> None:
    command = _exec_form(_only(dockerfile_stages()[-1], "CMD"))
    assert check_command("Dockerfile CMD", command) == []
    assert command == ["api"]


def test_dockerfile_base_images_are_python_311_slim() -> None:
    global_args = {}
    for instruction in dockerfile_stages()[0]:
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
    for stage in dockerfile_stages()[1:]:
        image = stage[0].args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m[1]], image)
        assert image == "python:3.11-slim", f"Dockerfile:{stage[0].line}: FROM {image}"
    assert len(dockerfile_stages()) >= 3, "expected a multi-stage build (build, runtime)"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    user = [i for i in dockerfile_stages()[-1] if i.keyword == "USER"][-1].args
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    assert int(uid) != 0


def test_dockerfile_environment_names_settings_and_binds_all_interfaces() -> None:
    env = image_env()
    problems = check_env_names("Dockerfile ENV", set(env))
    for command, service in SERVICES.items():
        if service.listens:
            problems += check_binds_all_interfaces("Dockerfile ENV", command, env)
        problems += check_settings_load("Dockerfile ENV", command, env)
    assert problems == []


def test_dockerfile_exposes_the_service_ports() -> None:
    exposed = {
        int(p.split("/")[0]) for i in dockerfile_stages()[-1] if i.keyword == "EXPOSE" for p in i.args.split()
    }
    assert exposed == {s.port(image_env()) for s in SERVICES.values() if s.listens}


def test_dockerfile_healthcheck_probes_each_service_where_it_listens() -> None:
    final = dockerfile_stages()[-1]
    healthcheck = _only(final, "HEALTHCHECK")
    script = _exec_form(Instruction("CMD", healthcheck.args.split(" CMD ", 1)[1], healthcheck.line))[0]
    sources = [
        i for i in final if i.keyword == "COPY" and i.heredoc and i.args.split()[-1].endswith("/" + script)
    ]
    assert sources, f"HEALTHCHECK runs {script!r}, which the final stage does not create"
    body = sources[0].heredoc or ""
    checks = re.findall(r'\("(SUPPORTPULSE_\w+)", "(\d+)", "(/[\w/]*)"\)', body)
    by_port_env = {env_name(s.port_field): s for s in SERVICES.values() if s.port_field}
    problems = check_env_mentions("Dockerfile healthcheck", body)
    for variable, port, path in checks:
        service = by_port_env.get(variable)
        if service is None:
            problems.append(f"healthcheck: {variable} is not a service's port setting")
            continue
        problems += check_ports("healthcheck", service.command, {}, [int(port)])
        problems += check_probe_path("healthcheck", service.command, path)
    assert {by_port_env[v].command for v, _, _ in checks if v in by_port_env} == {
        c for c, s in SERVICES.items() if s.listens
    }
    assert problems == []


def test_dockerfile_copies_files_that_exist_and_are_not_dockerignored() -> None:
    problems = []
    for stage in dockerfile_stages()[1:]:
        for instruction in stage:
            if instruction.keyword != "COPY" or instruction.heredoc is not None:
                continue
            if "--from=" in instruction.args:
                continue  # from another stage, not from the build context
            sources = [w for w in instruction.args.split() if not w.startswith("--")][:-1]
            matched = [p for s in sources for p in REPO.glob(s)]
            if not matched:
                problems.append(f"Dockerfile:{instruction.line}: COPY {sources}: nothing in the repository")
            for source in sources:
                if "*" in source:
                    continue
                if not (REPO / source).exists():
                    problems.append(f"Dockerfile:{instruction.line}: {source} does not exist")
                elif dockerignore_excludes(source):
                    problems.append(f"Dockerfile:{instruction.line}: {source} is excluded by .dockerignore")
    assert problems == []
    assert dockerignore_excludes(".venv")
    assert dockerignore_excludes("services/__pycache__")
    assert not dockerignore_excludes("services/cli.py")


# --------------------------------------------------------------------------------------------------
# Docker Compose


@functools.cache
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    assert "$" not in value, f"{value!r}: a variable without a default"
    return value


def is_ours(service: dict[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("supportpulse")


def compose_env(service: dict[str, Any]) -> dict[str, Any]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.partition("=")[::2] for item in raw)
    return {str(k): ("" if v is None else str(v)) for k, v in raw.items()}


def container_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for entry in [*service.get("ports", []), *service.get("expose", [])]:
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts; named volumes are left out."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
        else:
            source, target = str(entry).split(":")[:2]
        source = interpolate(source)
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE_FILE.parent / source).resolve(), target))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container comes from on the host, through the bind mounts."""
    best: tuple[Path, str] | None = None
    for source, target in bind_mounts(service):
        if (container_path == target or container_path.startswith(target.rstrip("/") + "/")) and (
            best is None or len(target) > len(best[1])
        ):
            best = (source, target)
    if best is None:
        return None
    return best[0] / container_path[len(best[1]) :].lstrip("/")


def check_compose_service(name: str, service: dict[str, Any]) -> list[str]:
    """One of our services: its command, environment, ports and health check."""
    where = f"compose {name}"
    command = [str(c) for c in service.get("command") or _exec_form(_only(dockerfile_stages()[-1], "CMD"))]
    problems = check_command(where, command)
    if problems:
        return problems
    env = {**image_env(), **compose_env(service)}
    problems += check_env_names(where, set(compose_env(service)))
    problems += check_settings_load(where, command[0], env)
    problems += check_ports(where, command[0], env, container_ports(service))
    if SERVICES[command[0]].listens:
        problems += check_binds_all_interfaces(where, command[0], env)
        test = " ".join(map(str, service.get("healthcheck", {}).get("test", [])))
        urls = urls_in(test)
        if not urls:
            problems.append(f"{where}: no HTTP health check")
        for _host, port, path in urls:
            problems += check_ports(f"{where} healthcheck", command[0], env, [port])
            problems += check_probe_path(f"{where} healthcheck", command[0], path)
    return problems


def test_compose_parses_and_runs_every_service_from_our_image() -> None:
    services = compose()["services"]
    ours = {name for name, service in services.items() if is_ours(service)}
    assert ours == {"migrate", "ingest", "aggregator", "api"}
    assert {"kafka", "postgres", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"].startswith("postgres:16")
    for name in ours:
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() / build["dockerfile"] == DOCKERFILE


def test_compose_services_use_real_commands_settings_ports_and_routes() -> None:
    problems = []
    for name, service in compose()["services"].items():
        if is_ours(service):
            problems += check_compose_service(name, service)
    assert problems == []


def test_compose_commands_match_service_names() -> None:
    for name, service in compose()["services"].items():
        if is_ours(service):
            assert service["command"] == [name]


def test_compose_start_order_and_health_checks() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"disable": True}, "a one-shot job has nothing to health-check"
    assert {k: v["condition"] for k, v in migrate["depends_on"].items()} == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
    }
    for name in ("ingest", "aggregator", "api"):
        conditions = {k: v["condition"] for k, v in services[name]["depends_on"].items()}
        assert conditions == {
            "migrate": "service_completed_successfully",
            "kafka": "service_healthy",
            "postgres": "service_healthy",
        }, name
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if spec["condition"] == "service_healthy":
                assert services[dependency]["healthcheck"].get("test"), f"{dependency} has no health check"
        if name != "migrate":
            assert service["healthcheck"]["test"], f"{name} has no health check"
    kafka_check = services["kafka"]["healthcheck"]["test"]
    assert kafka_check[1:] == [
        "/opt/kafka/bin/kafka-broker-api-versions.sh",
        "--bootstrap-server",
        "localhost:9092",
    ]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_compose_connection_settings_point_at_the_compose_services() -> None:
    services = compose()["services"]
    kafka_env = compose_env(services["kafka"])
    postgres_env = compose_env(services["postgres"])
    for name, service in services.items():
        if not is_ours(service):
            continue
        env = compose_env(service)
        bootstrap = env["SUPPORTPULSE_KAFKA_BOOTSTRAP"]
        host = bootstrap.split(":")[0]
        assert host in services, f"{name}: Kafka at {host}, not a Compose service"
        assert f"//{bootstrap}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"], (
            f"{name}: {bootstrap} is not advertised"
        )
        dsn = urlsplit(env["SUPPORTPULSE_DATABASE_URL"])
        assert dsn.hostname in services
        assert (dsn.username, dsn.password, dsn.path.lstrip("/"), dsn.port) == (
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
            postgres_env["POSTGRES_DB"],
            5432,
        )
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    voter_host = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@")[1]
    assert voter_host.split(":")[1] in kafka_env["KAFKA_LISTENERS"].split("CONTROLLER://")[1].split(",")[0]


def test_compose_tenants_file_is_a_mounted_valid_file() -> None:
    from services.ingest.app import build_routes

    data = compose()
    for name in ("ingest", "api"):
        service = data["services"][name]
        target = compose_env(service)["SUPPORTPULSE_TENANTS_FILE"]
        mounted: Path | None = None
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret["source"]
            secret_target = f"/run/secrets/{secret_name}" if isinstance(secret, str) else secret.get("target")
            if secret_target == target:
                mounted = (COMPOSE_FILE.parent / interpolate(data["secrets"][secret_name]["file"])).resolve()
        mounted = mounted or host_path(service, target)
        assert mounted is not None, f"{name}: SUPPORTPULSE_TENANTS_FILE={target} is not mounted"
        assert mounted.is_file(), f"{name}: {mounted} does not exist"
        build_routes(load_tenants(mounted))  # the file the stack starts with is one ingest accepts


def test_compose_bind_mounts_exist() -> None:
    problems = []
    for name, service in compose()["services"].items():
        for source, target in bind_mounts(service):
            if source == GRAFANA_DASHBOARDS.resolve() and not source.exists():
                continue  # written by the dashboards' authors; Compose creates it empty meanwhile
            if not source.exists():
                problems.append(f"compose {name}: {rel(source)} (mounted at {target}) does not exist")
    for name, secret in compose().get("secrets", {}).items():
        source = (COMPOSE_FILE.parent / interpolate(secret["file"])).resolve()
        if not source.is_file():
            problems.append(f"compose secret {name}: {rel(source)} does not exist")
    assert problems == []


def test_compose_prometheus_scrapes_the_services_and_loads_the_shared_rules() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    config_path = host_path(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_path == COMPOSE_PROMETHEUS.resolve()
    config = load_yaml(COMPOSE_PROMETHEUS)
    problems = []
    scraped: set[str] = set()
    for job in config["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                service = services.get(host)
                if service is None or not is_ours(service):
                    problems.append(f"job {job['job_name']}: {host} is not one of our Compose services")
                    continue
                command = str(service["command"][0])
                env = {**image_env(), **compose_env(service)}
                problems += check_ports(f"job {job['job_name']}", command, env, [int(port)])
                problems += check_probe_path(f"job {job['job_name']}", command, path)
                scraped.add(command)
    assert problems == []
    assert scraped == {c for c, s in SERVICES.items() if s.listens}
    # Same job names as the local stack's config, which the shared alert rules are written against.
    local_jobs = {job["job_name"] for job in load_yaml(LOCAL_PROMETHEUS)["scrape_configs"]}
    assert {job["job_name"] for job in config["scrape_configs"]} == local_jobs
    for pattern in config["rule_files"]:
        container_pattern = str(PurePosixPath("/etc/prometheus") / pattern)
        host_pattern = host_path(prometheus, container_pattern)
        assert host_pattern is not None, f"rule_files {pattern}: not mounted"
        assert host_pattern.parent == RULES_DIR.resolve(), (
            "the Compose stack must reuse deploy/prometheus/rules"
        )
        assert list(host_pattern.parent.glob(host_pattern.name)), f"rule_files {pattern}: no file"
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host == "alertmanager"
                assert host in services
                assert int(port) == 9093


def test_compose_alertmanager_config_is_mounted() -> None:
    alertmanager = compose()["services"]["alertmanager"]
    config = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    source = host_path(alertmanager, config.split("=", 1)[1])
    assert source is not None
    assert source.is_file()
    assert "127.0.0.1" not in source.read_text(encoding="utf-8").split("receivers:")[1].split("#")[0]
    assert load_yaml(source)["route"]["receiver"] in {r["name"] for r in load_yaml(source)["receivers"]}


def test_grafana_provisioning_datasource_and_dashboards() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    datasource_files = sorted(GRAFANA_DATASOURCES.glob("*.yml"))
    assert datasource_files, "no Grafana datasource file"
    datasources = [ds for path in datasource_files for ds in load_yaml(path)["datasources"]]
    assert [ds["type"] for ds in datasources] == ["prometheus"], "one datasource: Prometheus"
    for host, port, _ in urls_in(datasources[0]["url"]):
        assert host in services
        assert port == 9090
    assert host_path(grafana, "/etc/grafana/provisioning/datasources") == GRAFANA_DATASOURCES.resolve()
    assert host_path(grafana, "/etc/grafana/provisioning/dashboards") == GRAFANA_DASHBOARD_PROVIDERS.resolve()
    providers = load_yaml(GRAFANA_DASHBOARD_PROVIDERS / "supportpulse.yml")["providers"]
    assert providers
    for provider in providers:
        assert provider["type"] == "file"
        source = host_path(grafana, provider["options"]["path"])
        assert source == GRAFANA_DASHBOARDS.resolve(), f"{provider['name']}: dashboards come from {source}"
        if source.exists():
            assert source.is_dir()


# --------------------------------------------------------------------------------------------------
# Kubernetes


@functools.cache
def kustomization() -> dict[str, Any]:
    data = load_yaml(K8S / "kustomization.yaml")
    assert isinstance(data, dict)
    return data


@functools.cache
def k8s_objects() -> tuple[dict[str, Any], ...]:
    objects = []
    for resource in kustomization()["resources"]:
        objects += load_yaml_documents(K8S / resource)
    return tuple(objects)


@functools.cache
def k8s_configmaps() -> dict[str, dict[str, str]]:
    maps = {o["metadata"]["name"]: dict(o.get("data", {})) for o in k8s_objects() if o["kind"] == "ConfigMap"}
    for generator in kustomization().get("configMapGenerator", []):
        maps[generator["name"]] = dict(literal.split("=", 1) for literal in generator.get("literals", []))
    return maps


def workloads() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] in {"Deployment", "StatefulSet", "Job"}]


def is_our_image(image: str) -> bool:
    return image.split("@")[0].split(":")[0].rsplit("/", 1)[-1] == "supportpulse"


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    """The container's environment as the process sees it: image ENV, then envFrom, then env."""
    env: dict[str, Any] = dict(image_env())
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        env.update(k8s_configmaps()[name])
    for variable in container.get("env", []):
        env[variable["name"]] = variable.get("value", FROM_CLUSTER)
    return env


def resolve_port(container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def check_k8s_container(where: str, pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    if "command" in container and container["command"] != list(console_scripts()):
        return [f"{where}: command {container['command']} replaces the supportpulse entrypoint"]
    argv = [str(a) for a in container.get("args") or _exec_form(_only(dockerfile_stages()[-1], "CMD"))]
    problems = check_command(where, argv)
    if problems:
        return problems
    command = argv[0]
    env = container_env(container)
    declared = [v["name"] for v in container.get("env", [])]
    problems += check_env_names(where, set(declared))
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        if name not in k8s_configmaps():
            problems.append(f"{where}: ConfigMap {name} is not defined")
        problems += check_env_names(f"{where} (ConfigMap {name})", set(k8s_configmaps().get(name, {})))
    problems += check_settings_load(where, command, env)
    ports = [int(p["containerPort"]) for p in container.get("ports", [])]
    annotations = pod["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        ports.append(int(annotations["prometheus.io/port"]))
        problems += check_probe_path(
            f"{where} prometheus.io/path", command, annotations["prometheus.io/path"]
        )
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        port = resolve_port(container, probe["httpGet"]["port"])
        if port is None:
            problems.append(f"{where} {kind}: port {probe['httpGet']['port']!r} is not declared")
            continue
        ports.append(port)
        problems += check_probe_path(f"{where} {kind}", command, probe["httpGet"]["path"])
    problems += check_ports(where, command, env, ports)
    service = SERVICES[command]
    if service.listens:
        problems += check_binds_all_interfaces(where, command, env)
        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if serves(command, path) and container.get(kind, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{where}: the service has {path}; use it as the {kind}")
        if "livenessProbe" not in container:
            problems.append(f"{where}: no livenessProbe")
    resources = container.get("resources", {}).get("requests", {})
    if not {"cpu", "memory"} <= set(resources):
        problems.append(f"{where}: resources.requests needs cpu and memory")
    return problems


def test_kustomization_lists_every_manifest() -> None:
    listed = {(K8S / r).resolve() for r in kustomization()["resources"]}
    assert all(path.is_file() for path in listed), f"missing: {[p for p in listed if not p.is_file()]}"
    on_disk = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk == listed, f"not in kustomization.yaml: {sorted(map(rel, on_disk - listed))}"


def test_k8s_manifests_parse() -> None:
    for path in K8S.rglob("*.yaml"):
        for document in load_yaml_documents(path):
            assert isinstance(document, dict), path
            if path.name != "kustomization.yaml":
                assert {"apiVersion", "kind", "metadata"} <= set(document), path


def test_k8s_containers_use_real_commands_settings_ports_and_routes() -> None:
    problems = []
    commands = set()
    for workload in workloads():
        pod = workload["spec"]["template"]
        for container in pod["spec"]["containers"]:
            if is_our_image(container["image"]):
                where = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
                problems += check_k8s_container(where, pod, container)
                commands.add(str((container.get("args") or ["?"])[0]))
    assert problems == []
    assert commands == set(SERVICES), "one workload per service"


def test_k8s_workload_shapes() -> None:
    by_command = {}
    for workload in workloads():
        pod_spec = workload["spec"]["template"]["spec"]
        (container,) = pod_spec["containers"]
        by_command[container["args"][0]] = workload
        assert pod_spec["terminationGracePeriodSeconds"] == 30, workload["metadata"]["name"]
        assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert by_command["ingest"]["kind"] == "Deployment"
    assert by_command["ingest"]["spec"]["replicas"] == 2
    assert by_command["api"]["kind"] == "Deployment"
    assert by_command["migrate"]["kind"] == "Job"
    assert by_command["migrate"]["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def test_k8s_aggregator_members_get_distinct_stable_ids() -> None:
    (aggregator,) = [
        w for w in workloads() if w["spec"]["template"]["spec"]["containers"][0]["args"] == ["aggregator"]
    ]
    assert aggregator["kind"] == "StatefulSet", "stable pod names give stable static-membership ids"
    container = aggregator["spec"]["template"]["spec"]["containers"][0]
    (instance_id,) = [v for v in container["env"] if v["name"] == env_name("aggregator_instance_id")]
    assert instance_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    env = container_env(container)
    partitions = int(
        env.get(env_name("events_partitions"), CommonSettings.model_fields["events_partitions"].default)
    )
    assert 1 <= aggregator["spec"]["replicas"] <= partitions, "replicas above the partition count sit idle"
    governing = [
        o
        for o in k8s_objects()
        if o["kind"] == "Service" and o["metadata"]["name"] == aggregator["spec"]["serviceName"]
    ]
    assert governing, "a StatefulSet needs its governing Service"
    assert governing[0]["spec"]["clusterIP"] == "None"


def test_k8s_services_select_a_workload_and_target_its_port() -> None:
    problems = []
    for service in (o for o in k8s_objects() if o["kind"] == "Service"):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        selected = [
            w for w in workloads() if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        if len(selected) != 1 or selected[0]["kind"] == "Job":
            problems.append(f"Service/{name}: selects {[w['metadata']['name'] for w in selected]}")
            continue
        (container,) = selected[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            target = resolve_port(container, port.get("targetPort", port["port"]))
            command = str(container["args"][0])
            if target is None:
                problems.append(
                    f"Service/{name}: targetPort {port.get('targetPort')!r} is not a container port"
                )
                continue
            problems += check_ports(
                f"Service/{name}", command, container_env(container), [target, port["port"]]
            )
        for workload in selected:
            selector_labels = workload["spec"]["selector"]["matchLabels"]
            assert selector_labels.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    assert problems == []


def check_tenants_mount(where: str, container: dict[str, Any], volumes: dict[str, Any]) -> list[str]:
    """SUPPORTPULSE_TENANTS_FILE names a file of the tenants Secret, as mounted in the container."""
    tenants_file = container_env(container).get(env_name("tenants_file"))
    if not isinstance(tenants_file, str):
        return [f"{where}: SUPPORTPULSE_TENANTS_FILE must be set to a mounted file"]
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not tenants_file.startswith(prefix):
            continue
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None or secret["secretName"] != "supportpulse-tenants":
            return [f"{where}: {tenants_file} is not from the Secret supportpulse-tenants (webhook secrets)"]
        items = {item["path"]: item["key"] for item in secret.get("items", [])}
        key = items.get(tenants_file.removeprefix(prefix)) if items else tenants_file.removeprefix(prefix)
        return (
            [] if key == "tenants.yaml" else [f"{where}: {tenants_file} is not the Secret's key tenants.yaml"]
        )
    return [f"{where}: SUPPORTPULSE_TENANTS_FILE={tenants_file} is not under any volume mount"]


def test_k8s_secrets_are_the_documented_ones_and_the_tenants_file_is_mounted() -> None:
    referenced = set()
    problems: list[str] = []
    for workload in workloads():
        pod_spec = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        referenced |= {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
        for container in pod_spec["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
            if container.get("args", [])[:1] not in (["ingest"], ["api"]):
                continue  # the only two that read the tenants file
            problems += check_tenants_mount(workload["metadata"]["name"], container, volumes)
    assert problems == []
    assert referenced == K8S_EXTERNAL_SECRETS
    defined = {o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "Secret"}
    assert not defined, "secrets are created out of band, never committed"
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    for secret in K8S_EXTERNAL_SECRETS:
        assert f"create secret generic {secret}" in doc, f"docs/deploy.md must say how to create {secret}"


# --------------------------------------------------------------------------------------------------
# Every file: SUPPORTPULSE_* words and paths into the repository


def deploy_files() -> list[Path]:
    files = [DOCKERFILE, COMPOSE_FILE, DOCKERIGNORE, DEPLOY_DOC, COMPOSE_PROMETHEUS]
    files += sorted(K8S.rglob("*.yaml"))
    files += sorted((DEPLOY / "grafana" / "provisioning").rglob("*.yml"))
    files += sorted((DEPLOY / "docker-compose").glob("*.yml"))
    return sorted(set(files))


def test_every_yaml_file_parses() -> None:
    for path in deploy_files():
        if path.suffix in {".yml", ".yaml"}:
            assert load_yaml_documents(path), rel(path)


def test_every_supportpulse_variable_mentioned_is_a_setting() -> None:
    problems = []
    for path in deploy_files():
        problems += check_env_mentions(rel(path), path.read_text(encoding="utf-8"))
    assert problems == []


def test_repository_paths_named_in_the_docs_exist() -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    missing = [
        p
        for p in sorted(set(re.findall(r"(?<![\w/.-])((?:deploy|docs|services|shared)/[\w./-]*\w)", doc)))
        if not (REPO / p).exists() and not (REPO / p).resolve().is_relative_to(GRAFANA_DASHBOARDS.resolve())
    ]
    assert missing == []


def test_every_route_probed_is_served_and_the_api_is_importable() -> None:
    # The probes above rely on these: without them every path check would be vacuous.
    assert serves("ingest", "/healthz")
    assert serves("ingest", "/readyz")
    assert serves("api", "/healthz")
    assert serves("api", "/readyz")
    assert serves("api", "/metrics")
    assert not serves("api", "/nope")
    assert serves("aggregator", "/metrics")
    assert serves("aggregator", "/healthz")
    assert serves("aggregator", "/readyz")
    assert not serves("aggregator", "/nope")


# --------------------------------------------------------------------------------------------------
# The checkers can fail


def test_a_misspelt_variable_is_reported() -> None:
    service = {"command": ["ingest"], "environment": {"SUPPORTPULSE_INGEST_HOSTNAME": "0.0.0.0"}}  # noqa: S104
    problems = check_compose_service("ingest", service)
    assert any("SUPPORTPULSE_INGEST_HOSTNAME is not a setting" in p for p in problems), problems
    assert check_env_mentions("doc", "set SUPPORTPULSE_AGGREGATOR_INSTANCEID") == [
        "doc: SUPPORTPULSE_AGGREGATOR_INSTANCEID is not a setting"
    ]
    assert check_env_mentions("doc", "SUPPORTPULSE_AGGREGATOR_* and SUPPORTPULSE_INGEST_PORT") == []
    assert check_env_mentions("doc", "SUPPORTPULSE_AGGREGATORS_*") == [
        "doc: no setting starts with SUPPORTPULSE_AGGREGATORS_"
    ]


def test_a_wrong_command_port_or_path_is_reported() -> None:
    assert check_command("x", ["ingester"])
    assert check_command("x", ["demo"]), "a real command, but not a deployed service"
    assert check_ports("x", "ingest", {}, [8080])
    assert check_ports("x", "ingest", {"SUPPORTPULSE_INGEST_PORT": "9000"}, [8081])
    assert check_ports("x", "ingest", {"SUPPORTPULSE_INGEST_PORT": "9000"}, [9000]) == []
    assert check_probe_path("x", "api", "/health")
    assert check_probe_path("x", "migrate", "/healthz")
    assert check_binds_all_interfaces("x", "api", {})
    assert check_settings_load("x", "aggregator", {"SUPPORTPULSE_LOG_LEVEL": "LOUD"})
    broken = {
        "command": ["api"],
        "ports": ["8080:8081"],
        "healthcheck": {"test": ["CMD", "python", "-c", "urlopen('http://127.0.0.1:8080/health')"]},
    }
    problems = check_compose_service("api", broken)
    assert any("port 8081" in p for p in problems), problems
    assert any("GET /health is" in p for p in problems), problems


def test_a_wrong_kubernetes_container_is_reported() -> None:
    pod = {"metadata": {"annotations": {"prometheus.io/port": "8082", "prometheus.io/path": "/metrics"}}}
    container = {
        "args": ["api"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "SUPPORTPULSE_API_BIND", "value": "x"}],
        "livenessProbe": {"httpGet": {"path": "/live", "port": "web"}},
    }
    problems = check_k8s_container("bad", pod, container)
    assert any("SUPPORTPULSE_API_BIND" in p for p in problems), problems
    assert any("port 8082" in p for p in problems), problems
    assert any("'web' is not declared" in p for p in problems), problems
    assert any("resources.requests" in p for p in problems), problems
    assert any("readinessProbe" in p for p in problems), problems
    as_configmap = {"tenants": {"configMap": {"name": "supportpulse-tenants"}}}
    mounted = {
        "env": [{"name": "SUPPORTPULSE_TENANTS_FILE", "value": "/etc/supportpulse/tenants.yaml"}],
        "volumeMounts": [{"name": "tenants", "mountPath": "/etc/supportpulse"}],
    }
    assert check_tenants_mount("bad", mounted, as_configmap) == [
        "bad: /etc/supportpulse/tenants.yaml is not from the Secret supportpulse-tenants (webhook secrets)"
    ]
    assert check_tenants_mount("bad", {"env": mounted["env"]}, {})


@pytest.mark.parametrize(
    ("relative", "excluded"),
    [("pyproject.toml", False), ("services/api/app.py", False), (".git", True), ("tests/conftest.py", True)],
)
def test_dockerignore_matcher(relative: str, excluded: bool) -> None:
    assert dockerignore_excludes(relative) is excluded
