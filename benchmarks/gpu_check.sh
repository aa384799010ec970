#!/usr/bin/env bash
# The GPU check, one script (about 8 minutes on an H100/H200, no network): from the repo root,
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# on a machine with torch and transformers. It installs the wheels of .whl/ (benchmarks/gpu_wheels.sh
# makes them) into a private folder, then measures, each into OUT_DIR (default $OUT, else ./gpu-check):
#   (a) the SFT loop at the OLMo-1B shape (bf16, packed, sequences to 2048): non-pad tokens/s and MFU at
#       ZeRO 0 and 2, for each attention implementation the machine has (train.txt);
#   (b) the evaluator against lm-evaluation-harness's HF backend on the same GPU, model and prompts:
#       classification, multiple choice and generation (eval.txt).
# PTFT_GPU_CHECK_SMOKE=1 runs the same steps on a CPU with a tiny shape (to check the script itself).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT_DIR"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1
if [ -d .whl ] && [ -z "${PTFT_GPU_CHECK_SMOKE:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ptft-site \
    .whl/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/ptft-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 - <<'PY' | tee "$OUT_DIR/machine.txt"
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")
for name in ("transformers", "deepspeed", "datasets", "pydantic", "lm_eval"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as err:  # noqa: BLE001 - report and go on
        print(name, "MISSING", type(err).__name__, err)
PY
status=0
if [ -n "${PTFT_GPU_CHECK_SMOKE:-}" ]; then
  export DS_ACCELERATOR=cpu
  TRAIN=(--cpu --stages 0 2 --steps 4 --log-every 2 --no-baseline --packing on --attn sdpa eager)
  EVAL=(--shape tiny --device cpu --limit 16 --repeats 1 --max-new-tokens 8)
else
  TRAIN=(--gpu --stages 0 2 --steps 12 --log-every 3 --packing on --no-warmup --attn sdpa flex_attention flash_attention_2)
  EVAL=(--shape olmo-1b --device cuda --precision bf16 --limit 100 --repeats 2)
fi
timeout 330 python3 benchmarks/train_throughput.py "${TRAIN[@]}" --json "$OUT_DIR/train.json" 2>&1 \
  | grep -v '^\[rank' | tee "$OUT_DIR/train.log" | grep -A20 '^ *zero ' | tee "$OUT_DIR/train.txt" || status=1
timeout 150 python3 benchmarks/eval_throughput.py "${EVAL[@]}" 2>&1 | tee "$OUT_DIR/eval.log" \
  | grep -E '^model|ex/s|geometric' | tee "$OUT_DIR/eval.txt" || status=1
echo "gpu_check: wrote $OUT_DIR (status $status)"
exit $status
