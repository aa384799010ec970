#!/usr/bin/env bash
# The GPU check, one script (about 10 minutes on an H100/H200 with every part, no network): from the repo
# root,
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# on a machine with torch and transformers. It installs the wheels of .whl/ (benchmarks/gpu_wheels.sh
# makes them) into a private folder, then measures, each into OUT_DIR (default $OUT, else ./gpu-check):
#   (a) train: the SFT loop at the OLMo-1B shape (bf16, packed, sequences to 2048): non-pad tokens/s and
#       MFU at ZeRO 0 and 2, for each attention implementation the machine has (train.txt);
#   (b) eval: the evaluator against lm-evaluation-harness's HF backend on the same GPU, model and prompts:
#       classification, multiple choice and generation (eval.txt);
#   (c) methods: full fine-tuning against LoRA, prompt tuning and P-tuning at the OLMo-1B shape (bf16,
#       ZeRO-2, 1 x 8 x 2048 packed): tokens/s, peak CUDA memory and MFU, each as a ratio to full
#       (methods.txt). It runs after (a), whose first DeepSpeed start JIT-builds the fused AdamW it reuses.
# PTFT_GPU_CHECK_PARTS="train eval methods" (the default) picks the parts, e.g. PTFT_GPU_CHECK_PARTS=methods
# when the device time left is short (alone, about 4 minutes with the fused AdamW build: an estimate until
# it has run on a GPU).
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
for name in ("transformers", "deepspeed", "peft", "accelerate", "datasets", "pydantic", "lm_eval"):
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
  METHODS=(--model tiny --device cpu --steps 1 --warmup 1)
else
  TRAIN=(--gpu --stages 0 2 --steps 12 --log-every 3 --packing on --no-warmup --attn sdpa flex_attention flash_attention_2)
  EVAL=(--shape olmo-1b --device cuda --precision bf16 --limit 100 --repeats 2)
  # Each method is its own process (its own peak memory): imports, a 4.7 GB model load, the run, the
  # final checkpoint (full: ~15 GB with Adam's states) and the export (LoRA: a merge in a fresh process)
  # are paid per method; 6 measured steps after 2 warm-up ones keep the four near 3 minutes.
  METHODS=(--model olmo-1b-shape --device cuda --steps 6 --warmup 2 --zero-stage 2)
fi
PARTS=" ${PTFT_GPU_CHECK_PARTS:-train eval methods} "
if [[ $PARTS == *" train "* ]]; then
  timeout 330 python3 benchmarks/train_throughput.py "${TRAIN[@]}" --json "$OUT_DIR/train.json" 2>&1 \
    | grep -v '^\[rank' | tee "$OUT_DIR/train.log" | grep -A20 '^ *zero ' | tee "$OUT_DIR/train.txt" || status=1
fi
if [[ $PARTS == *" eval "* ]]; then
  timeout 150 python3 benchmarks/eval_throughput.py "${EVAL[@]}" 2>&1 | tee "$OUT_DIR/eval.log" \
    | grep -E '^model|ex/s|geometric' | tee "$OUT_DIR/eval.txt" || status=1
fi
if [[ $PARTS == *" methods "* ]]; then
  # methods.json is rewritten after every method, so a timeout keeps the rows already measured.
  timeout 300 python3 benchmarks/method_throughput.py "${METHODS[@]}" --json "$OUT_DIR/methods.json" 2>&1 \
    | tee "$OUT_DIR/methods.log" | grep -B1 -A8 '^method ' | tee "$OUT_DIR/methods.txt" || status=1
fi
echo "gpu_check: wrote $OUT_DIR (status $status)"
exit $status
