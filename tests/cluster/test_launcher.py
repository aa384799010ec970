"""The cluster launcher configs validate against the schema Ray ships and say what the grid needs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
from ray.autoscaler._private.util import fillout_defaults, validate_config

from .conftest import CLUSTER, load_yaml

SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
GPU_TYPES = {"aws": ("InstanceType", "p5.48xlarge"), "gcp": ("machineType", "a3-highgpu-8g")}


@pytest.fixture(params=["aws", "gcp"])
def launcher(request) -> tuple[str, dict]:
    return request.param, load_yaml(CLUSTER / f"{request.param}.yaml")


def test_validates_against_rays_schema(launcher):
    _, config = launcher
    jsonschema.validate(config, SCHEMA)  # as written
    validate_config(fillout_defaults(config))  # as `ray up` sees it, after Ray merges provider defaults


def test_cpu_head_and_8xh100_workers(launcher):
    cloud, config = launcher
    assert config["provider"]["type"] == cloud
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "no trial may land on the head"
    assert any("--num-cpus=0" in cmd for cmd in config["head_start_ray_commands"])
    key, machine = GPU_TYPES[cloud]
    gpu = [t for t in types.values() if t["node_config"].get(key) == machine]
    assert len(gpu) == 1 and gpu[0]["resources"]["GPU"] == 8


def test_autoscaling_bounds(launcher):
    _, config = launcher
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    for node_type in workers:
        assert node_type["min_workers"] == 0, "an idle cluster scales to zero workers"
        assert 1 <= node_type["max_workers"] <= config["max_workers"]
    assert config["idle_timeout_minutes"] > 0


def test_image_token_auth_and_no_secrets(launcher, kuberay_image):
    cloud, config = launcher
    assert config["docker"]["image"] == kuberay_image
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert "~/.ray/auth_token" in config["file_mounts"]
    text = (CLUSTER / f"{cloud}.yaml").read_text()
    assert "WANDB_API_KEY" not in text and "HF_TOKEN" not in text


@pytest.fixture
def kuberay_image() -> str:
    spec = load_yaml(CLUSTER / "kuberay" / "raycluster.yaml")["spec"]
    return spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
