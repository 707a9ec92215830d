#!/usr/bin/env bash
# Run the test suite on the stack of SCT 6.x users: Python 3.9, nnunetv2 2.3.1, torch 2.5, numpy 1.26.
#
# usage: scripts/test_sct6_stack.sh [VENV_DIR] [pytest args...]
#   VENV_DIR defaults to .venv-sct6 (created if missing; pyenv's 3.9 is used when present).
# torch 2.5.1 comes from PyPI (the CUDA build, ~2.5 GB with its nvidia wheels; it runs on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-sct6}"
shift || true
PY39="$(ls -d "$HOME"/.pyenv/versions/3.9.*/bin/python 2>/dev/null | tail -1 || true)"
PY39="${PY39:-$(command -v python3.9)}"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY39" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "pip<25"
  # pins as in SCT 6.5's requirements-freeze.txt (python-gdcm has no sdist build here)
  "$VENV/bin/python" -m pip install -q "torch==2.5.1" "nnunetv2==2.3.1" "numpy==1.26.4" "acvl-utils==0.2" \
    "dynamic-network-architectures==0.3.1" "batchgenerators==0.25.1" "SimpleITK==2.4.0" "scipy==1.13.1" \
    "scikit-image==0.24.0" "dicom2nifti==2.5.0" "python-gdcm==3.0.24.1" -e ".[test]"
fi
"$VENV/bin/python" -c "import sys, torch, nnunetv2, numpy; from importlib.metadata import version; \
print('python', sys.version.split()[0], 'torch', torch.__version__, 'nnunetv2', version('nnunetv2'), 'numpy', numpy.__version__)"
# the console scripts of that venv must come first on PATH for the subprocess tests
PATH="$(cd "$VENV/bin" && pwd):$PATH" "$VENV/bin/python" -m pytest -q tests "$@"
