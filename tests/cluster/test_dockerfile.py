"""docker/Dockerfile, read rather than built (no Docker engine here): its invariants, and .dockerignore."""

from __future__ import annotations

import re

from .conftest import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comment lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, args = pending.strip().partition(" ")
        out.append((word.upper(), args.strip()))
        pending = ""
    return out


def _index(pred) -> int:
    return next(i for i, ins in enumerate(instructions()) if pred(*ins))


def _args() -> dict[str, str]:
    return dict(re.match(r"(\w+)=?(.*)", a).groups() for w, a in instructions() if w == "ARG")


def test_cuda_devel_base_and_python_311():
    args = _args()
    assert instructions()[0][0] == "ARG" and any(w == "FROM" for w, _ in instructions())
    assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-cudnn-devel-ubuntu22\.04", args["CUDA_IMAGE"])
    assert args["PYTHON_VERSION"] == "3.11"


def test_runs_as_a_non_root_user():
    users = [a for w, a in instructions() if w == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}


def test_torch_matches_the_projects_pin():
    pinned = re.search(r'"torch==([\d.]+)"', (REPO / "scripts" / "install.sh").read_text()).group(1)
    assert _args()["TORCH_VERSION"] == pinned
    torch_run = _index(lambda w, a: w == "RUN" and "torch==${TORCH_VERSION}" in a)
    assert "torch.version.cuda" in instructions()[torch_run][1]  # refuses a CPU wheel


def test_deepspeed_gpu_ops_prebuilt_from_the_lock():
    ds = instructions()[_index(lambda w, a: w == "RUN" and "deepspeed==" in a)][1]
    for flag in ("DS_BUILD_FUSED_ADAM=1", "DS_BUILD_CPU_ADAM=1", "DS_ACCELERATOR=cuda", "--no-build-isolation",
                 "-c constraints.txt"):
        assert flag in ds
    assert {"8.0", "9.0"} <= set(_args()["TORCH_CUDA_ARCH_LIST"].strip('"').split(";"))
    assert "fused_adam_op" in ds  # the build fails unless the op really was compiled


def test_every_dependency_install_uses_the_lock():
    pip_runs = [a for w, a in instructions() if w == "RUN" and "pip install" in a]
    for run in pip_runs:
        for cmd in run.split("&&"):
            if "pip install" in cmd and "torch==" not in cmd and "--upgrade pip" not in cmd:
                assert "-c constraints.txt" in cmd, cmd


def test_layers_ordered_for_caching_and_source_last():
    apt = _index(lambda w, a: w == "RUN" and "apt-get install" in a)
    torch = _index(lambda w, a: w == "RUN" and "torch==" in a)
    lock = _index(lambda w, a: w == "COPY" and "constraints.txt" in a)
    ds = _index(lambda w, a: w == "RUN" and "deepspeed==" in a)
    deps = _index(lambda w, a: w == "RUN" and "-r /tmp/ptft-requirements.txt" in a)
    source = _index(lambda w, a: w == "COPY" and a.split()[-2:] == [".", "."])
    project = _index(lambda w, a: w == "RUN" and "pip install --no-deps" in a)
    assert apt < torch < lock < ds < deps < source < project
    copies_before_source = [a for w, a in instructions()[:source] if w == "COPY"]
    assert all("." not in a.split()[:-1] for a in copies_before_source)  # no early copy of the tree


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a pattern (with ** for any depth) matching the path or a parent."""
    def regex(p: str) -> str:
        return re.escape(p).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(re.fullmatch(regex(p), pre) for p in patterns for pre in prefixes)


def test_dockerignore_drops_outputs_and_keeps_what_the_image_installs():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)
    for dropped in (".git/HEAD", ".venv/bin/python", "runs/x/ckpt.pt", "wandb/latest-run", "evals/wandb/x",
                    "ptft/__pycache__/a.pyc", "data/raw.jsonl", ".env"):
        assert _dockerignored(dropped, patterns), dropped
    for kept in ("README.md", "pyproject.toml", "constraints.txt", "configs/paper.yaml", "ray_jobs/submit.py",
                 "ptft/tasks/mini/data/mnli/train.jsonl", "docker/Dockerfile"):
        assert not _dockerignored(kept, patterns), kept
