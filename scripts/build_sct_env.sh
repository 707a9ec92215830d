#!/usr/bin/env bash
# Build a real Spinal Cord Toolbox (SCT) Python environment from a local SCT checkout, the way SCT's own
# installer does (requirements-freeze.txt, then an editable install of the checkout), and install this
# package into it. Used to verify the SCT adapter (sct_task_sciseg/sct/) against real SCT releases.
#
# usage: scripts/build_sct_env.sh SCT_CHECKOUT VENV_DIR [PYTHON]
#
#   SCT_CHECKOUT  a work tree of spinalcordtoolbox at a release tag (with requirements-freeze.txt), e.g.
#                   git --git-dir=SCT.git worktree add /work/sct/6.5 6.5
#                   (or: mkdir -p /work/sct/6.5 && git --git-dir=SCT.git archive 6.5 | tar -x -C /work/sct/6.5)
#                 or of its development head (master: no freeze file; see SCISEG_SCT_BASE_FREEZE)
#   VENV_DIR      where to create the virtual environment (e.g. /work/sct-envs/6.5); must not exist yet
#                 unless SCISEG_SCT_REBUILD=1
#   PYTHON        interpreter to build it with; default: the one SCT asks for (6.x: 3.9, 7.x: 3.10), found
#                 through pyenv or PATH
#
# environment:
#   SCISEG_SCT_BASE_FREEZE  for a checkout without requirements-freeze.txt (SCT's master): the freeze file of
#                           the release it grew from (e.g. /work/sct/7.3/requirements-freeze.txt). Its pins are
#                           installed, plus every line of the checkout's requirements.txt naming a distribution
#                           the freeze lacks (master: sc-crop>=0.12.1); the freeze's pins (numpy 1.26.4, so
#                           numpy<2 as SCT asks) constrain those additions too. Without it, requirements.txt
#                           is installed unpinned.
#   SCISEG_PROJECT_DIR      the checkout of this package to install editable (default: the one holding this
#                           script)
#
# Differences from SCT's install_sct, all deliberate:
#   * a plain venv instead of SCT's private miniforge (no downloads outside PyPI);
#   * the "--extra-index-url https://download.pytorch.org/whl/cpu" line of the freeze file is dropped, so torch
#     comes from PyPI (the freeze's own pin, e.g. torch<2.6 / torch<2.3, still applies): that is the CUDA
#     build, about 2.5 GB with its nvidia-* wheels, and it runs on CPU as well;
#   * SCT's compiled binaries and default models are not downloaded (sct_deepseg does not need them).
#
# This package is installed with --no-deps: SCT 7.x ships the nnunetv2-neuropoly fork, which provides the
# `nnunetv2` module under another distribution name, and letting pip resolve our `nnunetv2` requirement
# would install stock nnunetv2 over it (and could upgrade torch past SCT's pin). Our other runtime
# dependencies are already part of SCT's environment; the script checks that they import.
#
# The environment's SCT root (where SCT keeps data/deepseg_models) is SCT_CHECKOUT itself.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

SCT_SRC="$(cd "$1" && pwd)"
VENV="$2"
PROJECT="$(cd "${SCISEG_PROJECT_DIR:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"

[[ -f "$SCT_SRC/spinalcordtoolbox/version.txt" ]] || { echo "error: $SCT_SRC is not an SCT checkout" >&2; exit 1; }
SCT_VERSION="$(tr -d '[:space:]' < "$SCT_SRC/spinalcordtoolbox/version.txt")"
REQ="$SCT_SRC/requirements-freeze.txt"
BASE_FREEZE=""
if [[ ! -f "$REQ" ]]; then   # git (non-release) checkouts have no freeze file
    REQ="$SCT_SRC/requirements.txt"
    BASE_FREEZE="${SCISEG_SCT_BASE_FREEZE:-}"
    [[ -z "$BASE_FREEZE" || -f "$BASE_FREEZE" ]] || { echo "error: no file $BASE_FREEZE" >&2; exit 1; }
fi

# The Python version SCT's setup.py requires (python_requires="==3.9.*" / "==3.10.*").
PYVER="$(sed -n 's/.*python_requires *= *"==\([0-9.]*\)\.\*".*/\1/p' "$SCT_SRC/setup.py" | head -1)"
PYTHON="${3:-}"
if [[ -z "$PYTHON" ]]; then
    for cand in "$HOME"/.pyenv/versions/"$PYVER".*/bin/python "$(command -v "python$PYVER" || true)"; do
        # a pyenv shim exists for every installed version but fails unless that version is selected: run it
        if [[ -n "$cand" && -x "$cand" ]] && "$cand" -c '' 2>/dev/null; then PYTHON="$cand"; break; fi
    done
fi
[[ -n "$PYTHON" && -x "$PYTHON" ]] || { echo "error: no Python $PYVER found; pass one as 3rd argument" >&2; exit 1; }

if [[ -e "$VENV" ]]; then
    if [[ "${SCISEG_SCT_REBUILD:-0}" == 1 ]]; then rm -rf "$VENV"; else
        echo "error: $VENV exists (set SCISEG_SCT_REBUILD=1 to rebuild it)" >&2; exit 1
    fi
fi

echo "== SCT $SCT_VERSION from $SCT_SRC, Python $("$PYTHON" -c 'import platform; print(platform.python_version())') -> $VENV"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade "pip<25" "setuptools<76" wheel

FILTERED="$(mktemp)"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$FILTERED" "$CONSTRAINTS"' EXIT
if [[ -n "$BASE_FREEZE" ]]; then
    # the base release's pins, then the development head's requirements on distributions it does not pin
    grep -v -- '--extra-index-url' "$BASE_FREEZE" > "$FILTERED"
    sed 's/ *#.*//' "$BASE_FREEZE" | grep '==' > "$CONSTRAINTS" || true
    ADDED="$("$PYTHON" -c '
import re, sys
def name(line):
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else None
pinned = {name(line) for line in open(sys.argv[1])} - {None}
for line in open(sys.argv[2]):
    line = line.split("#")[0].strip()
    if line and not line.startswith("-") and name(line) not in pinned:
        print(line)
' "$BASE_FREEZE" "$REQ")"
    echo "== $SCT_VERSION: $(basename "$BASE_FREEZE") of $BASE_FREEZE plus:" $ADDED
    [[ -z "$ADDED" ]] || printf '%s\n' "$ADDED" >> "$FILTERED"
else
    grep -v -- '--extra-index-url' "$REQ" > "$FILTERED"
    : > "$CONSTRAINTS"
fi
echo "== installing $(grep -cvE '^\s*(#|$)' "$FILTERED") requirements from $(basename "$REQ")"
"${PIP[@]}" install --progress-bar off -r "$FILTERED" -c "$CONSTRAINTS"
"${PIP[@]}" install --progress-bar off --no-deps --use-pep517 -e "$SCT_SRC"

echo "== installing $PROJECT into the SCT environment (no dependency resolution)"
"${PIP[@]}" install --progress-bar off --no-deps -e "$PROJECT"
"$VENV/bin/python" - <<'EOF'
import importlib
missing = []
for mod in ("spinalcordtoolbox.deepseg.inference", "nnunetv2", "torch", "nibabel", "numpy", "scipy", "requests", "filelock", "platformdirs", "tqdm",
            "matplotlib"):
    try:
        importlib.import_module(mod)
    except Exception as exc:  # report every missing module at once
        missing.append(f"{mod} ({exc})")
if missing:
    raise SystemExit("missing in the SCT environment: " + ", ".join(missing))
import torch, nnunetv2, spinalcordtoolbox
from importlib.metadata import version, PackageNotFoundError
def v(d):
    try:
        return version(d)
    except PackageNotFoundError:
        return "-"
print(f"ok: spinalcordtoolbox {v('spinalcordtoolbox')}, torch {torch.__version__}, "
      f"nnunetv2 {v('nnunetv2')} / nnunetv2-neuropoly {v('nnunetv2-neuropoly')}, "
      f"sct_task_sciseg {v('sct_task_sciseg')}")
EOF
echo "== done: $VENV/bin/sct_deepseg (enable the task with: $VENV/bin/sciseg -register-sct)"
