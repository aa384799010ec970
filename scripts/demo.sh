#!/usr/bin/env bash
# Command 1 of the quickstart: install, then run the embedded demo on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. "${PTFT_VENV:-.venv}/bin/activate"
# PASSIVE: torch threads sleep instead of spinning when the other core is busy (10x faster on 2 cores)
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"
ptft demo "$@"
