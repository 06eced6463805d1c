#!/usr/bin/env bash
# The prepared GPU check: prints ONE JSON (gpu tests, epoch times, images/s, options, DDP).
#   scripts/gpu_check.sh            # on a GPU machine, under 8 minutes
#   scripts/gpu_check.sh --smoke    # tiny sizes, runs on a CPU too (tests/test_gpu_check.py)
# Progress and the runs' output go to stderr; stdout is the JSON only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
exec "$python" "$here/gpu_check.py" "$@"
