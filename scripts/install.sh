#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv and install ptft with the versions in constraints.txt.
#   torch: where python3 already has a torch (a CUDA build, say), the venv sees and keeps it;
#   otherwise torch==2.13.0 is installed first (a CPU wheel on CPU machines).
# DeepSpeed's CPU shared-memory comm op is pre-built once, so no test pays its ~40 s JIT compile.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PTFT_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  if python3 -c "import torch" >/dev/null 2>&1; then
    echo "[install] using the torch already installed for python3: $(python3 -c 'import torch; print(torch.__version__)')"
    python3 -m venv --system-site-packages "$VENV"
  else
    python3 -m venv "$VENV"
  fi
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
[ -f "$VENV/.ptft-install-stamp" ] || python -m pip install -q --upgrade pip

if ! python -c "import torch" >/dev/null 2>&1; then
  echo "[install] torch==2.13.0"
  python -m pip install -q "torch==2.13.0"
fi
TORCH_PIN="$VENV/torch-constraint.txt"
echo "torch==$(python -c 'import torch; print(torch.__version__)')" > "$TORCH_PIN"

# Skip the (slow) resolve when nothing that decides the install changed since the last one.
STAMP="$VENV/.ptft-install-stamp"
WANT="$(cat pyproject.toml constraints.txt "$TORCH_PIN" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! python -c "import ptft" >/dev/null 2>&1; then
  echo "[install] ptft and its pinned dependencies"
  python -m pip install -q -c constraints.txt -c "$TORCH_PIN" -e ".[test]"
  echo "$WANT" > "$STAMP"
fi

if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  MARK="$VENV/.deepspeed-shm-op-prebuilt"
  if [ ! -f "$MARK" ]; then
    echo "[install] pre-building DeepSpeed's CPU comm op (once, ~2 min)"
    # --no-cache-dir: a cached wheel (built without ops) would otherwise be reused silently.
    DS_BUILD_SHM_COMM=1 python -m pip install -q --no-cache-dir --no-build-isolation --no-deps \
      --force-reinstall "$(grep -i '^deepspeed==' constraints.txt)"
    python - <<'PY'
import glob, os, sys
import deepspeed
found = glob.glob(os.path.join(os.path.dirname(deepspeed.__file__), "**", "*shm_comm*.so"), recursive=True)
sys.exit(0 if found else "[install] DeepSpeed's shm comm op was not pre-built")
PY
    touch "$MARK"
  fi
fi
echo "[install] done: $(python -c 'import ptft, torch, ray, deepspeed, transformers; print("ptft", ptft.__version__, "torch", torch.__version__, "ray", ray.__version__, "deepspeed", deepspeed.__version__, "transformers", transformers.__version__)' 2>/dev/null)"
