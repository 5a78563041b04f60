"""The deployment artifacts in deploy/, checked offline.

Kubernetes manifests are validated against the API schemas bundled with
``kubernetes-validate``; the compose file with ``docker compose config`` when the
plugin is installed, and structurally always; the example configs with the real
``RoutingSettings``; the Grafana dashboard against the one metric schema.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from luodi.config.routing import Location, RoutingSettings
from luodi.engine.metrics import METRIC_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"


def k8s_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text()) if d)
    return docs


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in by_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}"
    return found[0]


def test_every_kustomization_resource_exists() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize(
    "doc", k8s_documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}"
)
def test_manifest_matches_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_deployment_selectors_match_their_pod_labels() -> None:
    for doc in by_kind("Deployment") + by_kind("StatefulSet"):
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), doc["metadata"]["name"]


def test_gateway_runs_several_replicas_as_non_root() -> None:
    gateway = one("Deployment", "luodi-gateway")
    assert gateway["spec"]["replicas"] >= 2
    pod = gateway["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert "limits" in container["resources"]


def test_hpa_scales_the_gateway_on_queue_depth() -> None:
    hpa = one("HorizontalPodAutoscaler", "luodi-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "luodi-gateway"
    metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert "luodi_num_requests_waiting" in metrics
    assert "luodi_num_requests_waiting" in METRIC_NAMES


def test_vllm_requests_a_gpu_per_replica() -> None:
    vllm = one("StatefulSet", "vllm")
    container = vllm["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
    headless = one("Service", "vllm")
    assert headless["spec"]["clusterIP"] == "None"  # one DNS name per replica


def test_secret_keys_the_pods_reference_exist() -> None:
    secret = one("Secret", "luodi-secrets")
    keys = set(secret["stringData"])
    for doc in by_kind("Deployment"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "luodi-secrets" and ref["key"] in keys


def test_configmap_routing_is_a_valid_luodi_config() -> None:
    config = yaml.safe_load(one("ConfigMap", "luodi-config")["data"]["config.yaml"])
    routing = RoutingSettings.model_validate(config["routing"])
    urls = [b.url or "" for route in routing.models.values() for b in route.backends]
    assert all(".vllm.luodi.svc:8000/v1" in u for u in urls)


@pytest.mark.parametrize("mode", ["private", "hybrid", "api"])
def test_example_config_of_each_mode_is_valid(mode: str) -> None:
    config = yaml.safe_load((DEPLOY / "config" / f"{mode}.yaml").read_text())
    routing = RoutingSettings.model_validate(config["routing"])
    assert routing.mode.value == mode
    locations = {b.location for r in routing.models.values() for b in r.backends}
    if mode == "private":
        assert locations == {Location.ON_PREM}
    if mode == "api":
        assert locations == {Location.CLOUD}


def test_compose_runs_gateway_vllm_postgres_and_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"gateway", "vllm", "postgres", "redis"} <= set(services)
    devices = services["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    mounted = services["gateway"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).is_file()
    assert set(services["gateway"]["depends_on"]) == {"postgres", "redis", "vllm"}


def test_compose_file_passes_docker_compose_config() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={"LUODI_DB_PASSWORD": "test", "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_dockerfile_runs_unprivileged_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/health" in text
    assert re.search(r"^EXPOSE 8000$", text, re.M)
    assert text.count("FROM ") == 2  # build tools stay out of the runtime image


def test_grafana_dashboard_uses_only_the_engine_metric_schema() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "luodi-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"luodi_\w+", e)
    }
    assert used <= set(METRIC_NAMES), used - set(METRIC_NAMES)
    assert used == set(METRIC_NAMES), set(METRIC_NAMES) - used
    assert all("backend" in e for e in exprs)
