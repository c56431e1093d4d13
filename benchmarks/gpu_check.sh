#!/usr/bin/env bash
# The GPU check of issue 15, prepared for a session that is lent a GPU machine (one H100; sized to finish in
# under 8 minutes there). Run from the repository root: `bash benchmarks/gpu_check.sh [DEVICE] [OUT]`.
#   1. tests/test_gpu.py: a tiny suite on the device gives the CPU rows' predictions;
#   2. suites/cifar10_smoke.yaml on the device, from random-weight checkpoints in the official layouts;
#   3. benchmarks/bench_cifar10_throughput.py: images/s of PurSAMERE, ADP, DiffPure and RDC at the published
#      model sizes (defended forward, full-gradient step, BPDA-det step).
# Record the figures in benchmarks/RESULTS.md with the date and the device. A dry run of the script itself on a
# CPU: `SMOKE=1 N=2 BATCH=2 bash benchmarks/gpu_check.sh cpu` (the throughput on the smoke models; about 4 minutes).
set -euo pipefail
DEV=${1:-cuda}
OUT=${2:-${OUT:-/tmp/gpu_check}}
N=${N:-64}
mkdir -p "$OUT"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
ROBBENCH_TEST_DEVICE=$DEV timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
python3 -m tests.cifar10_fixtures "$OUT/c10"
cp suites/cifar10_smoke.yaml "$OUT/c10/"
time timeout 240 robbench run "$OUT/c10/cifar10_smoke.yaml" --data-dir "$OUT/c10/data/cifar-10-batches-py" \
  --out "$OUT/c10/results" --device "$DEV" --no-checks --quiet
robbench table "$OUT/c10/results" | tail -n 5
timeout 300 python3 benchmarks/bench_cifar10_throughput.py --device "$DEV" --n "$N" --batch "${BATCH:-16}" --reps 2 ${SMOKE:+--smoke}
