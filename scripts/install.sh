#!/usr/bin/env bash
# One-command, CPU-only setup of the project's virtual environment.
#   bash scripts/install.sh            # creates/reuses $VENV (default: <repo>/.venv)
# A second run with everything present only checks and returns within seconds.
# Needs Python 3.11 and a package registry (PyPI); no compiler, no CUDA.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
D2_VERSION=0.7.2
STAMP="$VENV/.mask_adapter_install_stamp"
want_stamp="$(cat "$ROOT/requirements.txt" "$ROOT/setup.py" "$ROOT/scripts/install.sh" | sha256sum | cut -c1-32)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
   && "$VENV/bin/python" -c "import mask_adapter, detectron2" >/dev/null 2>&1; then
  echo "[install] environment at $VENV is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[install] creating virtual environment $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

echo "[install] pinned dependencies (requirements.txt)"
"${PIP[@]}" install -q -r "$ROOT/requirements.txt"

# detectron2 is published on the registry as sal-detectron2 (upstream a59f0563 + a Python 3.11 fix). Its wheel
# is tagged cp310, so pip refuses it on 3.11; pypa's `installer` installs the pure-Python files. The bundled
# _C extension is unused by this project and ignored by Python 3.11.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('sal-detectron2') != '$D2_VERSION')" 2>/dev/null; then
  echo "[install] detectron2 (sal-detectron2==$D2_VERSION)"
  tmp="$(mktemp -d)"
  "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.10 -d "$tmp" "sal-detectron2==$D2_VERSION"
  "$VENV/bin/python" -m installer "$tmp"/sal_detectron2-*.whl
  rm -rf "$tmp"
fi

# SAM2 (second training-free mask source). The PyPI release is an sdist whose build needs torch: build it against
# the venv's torch (no isolated build env, which would download another torch) and skip its optional CUDA op.
SAM2_VERSION=1.1.0
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('sam2') != '$SAM2_VERSION')" 2>/dev/null; then
  echo "[install] sam2==$SAM2_VERSION (CPU build)"
  SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation --no-deps "sam2==$SAM2_VERSION"
fi

echo "[install] mask_adapter (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"${PIP[@]}" check
"$VENV/bin/python" -c "import mask_adapter, detectron2, open_clip, torch; print('[install] ok: torch', torch.__version__, '| detectron2', detectron2.__version__, '| open_clip', open_clip.__version__)"
echo "$want_stamp" > "$STAMP"
