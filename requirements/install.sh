#!/usr/bin/env bash
# Idempotent install of the whole stack into a virtual environment (default: .venv at the repo root).
#
# Order matters (see docs/install.md):
#   1. build tools: setuptools>=77.0.3,<81 (torch 2.13 needs >=77; mmcv 2.1.0's setup.py needs pkg_resources)
#   2. torch (pinned to the CPU wheel on CI machines; users on clusters bring their own)
#   3. mmengine, then mmcv 2.1.0 built from source with compiled ops (no wheel exists for torch 2.13)
#   4. mmdet 3.3.0 and mmsegmentation 1.2.2 with --no-deps (their mmcv pin would trigger a rebuild), plus
#      their runtime requirements listed explicitly in requirements/runtime.txt
#   5. this package in editable mode, and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[install] creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "[install] 1/5 build tools"
$PIP install -q "pip>=23" "setuptools>=77.0.3,<81" wheel ninja
echo "[install] 2/5 $TORCH_SPEC"
$PIP install -q "$TORCH_SPEC"
echo "[install] 3/5 mmengine + mmcv 2.1.0 with compiled ops (first build: ~10 min on 2 cores; cached afterwards)"
$PIP install -q -r requirements/mmcv_deps.txt
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
    MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} \
        $PIP install --no-build-isolation mmcv==2.1.0
fi
echo "[install] 4/5 mmdet, mmsegmentation (--no-deps) and runtime requirements"
$PIP install -q -r requirements/runtime.txt
$PIP install -q --no-deps mmdet==3.3.0 mmsegmentation==1.2.2
echo "[install] 5/5 mtssl_mm (editable) and test tools"
$PIP install -q --no-deps --no-build-isolation -e .
$PIP install -q -r requirements/tests.txt
"$VENV/bin/python" -c "import torch, mmcv.ops, mmdet, mmseg, kornia, mtssl_mm; print('[install] ok: torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, 'kornia', kornia.__version__)"
