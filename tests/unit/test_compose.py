"""Static checks of compose.yaml and the Dockerfile.

No Docker engine is needed: the files are parsed, and the checks cover what a
user of `docker compose up` relies on.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from shared.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

# The `tickwork` subcommands a container may run: all but `up`, which is for
# development on one machine.
TICKWORK_SUBCOMMANDS = frozenset(SUBCOMMANDS) - {"up"}

# Services that run until stopped, as opposed to the one-shot `migrate`.
LONG_RUNNING = ("db", "api", "daemon")


@pytest.fixture(scope="module")
def services() -> dict:
    with COMPOSE_FILE.open() as f:
        return yaml.safe_load(f)["services"]


@pytest.fixture(scope="module")
def final_stage() -> dict:
    return _dockerfile_stages(DOCKERFILE.read_text())[-1]


def _argv(command) -> list[str]:
    """Return a compose `command` or healthcheck `test` as an argument list."""
    if isinstance(command, str):
        return shlex.split(command)
    if command and command[0] in ("CMD", "CMD-SHELL"):
        command = command[1:]
        if len(command) == 1:
            return shlex.split(command[0])
    return list(command)


def _depends_on(service: dict) -> dict[str, str]:
    """Map each dependency of a service to the condition it waits for."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: dep.get("condition", "service_started") for name, dep in deps.items()}


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _default_of(value: str) -> str:
    """Resolve `${VAR:-default}` to its default, as compose does with VAR unset."""
    match = re.fullmatch(r"\$\{\w+:?-(.*)\}", value)
    return match.group(1) if match else value


def _dockerfile_stages(text: str) -> list[dict]:
    """Split a Dockerfile into stages of (INSTRUCTION, arguments) pairs."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""

    stages = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append({"name": name, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, args.strip()))
    return stages


def _instructions(stage: dict, keyword: str) -> list[str]:
    return [args for kw, args in stage["instructions"] if kw == keyword]


def test_every_built_service_has_a_dockerfile_in_its_build_context(services):
    """Each `build` names a context directory that holds its Dockerfile."""
    built = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert built, "no service is built from this repository"

    for name, build in built.items():
        if isinstance(build, str):
            build = {"context": build}
        context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no Dockerfile at {dockerfile}"


def test_every_image_only_service_names_a_pinned_tag(services):
    """A service pulled from a registry names a tag or digest other than latest."""
    pulled = {
        name: svc["image"]
        for name, svc in services.items()
        if "image" in svc and "build" not in svc
    }

    for name, image in pulled.items():
        if "@sha256:" in image:
            continue
        last_part = image.rsplit("/", 1)[-1]
        tag = last_part.partition(":")[2]
        assert tag, f"{name}: {image} has no tag, so it means latest"
        assert tag != "latest", f"{name}: {image} is not pinned"


def test_every_built_service_runs_a_real_tickwork_subcommand(services):
    """The command of each built service is `tickwork <known subcommand>`."""
    for name, svc in services.items():
        if "build" not in svc:
            continue
        argv = _argv(svc.get("command", []))
        assert argv[:1] == ["tickwork"], f"{name}: runs {argv}, not tickwork"
        assert len(argv) >= 2 and argv[1] in TICKWORK_SUBCOMMANDS, (
            f"{name}: {argv} is not one of {sorted(TICKWORK_SUBCOMMANDS)}"
        )


def test_healthchecks_that_call_tickwork_name_a_real_subcommand(services):
    """A healthcheck such as `tickwork daemon --check` uses a known subcommand."""
    checks = {
        name: _argv(svc["healthcheck"]["test"])
        for name, svc in services.items()
        if "healthcheck" in svc
    }

    for name, argv in checks.items():
        if argv[:1] == ["tickwork"]:
            assert len(argv) >= 2 and argv[1] in TICKWORK_SUBCOMMANDS, (
                f"{name}: healthcheck {argv} names no known subcommand"
            )


def test_daemon_can_be_scaled_to_several_containers(services):
    """The daemon has no fixed container name and publishes no host port."""
    daemon = services["daemon"]

    assert "container_name" not in daemon, "a fixed name allows one container"
    assert not daemon.get("ports"), "a host port can be bound by one container only"


@pytest.mark.parametrize("name", ["api", "daemon"])
def test_service_starts_only_after_migrate_completes_successfully(services, name):
    """api and daemon never run against a schema that is not migrated yet."""
    condition = _depends_on(services[name]).get("migrate")

    assert condition == "service_completed_successfully"


def test_migrate_waits_for_a_healthy_database_and_runs_once(services):
    """migrate starts when db is healthy and is not restarted after it exits."""
    migrate = services["migrate"]

    assert _depends_on(migrate).get("db") == "service_healthy"
    # A bare `no` in YAML is the boolean False, which compose rejects.
    assert migrate.get("restart", "no") == "no"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_service_has_a_healthcheck(services, name):
    """Every service but the one-shot migrate reports its health."""
    check = services[name].get("healthcheck")

    assert check, f"{name} has no healthcheck"
    assert not check.get("disable", False), f"{name} disables its healthcheck"
    assert _argv(check["test"]) not in ([], ["NONE"]), f"{name} checks nothing"


def test_api_is_reachable_from_the_host_on_port_8000(services):
    """The API listens on all interfaces and publishes port 8000."""
    api = services["api"]

    assert _environment(api).get("TICKWORK_HOST") == "0.0.0.0"
    assert "8000:8000" in [str(port) for port in api.get("ports", [])]


def test_api_runs_in_production_mode_unless_told_otherwise(services):
    """With TICKWORK_ENV unset in the shell, the API runs in production."""
    value = _environment(services["api"]).get("TICKWORK_ENV", "")

    assert _default_of(value) == "production"


def test_the_api_requires_a_bootstrap_token_from_the_shell(services):
    """The API's token comes from the shell or .env, never a default in this file
    that every copy of it would share; and nothing turns authentication off."""
    value = _environment(services["api"]).get("TICKWORK_BOOTSTRAP_TOKEN", "")

    assert re.fullmatch(r"\$\{TICKWORK_BOOTSTRAP_TOKEN:\?.+\}", value), value
    for name, service in services.items():
        assert "TICKWORK_AUTH" not in _environment(service), name
    assert "TICKWORK_BOOTSTRAP_TOKEN" not in _environment(services["daemon"])


def test_final_image_installs_the_package(final_stage):
    """The runtime stage installs the project with `pip install .`."""
    runs = _instructions(final_stage, "RUN")

    assert any(re.search(r"\bpip install\b[^&;|]*\s\.(\s|$)", run) for run in runs)


def test_final_image_copies_web_dist_built_by_an_earlier_stage(final_stage):
    """The runtime stage holds web/dist from a stage that ran build.mjs."""
    stages = _dockerfile_stages(DOCKERFILE.read_text())
    builders = {
        stage["name"]
        for stage in stages[:-1]
        if any("build.mjs" in run for run in _instructions(stage, "RUN"))
    }
    copies = [
        args.split()
        for args in _instructions(final_stage, "COPY")
        if args.startswith("--from=")
    ]

    assert any(
        words[0].removeprefix("--from=") in builders
        and words[-2].rstrip("/").endswith("web/dist")
        and words[-1].rstrip("/") == "/app/web/dist"
        for words in copies
    ), "the final stage does not copy a built web/dist to /app/web/dist"


def test_final_image_runs_as_a_non_root_user(final_stage):
    """The last USER of the runtime stage is neither root nor uid 0."""
    users = _instructions(final_stage, "USER")

    assert users, "no USER, so the container runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_image_starts_the_api_by_default(final_stage):
    """`docker run` of the image without a command serves the API."""
    cmd = _instructions(final_stage, "CMD")[-1]
    argv = json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)

    assert argv == ["tickwork", "api"]
