"""benchmarks/method_throughput.py in its smoke size: one row per method, from a real run of each.

Checks the output's structure and what the counts must be, never timings: the numbers exist and are
positive, full fine-tuning trains every weight, each peft method trains exactly its adapter (LoRA r=16 on
every linear layer but the head, 20 prompt embeddings) on top of the unchanged base.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
METHODS = ("full", "lora", "prompt_tuning", "p_tuning")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("method-bench") / "methods.json"
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "method_throughput.py"), "--device", "cpu",
                           "--steps", "1", "--warmup", "1", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_one_row_per_method_with_positive_numbers(bench):
    report, _ = bench
    rows = report["results"]
    assert [r["method"] for r in rows] == list(METHODS)
    for r in rows:
        assert r["steps_measured"] == 1
        for key in ("tokens_per_s", "target_tokens_per_s", "tokens_per_s_best_step", "step_seconds",
                    "peak_memory_bytes", "rss_after_imports_bytes", "tokens", "train_worker_seconds"):
            assert r[key] > 0, (r["method"], key, r[key])
        assert r["peak_memory_bytes"] > r["rss_after_imports_bytes"]  # training took memory above imports
        assert r["mfu"] is None  # no peak FLOP/s is known for a CPU
        assert math.isfinite(r["loss_first"]) and math.isfinite(r["loss_final"])


@pytest.mark.slow
def test_trainable_parameters_are_each_methods_own(bench):
    report, _ = bench
    rows = {r["method"]: r for r in report["results"]}
    shape = report["machine"]["shape"]
    hidden, inter, layers = shape["hidden"], shape["intermediate"], shape["layers"]
    full = rows["full"]
    assert full["trainable_parameters"] == full["total_parameters"] == report["machine"]["parameters"]
    # LoRA r=16 on q, k, v, o (hidden -> hidden) and gate, up, down (hidden <-> intermediate): r x (in + out).
    lora = 16 * layers * (4 * (hidden + hidden) + 3 * (hidden + inter))
    assert rows["lora"]["trainable_parameters"] == lora
    assert rows["prompt_tuning"]["trainable_parameters"] == 20 * hidden
    # P-tuning: the same 20 embeddings plus the encoder that produces them.
    assert 20 * hidden < rows["p_tuning"]["trainable_parameters"] < full["trainable_parameters"]
    for name in ("lora", "prompt_tuning", "p_tuning"):
        r = rows[name]
        assert r["trainable_parameters"] < r["total_parameters"]
        # The base is all there, frozen: total = the base's parameters + the adapter's.
        assert r["total_parameters"] == full["total_parameters"] + r["trainable_parameters"]


@pytest.mark.slow
def test_printed_table_has_a_line_per_method(bench):
    _, stdout = bench
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method "))
    table = lines[header + 1:header + 1 + len(METHODS)]
    labels = [line.split()[0] for line in table]
    assert labels == ["full", "lora-r16", "prompt-20", "ptuning-20"]
    for line in table:
        fields = line.split()
        tokens_per_s, vs_full = float(fields[5]), fields[6]
        assert tokens_per_s > 0 and vs_full.endswith("x")
    assert table[0].split()[6] == "1.00x"  # full is the baseline of its own ratios
