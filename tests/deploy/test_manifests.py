"""deploy/base renders with kustomize, validates against the Kubernetes schemas, and sets only settings
pixline knows and probes routes that exist (issue 22, 6)."""
from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess

import pytest
import yaml

from pixline.server.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE_KINDS = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Ingress"}


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: it renders deploy/base (kubectl kustomize)")
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy/base")], check=True,
                         capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def test_core_manifests_validate_against_the_kubernetes_schemas(manifests):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    core = [m for m in manifests if m["kind"] in CORE_KINDS]
    assert {m["kind"] for m in core} == CORE_KINDS
    for manifest in core:
        kubernetes_validate.validate(manifest, "1.29", strict=True)


def test_the_scaled_object_scales_the_converters_on_the_configured_queue(manifests):
    (scaled,) = by_kind(manifests, "ScaledObject")
    (config,) = by_kind(manifests, "ConfigMap")
    assert scaled["spec"]["scaleTargetRef"]["name"] in {d["metadata"]["name"] for d in by_kind(manifests, "Deployment")}
    assert scaled["spec"]["scaleTargetRef"]["name"] == "pixline-converter"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == config["data"]["PIXLINE_QUEUE"]


def test_every_pixline_variable_is_a_known_setting(manifests):
    known = {f"PIXLINE_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    names = set(by_kind(manifests, "ConfigMap")[0]["data"])
    for deployment in by_kind(manifests, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    assert {n for n in names if n.startswith("PIXLINE_")} <= known


def test_every_probe_path_is_a_route(manifests):
    routes = set(yaml.safe_load((ROOT / "server/http/openapi.yaml").read_text())["paths"])
    for deployment in by_kind(manifests, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] in routes


def test_every_serving_pod_runs_one_worker_per_cpu_it_requests(manifests):
    # A pod with a CPU request and no limit has no quota to read: without PIXLINE_WORKERS, pixline
    # would start a worker per core of the node (server/settings.py available_cpus).
    import math

    serving = [d for d in by_kind(manifests, "Deployment")
               if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "serve"]
    assert serving
    for deployment in serving:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        cpu = str(container["resources"]["requests"]["cpu"])
        cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        assert int(env["PIXLINE_WORKERS"]) == max(1, math.ceil(cores)), deployment["metadata"]["name"]
