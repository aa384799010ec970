"""Full fine-tuning against LoRA, prompt tuning and P-tuning in one run: tokens/s, peak memory, MFU.

    python benchmarks/method_throughput.py                     # tiny OLMo on CPU (about 2-3 min, 2 cores)
    python benchmarks/method_throughput.py --model olmo-1b-shape --device cuda    # OLMo-1B dims, bf16
    python benchmarks/method_throughput.py --model olmo-1b-shape --device cpu --layers 1 --steps 2
    python benchmarks/method_throughput.py --methods full lora --zero-stage 3 --json out.json

Every method trains the same randomly initialised model (no download) on the same mini MNLI rows through
ptft's real trainer (`trainers.sft.train_worker`, DeepSpeed, peft): full, LoRA (r=16, alpha 32, all-linear),
prompt tuning (20 virtual tokens, text init), P-tuning (20 virtual tokens, MLP encoder of 128). Each run
does `--warmup` optimizer steps that are left out (first-touch costs: allocator, kernels, shapes), then
`--steps` measured ones; tokens/s is the measured steps' tokens over their summed step time, the trainer's
own meter (only training steps are timed, not checkpointing or export). Ratios are against full
fine-tuning measured in the same run, which is what to read on a shared machine: the absolute numbers
move with whatever else the cores are doing.

Each method runs in its own child process, and the parent never imports torch. On CPU the trainer's
`peak_memory_bytes` is the process's max RSS, a high-water mark that only grows (and a child created by
fork/exec starts with its parent's): one process per method is what makes it that method's own. The
table also gives the peak above the child's RSS after its imports (torch, DeepSpeed, transformers, peft),
i.e. what the model, optimizer and activations took. On GPU the peak is CUDA's max allocated.

Columns: `tokens/s` counts every position the model runs, virtual tokens of prompt methods included (as
the trainer's MFU does); `target tok/s` counts completion tokens, the loss-bearing ones, which are the
same per example for every method, so it compares how fast each method consumes training signal. MFU is
shown where a peak FLOP/s is known (GPUs in `trainers.metrics.PEAK_BF16_FLOPS`, or `--peak-flops`) and
counts the FLOPs the method really spends (frozen bases 4N per token, LoRA's adapters 6 each). Losses:
the first step's and the last step's (a check that each method trains, not a comparison of quality after
a few steps; the lrs are each method's usual range, `LRS`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

# The parent stays free of torch: a child's max RSS starts at its parent's high-water mark.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import CPU_SHAPE, GPU_SHAPE  # noqa: E402

# OLMo-1B (allenai/OLMo-1B-hf): the GPU shape of train_throughput, its vocabulary and its tied embeddings.
OLMO_1B_VOCAB = 50304
METHOD_SPECS: dict[str, dict[str, Any]] = {
    "full": {"name": "full"},
    "lora": {"name": "lora", "r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
    "prompt_tuning": {"name": "prompt_tuning", "virtual_tokens": 20, "init": "text"},
    "p_tuning": {"name": "p_tuning", "virtual_tokens": 20, "encoder_hidden": 128},
}
# Usual lr ranges per method (LoRA and prompts want far larger lrs than full fine-tuning); they only
# change the loss column, not the cost of a step.
LRS = {"full": 2e-5, "lora": 2e-4, "prompt_tuning": 3e-2, "p_tuning": 1e-3}


# ------------------------------------------------------------------------------------------ children
def rss_bytes() -> int:
    """Resident set size now (not the high-water mark)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_model(folder: str, model: str, layers: int | None, device: str) -> dict[str, Any]:
    """Child: a randomly initialised OLMo and a tokenizer trained on the mini MNLI rows; says the device."""
    import torch
    from transformers import OlmoForCausalLM

    from ptft import tasks
    from ptft.core.tiny import tiny_olmo_config, train_tokenizer
    from trainers.metrics import peak_flops_for

    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    rows = tasks.load_rows("mnli", "train", source="mini")
    tokenizer = train_tokenizer([f"{r['premise']} {r['hypothesis']}" for r in rows], vocab_size=512)
    if model == "olmo-1b-shape":
        # Faithful to OLMo-1B: its vocabulary (rows past the tokenizer's are never looked up but are
        # allocated, trained and stepped as in the real model) and tied input/output embeddings.
        shape, vocab, extra = dict(GPU_SHAPE), OLMO_1B_VOCAB, {"tie_word_embeddings": True}
    else:
        shape, vocab, extra = dict(CPU_SHAPE), len(tokenizer), {}
    if layers is not None:
        shape["layers"] = layers
    config = tiny_olmo_config(vocab_size=vocab, pad_token_id=tokenizer.pad_token_id,
                              eos_token_id=tokenizer.eos_token_id, **shape, **extra)
    torch.manual_seed(0)
    with torch.device("cuda" if on_gpu else "cpu"):  # random init of 1B parameters is quicker on the GPU
        net = OlmoForCausalLM(config)
    net.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    name = torch.cuda.get_device_name() if on_gpu else "cpu"
    return {"device": "cuda" if on_gpu else "cpu", "device_name": name,
            "peak_flops": peak_flops_for(name) if on_gpu else None,
            "parameters": sum(p.numel() for p in net.parameters()), "shape": shape, "vocab_size": vocab,
            "torch_threads": torch.get_num_threads()}


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    """Child: one method through `train_worker`; a summary of the steps after the warm-up."""
    # What train_worker imports, imported before the RSS baseline (the modeling module and the tasks
    # too, which transformers and ptft would import lazily inside the run).
    import deepspeed  # noqa: F401
    import peft  # noqa: F401
    import torch
    from pydantic import TypeAdapter
    from transformers import OlmoForCausalLM  # noqa: F401

    from ptft import tasks  # noqa: F401
    from trainers.config import TrainConfig
    from trainers.job import LocalReporter, TrainJob
    from trainers.methods import Method
    from trainers.sft import train_worker

    class Quiet(LocalReporter):
        def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
            self.history.append(metrics)

    base_rss = rss_bytes()
    name = args.method
    cfg = TrainConfig(zero_stage=args.zero_stage, packing=True, batch_size=args.batch_size,
                      grad_accum=args.grad_accum, max_length=args.max_length, max_steps=args.warmup + args.steps,
                      log_every=1, val_size=0, checkpoint_every=None, epochs=10_000, peak_flops=args.peak_flops,
                      gradient_checkpointing=args.gradient_checkpointing,
                      pad_to_multiple_of=args.pad_to_multiple_of)
    job = TrainJob(trial_id=f"bench-{name}", cell_id="bench", model=args.model_dir, dataset="mnli",
                   data_source="mini", lr=LRS[name], config=cfg,
                   method=TypeAdapter(Method).validate_python(METHOD_SPECS[name]), output_dir=args.out_dir)
    reporter = Quiet(job)
    start = time.perf_counter()
    train_worker(job, reporter)  # also checkpoints and exports (LoRA: merges in a grandchild), untimed
    wall = time.perf_counter() - start
    history = reporter.history  # one report per optimizer step (log_every=1)
    measured = history[args.warmup:]
    seen, target_seen = ((history[args.warmup - 1]["tokens_seen"], history[args.warmup - 1]["target_tokens_seen"])
                         if args.warmup else (0, 0))
    tokens = targets = seconds = mfu_seconds = 0.0
    rates = []
    for m in measured:  # the trainer reports rates and running totals; step seconds = tokens / rate
        step_tokens, step_targets = m["tokens_seen"] - seen, m["target_tokens_seen"] - target_seen
        seen, target_seen = m["tokens_seen"], m["target_tokens_seen"]
        step_seconds = step_tokens / m["tokens_per_s"]
        tokens, targets, seconds = tokens + step_tokens, targets + step_targets, seconds + step_seconds
        mfu_seconds += (m["mfu"] or 0.0) * step_seconds
        rates.append(m["tokens_per_s"])
    last = history[-1]
    return {
        "method": name, "label": job.method.label, "lr": job.lr,
        "trainable_parameters": last["trainable_parameters"], "total_parameters": last["total_parameters"],
        "steps_measured": len(measured), "tokens": int(tokens), "step_seconds": seconds,
        "tokens_per_s": tokens / seconds, "target_tokens_per_s": targets / seconds,
        "tokens_per_s_best_step": max(rates),  # the step least disturbed by other work on the machine
        "mfu": mfu_seconds / seconds if last["mfu"] is not None else None,
        "peak_memory_bytes": max(m["peak_memory_bytes"] for m in history),
        "rss_after_imports_bytes": base_rss if not torch.cuda.is_available() else None,
        "loss_first": history[0]["loss"], "loss_final": last["loss"],
        "train_worker_seconds": wall,
    }


# -------------------------------------------------------------------------------------------- parent
def child(argv: list[str], log_path: str, verbose: bool) -> None:
    """Run this script as a child; its output goes to `log_path` (shown on failure or with --verbose)."""
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], stdout=log,
                              stderr=subprocess.STDOUT, check=False)
    if verbose or proc.returncode:
        with open(log_path) as f:
            lines = f.read().splitlines()
        print("\n".join(lines if verbose else lines[-40:]), file=sys.stderr)
    if proc.returncode:
        raise RuntimeError(f"child {argv[:2]} failed with exit status {proc.returncode} (log above)")


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def print_table(machine: dict[str, Any], results: list[dict[str, Any]]) -> None:
    full = next((r for r in results if r["method"] == "full"), None)
    cpu = machine["device"] == "cpu"
    header = (f"{'method':<14} {'trainable / total':>24} {'tokens/s':>9} {'vs full':>7} {'target tok/s':>12} "
              f"{'vs full':>7} {'peak mem':>10} {'vs full':>7}")
    if cpu:
        header += f" {'above imports':>13} {'vs full':>7}"
    header += f" {'MFU':>6} {'loss first→final':>17}"
    print(header)
    for r in results:
        share = f"{count(r['trainable_parameters'])} / {count(r['total_parameters'])} " \
                f"({r['trainable_parameters'] / r['total_parameters']:.2%})"
        line = (f"{r['label']:<14} {share:>24} {r['tokens_per_s']:>9.0f} "
                f"{ratio(r['tokens_per_s'], full and full['tokens_per_s']):>7} {r['target_tokens_per_s']:>12.0f} "
                f"{ratio(r['target_tokens_per_s'], full and full['target_tokens_per_s']):>7} "
                f"{gib(r['peak_memory_bytes']):>10} "
                f"{ratio(r['peak_memory_bytes'], full and full['peak_memory_bytes']):>7}")
        if cpu:
            above = r["peak_memory_bytes"] - r["rss_after_imports_bytes"]
            full_above = full and full["peak_memory_bytes"] - full["rss_after_imports_bytes"]
            line += f" {gib(above):>13} {ratio(above, full_above):>7}"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        loss = f"{r['loss_first']:.3f}→{r['loss_final']:.3f}"
        line += f" {mfu:>6} {loss:>17}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "olmo-1b-shape"), default="tiny",
                        help="tiny: hidden 256, 4 layers, vocab 512; olmo-1b-shape: hidden 2048, 16 layers, "
                        "16 heads, intermediate 8192, vocab 50304, tied embeddings (random init)")
    parser.add_argument("--layers", type=int, default=None,
                        help="override the number of layers (e.g. 1 or 2 for the OLMo-1B shape on CPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--methods", nargs="+", choices=tuple(METHOD_SPECS), default=list(METHOD_SPECS))
    parser.add_argument("--steps", type=int, default=None, help="measured optimizer steps per method")
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps left out before measuring")
    parser.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3), default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--grad-accum", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None, help="packed sequence length")
    parser.add_argument("--pad-to-multiple-of", type=int, default=None)
    parser.add_argument("--peak-flops", type=float, default=None, help="per-device peak FLOP/s for MFU")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--json", help="also write the machine, the settings and every method's row here")
    parser.add_argument("--verbose", action="store_true", help="show the children's output")
    # Internal: what a child is asked to do.
    parser.add_argument("--role", choices=("parent", "build", "method"), default="parent", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "build":
        result = build_model(args.model_dir, args.model, args.layers, args.device)
    elif args.role == "method":
        result = run_method(args)
    if args.role != "parent":
        with open(args.result, "w") as f:
            json.dump(result, f)
        return

    if (args.steps is not None and args.steps < 1) or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.device == "cpu":
        os.environ["DS_ACCELERATOR"] = "cpu"  # DeepSpeed would otherwise look for CUDA
    # `timeout` (gpu_check.sh) sends SIGTERM to the whole process group: exit through `finally`, so the
    # children are waited for and the temp folder (checkpoints of GBs) does not outlive the run.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = tempfile.mkdtemp(prefix="ptft-method-bench-")
    results: list[dict[str, Any]] = []
    try:
        model_dir = os.path.join(tmp, "model")
        started = time.perf_counter()
        child(["--role", "build", "--model", args.model, "--device", args.device, "--model-dir", model_dir,
               "--result", os.path.join(tmp, "machine.json"), *(["--layers", str(args.layers)] if args.layers else [])],
              os.path.join(tmp, "build.log"), args.verbose)
        machine = read_json(os.path.join(tmp, "machine.json"))
        if machine["device"] == "cpu":
            os.environ["DS_ACCELERATOR"] = "cpu"
        # GPU: the study's micro-batch 1 x 8 at 2048 tokens, packed. CPU: small enough for 2 shared cores.
        defaults = (dict(steps=8, batch_size=1, grad_accum=8, max_length=2048, pad_to_multiple_of=64)
                    if machine["device"] == "cuda" else
                    dict(steps=6, batch_size=2, grad_accum=2, max_length=256, pad_to_multiple_of=32))
        for key, value in defaults.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
        settings = {k: getattr(args, k) for k in ("model", "layers", "steps", "warmup", "zero_stage", "batch_size",
                                                   "grad_accum", "max_length", "pad_to_multiple_of", "peak_flops",
                                                   "gradient_checkpointing")}
        print(json.dumps({"machine": machine, "settings": settings}), flush=True)
        passed = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()
                  if v is not None and k not in ("model", "layers", "gradient_checkpointing")]
        passed += ["--gradient-checkpointing"] if args.gradient_checkpointing else []
        for name in args.methods:
            out_dir, result_path = os.path.join(tmp, f"out-{name}"), os.path.join(tmp, f"{name}.json")
            child(["--role", "method", "--method", name, "--model-dir", model_dir, "--out-dir", out_dir,
                   "--result", result_path, *passed], os.path.join(tmp, f"{name}.log"), args.verbose)
            results.append(read_json(result_path))
            print(json.dumps(results[-1]), flush=True)  # a row as soon as it exists: a timeout keeps it
            shutil.rmtree(out_dir, ignore_errors=True)  # full checkpoints of a 1B model are ~15 GB each
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"machine": machine, "settings": settings, "results": results}, f, indent=2)
        print(f"\n{machine['device_name']}, {args.model}{f' ({args.layers} layers)' if args.layers else ''}, "
              f"ZeRO-{args.zero_stage}, {args.steps} steps after {args.warmup} warm-up, "
              f"{args.batch_size}x{args.grad_accum} x {args.max_length} tokens packed; "
              f"{time.perf_counter() - started:.0f} s in all")
        print_table(machine, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
