"""Pre-train a tiny OLMo on the demo corpus and save intermediate checkpoints (`<out>/step{N}`).

This is plain causal-LM pre-training (packed token blocks, AdamW, warmup then cosine decay), not the SFT
trainer: the point is a handful of real checkpoints along one trajectory, the way OLMo publishes them.
Each checkpoint is a `save_pretrained` folder with the tokenizer, loadable by the grid like a hub model.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from ptft.cli.demo.corpus import corpus_documents

DONE_FILE = "pretrain.json"  # written last: its presence with the same config means "already done"


@dataclass(frozen=True)
class PretrainConfig:
    """The pre-training run: corpus size, model shape, optimisation and which steps to keep."""

    n_docs: int = 12000
    corpus_seed: int = 0
    vocab_size: int = 768
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    intermediate: int = 384
    max_positions: int = 512
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.01
    checkpoint_steps: tuple[int, ...] = (50, 200, 600)
    seed: int = 0
    tokenizer_tasks: tuple[str, ...] = field(default=("mnli", "paws", "xsum", "rte", "qqp", "stsb", "cnn",
                                                      "mnli_matched"))

    @property
    def total_steps(self) -> int:
        return max(self.checkpoint_steps)


def task_texts(task_names: Iterable[str]) -> list[str]:
    """Texts of the mini datasets and their prompt templates, so the tokenizer knows their words too."""
    from ptft import tasks

    texts: list[str] = []
    for name in task_names:
        spec = tasks.get_task(name)
        splits = {spec.train_split, *spec.eval_split.values()} - {None}
        for split in sorted(splits):
            try:
                rows = tasks.load_rows(name, split, source="mini")
            except Exception:  # a split the mini set does not ship: its words are in the others
                continue
            texts += [" ".join(str(v) for v in row.values() if isinstance(v, str)) for row in rows]
        if spec.train_split is not None:
            for fmt in spec.formats:  # the templates' fixed words ("Paraphrase Classification", ...)
                rendered = tasks.training_set(name, fmt, "fixed", source="mini", limit=4)
                texts += [f"{r.prompt} {r.completion}" for r in rendered.examples]
    return texts


def _token_blocks(tokenizer, docs: Sequence[str], seq_len: int):
    """Every document's tokens, each followed by eos, concatenated and cut into (seq_len + 1) blocks."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer(list(docs), add_special_tokens=False)["input_ids"]:
        ids += encoded + [tokenizer.eos_token_id]
    n_blocks = len(ids) // (seq_len + 1)
    return torch.tensor(ids[: n_blocks * (seq_len + 1)]).view(n_blocks, seq_len + 1)


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup, then cosine decay to 10% at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.total_steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def checkpoint_dir(out_dir: str, step: int) -> str:
    return os.path.join(out_dir, f"step{step}")


def is_done(out_dir: str, cfg: PretrainConfig) -> bool:
    """Were these checkpoints already made by a run with the same config (a re-run of the demo)?"""
    path = os.path.join(out_dir, DONE_FILE)
    if not os.path.isfile(path):
        return False
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    same = saved.get("config") == json.loads(json.dumps(asdict(cfg)))
    return same and all(os.path.isfile(os.path.join(checkpoint_dir(out_dir, s), "config.json"))
                        for s in cfg.checkpoint_steps)


def pretrain(out_dir: str, cfg: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict[int, str]:
    """Train the tokenizer and the model; returns step -> checkpoint folder. Skips work already done."""
    paths = {s: checkpoint_dir(out_dir, s) for s in sorted(cfg.checkpoint_steps)}
    if is_done(out_dir, cfg):
        print(f"[ptft demo] pre-training checkpoints already in {out_dir}; reusing them", flush=True)
        return paths

    import torch
    from tqdm.auto import tqdm
    from transformers import OlmoForCausalLM
    from transformers.utils import logging as hf_logging

    from ptft.core.tiny import tiny_olmo_config, train_tokenizer

    hf_logging.disable_progress_bar()  # save_pretrained's per-shard bar, inside ours, at every checkpoint

    start = time.perf_counter()
    docs = corpus_documents(cfg.n_docs, seed=cfg.corpus_seed)
    tokenizer = train_tokenizer(docs + task_texts(cfg.tokenizer_tasks), vocab_size=cfg.vocab_size)
    blocks = _token_blocks(tokenizer, docs, cfg.seq_len)
    print(f"[ptft demo] corpus: {len(docs)} documents, {blocks.numel()} tokens, tokenizer of "
          f"{len(tokenizer)} tokens ({time.perf_counter() - start:.1f}s)", flush=True)

    torch.manual_seed(cfg.seed)
    config = tiny_olmo_config(
        vocab_size=len(tokenizer), hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads,
        intermediate=cfg.intermediate, max_positions=cfg.max_positions,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = OlmoForCausalLM(config)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    # No weight decay on norms and biases: the usual split, it keeps tiny models from drifting.
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(blocks), generator=generator)
    cursor = 0
    # disable=None: tqdm turns itself off without a terminal (a log would get one line of \r-updates).
    bar = tqdm(range(cfg.total_steps), desc=f"pre-training {n_params / 1e6:.2f}M params", unit="step",
               disable=None if progress else True, dynamic_ncols=True)
    for step in bar:
        if cursor + cfg.batch_size > len(order):  # next epoch over the corpus, freshly shuffled
            order, cursor = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[cursor: cursor + cfg.batch_size]]
        cursor += cfg.batch_size
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        loss = _causal_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if step + 1 in paths:
            model.save_pretrained(paths[step + 1])
            tokenizer.save_pretrained(paths[step + 1])
            bar.write(f"[ptft demo] saved {paths[step + 1]} (loss {loss.item():.3f})")
    bar.close()
    with open(os.path.join(out_dir, DONE_FILE), "w", encoding="utf-8") as f:
        json.dump({"config": asdict(cfg), "n_params": n_params, "tokens": blocks.numel(),
                   "seconds": round(time.perf_counter() - start, 1)}, f, indent=1)
    return paths


def config_from_json(text: str) -> PretrainConfig:
    """The inverse of `json.dumps(asdict(cfg))` (tuples come back as lists)."""
    raw = json.loads(text)
    for key in ("checkpoint_steps", "tokenizer_tasks"):
        raw[key] = tuple(raw[key])
    return PretrainConfig(**raw)


def main(argv: list[str] | None = None) -> int:
    """`python -m ptft.cli.demo.pretrain OUT_DIR CONFIG_JSON [--no-progress]`: the demo runs it as a child
    process so the OpenMP settings it needs (OMP_WAIT_POLICY) take effect before torch loads."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ptft.cli.demo.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("config", help="PretrainConfig as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    pretrain(args.out_dir, config_from_json(args.config), progress=not args.no_progress)
    return 0


def _causal_loss(model, batch):
    """Next-token cross-entropy over a packed block (inputs are the block minus its last token)."""
    import torch.nn.functional as F

    logits = model(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))


if __name__ == "__main__":
    raise SystemExit(main())
