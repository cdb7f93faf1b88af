"""docker-compose.yml: valid against the Compose spec, and shaped the way the deployment relies on.

No Docker needed: the file is validated with check-jsonschema and read as YAML.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema (dev extra)

from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")  # ${NAME}, ${NAME:-default}, ${NAME:?message}
CHARQ_SERVICES = ["migrate", "api", "worker-train", "worker-generate", "beat"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def _check_jsonschema() -> str:
    found = Path(sys.executable).with_name("check-jsonschema")
    return str(found) if found.exists() else (shutil.which("check-jsonschema") or "")


def test_compose_file_validates_against_the_compose_spec():
    tool = _check_jsonschema()
    assert tool, "check-jsonschema is missing: pip install -e '.[dev]'"
    result = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_services_of_the_deployment(compose):
    assert set(compose["services"]) == {"postgres", "redis", "flower", *CHARQ_SERVICES}


def test_servers_have_healthchecks_and_persistent_volumes(compose):
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert ["--appendonly", "yes"] == redis["command"][1:3]
    assert any(v.startswith("pgdata:") for v in postgres["volumes"])
    assert any(v.startswith("redisdata:") for v in redis["volumes"])
    assert {"pgdata", "redisdata", "charq-data"} <= set(compose["volumes"])


def test_start_order_is_migrate_then_api_and_workers(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["charq", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ["api", "worker-train", "worker-generate"]:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }, name
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["command"][0] == "gunicorn"
    assert any(p.endswith(":8000") for p in services["api"]["ports"])


def test_api_and_workers_share_the_data_volume(compose):
    for name in ["api", "worker-train", "worker-generate"]:
        assert "charq-data:/data" in compose["services"][name]["volumes"], name
        assert compose["services"][name]["environment"]["CHARQ_DATA_DIR"] == "/data"


def test_training_worker_reserves_one_gpu_and_runs_one_job(compose):
    train = compose["services"]["worker-train"]
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert train["command"][:4] == ["charq", "worker", "--queues", "train"]
    assert "--concurrency" in train["command"] and "--beat" not in train["command"]


def test_exactly_one_beat(compose):
    services = compose["services"]
    assert not [name for name, s in services.items() if "--beat" in (s.get("command") or [])]
    assert [name for name, s in services.items() if "beat" in (s.get("command") or [])[:4]] == ["beat"]
    assert "replicas" not in services["beat"].get("deploy", {})


def test_no_secret_is_written_inline(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|AUTH$|_KEY$", key) and key != "CHARQ_AUTH_ENABLED":
                assert str(value).startswith("${"), f"{name}.{key} is inline"
    for name in CHARQ_SERVICES:
        env = compose["services"][name]["environment"]
        # Passwords reach the URLs only by interpolation.
        assert "${POSTGRES_PASSWORD" in env["CHARQ_DATABASE_URL"]
        assert "${REDIS_PASSWORD" in env["CHARQ_BROKER_URL"]
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_env_example_lists_every_variable_the_compose_file_uses():
    code = "\n".join(line.split(" #")[0] for line in COMPOSE.read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    used = set(VAR.findall(code))
    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
              if line and not line.startswith("#") and "=" in line}
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD"} <= used
    assert used - listed == set()
