"""The KubeRay manifests parse, run the grid's entry point, and agree with each other and the image."""

from __future__ import annotations

import re

import yaml

from .conftest import CLUSTER, ENTRYPOINT, REPO, load_yaml

RAYCLUSTER = load_yaml(CLUSTER / "kuberay" / "raycluster.yaml")
RAYJOB = load_yaml(CLUSTER / "kuberay" / "rayjob.yaml")
SECRETS = {"WANDB_API_KEY", "HF_TOKEN", "RAY_AUTH_TOKEN"}


def _containers(spec: dict) -> list[dict]:
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    return [c for pod in pods for c in pod["spec"]["containers"]]


def test_kinds_and_entrypoint():
    assert (RAYCLUSTER["apiVersion"], RAYCLUSTER["kind"]) == ("ray.io/v1", "RayCluster")
    assert (RAYJOB["apiVersion"], RAYJOB["kind"]) == ("ray.io/v1", "RayJob")
    assert RAYJOB["spec"]["entrypoint"] == ENTRYPOINT
    assert (REPO / ENTRYPOINT.split()[-1]).is_file()
    assert RAYJOB["spec"]["shutdownAfterJobFinishes"] is True


def test_rayjob_embeds_the_raycluster_spec():
    assert RAYJOB["spec"]["rayClusterSpec"] == RAYCLUSTER["spec"]


def test_one_image_everywhere_and_ray_version_from_the_lock():
    submitter = RAYJOB["spec"]["submitterPodTemplate"]["spec"]["containers"]
    images = {c["image"] for c in _containers(RAYCLUSTER["spec"]) + submitter}
    images |= {load_yaml(CLUSTER / f"{cloud}.yaml")["docker"]["image"] for cloud in ("aws", "gcp")}
    assert len(images) == 1
    ray_pin = re.search(r"^ray==(\S+)$", (REPO / "constraints.txt").read_text(), re.M).group(1)
    assert RAYCLUSTER["spec"]["rayVersion"] == ray_pin


def test_gpu_workers_cpu_head_and_autoscaling():
    spec = RAYCLUSTER["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})
    (group,) = spec["workerGroupSpecs"]
    assert group["minReplicas"] == 0 < group["maxReplicas"]
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8


def test_secrets_come_from_kubernetes_secrets_only():
    submitter = RAYJOB["spec"]["submitterPodTemplate"]["spec"]["containers"]
    for container in _containers(RAYCLUSTER["spec"]) + submitter:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        for name in SECRETS & set(env):
            assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"]
    runtime_env = yaml.safe_load(RAYJOB["spec"]["runtimeEnvYAML"])
    assert not SECRETS & set(runtime_env.get("env_vars", {}))


def test_runtime_env_working_dir_is_the_images_project_dir():
    runtime_env = yaml.safe_load(RAYJOB["spec"]["runtimeEnvYAML"])
    workdirs = re.findall(r"^WORKDIR\s+(\S+)", (REPO / "docker" / "Dockerfile").read_text(), re.M)
    assert runtime_env["working_dir"] == workdirs[-1]
