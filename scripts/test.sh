#!/usr/bin/env bash
# Command 2 of the quickstart: install, then run the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. "${PTFT_VENV:-.venv}/bin/activate"
# PASSIVE: torch threads sleep instead of spinning when the other core is busy (10x faster on 2 cores)
# PYTHONFAULTHANDLER: a native crash prints every thread's Python stack instead of a bare "Segmentation fault".
export PYTHONFAULTHANDLER=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline DS_ACCELERATOR=cpu
ruff check .
python -m pytest "$@"
