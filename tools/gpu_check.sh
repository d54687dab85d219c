#!/usr/bin/env bash
# GPU check on a lent device machine (for cspdet's developers): `cspdet gpu-check` (training throughput and peak
# memory with AMP of the weighted twins against their stock models, into docs/benchmarks.md). That machine has
# Python 3.12 and PyTorch but no ultralytics and no network, so the packages travel as wheels:
#   bash tools/gpu_check.sh prepare      # here: cspdet and its missing dependencies as Python 3.12 wheels in .whl/
#   bash tools/gpu_check.sh [ARGS...]    # there (device run with carry [".whl"]): install them, run the check
# Extra arguments go to `cspdet gpu-check`. The check finishes within 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = prepare ]; then
  # The versions tested here; polars 1.30 because the 2.x runtime wheel alone is 54 MB (a device run carries 64 MiB).
  pins=$(python3 -c "from importlib.metadata import version as v; print(*[f'{p}=={v(p)}' for p in (
      'ultralytics', 'ultralytics-thop', 'albumentations', 'albucore', 'simsimd', 'stringzilla', 'pycocotools',
      'faster-coco-eval', 'lap', 'cloudpickle')])")
  rm -rf .whl && mkdir -p .whl
  python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl .
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins "polars==1.30.0"
  du -sh .whl
  exit
fi
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 NO_ALBUMENTATIONS_UPDATE=1
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$(mktemp -d)}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 480 python3 -m cspdet gpu-check "$@"
