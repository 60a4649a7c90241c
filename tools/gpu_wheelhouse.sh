#!/usr/bin/env bash
# Usage: tools/gpu_wheelhouse.sh DIR
#
# Download, here (where pip reaches the package registry), the wheelhouse that tools/gpu_check.sh installs on the
# GPU machine (CPython 3.12, its own torch, no registry): every line of requirements/gpu_wheelhouse.txt, --no-deps,
# one version each; wheels for cp312 / manylinux x86_64, and the mmcv sdist of the line tagged "# sdist". Then
# check it: a pip dry run with the GPU machine's Python version and platforms (every listed wheel is found in DIR
# and installs there) and tools/gpu_wheelhouse_check.py (every requirement of every file is met by the list or by
# the image). DIR must be inside the repo to travel with it (default .whl/, ignored by git).
#
# PYTHON: the interpreter whose pip downloads (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
LIST=requirements/gpu_wheelhouse.txt  # the package list, shared with tools/gpu_check.sh
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
TARGET=(--python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none "${PLATFORMS[@]}")

# the list: "name==version" per line, "# sdist" tags a source distribution
mapfile -t WHEELS < <(grep -v '^\s*#' "$LIST" | grep -v '# sdist' | sed 's/#.*//; s/\s//g' | grep -v '^$')
mapfile -t SDISTS < <(grep -v '^\s*#' "$LIST" | grep '# sdist' | sed 's/#.*//; s/\s//g')
mkdir -p "$DIR"

echo "[wheelhouse] ${#WHEELS[@]} wheels (cp312, manylinux x86_64, --no-deps) into $DIR"
"$PY" -m pip download -q --no-deps --only-binary=:all: "${TARGET[@]}" -d "$DIR" "${WHEELS[@]}"

# An sdist download runs its setup.py for metadata; mmcv 2.1.0's imports pkg_resources, which setuptools 81
# removed: run it without build isolation, with the setuptools wheel just downloaded (unpacked, so that its
# commands' entry points are found) first on the path. torch is not needed for the metadata.
BUILD_PATH=$(mktemp -d)
trap 'rm -rf "$BUILD_PATH"' EXIT
"$PY" -m zipfile -e "$(ls "$DIR"/setuptools-*.whl)" "$BUILD_PATH"
echo "[wheelhouse] ${#SDISTS[@]} sdist(s): ${SDISTS[*]}"
PYTHONPATH="$BUILD_PATH${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$DIR" "${SDISTS[@]}"

echo "[wheelhouse] dry run: pip install --dry-run --no-index --find-links $DIR (CPython 3.12, manylinux x86_64)"
# --no-deps: the wheels' own requirements are met partly by the GPU image, which is not here;
# gpu_wheelhouse_check.py checks them below against requirements/gpu_image.txt. No pip configuration: a
# find-links folder of this machine must not stand in for a missing wheel.
env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null \
    "$PY" -m pip install --dry-run --ignore-installed --no-index --find-links "$DIR" --only-binary=:all: --no-deps \
    "${TARGET[@]}" --target "$(mktemp -d)" "${WHEELS[@]}"

echo "[wheelhouse] requirements of every file against the list and the GPU image"
"$PY" tools/gpu_wheelhouse_check.py "$DIR" --list "$LIST"
du -sh "$DIR"
