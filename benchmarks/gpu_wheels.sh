#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the wheels benchmarks/gpu_check.sh installs on a GPU machine that has
# torch and transformers but no network: DeepSpeed, Ray-free ptft dependencies and lm-evaluation-harness.
# Run it here, where pip reaches the index; the GPU machine's Python is 3.12 on x86-64.
#   bash benchmarks/gpu_wheels.sh            # then carry .whl/ with the working tree
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
mkdir -p "$DEST"
PY="${PYTHON:-python3}"
pin() { grep -i "^$1==" constraints.txt | head -1; }
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
binary() {  # wheels for the GPU machine's Python, no dependencies (each one is named)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d "$DEST" "$@"
}
# What ptft imports there besides torch/transformers (the machine already has numpy, pandas, pyarrow,
# psutil, msgpack, einops, ninja, py-cpuinfo, tqdm, rich, pyyaml, safetensors, tokenizers).
binary "$(pin pydantic)" "$(pin pydantic_core)" "$(pin annotated-types)" "$(pin typing-inspection)" \
  "$(pin hjson)" "$(pin datasets)" "$(pin dill)" "$(pin multiprocess)" "$(pin nltk)" "$(pin transformers)"
# peft, for the fine-tuning methods (benchmarks/method_throughput.py); it imports accelerate at the top.
# Both are pure Python.
binary "$(pin peft)" "$(pin accelerate)"
# lm-evaluation-harness and what its HF backend imports.
binary "lm-eval==0.4.13" evaluate jsonlines more-itertools pytablewriter DataProperty \
  mbstrdecoder pathvalidate tabledata tcolorpy typepy chardet zstandard
# Source-only distributions become wheels here (DeepSpeed without prebuilt ops: it JIT-builds what it needs).
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$(pin deepspeed)" "$(pin rouge_score)" \
  sqlitedict word2number
ls -1 "$DEST"
du -sh "$DEST"
