"""Throughput of the ptft evaluator against lm-evaluation-harness's Hugging Face backend (HFLM).

Both engines score the same requests, built from the same mini data, on the same model, in the same
process; the script prints examples/s for each and the ratio, plus how well their answers agree.

    # CPU, tiny OLMo (built on the fly); target: ptft >= 2x lm-eval
    python benchmarks/eval_throughput.py
    # one GPU, an OLMo-1B-shaped model with random weights; target: ptft >= 5x lm-eval
    python benchmarks/eval_throughput.py --device cuda --shape olmo-1b --batch-size 32
    # or a real checkpoint
    python benchmarks/eval_throughput.py --device cuda --model allenai/OLMo-1B-hf --data-source hub

Workloads (4-shot, fixed mode): classification (mnli_matched, 3 label words), multiple choice
(arc_easy, 4 options), generation (xsum, greedy, stop sequences, `--max-new-tokens`). The mini sets
draw questions from small pools (arc_easy: 12 distinct prompts in 100), and both engines score a
repeated prompt once; by default each prompt's last block gets a unique tag, so the numbers measure
the engines, not the repeats (`--as-drawn` keeps the sets verbatim).
lm-eval is optional for ptft; this script needs it (`pip install -c constraints.txt lm-eval`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time

OLMO_1B_SHAPE = {"hidden": 2048, "layers": 16, "heads": 16, "intermediate": 8192, "max_positions": 2048}
WORKLOADS = {"classification": "mnli_matched", "multiple_choice": "arc_easy", "generation": "xsum"}


def build_model(shape: str, out_dir: str) -> str:
    """A randomly initialised OLMo of the given shape, with the locally trained tiny tokenizer."""
    from ptft.core.tiny import build_tiny_model

    overrides = OLMO_1B_SHAPE if shape == "olmo-1b" else {}
    return build_tiny_model(out_dir, **overrides)


def load_workload(task: str, tokenizer, args) -> object:
    from ptft.tasks import eval_set

    def count_tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    reserve = args.max_new_tokens if task == "xsum" else 0
    return eval_set(task, "default", "fixed", args.shots, source=args.data_source, limit=args.limit,
                    count_tokens=count_tokens, max_tokens=args.max_length - reserve)


def make_distinct(eval_set):
    """The same set with a unique tag before each prompt's last block (the shared shots stay shared)."""
    examples = []
    for i, e in enumerate(eval_set.examples):
        head, sep, tail = e.context.rpartition("\n\n")
        examples.append(dataclasses.replace(e, context=f"{head}{sep}#{i} {tail}"))
    return dataclasses.replace(eval_set, examples=examples)


def timed(fn, *fn_args):
    """(seconds, result) of one call, with the device synchronised around it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*fn_args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def run_ptft(lm, eval_set, kind: str, args):
    from evals.generation import generate
    from evals.loglikelihood import loglikelihood
    from evals.requests import GenerationRequest, LoglikelihoodRequest

    if kind == "generation":
        requests = [GenerationRequest(e.context, tuple(eval_set.stop_sequences), args.max_new_tokens)
                    for e in eval_set.examples]
        return [o.text for o in generate(lm, requests, batch_size=args.batch_size)]
    requests = [LoglikelihoodRequest(e.context, tuple(e.candidates)) for e in eval_set.examples]
    return [list(r.loglikelihoods) for r in loglikelihood(lm, requests, batch_size=args.batch_size)]


def run_lm_eval(hflm, eval_set, kind: str, args):
    from lm_eval.api.instance import Instance

    if kind == "generation":
        gen_kwargs = {"until": list(eval_set.stop_sequences), "max_gen_toks": args.max_new_tokens,
                      "do_sample": False}
        instances = [Instance("generate_until", {}, (e.context, dict(gen_kwargs)), i, ("bench", i, 1))
                     for i, e in enumerate(eval_set.examples)]
        return hflm.generate_until(instances, disable_tqdm=True)
    instances, shape = [], []
    for i, e in enumerate(eval_set.examples):
        shape.append(len(e.candidates))
        instances += [Instance("loglikelihood", {}, (e.context, c), j, ("bench", i, 1))
                      for j, c in enumerate(e.candidates)]
    flat = [ll for ll, _ in hflm.loglikelihood(instances, disable_tqdm=True)]
    out, cursor = [], 0
    for n in shape:
        out.append(flat[cursor:cursor + n])
        cursor += n
    return out


def agreement(kind: str, ours, theirs) -> str:
    import numpy as np

    if kind == "generation":
        same = sum(a == b for a, b in zip(ours, theirs, strict=True))
        return f"identical generations {same}/{len(ours)}"
    diff = max(abs(a - b) for x, y in zip(ours, theirs, strict=True) for a, b in zip(x, y, strict=True))
    same = sum(int(np.argmax(x)) == int(np.argmax(y)) for x, y in zip(ours, theirs, strict=True))
    return f"same argmax {same}/{len(ours)}, max |delta loglik| {diff:.2e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model dir or hub id (default: build one of --shape)")
    parser.add_argument("--shape", default="tiny", choices=("tiny", "olmo-1b"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--data-source", default="mini")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, the same for both engines")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--as-drawn", action="store_true", help="keep the mini sets' repeated prompts")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per engine, interleaved; the fastest counts (robust to a busy machine)")
    parser.add_argument("--lm-eval-batch-size", type=int, default=None,
                        help="lm-eval's batch size (default: --batch-size; lm-eval's own default is 1)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        print("lm-eval is not installed: pip install -c constraints.txt lm-eval")
        return 2
    from evals.model_loading import load_model

    model_path = args.model or build_model(args.shape, tempfile.mkdtemp(prefix=f"bench-{args.shape}-"))
    lm = load_model(model_path, precision=args.precision, device=args.device, max_length=args.max_length)
    hflm = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=args.lm_eval_batch_size or args.batch_size,
                max_length=lm.max_length, device=str(lm.device))  # the very same weights in memory
    params = sum(p.numel() for p in lm.model.parameters())
    print(f"model {model_path} ({params / 1e6:.1f}M params), device {lm.device}, dtype {lm.dtype}, "
          f"batch {args.batch_size} (lm-eval {hflm.batch_size}), threads {torch.get_num_threads()}")
    ratios = []
    for kind in args.workloads.split(","):
        eval_set = load_workload(WORKLOADS[kind], lm.tokenizer, args)
        if not args.as_drawn:
            eval_set = make_distinct(eval_set)
        warm = dataclasses.replace(eval_set, examples=eval_set.examples[:2])
        run_ptft(lm, warm, kind, args)
        run_lm_eval(hflm, warm, kind, args)
        ours_runs, theirs_runs = [], []
        for _ in range(args.repeats):  # interleaved, so that load from other processes hits both alike
            ours_runs.append(timed(run_ptft, lm, eval_set, kind, args))
            theirs_runs.append(timed(run_lm_eval, hflm, eval_set, kind, args))
        ours_t, ours = min(ours_runs, key=lambda r: r[0])
        theirs_t, theirs = min(theirs_runs, key=lambda r: r[0])
        n = len(eval_set.examples)
        ratio = theirs_t / ours_t
        ratios.append(ratio)
        distinct = len({e.context for e in eval_set.examples})
        print(f"{kind:16s} {WORKLOADS[kind]:13s} n={n:4d} ({distinct:3d} distinct)  ptft {n / ours_t:8.1f} ex/s  "
              f"lm-eval {n / theirs_t:8.1f} ex/s  ratio {ratio:5.2f}x  ({agreement(kind, ours, theirs)})")
    geo = float(torch.tensor(ratios).log().mean().exp())
    print(f"geometric-mean speedup {geo:.2f}x")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
