#!/usr/bin/env bash
# GPU check (issue 6): train csp_wrc-n, csp_plain-n and yolo11n for a fixed number of iterations on the embedded
# shapes dataset with AMP, and report images/s and peak GPU memory side by side (docs/benchmarks.md, section
# "GPU training"). Needs a CUDA GPU; finishes within 8 minutes. Extra arguments go to tools/bench_gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 NO_ALBUMENTATIONS_UPDATE=1
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$(mktemp -d)}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import cspdet" 2>/dev/null || pip install -q -e .
timeout 480 python tools/bench_gpu.py "$@"
