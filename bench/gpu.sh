#!/usr/bin/env bash
# GPU figures (issue 25): one prepared run, <= 8 minutes on one GPU, one JSON object last.
#
#   bash bench/gpu.sh                            # CUDA machine: the figures
#   DEV=cpu SMOKE=1 COMPILE=0 bash bench/gpu.sh  # tiny models on the CPU: the smoke run (tests/bench)
#
# Each figure is also printed as its own JSON line the moment it is measured, and appended to
# $OUT/gpu.jsonl when OUT is set, so a timeout loses nothing. PYTHON picks the interpreter
# (default python3); BUDGET_S, SECTIONS, COMPILE: see bench/gpu_figures.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" bench/gpu_figures.py "$@"
