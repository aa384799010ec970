"""Two CPU workers: ZeRO 2 and 3 under torchrun, and the Ray Train adapter (slow tier)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ptft.core.layout import TrainOutput
from trainers.config import TrainConfig
from trainers.sft import TrainJob

pytestmark = pytest.mark.slow


def _job(model: str, out: str, **config) -> TrainJob:
    defaults = dict(epochs=1, batch_size=2, grad_accum=2, max_length=96, val_size=8, log_every=2,
                    checkpoint_every=3, seed=42)
    return TrainJob(trial_id="trial", cell_id="cell", model=model, dataset="mnli", data_source="mini",
                    data_limit=48, lr=1e-3, config=TrainConfig(**{**defaults, **config}), output_dir=out)


def _weights(output_dir: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(os.path.join(output_dir, "model", "model.safetensors"))


def _manifest(output_dir: str) -> dict:
    with open(TrainOutput(output_dir).manifest) as f:
        return json.load(f)


def test_zero2_and_zero3_on_two_torchrun_workers_agree(tiny_model_dir, tmp_path):
    outputs = {}
    for stage in (2, 3):
        job = _job(tiny_model_dir, str(tmp_path / f"z{stage}"), zero_stage=stage)
        job_file = tmp_path / f"job{stage}.json"
        job_file.write_text(job.model_dump_json())
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "trainers.sft", str(job_file)],
            capture_output=True, text=True, timeout=240, env=env,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert os.path.exists(TrainOutput(job.output_dir).completed)
        checkpoints = os.path.join(job.output_dir, "checkpoints")
        tag = open(os.path.join(checkpoints, "latest")).read().strip()
        shards = os.listdir(os.path.join(checkpoints, tag))
        assert any("zero_pp_rank_1" in name for name in shards), shards  # every rank saved its own shard
        outputs[stage] = job.output_dir
    m2, m3 = _manifest(outputs[2]), _manifest(outputs[3])
    assert m2["world_size"] == m3["world_size"] == 2
    assert m3["metrics"]["loss"] == pytest.approx(m2["metrics"]["loss"], rel=1e-5)
    assert m3["val_loss"] == pytest.approx(m2["val_loss"], rel=1e-5)
    w2, w3 = _weights(outputs[2]), _weights(outputs[3])
    for name in w2:
        torch.testing.assert_close(w3[name], w2[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", [{"name": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
                                    {"name": "prompt_tuning", "virtual_tokens": 4}], ids=["lora", "prompt"])
def test_peft_methods_on_two_workers_agree_across_zero2_and_zero3(method, tiny_model_dir, tmp_path):
    """Two ranks: under ZeRO-3 each holds a shard of the adapter, so saving without the gather would
    write empty tensors; the gathered adapter equals ZeRO-2's, and so do the losses. The persistence
    threshold is 0: DeepSpeed keeps parameters under 100k elements whole on every rank by default, which
    would hide a missing gather on adapters this small."""
    from pydantic import TypeAdapter
    from safetensors.torch import load_file

    from trainers.methods import Method

    adapters = {}
    for stage in (2, 3):
        job = _job(tiny_model_dir, str(tmp_path / f"z{stage}"), zero_stage=stage, max_steps=4, checkpoint_every=2,
                   zero3_persistence_threshold=0)
        job = job.model_copy(update={"method": TypeAdapter(Method).validate_python(method), "lr": 1e-2})
        job_file = tmp_path / f"job{stage}.json"
        job_file.write_text(job.model_dump_json())
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "trainers.sft", str(job_file)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        manifest = _manifest(job.output_dir)
        assert manifest["world_size"] == 2
        adapters[stage] = (manifest, load_file(os.path.join(TrainOutput(job.output_dir).adapter,
                                                            "adapter_model.safetensors")))
    (m2, a2), (m3, a3) = adapters[2], adapters[3]
    assert m3["metrics"]["loss"] == pytest.approx(m2["metrics"]["loss"], rel=1e-5)
    assert a2.keys() == a3.keys() and a2
    for name in a2:
        assert a3[name].numel() == a2[name].numel() > 0, name
        torch.testing.assert_close(a3[name], a2[name], rtol=1e-4, atol=1e-6)


def test_bare_single_process_run_needs_no_launcher(tiny_model_dir, tmp_path):
    """`python -m trainers.sft job.json` with no RANK/MASTER_* set (DeepSpeed would try mpi4py)."""
    job = _job(tiny_model_dir, str(tmp_path / "bare"), zero_stage=1, max_steps=2, checkpoint_every=None)
    job_file = tmp_path / "job.json"
    job_file.write_text(job.model_dump_json())
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run([sys.executable, "-m", "trainers.sft", str(job_file)], capture_output=True, text=True,
                          timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["output_dir"] == job.output_dir
    assert _manifest(job.output_dir)["steps"]["done"] == 2


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False, runtime_env={"env_vars": {
        "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


def test_ray_train_adapter_two_workers_checkpoint_and_resume(local_ray, tiny_model_dir, tmp_path):
    from ptft.study.spec import ResourcesSpec
    from ray_jobs.train_trials import TrialRun, torch_trainer

    # The grid's own builder and worker loop, without the grid's bookkeeping (curve, W&B).
    resources = ResourcesSpec(workers_per_trial=2, gpus_per_worker=0, cpus_per_worker=0.9, max_failures=0)
    job = _job(tiny_model_dir, str(tmp_path / "ray"), zero_stage=2)
    run = TrialRun(job=job, resources=resources, train_root=str(tmp_path / "storage"))
    result = torch_trainer(run).fit()
    assert result.error is None
    assert os.path.exists(TrainOutput(job.output_dir).completed)
    manifest = _manifest(job.output_dir)
    assert manifest["world_size"] == 2
    assert result.metrics["step"] == manifest["steps"]["total"] and "val_loss" in result.metrics
    with result.checkpoint.as_directory() as directory:  # both ranks' shards merged into one checkpoint
        tag = open(os.path.join(directory, "latest")).read().strip()
        names = os.listdir(os.path.join(directory, tag))
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= set(names)

    # Re-creating the run (same name + storage, as Tuner.restore does) resumes from the merged
    # checkpoint: its final step is done, so it only exports, the same weights and val_loss.
    again = job.model_copy(update={"output_dir": str(tmp_path / "ray-resumed")})
    torch_trainer(run.model_copy(update={"job": again})).fit()
    assert _manifest(again.output_dir)["val_loss"] == manifest["val_loss"]
    a, b = _weights(job.output_dir), _weights(again.output_dir)
    for name in a:
        assert torch.equal(a[name], b[name]), name
