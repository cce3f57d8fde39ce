#!/usr/bin/env bash
# The GPU checks of the frame models in one prepared run, for a lent GPU machine with a short time
# budget (docs/benchmarks/gpu_train.md says how it is called):
#   1. the packages avemo imports that such a machine lacks, from wheels carried in .whl/
#      (`make gpu-wheels` downloads them here: av and soxr, for its Python);
#   2. tests/test_training_cuda.py (the CUDA path: mixed precision, memory, checkpointing);
#   3. benchmarks/gpu_train.py: cfnsr_lstm first (the targets' model, also with torch.compile), then
#      every other frame model, each row written as soon as it is measured, under one time limit.
#      Rows already in docs/benchmarks/gpu_train.json from the same GPU and versions are kept and
#      not measured again, so a second call goes on where the first stopped (copy the returned
#      gpu_train.json into docs/benchmarks/ before it).
# What comes back (in $OUT, or ./gpu-out without it): the logs, gpu_train.md, gpu_train.json and
# benchmarks.md.
#
# Usage, from the repository root: bash benchmarks/gpu_device.sh [--fresh] [SECONDS]
#   --fresh   start the table over (the rows of an earlier run are dropped, not merged)
#   SECONDS   time limit of the benchmark part (default 420)
set -uo pipefail
cd "$(dirname "$0")/.."

keep="--merge --skip-measured"
if [ "${1:-}" = "--fresh" ]; then
  keep=""
  shift
fi
budget=${1:-420}
out=${OUT:-gpu-out}
mkdir -p "$out"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/avemo-site \
    .whl/*.whl || { echo "gpu_device.sh: the carried wheels in .whl/ did not install" >&2; exit 1; }
  export PYTHONPATH=/tmp/avemo-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/nvidia-smi.txt"
python3 -c "import av, soxr, torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" \
  || { echo "gpu_device.sh: a package avemo needs is missing: carry it in .whl/ (make gpu-wheels)" >&2; exit 1; }
python3 -c "import torch; raise SystemExit(not torch.cuda.is_available())" \
  || { echo "gpu_device.sh: no CUDA GPU here (on a CPU, tests/test_benchmark_gpu_train.py runs the smoke test)" >&2; exit 1; }

timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_training_cuda.py 2>&1 | tee "$out/cuda_tests.log"

deadline=$((SECONDS + budget))
timeout "$budget" python3 benchmarks/gpu_train.py --models cfnsr_lstm --compile cfnsr_lstm $keep \
  2>&1 | tee "$out/gpu_train.log"
left=$((deadline - SECONDS))
if [ "$left" -gt 30 ]; then
  timeout "$left" python3 benchmarks/gpu_train.py --compile none --merge --skip-measured 2>&1 | tee -a "$out/gpu_train.log"
fi
cp docs/benchmarks/gpu_train.md docs/benchmarks/gpu_train.json docs/benchmarks.md "$out/" 2>/dev/null
echo "gpu_device.sh: done; files in $out"
