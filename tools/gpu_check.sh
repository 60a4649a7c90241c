#!/usr/bin/env bash
# Usage: tools/gpu_check.sh OUT
#
# The CUDA path in one command, for a bare GPU machine (CPython 3.12 with its own torch 2.11 + CUDA 13, nvcc, no
# package registry) that got this repo with the wheelhouse of tools/gpu_wheelhouse.sh in it (default .whl/):
#
#   env             the machine: GPU, driver, torch, CUDA, nvcc, the image's setuptools
#   install         the wheelhouse's wheels (requirements/gpu_wheelhouse.txt) into $GPU_CHECK_SITE, --no-deps;
#                   their requirements checked against what is installed (gpu_wheelhouse_check.py --installed)
#   mmcv_build      mmcv 2.1.0 from its sdist with CUDA ops for sm_90 only (MMCV_WITH_OPS=1 FORCE_CUDA=1
#                   TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16, pip --no-build-isolation --no-index); a prebuilt
#                   mmcv-2.1.0-*.whl in the wheelhouse (e.g. one brought back in OUT by an earlier run) is
#                   installed instead
#   mmcv_check      import mmcv.ops, mmdet, mmseg, mtssl_mm; mmcv.ops.nms on CUDA tensors against the CPU op.
#                   If the build or this fails, every later stage is skipped: the JSON holds the compiler's last
#                   lines, so a GPU start is not spent on a broken install
#   cuda_tests      pytest -m cuda tests/test_cuda.py
#   dist_train      tools/dist_train.sh configs/bdd100k/densefixmatch_explicit.py 1 (NCCL) for a few iterations at
#                   800x800 crops, on data of tools/synthetic_bdd100k.py converted by the real converter
#   benchmark_fp32  tools/benchmark.py --device cuda --size 800 --batch 8 (8 + 8 images, ResNet-50)
#   benchmark_amp   the same with --amp
#
# OUT receives gpu_check.log (every stage's output), gpu_check.json (status, seconds and error tail of each stage,
# and the figures: tools/gpu_check_report.py), mmcv_build.log and, when it is at most 16 MiB, the built mmcv wheel.
# Every stage runs under a time limit, within a total budget that keeps the whole command inside the GPU machine's
# 10-minute limit; a stage that fails or runs out of time is recorded and the independent ones go on.
#
# Environment: GPU_WHEELHOUSE (.whl), PYTHON (python3), GPU_CHECK_BUDGET (seconds, 570), GPU_CHECK_STAGES (a
# subset of the stage names above, in that order), GPU_CHECK_SITE (/tmp/gpu_check_site), MAX_JOBS (16),
# TORCH_CUDA_ARCH_LIST (9.0), MMCV_CUDA_ARGS (extra nvcc flags, passed through to mmcv's setup.py),
# GPU_CHECK_BENCH_ITERS (3), GPU_CHECK_BENCH_WORKERS (4), GPU_CHECK_DIST_ITERS (4), GPU_CHECK_DIST_CROP (800),
# GPU_CHECK_DIST_WORKERS (2), GPU_CHECK_BDD_SIZE (1280x720), GPU_CHECK_KEEP_WORK (1: keep the work folder in /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SELF="$REPO/tools/gpu_check.sh"
ALL_STAGES="env install mmcv_build mmcv_check cuda_tests dist_train benchmark_fp32 benchmark_amp"
# name:time limit (s):least time worth starting it with (s):stages it needs
STAGE_LIMITS="env:30:5: install:90:20: mmcv_build:360:120:install mmcv_check:60:15:mmcv_build
cuda_tests:120:30:mmcv_check dist_train:150:60:mmcv_check benchmark_fp32:150:60:mmcv_check
benchmark_amp:150:60:mmcv_check"
RESERVE=15  # seconds kept for the report

export PY=${PYTHON:-python3}
export LIST=requirements/gpu_wheelhouse.txt  # the package list, shared with tools/gpu_wheelhouse.sh
export WHEELHOUSE=${GPU_WHEELHOUSE:-.whl}
export SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1

# ------------------------------------------------------------------------------------------------ stage bodies
# Each runs as `tools/gpu_check.sh --stage NAME` (under `timeout`), with WORK and OUT exported.

stage_env() {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    command -v nvcc && nvcc --version | tail -2 || echo "nvcc: not on PATH"
    command -v ninja || echo "ninja: not on PATH"
    "$PY" - <<'EOF'
import json, os, platform, sys
import torch
info = dict(python=sys.version.split()[0], executable=sys.executable, torch=torch.__version__,
            cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(), cpus=os.cpu_count(),
            machine=platform.machine())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f'{p.major}.{p.minor}', gpu_memory_gib=round(p.total_memory / 2**30, 1),
                nccl=torch.cuda.nccl.version() if hasattr(torch.cuda, 'nccl') else None)
for name in ('setuptools', 'numpy', 'opencv-python-headless', 'opencv-python', 'ninja', 'pytest'):
    try:
        from importlib.metadata import version
        info[name] = version(name)
    except Exception:
        info[name] = None
try:
    import pkg_resources  # noqa: F401  (mmcv 2.1.0's setup.py needs it: setuptools < 81)
    info['pkg_resources'] = True
except Exception:
    info['pkg_resources'] = False
print(json.dumps(info, indent=1))
json.dump(info, open(os.path.join(os.environ['WORK'], 'env.json'), 'w'), indent=1)
EOF
}

stage_install() {
    # exactly the wheels of the list, after checking the folder against it (one file per line, pinned versions)
    local wheels
    mapfile -t wheels < <("$PY" tools/gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --print wheels)
    [ ${#wheels[@]} -gt 0 ] || { echo "no listed wheel in $WHEELHOUSE (run tools/gpu_wheelhouse.sh $WHEELHOUSE here first)"; return 1; }
    "$PY" tools/gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --print wheels > /dev/null || return 1
    echo "installing ${#wheels[@]} wheels from $WHEELHOUSE into $SITE (--no-deps)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" \
        || return 1
    "$PY" -c "import mmengine, kornia, pycocotools, shapely, terminaltables, prettytable, ftfy, yapf, addict, \
cityscapesscripts.helpers.labels, pkg_resources, setuptools; print('imports ok; setuptools', setuptools.__version__)" \
        || return 1
    # informational: requirements against the installed versions, and pip's own view (mmcv is built next)
    "$PY" tools/gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --installed > "$WORK/requirements.txt" 2>&1
    local req_rc=$?
    grep -E '^(NO |PROBLEM|wheelhouse complete)' "$WORK/requirements.txt"
    "$PY" -m pip check > "$WORK/pip_check.txt" 2>&1
    local pip_rc=$?
    cat "$WORK/pip_check.txt"
    "$PY" - "$req_rc" "$pip_rc" <<'EOF'
import json, os, sys
work = os.environ['WORK']
problems = [l.strip() for l in open(os.path.join(work, 'requirements.txt')) if l.startswith('PROBLEM')]
pip_check = open(os.path.join(work, 'pip_check.txt')).read().splitlines()
json.dump(dict(requirements_met=sys.argv[1] == '0', requirement_problems=problems, pip_check_ok=sys.argv[2] == '0',
               pip_check=pip_check[:50]), open(os.path.join(work, 'install.json'), 'w'), indent=1)
EOF
}

build_log_tail() {
    echo "---- mmcv build log: lines with errors or skipped ops"
    grep -nE "error|Error|Skip building|No CUDA|nvcc fatal|FAILED" "$OUT/mmcv_build.log" | tail -n 20
    echo "---- mmcv build log: last lines"
    tail -n 40 "$OUT/mmcv_build.log"
}

stage_mmcv_build() {
    local prebuilt
    prebuilt=$(ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1)
    if [ -n "$prebuilt" ]; then
        echo "prebuilt $prebuilt: installing it instead of building" | tee "$OUT/mmcv_build.log"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$prebuilt"
        return
    fi
    local sdist
    sdist=$("$PY" tools/gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --print sdists | grep '/mmcv-2.1.0.tar.gz$')
    [ -n "$sdist" ] || { echo "no mmcv-2.1.0.tar.gz in $WHEELHOUSE"; return 1; }
    # without ninja, torch's BuildExtension compiles one file at a time (MAX_JOBS unused): far past the limit
    if ! command -v ninja >/dev/null; then
        local ninja_dir
        ninja_dir=$("$PY" -c "import ninja, os; print(getattr(ninja, 'BIN_DIR', ''))" 2>/dev/null)
        [ -n "$ninja_dir" ] && export PATH="$ninja_dir:$PATH"
    fi
    command -v ninja >/dev/null || echo "WARNING: no ninja on PATH: the build will be serial"
    if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
        CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
        export CUDA_HOME
    fi
    echo "building $sdist: MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}" \
         "MAX_JOBS=${MAX_JOBS:-16} CUDA_HOME=${CUDA_HOME:-unset}; full log in OUT/mmcv_build.log"
    mkdir -p "$WORK/mmcv_wheel"
    if ! MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} \
            "$PY" -m pip wheel -v --no-build-isolation --no-index --no-deps -w "$WORK/mmcv_wheel" "$sdist" \
            > "$OUT/mmcv_build.log" 2>&1; then
        build_log_tail
        return 1
    fi
    local wheel
    wheel=$(ls "$WORK"/mmcv_wheel/mmcv-*.whl) || { build_log_tail; return 1; }
    ls -la "$wheel"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" "$wheel" || return 1
    if ! ls "$SITE"/mmcv/_ext*.so >/dev/null 2>&1; then
        echo "the wheel has no compiled ops (mmcv/_ext*.so)"
        build_log_tail
        return 1
    fi
    # small enough to come back from the GPU machine (16 MiB a file): a later run can carry it and skip the build
    if [ "$(stat -c %s "$wheel")" -le $((16 * 1024 * 1024)) ]; then cp "$wheel" "$OUT/"; fi
}

stage_mmcv_check() {
    "$PY" - <<'EOF' || { build_log_tail; return 1; }
import json, os
import torch
import mmcv
import mmcv.ops
from mmcv.ops import nms
from mmcv.ops import get_compiler_version, get_compiling_cuda_version
assert mmcv.__version__ == '2.1.0', mmcv.__version__
import mmdet, mmseg, mtssl_mm  # noqa: F401,E401
g = torch.Generator().manual_seed(0)
xy = torch.rand(200, 2, generator=g) * 700
boxes = torch.cat([xy, xy + 20 + torch.rand(200, 2, generator=g) * 80], 1)
scores = torch.rand(200, generator=g)
_, keep_cpu = nms(boxes, scores, 0.5)
dets, keep_cuda = nms(boxes.cuda(), scores.cuda(), 0.5)
assert dets.is_cuda, 'nms on CUDA tensors did not run on CUDA'
same = torch.equal(keep_cpu, keep_cuda.cpu())
info = dict(version=mmcv.__version__, file=mmcv.__file__, compiling_cuda=get_compiling_cuda_version(),
            compiler=get_compiler_version(), nms_cuda_kept=int(keep_cuda.numel()), nms_cuda_equals_cpu=same,
            mmdet=mmdet.__version__, mmseg=mmseg.__version__)
print(json.dumps(info, indent=1))
json.dump(info, open(os.path.join(os.environ['WORK'], 'mmcv.json'), 'w'), indent=1)
assert same, 'mmcv.ops.nms keeps other boxes on CUDA than on the CPU'
EOF
}

stage_cuda_tests() {
    "$PY" -m pytest -m cuda tests/test_cuda.py -rs -p no:cacheprovider --junitxml="$WORK/cuda_tests.xml" || return 1
    # pytest passes when everything is skipped: here a skip means CUDA was not seen, a failure of the stage
    "$PY" -c "import sys; sys.path.insert(0, 'tools'); from gpu_check_report import junit; j = junit(sys.argv[1]); \
print(j); sys.exit(0 if j['tests'] and not j['skipped'] else 1)" "$WORK/cuda_tests.xml"
}

stage_dist_train() {
    local data="$WORK/bdd100k" work="$WORK/dist_train" iters=${GPU_CHECK_DIST_ITERS:-4}
    local crop=${GPU_CHECK_DIST_CROP:-800} workers=${GPU_CHECK_DIST_WORKERS:-2} size=${GPU_CHECK_BDD_SIZE:-1280x720}
    "$PY" tools/synthetic_bdd100k.py "$data" --size "$size" || return 1
    "$PY" tools/dataset_converters/bdd100k.py "$data" || return 1
    local port
    port=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    local opts=(model.detector.backbone.init_cfg=None "train_cfg.max_iters=$iters" "train_cfg.val_interval=$iters"
                "param_scheduler.0.end=$iters" default_hooks.logger.interval=1
                "default_hooks.checkpoint.interval=$iters" default_hooks.checkpoint.max_keep_ckpts=1
                "train_dataloader.num_workers=$workers" "val_dataloader.num_workers=$workers"
                "train_dataloader.persistent_workers=$([ "$workers" -gt 0 ] && echo True || echo False)"
                "val_dataloader.persistent_workers=$([ "$workers" -gt 0 ] && echo True || echo False)"
                "train_dataloader.dataset.pipeline.2.scale=(${size%x*},${size#*x})"
                "train_dataloader.dataset.pipeline.3.crop_size=($crop,$crop)" randomness.seed=0)
    for key in train_dataloader val_dataloader test_dataloader; do opts+=("$key.dataset.data_root=$data"); done
    PYTHON="$PY" PORT=$port bash tools/dist_train.sh configs/bdd100k/densefixmatch_explicit.py 1 \
        --work-dir "$work" --cfg-options "${opts[@]}"
}

stage_benchmark() {
    local name=$1
    shift
    "$PY" tools/benchmark.py --device cuda --size 800 --batch 8 --iters "${GPU_CHECK_BENCH_ITERS:-3}" \
        --workers "${GPU_CHECK_BENCH_WORKERS:-4}" --out "$WORK/$name" "$@"
}
stage_benchmark_fp32() { stage_benchmark benchmark_fp32; }
stage_benchmark_amp() { stage_benchmark benchmark_amp --amp; }

if [ "${1:-}" = "--stage" ]; then
    "stage_$2"
    exit $?
fi

# ------------------------------------------------------------------------------------------------ driver
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
mkdir -p "$1" || exit 2
export OUT
OUT=$(cd "$1" && pwd)
export WORK
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
LOG="$OUT/gpu_check.log"
BUDGET=${GPU_CHECK_BUDGET:-570}
SELECTED=${GPU_CHECK_STAGES:-$ALL_STAGES}
START=$(date +%s.%N)
: > "$LOG"
: > "$WORK/stages.tsv"
elapsed() { "$PY" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }
report() {
    "$PY" tools/gpu_check_report.py "$WORK" "$OUT/gpu_check.json" "$BUDGET" "$(elapsed "$START")" \
        || echo "[gpu_check] the report failed; stage records: $(cat "$WORK/stages.tsv")" | tee -a "$LOG"
}
finish() {  # the report, then the work folder goes (checkpoints, generated data) unless GPU_CHECK_KEEP_WORK=1
    report
    [ "${GPU_CHECK_KEEP_WORK:-0}" = 1 ] && echo "[gpu_check] work folder kept: $WORK" || rm -rf "$WORK"
}
trap finish EXIT
declare -A STATUS

record() {  # name status seconds rc limit reason
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$WORK/stages.tsv"
    STATUS[$1]=$2
    echo "[gpu_check] $1: $2 ($3 s${6:+; $6})" | tee -a "$LOG"
}

for spec in $STAGE_LIMITS; do
    IFS=: read -r name limit least needs <<< "$spec"
    case " $SELECTED " in *" $name "*) ;; *) continue ;; esac
    if [ -n "$needs" ] && [ -n "${STATUS[$needs]:-}" ] && [ "${STATUS[$needs]}" != ok ]; then
        record "$name" skipped 0 - "$limit" "$needs did not pass"
        continue
    fi
    left=$("$PY" -c "import sys, time; print(int($BUDGET - (time.time() - float(sys.argv[1])) - $RESERVE))" "$START")
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt "$least" ]; then
        record "$name" skipped 0 - "$limit" "no time left (${left} s of the ${BUDGET} s budget)"
        continue
    fi
    echo "==== [gpu_check] $name (limit ${limit} s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
    t0=$(date +%s.%N)
    # live on stdout and in OUT's log (what a killed command leaves), and in the stage's own log (its error tail)
    timeout --kill-after=10 "$limit" bash "$SELF" --stage "$name" 2>&1 | tee "$WORK/$name.log" | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    seconds=$(elapsed "$t0")
    case $rc in
        0) record "$name" ok "$seconds" "$rc" "$limit" "" ;;
        124 | 137) record "$name" timeout "$seconds" "$rc" "$limit" "ran past its ${limit} s" ;;
        *) record "$name" failed "$seconds" "$rc" "$limit" "exit status $rc" ;;
    esac
    [ $rc -eq 0 ] || tail -n 40 "$WORK/$name.log"
    report  # after every stage: a command killed from outside still leaves the JSON of the stages done
done
# benchmark reports into the log (the figures are in gpu_check.json)
for md in "$WORK"/benchmark_*/benchmark.md; do
    [ -f "$md" ] && { echo "==== $md"; cat "$md"; } >> "$LOG"
done
finish
trap - EXIT
"$PY" -c "import json, sys; r = json.load(open(sys.argv[1])); print('[gpu_check]', 'all stages ok' if r['ok'] else \
'NOT all stages ok', '-', ', '.join(f'{k} {v[\"status\"]} {v[\"seconds\"]:.0f} s' for k, v in r['stages'].items())); \
sys.exit(0 if r['ok'] else 1)" "$OUT/gpu_check.json"
